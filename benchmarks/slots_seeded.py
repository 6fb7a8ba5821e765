"""Labels and unlabelled frames together: does self-training seeded by a person's labels reach 0.99?

The setting of an installer: they record a day of frames of their camera (unlabelled) and label
k free and k taken slots on those frames. Today they can calibrate on the frames
(`parkcast-edge calibrate`) and then adapt on the labels on top (`adapt --calibration`): path A.
Or adapt on the labels alone: path B. Path C (`fit_seeded` below) uses both at
once: the calibration's self-training, started from the labels' adapter instead of the model's own
calls, with the labelled patches held at their labels in every round (a quarter of each round's
weight), then the per-slot split; if its per-slot consistency is no better than the labels'
adapter's, that adapter is kept. Why it might help: where calibration falls short (camera A's
earlier half 0.968, PUCPR's earlier half 0.982) self-training from the model's calls settles on a
wrong split of the camera's patches; labels could start it in the right one and hold it there.

Protocol (the dumps of `benchmarks/slots.py --dump`, the held-out cameras' own fold models, int8
with 7-bit weights since eae06ec): each
held-out camera's frames in time order, one half is the installer's day (unlabelled frames, and
k labels per class drawn at random from its patches, draws = seeds 0..9), the other half is the
test, in both directions: 4 held-out halves. k = 5, 10, 20. A known camera is reported beside it:
the packaged model on pklot_pucpr_more, the installer's day the 20 frames it trained on, the test
the other 20.

Pre-registered (this docstring and the code committed before the one run; the figures so far
were never computed): C replaces A as the path the docs recommend, and `parkcast-edge adapt`
gains `--frames` to run it, only if all of these hold, on the mean over the 10 draws:
  1. k=20: the worst of the 4 held-out halves under C is at least 0.005 above the worst under A;
  2. k=20: no held-out half under C is more than 0.002 below A;
  3. k=5: no held-out half under C is more than 0.005 below A;
  4. known camera, k=20: C no more than 0.005 below B (the labels alone).
The issue's target (>= 0.99 with at most 20 labels per class) is reported, not part of the rule.

    PARKCAST_SLOT_DATA=... .venv/bin/python benchmarks/slots_seeded.py --dumps DIR
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from slots import REPO, held_out_dumps, model_outputs, slot_ids, sources  # noqa: E402

from edge_runtime.adapt import Adapter, class_weights, design, fit_head, newton, standardisation  # noqa: E402
from edge_runtime.calibrate import (  # noqa: E402
    FIRST_SHARE,
    ROUNDS,
    STRENGTH,
    fit_calibration,
    slot_split_labels,
    split_consistency,
    surest,
)
from edge_runtime.classifier import SlotClassifier  # noqa: E402

SHOTS = (5, 10, 20)
LABEL_SHARE = 0.25  # the person's labels carry this share of each self-training fit's weight (set, not tuned)


def fit_seeded(embedding: np.ndarray, probabilities: np.ndarray, slots: np.ndarray, picked: np.ndarray,
               truth: np.ndarray) -> dict:
    """Path C: `fit_calibration`'s self-training and per-slot split (edge_runtime/calibrate.py, the
    same settings), started from the labels' adapter and holding the labelled patches at their
    labels; the labels' adapter where the result agrees no more with its per-slot splits."""
    embedding = np.asarray(embedding, dtype=np.float64)
    center, scale = standardisation(embedding)
    x = design(embedding, probabilities, center, scale)
    fallback = seed_theta(embedding, probabilities, picked, truth, center, scale)
    score = x @ fallback
    theta0, pull = np.zeros(x.shape[1]), np.full(x.shape[1], STRENGTH)
    pull[-2], pull[-1] = 1e9, 0.0  # the head reads the camera's features, not the base logit; free bias
    for r in range(ROUNDS):
        guess = score > 0
        keep = surest(score, FIRST_SHARE + (1 - FIRST_SHARE) * r / max(ROUNDS - 1, 1), r)
        theta = newton(*training_rows(x, np.flatnonzero(keep), guess, picked, truth), STRENGTH, theta0=theta0,
                       pull=pull)
        score = x @ theta
    guess, _ = slot_split_labels(x[:, :-2], score, slots)
    if 0 < guess.sum() < len(guess):
        theta = newton(*training_rows(x, np.arange(len(guess)), guess, picked, truth), STRENGTH, theta0=theta0,
                       pull=pull)
    if split_consistency(x[:, :-2], x @ theta, slots) <= split_consistency(x[:, :-2], x @ fallback, slots):
        theta = fallback
    return {"center": center.tolist(), "scale": scale.tolist(), "weights": theta[:-1].tolist(),
            "bias": float(theta[-1])}


def seed_theta(embedding: np.ndarray, probabilities: np.ndarray, picked: np.ndarray, truth: np.ndarray,
               center: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """The labels' adapter (as `parkcast-edge adapt` fits it) as weights over this camera's design."""
    head = fit_head(embedding[picked], probabilities[picked], truth)
    weights = np.asarray(head["weights"], dtype=np.float64)
    head_scale, head_center = np.asarray(head["scale"]), np.asarray(head["center"])
    # ((e - c_h) / s_h) w + a logit + b  ==  ((e - c) / s) (w s / s_h) + a logit + b + ((c - c_h) / s_h) w
    bias = head["bias"] + float(((center - head_center) / head_scale) @ weights[:-1])
    return np.concatenate([weights[:-1] * scale / head_scale, [weights[-1], bias]])


def training_rows(x: np.ndarray, kept: np.ndarray, guess: np.ndarray, picked: np.ndarray, truth: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A fit's rows, targets and weights: kept patches at their guessed labels, the labelled ones at
    their labels with LABEL_SHARE of the weight (each part class-balanced)."""
    kept = np.setdiff1d(kept, picked)
    y_kept, y_picked = guess[kept].astype(np.float64), truth.astype(np.float64)
    w_kept, w_picked = class_weights(y_kept), class_weights(y_picked)
    w_kept *= (1 - LABEL_SHARE) / w_kept.sum()
    w_picked *= LABEL_SHARE / w_picked.sum()
    rows = np.concatenate([kept, picked])
    return x[rows], np.concatenate([y_kept, y_picked]), np.concatenate([w_kept, w_picked])
PATHS = ("A: calibrate, then adapt", "B: adapt on the labels", "C: seeded self-training")


def accuracy(head: dict | None, embedding: np.ndarray, probabilities: np.ndarray, occupied: np.ndarray) -> float:
    p = probabilities if head is None else Adapter(head)(embedding, probabilities)
    return float(((p >= 0.5) == (occupied == 1)).mean())


def one_day(e: np.ndarray, p: np.ndarray, y: np.ndarray, s: np.ndarray, day: np.ndarray, draws: int) -> dict:
    """Every path on one installer's day (`day`: its patches), tested on the other patches."""
    test = ~day
    e_day, p_day, y_day, s_day = e[day], p[day], y[day], s[day]
    calibration = fit_calibration(e_day, p_day, s_day)
    calibrated = Adapter(calibration)
    p_cal_day, p_cal_test = calibrated(e_day, p_day), calibrated(e[test], p[test])
    out = {"plain": accuracy(None, e[test], p[test], y[test]),
           "calibrated": accuracy(None, e[test], p_cal_test, y[test]), "shots": {}}
    for k in SHOTS:
        results = {path: [] for path in PATHS}
        for seed in range(draws):
            rng = np.random.default_rng(seed)
            pick = np.concatenate([rng.choice(np.flatnonzero(y_day == c), k, replace=False) for c in (0, 1)])
            truth = y_day[pick]
            results[PATHS[0]].append(accuracy(fit_head(e_day[pick], p_cal_day[pick], truth), e[test], p_cal_test,
                                              y[test]))
            results[PATHS[1]].append(accuracy(fit_head(e_day[pick], p_day[pick], truth), e[test], p[test], y[test]))
            results[PATHS[2]].append(accuracy(fit_seeded(e_day, p_day, s_day, pick, truth), e[test], p[test],
                                              y[test]))
        out["shots"][k] = {path: (float(np.mean(v)), float(np.min(v))) for path, v in results.items()}
    return out


def print_day(label: str, r: dict) -> None:
    print(f"\n{label}: plain {r['plain']:.4f}, calibrated (no label) {r['calibrated']:.4f}")
    print(f"  {'path':<28}" + "".join(f"{'k=' + str(k) + ' mean/min':>18}" for k in SHOTS))
    for path in PATHS:
        print(f"  {path:<28}" + "".join(f"{r['shots'][k][path][0]:>10.4f}/{r['shots'][k][path][1]:.4f}"
                                        for k in SHOTS))


def verdict(days: dict, known: dict | None) -> None:
    a, c = PATHS[0], PATHS[2]

    def mean(k, path):
        return {label: r["shots"][k][path][0] for label, r in days.items()}

    worst_a, worst_c = min(mean(20, a).values()), min(mean(20, c).values())
    checks = {f"1. k=20 worst half: C {worst_c:.4f} >= A {worst_a:.4f} + 0.005": worst_c >= worst_a + 0.005,
              "2. k=20 no half under C more than 0.002 below A": all(mean(20, c)[h] >= mean(20, a)[h] - 0.002
                                                                     for h in days),
              "3. k=5 no half under C more than 0.005 below A": all(mean(5, c)[h] >= mean(5, a)[h] - 0.005
                                                                    for h in days)}
    if known is not None:
        kb, kc = known["shots"][20][PATHS[1]][0], known["shots"][20][c][0]
        checks[f"4. known camera k=20: C {kc:.4f} >= B {kb:.4f} - 0.005"] = kc >= kb - 0.005
    print("\nrule (pre-registered):")
    for text, ok in checks.items():
        print(f"  {'pass' if ok else 'FAIL'}  {text}")
    print(f"verdict: {'C passes' if all(checks.values()) else 'C fails'}; worst held-out half at k=20: "
          f"A {worst_a:.4f}, C {worst_c:.4f} (target 0.99)")


def known_camera(draws: int) -> dict | None:
    more = sources(64)["pucpr_more"]
    if more is None:
        return None
    p, e = model_outputs(SlotClassifier(), more)
    trained = np.isin(more.groups, [x.stem for x in (REPO / "data" / "sample" / "slots" / "pklot_pucpr_more"
                                                     / "labeled").glob("*.xml")])
    return one_day(e, p, more.occupied.astype(int), slot_ids("pucpr_more"), trained, draws)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dumps", type=Path, required=True, help="a benchmarks/slots.py --dump folder")
    ap.add_argument("--draws", type=int, default=10)
    args = ap.parse_args()
    started = time.perf_counter()
    days = {}
    for name, e, p, y, s, later, _ in held_out_dumps(args.dumps):
        for direction, day in (("earlier half labels + frames, later half tested", ~later),
                               ("later half labels + frames, earlier half tested", later)):
            label = f"{name}, {direction}"
            days[label] = one_day(e, p, y, s, day, args.draws)
            print_day(label, days[label])
            print(f"  ({time.perf_counter() - started:.0f} s)", flush=True)
    known = known_camera(args.draws)
    if known is not None:
        print_day("known camera (packaged model, pucpr_more: its 20 trained-on frames the day, the other 20 tested)",
                  known)
    verdict(days, known)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
