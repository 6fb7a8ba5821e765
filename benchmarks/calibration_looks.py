"""Label-free calibration (and so the daemon's self-calibration) when the same car park looks
different: the repo's 20 labelled PUCPR frames as another camera or another light would show them,
the packaged model plain and calibrated on those frames (labels only to score). The packaged model
was trained on these frames as they are, so the "as recorded" row is a camera it knows; the
other looks are new to it.

    .venv/bin/python benchmarks/calibration_looks.py [--dumps DIR]

With --dumps (the folder of `benchmarks/slots.py --dump`; PARKCAST_SLOT_DATA set) it adds the
held-out cameras, each half of their frames calibrated and scored on itself, for the last column:
of the patches the calibration turns to the other state, the share the model was sure of
(P < 0.1 or > 0.9; `overruled_sure` in the calibration file), a candidate label-free warning
sign that the guard does not use.

The `threshold` column is the one-parameter mode (edge_runtime.calibrate.fit_threshold; the
daemon's default): only the decision threshold moves, to Otsu's split of the base logits. With
--dumps the held-out cameras are then also calibrated on one half of their frames and scored on
the other (the protocol of benchmarks/slots.py), full and threshold side by side.

The `auto` column (session 8; edge_runtime.calibrate.fit_auto), fixed with its rule before its
one run: fit both; g = of the calibration patches the threshold-shifted model is sure of
(|logit - t| > ln 9), the share the full calibration puts in the other state; use the full
calibration iff it did not keep the model and g <= 0.02 (not tuned), else the threshold. Rule for
making it the daemon's default: (a) on each of the 17 looks and on both parts of the known camera
(slots.py --known-camera) no more than 0.002 below the threshold mode; (b) on the four real halves
(other-half protocol) never below the threshold mode and at least 0.01 above it on two or more;
(c) in the one-state-rare cells the threshold mode does not refuse, no more than 0.002 below it.
"""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter
from sklearn.metrics import roc_auc_score

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from edge_runtime.adapt import Adapter, logit  # noqa: E402
from edge_runtime.calibrate import CalibrationError, fit_auto, fit_calibration, fit_threshold, otsu_threshold  # noqa: E402
from edge_runtime.classifier import SlotClassifier  # noqa: E402
from edge_runtime.preprocess import crop_all  # noqa: E402
from edge_runtime.slotmap import load_slot_map  # noqa: E402
from slot_training.training import SlotTrainConfig  # noqa: E402

FRAMES = ROOT / "data" / "sample" / "slots" / "pklot_pucpr_more" / "labeled"


def tinted(image: Image.Image) -> Image.Image:
    r, g, b = image.split()
    return Image.merge("RGB", (r.point(lambda v: v * 0.6), g, b.point(lambda v: min(255, v * 1.3))))


def gamma(g: float):
    return lambda im: im.point(lambda v: 255 * (v / 255) ** g)


def jpeg(quality: int):
    def recompressed(im: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        im.save(buffer, "JPEG", quality=quality)
        buffer.seek(0)
        return Image.open(buffer).convert("RGB")
    return recompressed


def noisy(im: Image.Image) -> Image.Image:
    pixels = np.asarray(im).astype(float) + np.random.default_rng(0).normal(0, 20, (im.size[1], im.size[0], 3))
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def low_resolution(im: Image.Image) -> Image.Image:
    width, height = im.size
    return im.resize((width // 3, height // 3)).resize((width, height))


def brightness(factor: float):
    return lambda im: ImageEnhance.Brightness(im).enhance(factor)


def contrast(factor: float):
    return lambda im: ImageEnhance.Contrast(im).enhance(factor)


LOOKS = {  # the first five, then the second twelve, each list fixed before its one run
    "as recorded": lambda im: im,
    "darker (brightness x0.45, dusk)": brightness(0.45),
    "overexposed (brightness x1.8)": brightness(1.8),
    "blue cast (another sensor)": tinted,
    "hazy (contrast x0.4, dirty lens)": contrast(0.4),
    "brightness x1.4": brightness(1.4),
    "brightness x2.2": brightness(2.2),
    "gamma 0.5": gamma(0.5),
    "gamma 2.0": gamma(2.0),
    "grey (saturation 0)": lambda im: ImageEnhance.Color(im).enhance(0.0),
    "contrast x0.6": contrast(0.6),
    "contrast x1.8": contrast(1.8),
    "blur (radius 2)": lambda im: im.filter(ImageFilter.GaussianBlur(2)),
    "JPEG quality 10": jpeg(10),
    "noise (sd 20)": noisy,
    "low resolution (1/3)": low_resolution,
    "hazy + bright (contrast x0.5, brightness x1.5)": lambda im: brightness(1.5)(contrast(0.5)(im)),
}


def known_camera_frames() -> tuple[list[Path], list, np.ndarray, np.ndarray]:
    """The repo's labelled PUCPR frames: paths, slot maps, each slot's id and label (NaN: unlabelled)."""
    frames = sorted(FRAMES.glob("*.jpg"))
    maps = [load_slot_map(jpg.with_suffix(".xml")) for jpg in frames]
    ids = np.concatenate([[s.slot_id for s in m.slots] for m in maps])
    truth = np.array([np.nan if s.occupied is None else float(s.occupied) for m in maps for s in m.slots])
    return frames, maps, ids, truth


def outputs_under(classifier: SlotClassifier, frames: list[Path], maps: list, look) -> tuple[np.ndarray, np.ndarray]:
    """P(taken) and embedding of every slot of `frames` seen through `look`."""
    outputs = [classifier.outputs(crop_all(look(Image.open(jpg).convert("RGB")), m, classifier.size))
               for jpg, m in zip(frames, maps, strict=True)]
    return np.concatenate([o[0] for o in outputs]), np.concatenate([o[1] for o in outputs])


def row(name: str, p: np.ndarray, e: np.ndarray, ids: np.ndarray, truth: np.ndarray) -> None:
    known = ~np.isnan(truth)
    started = time.perf_counter()
    head = fit_calibration(e, p, ids)
    seconds = time.perf_counter() - started
    calibrated = Adapter(head)(e, p)
    plain_acc = float(((p >= 0.5) == (truth == 1))[known].mean())
    cal_acc = float(((calibrated >= 0.5) == (truth == 1))[known].mean())
    consistency = head["split_consistency"]
    print(f"{name:<46} {plain_acc:>7.4f} {cal_acc:>10.4f} {str(head['kept_base']):>10} "
          f"{consistency['base']:>13.4f} / {consistency['calibrated']:.4f} {seconds:>7.2f} "
          f"{1 - head['agreement_with_base']:>8.3f} {head['overruled_sure']:>12.2f} "
          f"{threshold_accuracy((p, e), (p, e, truth)):>9} {auto_accuracy((p, e, ids), (p, e, truth)):>22}", flush=True)


def windows(groups: np.ndarray, cal: np.ndarray, outputs: tuple, test: np.ndarray) -> str:
    """The threshold fitted on every 20 consecutive calibration frames (every second start; what a
    daemon with `frames = 20` could have collected), scored on the test half: worst and mean."""
    p, e, y = outputs
    frames = np.unique(groups[cal])
    scores = []
    for start in range(0, len(frames) - 19, 2):
        chosen = cal & np.isin(groups, frames[start : start + 20])
        got = threshold_accuracy((p[chosen], e[chosen]), (p[test], e[test], y[test]))
        scores.append(np.nan if got == "refused" else float(got))
    done = [s for s in scores if not np.isnan(s)]
    refused = len(scores) - len(done)
    return (f"{min(done):.4f} / {np.mean(done):.4f} ({len(done)} window{'s' if len(done) > 1 else ''}"
            + (f", {refused} refused)" if refused else ")"))


def threshold_accuracy(fit_on: tuple, score_on: tuple) -> str:
    """Accuracy of the threshold mode fitted on `fit_on` = (P, embedding) and scored on `score_on`
    = (P, embedding, truth with NaN for unlabelled), or why it refused."""
    (p, e), (p_test, e_test, truth) = fit_on, score_on
    try:
        head = fit_threshold(p, e.shape[1])
    except CalibrationError:
        return "refused"
    known = ~np.isnan(truth)
    return f"{float(((Adapter(head)(e_test, p_test) >= 0.5) == (truth == 1))[known].mean()):.4f}"


def auto_accuracy(fit_on: tuple, score_on: tuple) -> str:
    """Accuracy of the auto mode fitted on `fit_on` = (P, embedding, slot ids) and scored on
    `score_on` (as threshold_accuracy), with what it chose and its flipped share of sure calls."""
    (p, e, ids), (p_test, e_test, truth) = fit_on, score_on
    try:
        head = fit_auto(e, p, ids)
    except CalibrationError:
        return "refused"
    known = ~np.isnan(truth)
    accuracy = float(((Adapter(head)(e_test, p_test) >= 0.5) == (truth == 1))[known].mean())
    g = head["threshold_sure_flipped"]
    return f"{accuracy:.4f} {head['chose'][:4]} {'-' if g is None else f'{g:.3f}'}"


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dumps", type=Path, default=None)
    parser.add_argument("--cast", type=float, default=SlotTrainConfig.cast,
                        help="the dumps' design (0: the model before session 10, which the documented figures used)")
    args = parser.parse_args()
    classifier = SlotClassifier()
    frames, maps, ids, truth = known_camera_frames()
    known = ~np.isnan(truth)
    print(f"packaged model, {len(frames)} PUCPR frames ({known.sum()} labelled slots), calibrated on all of them")
    print(f"{'look':<46} {'plain':>7} {'calibrated':>10} {'kept model':>10} {'split consistency base/cal':>27} "
          f"{'fit (s)':>7} {'flipped':>8} {'of them sure':>12} {'threshold':>9} {'auto (chose, g)':>22}")
    for name, look in LOOKS.items():
        row(name, *outputs_under(classifier, frames, maps, look), ids, truth)
    if args.dumps:
        from benchmarks.slots import held_out_dumps

        cameras = [(name, e, p, y.astype(float), ids, later, groups)  # their fold models, which never saw them
                   for name, e, p, y, ids, later, groups in held_out_dumps(args.dumps, SlotTrainConfig(cast=args.cast))]
        for source, e, p, y, ids, later, _ in cameras:
            for half, chosen in (("later half", later), ("earlier half", ~later)):
                row(f"{source}, {half}", p[chosen], e[chosen], ids[chosen], y[chosen])
        print("\nheld-out cameras, calibrated on the other half (labels only to score):")
        print(f"{'test half':<34} {'plain':>7} {'full':>7} {'threshold':>9} {'plain AUC':>9} "
              f"{'threshold, 20-frame windows min / mean':>39} {'auto (chose, g)':>22}")
        for source, e, p, y, ids, later, groups in cameras:
            for half, test in (("later half", later), ("earlier half", ~later)):
                cal = ~test
                full = Adapter(fit_calibration(e[cal], p[cal], ids[cal]))(e[test], p[test])
                print(f"{source + ', ' + half:<34} {np.mean((p[test] >= 0.5) == (y[test] == 1)):>7.4f} "
                      f"{np.mean((full >= 0.5) == (y[test] == 1)):>7.4f} "
                      f"{threshold_accuracy((p[cal], e[cal]), (p[test], e[test], y[test])):>9} "
                      f"{roc_auc_score(y[test] == 1, p[test]):>9.4f} "
                      f"{windows(groups, cal, (p, e, y), test):>39} "
                      f"{auto_accuracy((p[cal], e[cal], ids[cal]), (p[test], e[test], y[test])):>22}", flush=True)
        print("\none state rare: 1,000 patches drawn (seed 0) with this share taken, threshold fitted on them "
              "and scored on the whole source (plain: the model as trained; in brackets: Otsu without the guard)")
        for source, e, p, y, ids, *_ in cameras:
            rng, cells = np.random.default_rng(0), []
            for share in (0.05, 0.1, 0.2, 0.5, 0.8, 0.9, 0.95):
                drawn = np.concatenate([rng.choice(np.flatnonzero(y == 1), int(1000 * share)),
                                        rng.choice(np.flatnonzero(y == 0), 1000 - int(1000 * share))])
                unguarded = np.mean((logit(p) > otsu_threshold(logit(p[drawn]))) == (y == 1))
                cells.append(f"{share:.2f}: {threshold_accuracy((p[drawn], e[drawn]), (p, e, y))} ({unguarded:.4f}) "
                             f"auto {auto_accuracy((p[drawn], e[drawn], ids[drawn]), (p, e, y))}")
            print(f"{source:<14} plain {np.mean((p >= 0.5) == (y == 1)):.4f} | " + " | ".join(cells), flush=True)

if __name__ == "__main__":
    main()
