"""Build each Lambda function's deployment folder (handler + parking_core + its requirements,
pinned by constraints.txt, for Lambda's x86_64 Python 3.11) and print its size. Proves every
function packages without torch or dagster; the sizes are documented in docs/serving.md.

    .venv/bin/python lambda/build.py [--out build/lambda] [FUNCTION ...]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS = ["run_prediction_trigger", "read_api", "daily_export_to_s3", "evaluate_promote_trigger", "system_monitor"]
FORBIDDEN = {"torch", "dagster", "lightning", "pytorch_forecasting", "alibi_detect", "sagemaker"}
# Lambda's zip limit is 250 MB unzipped; above 200 MB (headroom for layers and growth) the CDK
# stack ships the function as a container image (lambda/Dockerfile).
ZIP_MAX_MB = 200


def folder_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 1e6


def build(function: str, out: Path) -> tuple[float, float]:
    target = out / function
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    # bandit B603: this interpreter's pip with paths of this repository; no input in the argv.
    subprocess.run(  # nosec B603
        [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target),
         "-c", str(ROOT / "constraints.txt"), "-r", str(ROOT / "lambda" / function / "requirements.txt"),
         "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_28_x86_64",
         "--python-version", "3.11", "--only-binary=:all:", "--implementation", "cp"],
        check=True,
    )
    shutil.copytree(ROOT / "parking_core", target / "parking_core", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "lambda" / function / "handler.py", target / "handler.py")
    present = {p.name for p in target.iterdir()} & FORBIDDEN
    if present:
        raise SystemExit(f"{function}: the package holds {sorted(present)}")
    archive = out / f"{function}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(target.rglob("*")):
            if p.is_file() and "__pycache__" not in p.parts:
                zf.write(p, p.relative_to(target))
    return folder_mb(target), archive.stat().st_size / 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("functions", nargs="*", default=FUNCTIONS)
    ap.add_argument("--out", type=Path, default=ROOT / "build" / "lambda")
    args = ap.parse_args()
    rows = [(f, *build(f, args.out)) for f in args.functions]
    print(f"\n{'function':<26} {'unzipped MB':>12} {'zip MB':>8}  packaging")
    for name, unzipped, zipped in rows:
        kind = "zip" if unzipped <= ZIP_MAX_MB else "container image (lambda/Dockerfile)"
        print(f"{name:<26} {unzipped:>12.1f} {zipped:>8.1f}  {kind}")


if __name__ == "__main__":
    main()
