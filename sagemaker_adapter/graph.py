"""Read the SageMaker steps off the Dagster asset graph: each asset's `sagemaker_step` metadata
(kind, step name, module, instance settings) and its parents, in dependency order."""

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
        specs[key.to_user_string()] = StepSpec(
            asset=key.to_user_string(), kind=value.pop("kind"), name=value.pop("name", None), settings=value,
            parents=sorted(p.to_user_string() for p in node.parent_keys),
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
