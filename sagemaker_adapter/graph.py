"""Read the SageMaker steps off the Dagster asset graph: each asset's `sagemaker_step` metadata
(kind, step name, module, instance settings), its parents, where its data lives in the object
store (`object_prefix`) and the type of the value it hands downstream, in dependency order."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class StepSpec:
    asset: str
    kind: str  # processing | condition | training | register | lambda
    name: str | None
    settings: dict[str, Any]
    parents: list[str] = field(default_factory=list)  # parent assets
    object_prefix: str | None = None  # where the asset's data lives in the object store
    value_type: type | None = None  # the pydantic value the asset returns (None: metadata only)
    parent_prefixes: list[str] = field(default_factory=list)  # the data the step reads: its parents'


def read_steps(defs) -> list[StepSpec]:
    """Every asset with `sagemaker_step` metadata, topologically ordered (ties by name)."""
    graph = defs.resolve_asset_graph()
    specs: dict[str, StepSpec] = {}
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        meta = node.metadata.get("sagemaker_step")
        if meta is None:
            continue
        value = dict(getattr(meta, "value", meta))
        parents = sorted(node.parent_keys, key=lambda k: k.to_user_string())
        specs[key.to_user_string()] = StepSpec(
            asset=key.to_user_string(), kind=value.pop("kind"), name=value.pop("name", None), settings=value,
            parents=[p.to_user_string() for p in parents], object_prefix=_prefix(graph, key),
            value_type=_value_type(node), parent_prefixes=[prefix for p in parents if (prefix := _prefix(graph, p))],
        )
    ordered, done = [], set()
    while len(ordered) < len(specs):
        ready = sorted(a for a, s in specs.items() if a not in done and all(p in done or p not in specs
                                                                              for p in s.parents))
        if not ready:
            raise ValueError(f"cycle in the asset graph among {sorted(set(specs) - done)}")
        for asset in ready:
            ordered.append(specs[asset])
            done.add(asset)
    return ordered


def ancestors(steps: list[StepSpec], asset: str) -> set[str]:
    by_asset = {s.asset: s for s in steps}
    out, todo = set(), list(by_asset[asset].parents)
    while todo:
        parent = todo.pop()
        if parent in by_asset and parent not in out:
            out.add(parent)
            todo.extend(by_asset[parent].parents)
    return out


def _prefix(graph, key) -> str | None:
    from parking_assets.sagemaker_meta import OBJECT_PREFIX

    if not graph.has(key):
        return None
    prefix = graph.get(key).metadata.get(OBJECT_PREFIX)
    return getattr(prefix, "value", prefix)


def _value_type(node) -> type | None:
    """The typed value an asset returns, from its output's Dagster type."""
    from pydantic import BaseModel

    assets_def = node.assets_def
    output = assets_def.node_def.output_def_named(assets_def.get_output_name_for_asset_key(node.key))
    typing_type = output.dagster_type.typing_type
    return typing_type if isinstance(typing_type, type) and issubclass(typing_type, BaseModel) else None
