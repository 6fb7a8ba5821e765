"""What the processing step scripts share: arguments, the object store rebuilt from the step's
inputs, and publishing what a step wrote to its outputs."""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path

from parking_core.objectstore import ObjectStore


def processing_args(description: str, extra=lambda parser: None, argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--objects", required=True, type=Path, help="object store root rebuilt from the inputs")
    parser.add_argument("--out", required=True, type=Path, help="/opt/ml/processing/output")
    parser.add_argument("--run-id", default="")
    extra(parser)  # nosec B610 - bandit takes this callback named `extra` for Django's QuerySet.extra
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    return parser.parse_args(argv)


def object_store(root: Path) -> ObjectStore:
    root.mkdir(parents=True, exist_ok=True)  # an input prefix SageMaker found empty arrives as nothing
    return ObjectStore(root.resolve().as_uri())


def publish(objects_root: Path, out: Path, prefix: str) -> None:
    """Copy objects_root/prefix to the output of the same name (SageMaker uploads it back)."""
    source, target = objects_root / prefix, out / prefix
    target.mkdir(parents=True, exist_ok=True)
    if source.exists():
        shutil.copytree(source, target, dirs_exist_ok=True)
