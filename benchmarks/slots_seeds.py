"""How much a held-out camera's figure moves with the training seed, and whether averaging the
heads of several seeds helps.

`benchmarks/slots.py --seed S --dump DIR` trains a fold with another seed (augmentation draws,
batch order, the head's start). The trunk is frozen, so every seed's model shares the embedding
and differs only in its linear head (and in the int8 scales its calibration draw gives). The
heads' average, logits averaged, is again one linear head on the same embedding: a model of the
same size and speed. Here it is computed from the dumps (mean logit of the seeds' int8 P(taken)),
scored as `benchmarks/slots.py` scores one model: no label (the whole held-out source), adapted on
k=20 labels per class (10 draws), and the full calibration's four halves.

Measured first (session 11, seeds 7 = shipped, 1, 2, 3; int8, no label): camera A held out
0.9473 / 0.9441 / 0.9470 / 0.9499 (sd 0.002), PUCPR held out 0.8964 / 0.9157 / 0.8801 / 0.9188
(sd 0.018). The shipped seed is one draw of that spread.

Pre-registered (this docstring committed before the ensemble's one run): the averaged head
replaces the single one in `parkcast train-slots` only if, against the mean over the four seeds
of the same figure (what one seed gives on average; seed 7 alone would make any average look good
where it drew low):
  1. no label: the worse camera under the average at least 0.005 above the seeds' mean of the
     worse camera, and neither camera below its seeds' mean;
  2. k=20: neither camera more than 0.003 below its seeds' mean;
  3. full calibration: none of the four halves more than 0.003 below its seeds' mean.

    .venv/bin/python benchmarks/slots_seeds.py --dumps DIR [DIR ...]   (DIR per seed; shipped first)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from slots import adapted_accuracy, held_out_dumps  # noqa: E402

from edge_runtime.adapt import Adapter, logit, sigmoid  # noqa: E402
from edge_runtime.calibrate import fit_calibration  # noqa: E402

CAMERAS = ("cnrpark_camA", "pklot_pucpr")


def figures(e: np.ndarray, p: np.ndarray, y: np.ndarray, s: np.ndarray, later: np.ndarray) -> dict:
    """No label; k=20 adaptation (mean of 10 draws); the full calibration on each half, tested on the other."""
    out = {"plain": float(((p >= 0.5) == (y == 1)).mean()),
           "k20": adapted_accuracy(e, p, y, draws=10)[20]["mean"]}
    for name, day in (("later", ~later), ("earlier", later)):  # calibrate on one half, test the other
        head = fit_calibration(e[day], p[day], s[day])
        out[name] = float(((Adapter(head)(e[~day], p[~day]) >= 0.5) == (y[~day] == 1)).mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dumps", type=Path, nargs="+", required=True,
                    help="one benchmarks/slots.py --dump folder per seed")
    args = ap.parse_args()
    seeds = [{name: (e, p, y, s, later) for name, e, p, y, s, later, _ in held_out_dumps(d)} for d in args.dumps]
    rows = {}
    for i, seed in enumerate(seeds):
        rows[f"seed dump {i}"] = {c: figures(*seed[c]) for c in CAMERAS}
    average = {}
    for c in CAMERAS:
        e, _, y, s, later = seeds[0][c]
        for other in seeds[1:]:
            if not np.array_equal(other[c][2], y):
                raise SystemExit(f"{c}: the dumps hold other patches")
        p = sigmoid(np.mean([logit(seed[c][1]) for seed in seeds], axis=0)).astype(np.float32)
        average[c] = figures(e, p, y, s, later)  # the first dump's embedding (the trunk is the same)
    keys = ("plain", "k20", "later", "earlier")
    mean = {c: {k: float(np.mean([r[c][k] for r in rows.values()])) for k in keys} for c in CAMERAS}
    print(f"{'':<16}" + "".join(f"{c + ' ' + k:>22}" for c in CAMERAS for k in keys))
    for label, r in [*rows.items(), ("seeds' mean", mean), ("averaged heads", average)]:
        print(f"{label:<16}" + "".join(f"{r[c][k]:>22.4f}" for c in CAMERAS for k in keys))
    worst_mean = float(np.mean([min(r[c]["plain"] for c in CAMERAS) for r in rows.values()]))
    worst_avg = min(average[c]["plain"] for c in CAMERAS)
    checks = {
        f"1. no label: worse camera {worst_avg:.4f} >= seeds' mean of the worse {worst_mean:.4f} + 0.005":
            worst_avg >= worst_mean + 0.005,
        "1. no label: neither camera below its seeds' mean": all(average[c]["plain"] >= mean[c]["plain"]
                                                                 for c in CAMERAS),
        "2. k=20: neither camera more than 0.003 below": all(average[c]["k20"] >= mean[c]["k20"] - 0.003
                                                             for c in CAMERAS),
        "3. full calibration: no half more than 0.003 below": all(average[c][h] >= mean[c][h] - 0.003
                                                                  for c in CAMERAS for h in ("later", "earlier"))}
    print("\nrule (pre-registered):")
    for text, ok in checks.items():
        print(f"  {'pass' if ok else 'FAIL'}  {text}")
    sd = {c: float(np.std([r[c]["plain"] for r in rows.values()], ddof=1)) for c in CAMERAS}
    print(f"verdict: the averaged head {'passes' if all(checks.values()) else 'fails'}; no-label sd over seeds "
          + ", ".join(f"{c} {v:.4f}" for c, v in sd.items()))


if __name__ == "__main__":
    main()
