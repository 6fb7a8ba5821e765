"""Slot classifier, judged on cameras it never saw: leave-one-source-out (LOSO).

For each source: train on all the others, test on it (no label from it), through the edge's own
code (frames -> slot map -> perspective crop -> int8 ONNX). Then few-shot adaptation on it: k
labelled patches per class drawn from it (k = 5, 10, 20; several draws), an adapter fitted in
numpy exactly as `parkcast-edge adapt` does, tested on the source's other patches. And
label-free calibration (`parkcast-edge calibrate`): the source's frames in time order, one half
calibrates without labels, the other half is tested, in both directions (rows "later half" and
"earlier half"), with the adapter on top of the calibration.

Sources (the shared data folder beside the checkout when present, else the repo's data/sample/slots;
PARKCAST_SLOT_DATA=DIR names another):
  cnrpark_camA  CNRPark camera A patches (Pisa, one sunny day)
  pklot_pucpr   PKLot PUCPR frames (Curitiba; 43 frames, 24 days, sunny/cloudy/rainy)
  pucpr_days    the 3 PUCPR frames of pklot_pucpr_frames, trained on camera A + the other 40
                PUCPR frames: the same camera on days it never saw (not a new camera)

    flock /tmp/parkcast-cpu.lock .venv/bin/python benchmarks/slots.py [--arch lite0|cnn] [--holdout NAME]

Pre-registered (session 9, in commit 64776fd, before either run): the trunk's input side.
The teacher study (benchmarks/slots_teacher.py) found that ImageNet's classifier recognises the
slot's car only when the crop is resized to 224 px: object scale matters to ImageNet features. The
shipped trunk reads 64 px crops. `--size 96` and `--size 128` (crops cut at that side, everything
else shipped, student alone), one run each, camera A and PUCPR held out. A size would replace 64
only if, against the shipped rows: the worst held-out camera is at least 0.01 higher (0.8862 now)
and neither is more than 0.005 lower (0.9158 / 0.8862); k=20 adaptation on the whole source no
more than 0.005 lower (0.9681 / 0.9840); the full calibration's four halves and the threshold
mode's four halves none more than 0.002 lower (0.9994 / 0.9680 / 0.9950 / 0.9819 and
0.9589 / 0.9425 / 0.9263 / 0.9538); and the int8 model at least 500 patches/s on one core. If
both pass, the better worst case (the smaller side within 0.005).
Result: both fail, so the trunk stays at 64 px. 96 px: 0.8971 / 0.9171 (its worst case is 0.011
higher, but camera A is 0.019 lower); 128 px: 0.8820 / 0.8953 (worst case lower, camera A 0.034
lower). A bigger crop lets the head learn more of the training camera; the teacher's gain came from
ImageNet's labels, not its scale alone. (These runs used the design before session 10's colour cast:
add `--cast 0` to reproduce them. Since then the default trains with `--cast 0.5`, chosen in
benchmarks/calibration_new_looks.py --colour; its rows are docs/slots-loso.jsonl.)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_runtime.adapt import Adapter, AdaptError, fit_head  # noqa: E402
from edge_runtime.calibrate import MIN_FRAMES, fit_auto, fit_calibration, fit_threshold  # noqa: E402
from edge_runtime.classifier import SlotClassifier  # noqa: E402
from edge_runtime.evaluate import scores  # noqa: E402
from edge_runtime.slotmap import load_slot_map  # noqa: E402
from slot_training.data import PatchSet, cached, load_frames, load_patch_csv  # noqa: E402
from slot_training.training import SlotTrainConfig, edge_input, evaluate, export, fit  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SHARED = REPO.parent / "shared" / "data" / "slots"
for candidate in (SHARED, REPO / "data" / "sample" / "slots"):
    if (candidate / "cnrpark_camA" / "labels.csv").exists():
        DATA = candidate
        break
if os.environ.get("PARKCAST_SLOT_DATA"):  # a checkout elsewhere (a git worktree) names the shared folder
    DATA = Path(os.environ["PARKCAST_SLOT_DATA"])
CACHE = Path(tempfile.gettempdir()) / "parkcast-slot-cache"
SHOTS = (5, 10, 20)


def sources(size: int) -> dict[str, PatchSet]:
    """Every source at `size` px, cached under /tmp."""
    def key(name):
        return f"{DATA}/{name}@{size}"

    out = {"cnrpark_camA": cached(key("camA"), lambda: load_patch_csv(DATA / "cnrpark_camA" / "labels.csv", size,
                                                                          name="cnrpark_camA"), CACHE)}
    days = cached(key("pucpr3"), lambda: load_frames(DATA / "pklot_pucpr_frames" / "labeled", size,
                                                      name="pucpr_days"), CACHE)
    more_dir = DATA / "pklot_pucpr_more" / "labeled"
    more = cached(key("pucpr40"), lambda: load_frames(more_dir, size, name="pucpr_more"), CACHE) \
        if more_dir.exists() else None
    out["pucpr_days"] = days
    out["pucpr_more"] = more
    return out


FOLDS = {  # held out -> trained on
    "cnrpark_camA": ["pucpr_days", "pucpr_more"],
    "pklot_pucpr": ["cnrpark_camA"],
    "pucpr_days": ["cnrpark_camA", "pucpr_more"],
}


def held_out(name: str, data: dict[str, PatchSet]) -> PatchSet:
    if name == "pklot_pucpr":
        return PatchSet.concat(name, [p for p in (data["pucpr_days"], data["pucpr_more"]) if p is not None])
    return data[name]


def slot_ids(name: str) -> np.ndarray:
    """The slot id of each patch of a held-out source, in the order its PatchSet loads them
    (labels.csv rows; sorted frames, their labelled slots): calibration's per-slot step needs them."""
    if name == "cnrpark_camA":
        with open(DATA / "cnrpark_camA" / "labels.csv", newline="") as fh:
            return np.array([f"{r.get('camera', '')}{r['slot_id']}" for r in csv.DictReader(fh)])
    folders = {"pucpr_days": ["pklot_pucpr_frames"], "pklot_pucpr": ["pklot_pucpr_frames", "pklot_pucpr_more"],
               "pucpr_more": ["pklot_pucpr_more"]}[name]
    return np.array([s.slot_id for folder in folders if (DATA / folder / "labeled").exists()
                     for xml in sorted((DATA / folder / "labeled").glob("*.xml"))
                     for s in load_slot_map(xml).slots if s.occupied is not None])


def held_out_dumps(dump: Path, config: SlotTrainConfig | None = None):
    """Each held-out camera of a --dump folder of `config`'s models (default: the shipped design):
    (name, embedding, P(taken), occupied, slot ids, whether each patch is of its later half of frames,
    its frame), the halves calibration is measured on."""
    for name in ("cnrpark_camA", "pklot_pucpr"):
        saved = np.load(dump / dump_name(name, config or SlotTrainConfig()))
        e, p, y, groups = saved["embedding"], saved["probabilities"], saved["occupied"].astype(int), saved["groups"]
        s = saved["slots"] if "slots" in saved else slot_ids(name)
        frames = np.unique(groups)
        yield name, e, p, y, s, np.isin(groups, frames[len(frames) // 2 :]), groups


def model_outputs(classifier: SlotClassifier, patches: PatchSet) -> tuple[np.ndarray, np.ndarray]:
    """The model's P(taken) and embedding of every patch, in batches as the edge runs them."""
    batches = [classifier.outputs(edge_input(patches.images[i : i + 256])) for i in range(0, len(patches), 256)]
    return np.concatenate([p for p, _ in batches]), np.concatenate([e for _, e in batches])


def few_shot(classifier: SlotClassifier, test: PatchSet, draws: int, dump: Path | None = None
             ) -> tuple[dict, dict | None]:
    """Accuracy after adapting on k labels per class drawn from `test` (mean and min), and the
    calibration rows (`calibrated`)."""
    probabilities, embedding = model_outputs(classifier, test)
    slots = slot_ids(test.name)
    if dump is not None:  # for studying adapters without retraining (--adapt-only)
        np.savez(dump, embedding=embedding, probabilities=probabilities, occupied=test.occupied, groups=test.groups,
                 slots=slots)
    return adapted_accuracy(embedding, probabilities, test.occupied, draws), \
        calibrated(embedding, probabilities, test.occupied, test.groups, slots, draws)


def calibrated(embedding: np.ndarray, probabilities: np.ndarray, occupied: np.ndarray, groups: np.ndarray,
               slots: np.ndarray, draws: int) -> dict | None:
    """`parkcast-edge calibrate` on the held-out source: its frames (capture times) in time order,
    the earlier half used without labels to calibrate, the later half to test (plain model on the
    same later half for comparison); calibrated on MIN_FRAMES frames and on the whole earlier half;
    then calibrated + adapted on k labels per class drawn from the later half. And the other way
    round (calibrated on the later half, tested and adapted on the earlier one): which frames
    self-training gets matters. `threshold`: the daemon's default mode (only the decision
    threshold moves) on the same halves."""
    frames = np.unique(groups)  # frame names and capture times sort in time order
    if len(slots) != len(groups):
        raise ValueError(f"{len(slots)} slot ids for {len(groups)} patches")
    if len(frames) < 2 * MIN_FRAMES:
        return None  # too few frames to calibrate on some and test on others
    first, second = frames[: len(frames) // 2], frames[len(frames) // 2 :]
    later = np.isin(groups, second)

    def accuracy(chosen: np.ndarray, test: np.ndarray, fit=fit_calibration) -> tuple[float, np.ndarray]:
        on = np.isin(groups, chosen)
        p = Adapter(fit(embedding[on], probabilities[on], slots[on]))(embedding[test], probabilities[test])
        return scores(occupied[test], p >= 0.5)["accuracy"], p

    def threshold(chosen: np.ndarray, test: np.ndarray) -> float:
        return accuracy(chosen, test, lambda e, p, _: fit_threshold(p, e.shape[1]))[0]

    out = {"frames": len(first), "min_frames": MIN_FRAMES, "test_frames": len(second),
           "test_patches": int(later.sum()), "plain": scores(occupied[later], probabilities[later] >= 0.5)["accuracy"],
           "cal_min": accuracy(first[:MIN_FRAMES], later)[0]}
    out["cal"], p = accuracy(first, later)
    out["threshold"] = threshold(first, later)
    out["adapted"] = adapted_accuracy(embedding[later], p, occupied[later], draws)
    out["reverse"] = {"frames": len(second), "test_patches": int((~later).sum()),
                      "plain": scores(occupied[~later], probabilities[~later] >= 0.5)["accuracy"],
                      "cal_min": accuracy(second[-MIN_FRAMES:], ~later)[0]}
    out["reverse"]["cal"], p = accuracy(second, ~later)
    out["reverse"]["threshold"] = threshold(second, ~later)
    out["reverse"]["adapted"] = adapted_accuracy(embedding[~later], p, occupied[~later], draws)
    return out


def adapted_accuracy(embedding: np.ndarray, probabilities: np.ndarray, occupied: np.ndarray, draws: int) -> dict:
    """Per k: mean and worst accuracy, over `draws` random draws of k labels per class, of the
    adapter fitted on them (as `parkcast-edge adapt` does), on the other patches."""
    out = {}
    for k in SHOTS:
        accuracies = []
        for seed in range(draws):
            rng = np.random.default_rng(seed)
            pick = np.concatenate([rng.choice(np.flatnonzero(occupied == c), k, replace=False) for c in (0, 1)])
            rest = np.setdiff1d(np.arange(len(occupied)), pick)
            try:
                adapter = Adapter(fit_head(embedding[pick], probabilities[pick], occupied[pick]))
            except AdaptError:
                continue
            predicted = adapter(embedding[rest], probabilities[rest]) >= 0.5
            accuracies.append(scores(occupied[rest], predicted)["accuracy"])
        out[k] = {"mean": round(float(np.mean(accuracies)), 4), "min": round(float(np.min(accuracies)), 4)}
    return out


def dump_name(name: str, config: SlotTrainConfig) -> str:
    """The file a held-out source's embeddings go to (--dump) and are read from (--adapt-only)."""
    norm = "" if config.input_norm == "imagenet" else f"_{config.input_norm}"
    teacher = f"_teacher{config.teacher}" if config.teacher else ""
    side = "" if config.size == (64 if config.arch == "lite0" else 48) else f"_s{config.size}"
    cast = f"_cast{config.cast:g}" if config.cast else ""  # no suffix: the design before session 10
    return f"{name}_{config.arch}{config.depth}_{config.pool}{norm}{teacher}{side}{cast}.npz"


def known_camera() -> None:
    """Calibration on a camera the shipped model already reads well: the packaged model on all 40
    frames of pklot_pucpr_more (20 of them, the repo's sample, are in its training set), calibrated
    on all 40 without labels, scored on the 20 it trained on and on the 20 others."""
    more = sources(64)["pucpr_more"]
    if more is None:
        print("known camera: no pklot_pucpr_more in", DATA)
        return
    slots = slot_ids("pucpr_more")
    probabilities, embedding = model_outputs(SlotClassifier(), more)
    trained = np.isin(more.groups, [x.stem for x in (REPO / "data" / "sample" / "slots" / "pklot_pucpr_more"
                                                     / "labeled").glob("*.xml")])
    heads = {"plain model": None, "self-training alone": fit_calibration(embedding, probabilities),
             "calibrated (shipped)": fit_calibration(embedding, probabilities, slots),
             "threshold mode": fit_threshold(probabilities, embedding.shape[1]),
             "auto mode": fit_auto(embedding, probabilities, slots)}
    print(f"known camera: packaged model, calibrated on all {len(np.unique(more.groups))} pucpr_more frames")
    for label, head in heads.items():
        p = probabilities if head is None else Adapter(head)(embedding, probabilities)
        print(f"  {label:<22} " + "  ".join(f"{part} {scores(more.occupied[m], p[m] >= 0.5)['accuracy']:.4f}"
                                             for part, m in (("trained-on 20", trained), ("other 20", ~trained))))


def run_fold(name: str, config: SlotTrainConfig, draws: int, dump: Path | None = None) -> dict:
    train_data, test_data = sources(config.load), sources(config.size)
    train = PatchSet.concat("+".join(FOLDS[name]), [train_data[s] for s in FOLDS[name] if train_data[s] is not None])
    test = held_out(name, test_data)
    started = time.perf_counter()
    model = fit(train, config, progress=False)
    seconds = time.perf_counter() - started
    with tempfile.TemporaryDirectory() as tmp:
        fp32, int8, teacher = export(model, train, Path(tmp), config)
        classifier = SlotClassifier(int8)
        dump = dump and dump / dump_name(name, config)
        result = {"held_out": name, "trained_on": train.name, "arch": config.arch, "train_patches": len(train),
                  "test_patches": len(test), "train_seconds": round(seconds), "teacher": teacher,
                  "int8_kb": round(int8.stat().st_size / 1024), "fp32": evaluate(SlotClassifier(fp32), test),
                  "int8": evaluate(classifier, test)}
        result["adapted"], result["calibrated"] = few_shot(classifier, test, draws, dump)
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", default="lite0", choices=["lite0", "cnn"])
    ap.add_argument("--holdout", action="append", choices=list(FOLDS), help="default: every source")
    ap.add_argument("--epochs", type=int, default=SlotTrainConfig.epochs)
    ap.add_argument("--size", type=int, default=None, help="input side (default: 64 for lite0, 48 for cnn)")
    ap.add_argument("--depth", type=int, default=SlotTrainConfig.depth)
    ap.add_argument("--freeze", type=int, default=SlotTrainConfig.freeze)
    ap.add_argument("--lr", type=float, default=None)
    ap.add_argument("--pool", default=SlotTrainConfig.pool, choices=["avg", "avgmax", "multi"])
    ap.add_argument("--input-norm", default=SlotTrainConfig.input_norm, choices=["imagenet", "patch"])
    ap.add_argument("--teacher", type=int, default=SlotTrainConfig.teacher,
                    help="side at which the ImageNet teacher reads the crop (0: the student alone)")
    ap.add_argument("--cast", type=float, default=SlotTrainConfig.cast,
                    help="strong colour cast in training (0: the design before session 10)")
    ap.add_argument("--seed", type=int, default=SlotTrainConfig.seed,
                    help="training seed (augmentation, order, initial head); the shipped figures use the default")
    ap.add_argument("--draws", type=int, default=10, help="random draws per few-shot size")
    ap.add_argument("--dump", type=Path, default=None, help="folder for each held-out source's embeddings")
    ap.add_argument("--adapt-only", type=Path, default=None,
                    help="recompute the adaptation columns from a --dump folder and a --json file (no training)")
    ap.add_argument("--known-camera", action="store_true",
                    help="only calibration on a camera the packaged model already reads well (no training)")
    ap.add_argument("--json", type=Path, default=None, help="append each fold's result as a JSON line")
    args = ap.parse_args()
    if args.dump:
        args.dump.mkdir(parents=True, exist_ok=True)
    if args.known_camera:
        known_camera()
        return
    config = SlotTrainConfig(arch=args.arch, epochs=args.epochs, depth=args.depth, freeze=args.freeze,
                             pool=args.pool if args.arch == "lite0" else "avg",
                             size=args.size or (64 if args.arch == "lite0" else 48),
                             learning_rate=args.lr or SlotTrainConfig.learning_rate, input_norm=args.input_norm,
                             teacher=args.teacher, cast=args.cast, seed=args.seed)
    print(f"slot classifier LOSO ({os.cpu_count()} CPUs, data {DATA}); arch {config.arch}, "
          f"{config.size} px, depth {config.depth}, freeze {config.freeze}, pool {config.pool}, "
          f"lr {config.learning_rate}, {config.epochs} epochs, input norm {config.input_norm}, "
          f"teacher {config.teacher or 'none'}, colour cast {config.cast:g}, seed {config.seed}, "
          "int8 ONNX through the edge code")
    head = f"{'held out':<14} {'trained on':<26} {'n':>5} {'fp32':>7} {'int8':>7} " + \
        " ".join(f"{f'k={k} mean/min':>16}" for k in SHOTS)
    print(head)
    if args.adapt_only:
        rows = [json.loads(line) for line in args.json.read_text().splitlines() if line.strip()]
        redone = set(args.holdout or FOLDS)  # rows of other folds stay as they are
        args.json.write_text("".join(json.dumps(r) + "\n" for r in rows if r["held_out"] not in redone))
    for name in args.holdout or list(FOLDS):
        if args.adapt_only:
            r = next(row for row in rows if row["held_out"] == name)
            saved = np.load(args.adapt_only / dump_name(name, config))
            r["adapted"] = adapted_accuracy(saved["embedding"], saved["probabilities"], saved["occupied"], args.draws)
            slots = saved["slots"] if "slots" in saved else slot_ids(name)  # dumps made before slot ids were saved
            r["calibrated"] = calibrated(saved["embedding"], saved["probabilities"], saved["occupied"],
                                         saved["groups"], slots, args.draws)
        else:
            r = run_fold(name, config, args.draws, args.dump)
        adapted = " ".join(f"{a['mean']:>8.4f}/{a['min']:.4f}" for a in r["adapted"].values())
        print(f"{name:<14} {r['trained_on']:<26} {r['test_patches']:>5} {r['fp32']['accuracy']:>7.4f} "
              f"{r['int8']['accuracy']:>7.4f} {adapted}   (int8 {r['int8_kb']} KB, confusion "
              f"{r['int8']['confusion']}, trained in {r['train_seconds']} s)", flush=True)
        c = r.get("calibrated")
        if c:
            adapted = " ".join(f"{a['mean']:>8.4f}/{a['min']:.4f}" for a in c["adapted"].values())
            back = c["reverse"]
            for label, accuracy in (("no labels, plain model", c["plain"]),
                                    (f"calibrated, {MIN_FRAMES} frames", c["cal_min"]),
                                    (f"calibrated, {c['frames']} frames", f"{c['cal']:>7.4f} {adapted}"),
                                    (f"threshold, {c['frames']} frames", c.get("threshold", float("nan")))):
                print(f"{'  later half':<14} {label:<26} {c['test_patches']:>5} {'':>7} "
                      + (f"{accuracy:>7.4f}" if isinstance(accuracy, float) else accuracy))
            adapted = " ".join(f"{a['mean']:>8.4f}/{a['min']:.4f}" for a in back.get("adapted", {}).values())
            for label, accuracy in (("no labels, plain model", back["plain"]),
                                    (f"calibrated, last {MIN_FRAMES} fr.", back["cal_min"]),
                                    (f"calibrated, {back['frames']} later fr.", f"{back['cal']:>7.4f} {adapted}"),
                                    (f"threshold, {back['frames']} later fr.", back.get("threshold", float("nan")))):
                print(f"{'  earlier half':<14} {label:<26} {back['test_patches']:>5} {'':>7} "
                      + (f"{accuracy:>7.4f}" if isinstance(accuracy, float) else accuracy))
        if args.json:
            with open(args.json, "a") as fh:
                fh.write(json.dumps({**r, "config": vars(args) | {"json": None}}, default=str) + "\n")


if __name__ == "__main__":
    main()
