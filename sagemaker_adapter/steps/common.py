"""What the processing step scripts share: arguments, the object store rebuilt from the step's
inputs, and handing what a step wrote (its data, its typed value) to its outputs."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from pydantic import BaseModel

from parking_core.objectstore import ObjectStore
from parking_core.pipeline_values import RUNS_PREFIX


def processing_args(description: str, extra=lambda parser: None, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--objects", required=True, type=Path, help="object store root rebuilt from the inputs")
    parser.add_argument("--out", required=True, type=Path, help="/opt/ml/processing/output")
    parser.add_argument("--run-id", default="")
    parser.add_argument("--asset", required=True, help="the asset this step materializes (names its value file)")
    parser.add_argument("--publish", action="append", default=[], help="object-store prefix the step writes")
    extra(parser)  # nosec B610 - bandit takes this callback named `extra` for Django's QuerySet.extra
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return parser.parse_args(argv)


def object_store(root: Path) -> ObjectStore:
    root.mkdir(parents=True, exist_ok=True)  # an input prefix SageMaker found empty arrives as nothing
    return ObjectStore(root.resolve().as_uri())


def finish(args: argparse.Namespace, value: BaseModel) -> None:
    """Hand the step's results to SageMaker: each prefix it writes goes to the output of the same
    name, its typed value to runs/<asset>.json (the key the Dagster IO manager uses)."""
    for prefix in args.publish:
        source, target = args.objects / prefix, args.out / prefix
        target.mkdir(parents=True, exist_ok=True)
        if source.exists():
            shutil.copytree(source, target, dirs_exist_ok=True)
    runs = args.out / RUNS_PREFIX
    runs.mkdir(parents=True, exist_ok=True)
    (runs / f"{args.asset}.json").write_text(value.model_dump_json(indent=2))
