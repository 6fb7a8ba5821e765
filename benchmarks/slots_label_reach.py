"""Issue 13: can a few labels reach further on a fixed camera than the shipped adapter lets them?
Two ideas (not shipped), scored against `adapt` on top of `calibrate`, on the dumps of
`benchmarks/slots.py --dump` with the same halves and the same label draws as its rows:

  carried   labels carried through the calibration's per-slot groups: each labelled patch is
            matched to the nearer of its slot's two groups (edge_runtime.calibrate.slot_cut) in the
            calibration frames, which takes its label and the other group the opposite; a slot
            that did not split takes the label only if the labelled patch lies within the spread of
            its calibration patches (90 % of their distances to their mean); one head is then
            fitted on the calibration and the labelled patches, as calibrate's last step
  exemplar  a patch within distance TAU of a labelled patch of the same slot (calibration's
            standardised embedding) takes that label; otherwise the shipped adapter answers

    PARKCAST_SLOT_DATA=/path/to/shared/data/slots .venv/bin/python benchmarks/slots_label_reach.py DUMP_DIR
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.slots import SHOTS, slot_ids  # noqa: E402
from edge_runtime.adapt import Adapter, AdaptError, class_weights, design, fit_head, newton  # noqa: E402
from edge_runtime.calibrate import MIN_SLOT_PATCHES, SPLIT_GAP, STRENGTH, fit_calibration, slot_cut  # noqa: E402

TAU = 8.0
SPREAD = 0.9


def carried_head(head: dict, cal: tuple, labelled: tuple) -> dict:
    """The calibration refitted with the labels carried through its per-slot groups."""
    center, scale = np.asarray(head["center"]), np.asarray(head["scale"])
    (emb_c, p_c, slots_c), (emb_l, p_l, slots_l, y_l) = cal, labelled
    xc, xl = design(emb_c, p_c, center, scale), design(emb_l, p_l, center, scale)
    score = xc @ np.array([*head["weights"], head["bias"]])
    z, zl = xc[:, :-2], xl[:, :-2]
    y = score > 0
    needed = SPLIT_GAP * float(score.std())
    for slot in np.unique(slots_c):
        members = np.flatnonzero(slots_c == slot)
        if len(members) < MIN_SLOT_PATCHES:
            continue
        low, high = slot_cut(z, score, members)
        split = score[high].mean() - score[low].mean() >= needed
        if split:
            y[low], y[high] = False, True
        mine = np.flatnonzero(slots_l == slot)
        if len(mine) == 0:
            continue
        if split:
            nearer_high = np.square(zl[mine] - z[high].mean(0)).sum(1) < np.square(zl[mine] - z[low].mean(0)).sum(1)
            votes = {side: set(y_l[mine][nearer_high == side].astype(bool)) for side in (False, True)}
            if any(len(v) > 1 for v in votes.values()) or votes[False] & votes[True]:
                continue  # labels disagree about one group, or give both groups one state: leave the slot
            side = bool(votes[True])
            label = next(iter(votes[side]))
            y[high if side else low], y[low if side else high] = label, not label
        else:
            mean = z[members].mean(0)
            reach = np.quantile(np.linalg.norm(z[members] - mean, axis=1), SPREAD)
            near = np.linalg.norm(zl[mine] - mean, axis=1) <= reach
            if near.any() and y_l[mine][near].mean() != 0.5:
                y[members] = y_l[mine][near].mean() > 0.5
    x, target = np.vstack([xc, xl]), np.concatenate([y, y_l.astype(bool)]).astype(np.float64)
    pull = np.full(x.shape[1], STRENGTH)
    pull[-2], pull[-1] = 1e9, 0.0  # as calibrate: the base logit stays out, the bias is free
    theta = newton(x, target, class_weights(target), STRENGTH, theta0=np.zeros(x.shape[1]), pull=pull)
    return {**head, "weights": theta[:-1].tolist(), "bias": float(theta[-1])}


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return float(((p >= 0.5) == (y == 1)).mean())


def one_direction(e, p, y, s, cal: np.ndarray, test: np.ndarray, draws: int) -> dict:
    head = fit_calibration(e[cal], p[cal], s[cal])
    z = (e - np.asarray(head["center"])) / np.asarray(head["scale"])
    calibrated = Adapter(head)(e[test], p[test])
    index, y_test = np.flatnonzero(test), y[test]
    out = {"calibrated": accuracy(y_test, calibrated)}
    for k in SHOTS:
        runs = {"shipped": [], "carried": [], "exemplar": []}
        for seed in range(draws):  # the draws of benchmarks/slots.py's adapted_accuracy
            rng = np.random.default_rng(seed)
            pick = np.concatenate([rng.choice(np.flatnonzero(y_test == c), k, replace=False) for c in (0, 1)])
            rest = np.setdiff1d(np.arange(len(y_test)), pick)
            labelled, others = index[pick], index[rest]
            try:
                shipped = Adapter(fit_head(e[labelled], calibrated[pick], y_test[pick]))(e[others], calibrated[rest])
            except AdaptError:
                continue  # as benchmarks/slots.py: a draw adapt refuses is not counted
            runs["shipped"].append(accuracy(y_test[rest], shipped))
            head_b = carried_head(head, (e[cal], p[cal], s[cal]), (e[labelled], p[labelled], s[labelled], y_test[pick]))
            runs["carried"].append(accuracy(y_test[rest], Adapter(head_b)(e[others], p[others])))
            distance = np.linalg.norm(z[others][:, None] - z[labelled][None], axis=-1)
            distance[s[others][:, None] != s[labelled][None]] = np.inf
            nearest = distance.argmin(1)
            near = distance[np.arange(len(others)), nearest] <= TAU
            runs["exemplar"].append(accuracy(y_test[rest], np.where(near, y_test[pick][nearest], shipped)))
        out[k] = {name: (float(np.mean(v)), float(np.min(v))) for name, v in runs.items()}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dump", type=Path, help="folder of benchmarks/slots.py --dump files")
    parser.add_argument("--draws", type=int, default=10)
    args = parser.parse_args()
    print(f"{'held out':<14} {'test half':<9} {'k':>3} {'calibrated':>10} "
          + " ".join(f"{name + ' mean/min':>19}" for name in ("shipped", "carried", "exemplar")))
    for name in ("cnrpark_camA", "pklot_pucpr"):
        saved = np.load(args.dump / f"{name}_lite08_multi.npz")
        e, p, y, groups = saved["embedding"], saved["probabilities"], saved["occupied"], saved["groups"]
        s = saved["slots"] if "slots" in saved else slot_ids(name)
        frames = np.unique(groups)
        later = np.isin(groups, frames[len(frames) // 2 :])
        for half, cal, test in (("later", ~later, later), ("earlier", later, ~later)):
            result = one_direction(e, p, y, s, cal, test, args.draws)
            for k in SHOTS:
                print(f"{name:<14} {half:<9} {k:>3} {result['calibrated']:>10.4f} "
                      + " ".join(f"{m:>11.4f}/{lo:.4f}" for m, lo in result[k].values()), flush=True)


if __name__ == "__main__":
    main()
