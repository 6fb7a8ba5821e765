"""Issue 13, session 10: should the daemon calibrate itself in `auto` mode instead of `threshold`?
Checked on looks never used before, on the known camera and on the two held-out cameras.

    PARKCAST_SLOT_DATA=... .venv/bin/python benchmarks/calibration_new_looks.py           # round 1, 2.5 min
    PARKCAST_SLOT_DATA=... .venv/bin/python benchmarks/calibration_new_looks.py --guard   # round 2
    PARKCAST_SLOT_DATA=... .venv/bin/python benchmarks/calibration_new_looks.py --colour  # round 3

Why: on the four held-out halves the daemon's default (`threshold`: Otsu's cut of the base logits)
gives 0.926-0.959, the `auto` mode 0.968-0.999 (docs/benchmarks.md, "Auto mode"). Auto was not made
the default in session 8 because its rule failed twice: brightness x2.2 (g = 0.018, under the
0.02 limit, so it took the full calibration and lost 0.076 against the threshold) and PUCPR with a
fifth of the slots taken (-0.010, g = 0.002). A smaller limit would have caught x2.2, but choosing it
on the cases it is scored on would be tuning, so it was left. Here the limit is chosen on those old
cases and tested on new ones.

Pre-registered (session 10, 2026-11-28, in the commit that adds this file, before its one run):

  Candidate: the daemon's `[self_calibration] mode` default becomes "auto", with
  AUTO_OVERRULED = 0.01 instead of 0.02 (between x2.2's 0.018 and the held-out halves' <= 0.002;
  on the session-8 cases only x2.2 changes, to the threshold). Everything else as shipped.

  New looks, photometric only (a look is applied to every frame, or to every 64 px patch of a
  camera that comes as patches, so its effect does not depend on the image's scale), none run
  before: brightness x1.6; brightness x2.0; warm street light (R x1.2, G x0.9, B x0.55, then
  brightness x0.7); night (brightness x0.3); saturation x2; low sun (gamma 0.7, then contrast x1.4);
  overexposed and warm (brightness x1.7, then R x1.1, B x0.9); flat overcast (contrast x0.7,
  brightness x1.2); green cast (R x0.85, G x1.2); hazy, bright and cool (contrast x0.6, brightness
  x1.3, B x1.15).

  Cases: (A) the known camera, as benchmarks/calibration_looks.py: the packaged model on the repo's
  20 labelled PUCPR frames under each look, calibrated on all of them and scored on them; (B) the two
  held-out cameras, their fold models trained again here exactly as benchmarks/slots.py does (a check:
  their zero-shot int8 accuracy must equal 0.9158 / 0.8862), each look applied to all their patches,
  calibrated on one half of the frames and scored on the other, both directions: 4 halves x 10 looks.
  The four halves as recorded are printed too (seen before; not part of the rule).

  Rule, to make auto (0.01) the daemon's default: (a) in every (A) case auto is no more than 0.002
  below the threshold mode; (b) over the 40 (B) cases, auto is on average at least 0.01 above the
  threshold mode and never more than 0.005 below it. Where the threshold mode refuses (one state
  under 10 % of the calls), auto refuses too and the case counts as equal. Known and accepted if it
  passes: session 8's PUCPR cell with a fifth of the slots taken (auto 0.9146, threshold 0.9248,
  plain 0.8862), which no limit changes.

Result (one run, 141 s; the fold models reproduced 0.9158 / 0.8862): the rule FAILS, and the run
found a harm of the daemon's default itself.
  (a) known camera: auto is 0.0175 below the threshold mode on "hazy, bright and cool" (it took the
      full calibration, g = 0.002: 0.9690 against 0.9865).
  (b) held-out cameras: auto +0.0231 on average over the 40 cases, but 0.0114 below on camera A's
      later half under saturation x2 (0.9431 against 0.9545).
  The threshold mode, the daemon's default, fails badly under warm light, where no look of
  session 7 went: on the known camera, warm street light 0.9144 -> 0.5749 and overexposed and warm
  0.9539 -> 0.6430; on PUCPR held out 0.8308 -> 0.4682 (later half, warm street light) and 0.9154 /
  0.9004 -> 0.5000 / 0.6287 (overexposed and warm). Auto kept the threshold in those cases (g
  0.18-0.48), so it fails with it. Session 7's "never more than 0.002 below the plain model" held on
  its 17 looks only. (Since round 2's guard, rerunning this round prints "refused" for the threshold
  and auto modes in those four cases, where the model now stays as trained; every other figure is
  the same.)

Round 2, `--guard` (session 10, pre-registered in the commit that adds this paragraph, before its
one run): a guard for the threshold mode, chosen on the cases seen so far and tested on fresh ones.
  Seen (a diagnostic outside the repo, over the session-7 photometric looks, the ten looks above,
  the real halves; known camera and both held-out cameras): in the four catastrophes Otsu's cut
  lies at logit -9.68, beyond every patch the model is unsure of, and it overturns 35-74 % of the
  calls the model is sure of (|logit| > ln 9); in every other case it overturns at most 10.4 % (PUCPR
  earlier half under warm street light, a +0.094 gain), mostly 0 %.
  Guard: `fit_threshold` refuses (the model stays as trained; the daemon drops its older frames
  and collects on, as for its other refusals) when the cut would overturn more than
  THRESHOLD_OVERRULED = 0.2 of the model's sure calls (between 0.104 and 0.354), measured when at
  least 50 calls are sure. It changes none of the seen cases but the four it was made for.
  Fresh looks, never run before (photometric, applied as above): sodium lamp (R x1.3, G x0.8,
  B x0.4); warm daylight (R x1.1, B x0.8); warm dusk (brightness x0.5, then R x1.15, B x0.7);
  magenta cast (R x1.1, G x0.85, B x1.1); underexposed and contrasty (brightness x0.6, then
  contrast x1.3); brightness x2.4; washed out (saturation x0.4, then brightness x1.3); cyan cast (R
  x0.8, G x1.05, B x1.15); gamma 1.5; dim and flat (contrast x0.5, then brightness x0.8); bright
  orange (brightness x1.4, then R x1.15, B x0.6); yellow cast (R x1.1, G x1.1, B x0.7).
  Cases: the known camera and the four held-out halves under each fresh look, as in round 1: 60.
  Rule to ship the guard: (i) in no fresh case is the guarded threshold mode more than 0.05 below
  the plain model; (ii) over the 60 cases its mean accuracy is no lower than the unguarded mode's.
  Printed too: where the guard refused, and the unguarded mode's accuracy there.
  Result (one run, 156 s; the fold models reproduced 0.9158 / 0.8862): it passes, and the guard is
  shipped. (i) worst guarded - plain -0.0328 (PUCPR's later half under a yellow cast: an ordinary
  loss of the threshold mode there, not a cut beyond the unsure patches); (ii) mean over the 60 cases
  0.9185 guarded, 0.8949 unguarded, 0.8893 plain. The guard refused in 9 cases: it caught every
  collapse (known camera: sodium lamp 0.6169 -> 0.8928, bright orange 0.6149 -> 0.8983; PUCPR held
  out: sodium lamp 0.5173 / 0.6506 -> 0.7907 / 0.7421, bright orange 0.4404 -> 0.8608) and blocked
  one gain (camera A's later half under bright orange: 0.7103 unguarded, 0.6679 plain). Those looks
  hurt the model itself too: camera A held out falls from 0.92 to 0.67-0.74 under bright orange and
  the yellow cast, where training's colour cast spans only +-15 % per channel.

Round 3, `--colour` (session 10, pre-registered in the commit that adds this paragraph, before its
one run): a strong colour cast in training. SlotTrainConfig.cast = 0.5: half the training patches
get a per-channel gain exp(U(-0.5, 0.5)) (0.61-1.65) on top of the mild +-15 % cast; the value is
set, not tuned, and nothing else changes.
  Fresh colour looks, never run before (per-channel gains R, G, B): amber (1.25, 1.0, 0.6);
  tungsten (1.35, 1.0, 0.5); deep blue (0.7, 0.9, 1.3); purple (1.15, 0.75, 1.2); fluorescent green
  (0.85, 1.15, 0.9); teal (0.7, 1.1, 1.1).
  Measured for the shipped config and for cast 0.5, the fold models trained here as benchmarks/
  slots.py does: each held-out camera's zero-shot int8 accuracy as recorded and under each look
  (the model as trained, no calibration: 12 look cases); and the known cameras (camera A val, PUCPR
  other days) of a model trained as `parkcast train-slots` trains the packaged one.
  Rule to make cast 0.5 the default (and retrain the packaged model): (1) zero-shot as recorded no
  more than 0.005 below the shipped config on either camera (0.9158 / 0.8862); (2) over the 12
  look cases, mean accuracy at least 0.03 above the shipped config's and no case more than 0.01
  below it; (3) each known camera no more than 0.005 below (0.9894 / 0.9933).
  Result (one run, 278 s; the shipped config reproduced 0.9158 / 0.8862 and 0.9894 / 0.9933): it
  passes, and cast 0.5 became the default (the packaged model was retrained with it). (1) zero-shot
  0.9328 / 0.9004 (camera A / PUCPR held out), both higher; (2) colour looks +0.0486 on average
  (camera A under tungsten 0.7670 -> 0.9042, amber 0.8152 -> 0.9129; PUCPR under tungsten 0.8622 ->
  0.9437), worst -0.0098 (PUCPR under fluorescent green, 0.9497 -> 0.9399), inside the limit by
  0.0002; (3) known cameras 0.9910 / 0.9933.
  Correction to round 2's text (after the run): the seen collapses were five, not four (round 1's
  result lists them).
  Rounds 1 and 2 were run with the model before it: their fold models pin SlotTrainConfig(cast=0.0),
  and their known-camera cases read the packaged model, so they reproduce with that model restored
  (`git checkout 4604b3b -- edge_runtime/models`). With the new packaged model the threshold mode
  still collapses on the known camera overexposed and warm (0.9614 -> 0.5964, half its sure calls
  overturned, refused by the guard; tests/test_slot_calibration.py), no longer under the sodium lamp
  (0.9494 plain, 0.9559 threshold).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.calibration_looks import (  # noqa: E402
    brightness,
    contrast,
    gamma,
    known_camera_frames,
    outputs_under,
)
from benchmarks.slots import FOLDS, held_out, model_outputs, slot_ids, sources  # noqa: E402
from edge_runtime.adapt import Adapter  # noqa: E402
from edge_runtime.calibrate import CalibrationError, fit_auto, fit_threshold  # noqa: E402
from edge_runtime.classifier import SlotClassifier  # noqa: E402
from slot_training.data import PatchSet  # noqa: E402
from slot_training.training import SlotTrainConfig, edge_input, export, fit  # noqa: E402

LIMIT = 0.01  # the candidate AUTO_OVERRULED
EXPECTED_ZERO_SHOT = {"cnrpark_camA": 0.9158, "pklot_pucpr": 0.8862}


def channels(r: float = 1.0, g: float = 1.0, b: float = 1.0):
    def scaled(im: Image.Image) -> Image.Image:
        bands = [band.point(lambda v, f=f: min(255, v * f)) for band, f in zip(im.split(), (r, g, b), strict=True)]
        return Image.merge("RGB", bands)
    return scaled


def chain(*looks):
    def applied(im: Image.Image) -> Image.Image:
        for look in looks:
            im = look(im)
        return im
    return applied


NEW_LOOKS = {
    "brightness x1.6": brightness(1.6),
    "brightness x2.0": brightness(2.0),
    "warm street light": chain(channels(1.2, 0.9, 0.55), brightness(0.7)),
    "night (brightness x0.3)": brightness(0.3),
    "saturation x2": lambda im: ImageEnhance.Color(im).enhance(2.0),
    "low sun (gamma 0.7, contrast x1.4)": chain(gamma(0.7), contrast(1.4)),
    "overexposed and warm": chain(brightness(1.7), channels(1.1, 1.0, 0.9)),
    "flat overcast": chain(contrast(0.7), brightness(1.2)),
    "green cast": channels(0.85, 1.2, 1.0),
    "hazy, bright and cool": chain(contrast(0.6), brightness(1.3), channels(1.0, 1.0, 1.15)),
}


FRESH_LOOKS = {  # round 2, never run before it
    "sodium lamp": channels(1.3, 0.8, 0.4),
    "warm daylight": channels(1.1, 1.0, 0.8),
    "warm dusk": chain(brightness(0.5), channels(1.15, 1.0, 0.7)),
    "magenta cast": channels(1.1, 0.85, 1.1),
    "underexposed and contrasty": chain(brightness(0.6), contrast(1.3)),
    "brightness x2.4": brightness(2.4),
    "washed out": chain(lambda im: ImageEnhance.Color(im).enhance(0.4), brightness(1.3)),
    "cyan cast": channels(0.8, 1.05, 1.15),
    "gamma 1.5": gamma(1.5),
    "dim and flat": chain(contrast(0.5), brightness(0.8)),
    "bright orange": chain(brightness(1.4), channels(1.15, 1.0, 0.6)),
    "yellow cast": channels(1.1, 1.1, 0.7),
}


COLOUR_LOOKS = {  # round 3, never run before it: per-channel gains R, G, B
    "amber": channels(1.25, 1.0, 0.6),
    "tungsten": channels(1.35, 1.0, 0.5),
    "deep blue": channels(0.7, 0.9, 1.3),
    "purple": channels(1.15, 0.75, 1.2),
    "fluorescent green": channels(0.85, 1.15, 0.9),
    "teal": channels(0.7, 1.1, 1.1),
}
CAST = 0.5


def accuracy(head: dict, p: np.ndarray, e: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((Adapter(head)(e, p) >= 0.5) == (y == 1)))


def compare(fit_on: tuple, score_on: tuple) -> tuple[float | None, float | None, str]:
    """(threshold, auto at LIMIT, what auto chose and its g); None where the mode refused."""
    (p, e, ids), (pt, et, yt) = fit_on, score_on
    try:
        threshold = accuracy(fit_threshold(p, e.shape[1]), pt, et, yt)
    except CalibrationError:
        threshold = None
    try:
        head = fit_auto(e, p, ids, overruled=LIMIT)
        g = head["threshold_sure_flipped"]
        return threshold, accuracy(head, pt, et, yt), f"{head['chose'][:4]} {'-' if g is None else f'{g:.3f}'}"
    except CalibrationError:
        return threshold, None, "refused"


def looked(patches: PatchSet, look) -> np.ndarray:
    """Edge inputs of every patch under a look (the look applied to each patch image)."""
    return np.stack([np.asarray(look(Image.fromarray(im))) for im in patches.images])


BEFORE_CAST = SlotTrainConfig(cast=0.0)  # the config rounds 1 and 2 ran with (the shipped one until round 3)


def fold_classifier(name: str, folder: Path, config: SlotTrainConfig = BEFORE_CAST) -> SlotClassifier:
    """The fold model of benchmarks/slots.py for `config`, trained again and exported int8."""
    data = sources(config.load)
    train = PatchSet.concat("+".join(FOLDS[name]), [data[s] for s in FOLDS[name] if data[s] is not None])
    _, int8, _ = export(fit(train, config, progress=False), train, folder, config)
    return SlotClassifier(int8)


def fmt(value: float | None) -> str:
    return "refused" if value is None else f"{value:.4f}"


def known_cases(looks: dict):
    """(case, look, fit_on, score_on) of the known camera: the packaged model on the repo's labelled
    PUCPR frames under each look, calibrated on all their slots and scored on the labelled ones."""
    classifier = SlotClassifier()
    frames, maps, ids, truth = known_camera_frames()
    known = ~np.isnan(truth)
    for name, look in looks.items():
        p, e = outputs_under(classifier, frames, maps, look)
        yield "known camera", name, (p, e, ids), (p[known], e[known], truth[known])


def held_out_cases(looks: dict, recorded: bool = False):
    """(case, look, fit_on, score_on) of the two held-out cameras: their fold models trained again
    (stopping unless they reproduce benchmarks/slots.py), each look applied to every patch,
    calibrated on one half of the frames and scored on the other, both ways."""
    data = sources(SlotTrainConfig().size)
    with tempfile.TemporaryDirectory() as tmp:
        for name in EXPECTED_ZERO_SHOT:
            fold = fold_classifier(name, Path(tmp) / name)
            test = held_out(name, data)
            y, slots = test.occupied.astype(int), slot_ids(name)
            frames = np.unique(test.groups)
            later = np.isin(test.groups, frames[len(frames) // 2 :])
            p, _ = model_outputs(fold, test)
            zero_shot = float(np.mean((p >= 0.5) == (y == 1)))
            print(f"  {name}: zero-shot {zero_shot:.4f} (expected {EXPECTED_ZERO_SHOT[name]})", flush=True)
            if abs(zero_shot - EXPECTED_ZERO_SHOT[name]) > 0.00006:
                raise SystemExit(f"{name}: the fold model does not reproduce benchmarks/slots.py; stopping")
            for look_name, look in (({"as recorded (seen before)": None} if recorded else {}) | looks).items():
                images = test.images if look is None else looked(test, look)
                batches = [fold.outputs(edge_input(images[i : i + 256])) for i in range(0, len(images), 256)]
                p, e = np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])
                for half, tested in (("later", later), ("earlier", ~later)):
                    cal = ~tested
                    yield f"{name}, {half}", look_name, (p[cal], e[cal], slots[cal]), (p[tested], e[tested], y[tested])


def plain_accuracy(score_on: tuple) -> float:
    p, _, y = score_on
    return float(np.mean((p >= 0.5) == (y == 1)))


def auto_round() -> None:
    """Round 1: auto (limit 0.01) against the threshold mode on the ten new looks."""
    started = time.perf_counter()
    gaps_a, gaps_b = [], []
    print("(A) known camera: packaged model, the repo's 20 labelled PUCPR frames, calibrated on all and scored on them")
    print(f"{'look':<36} {'plain':>7} {'threshold':>9} {'auto':>8} {'chose, g':>12}")
    for _, name, fit_on, score_on in known_cases(NEW_LOOKS):
        threshold, auto, chose = compare(fit_on, score_on)
        gaps_a.append(0.0 if threshold is None or auto is None else auto - threshold)
        print(f"{name:<36} {plain_accuracy(score_on):>7.4f} {fmt(threshold):>9} {fmt(auto):>8} {chose:>12}", flush=True)

    print("\n(B) held-out cameras (fold models trained again), calibrated on one half of the frames, "
          "scored on the other")
    print(f"{'camera, test half':<30} {'look':<36} {'plain':>7} {'threshold':>9} {'auto':>8} {'chose, g':>12}")
    for case, look_name, fit_on, score_on in held_out_cases(NEW_LOOKS, recorded=True):
        threshold, auto, chose = compare(fit_on, score_on)
        if look_name in NEW_LOOKS:
            gaps_b.append(0.0 if threshold is None or auto is None else auto - threshold)
        print(f"{case:<30} {look_name:<36} {plain_accuracy(score_on):>7.4f} {fmt(threshold):>9} {fmt(auto):>8} "
              f"{chose:>12}", flush=True)

    gaps_a, gaps_b = np.array(gaps_a), np.array(gaps_b)
    a = bool((gaps_a >= -0.002).all())
    b = bool(gaps_b.mean() >= 0.01 and (gaps_b >= -0.005).all())
    print(f"\n(a) known camera: worst auto - threshold {gaps_a.min():+.4f} (limit -0.002): {'pass' if a else 'FAIL'}")
    print(f"(b) held-out cameras, {len(gaps_b)} cases: mean auto - threshold {gaps_b.mean():+.4f} (at least +0.01), "
          f"worst {gaps_b.min():+.4f} (limit -0.005): {'pass' if b else 'FAIL'}")
    print(f"rule: {'PASS: auto (0.01) may become the default' if a and b else 'FAIL: the default stays threshold'}"
          f"  ({time.perf_counter() - started:.0f} s)")


def threshold_or_plain(fit_on: tuple, score_on: tuple, overruled: float | None) -> tuple[float, bool]:
    """Accuracy of the threshold mode (the model as trained where it refuses) and whether it refused."""
    p, e, _ = fit_on
    try:
        return accuracy(fit_threshold(p, e.shape[1], overruled), *score_on), False
    except CalibrationError:
        return plain_accuracy(score_on), True


def guard_round() -> None:
    """Round 2: the threshold mode with and without its guard on the twelve fresh looks."""
    started = time.perf_counter()
    rows = []
    print(f"{'case':<24} {'look':<28} {'plain':>7} {'unguarded':>9} {'guarded':>8}  guard")
    cases = [*known_cases(FRESH_LOOKS), *held_out_cases(FRESH_LOOKS)]
    for case, look_name, fit_on, score_on in cases:
        plain = plain_accuracy(score_on)
        unguarded, share_refused = threshold_or_plain(fit_on, score_on, overruled=1.0)
        guarded, refused = threshold_or_plain(fit_on, score_on, overruled=None)
        why = "refused (share of taken calls)" if share_refused else "REFUSED (sure calls)" if refused else ""
        rows.append((plain, unguarded, guarded))
        print(f"{case:<24} {look_name:<28} {plain:>7.4f} {unguarded:>9.4f} {guarded:>8.4f}  {why}", flush=True)
    plain, unguarded, guarded = np.array(rows).T
    i = bool((guarded - plain >= -0.05).all())
    ii = bool(guarded.mean() >= unguarded.mean())
    print(f"\n(i) worst guarded - plain {np.min(guarded - plain):+.4f} (limit -0.05): {'pass' if i else 'FAIL'}")
    print(f"(ii) mean over {len(rows)} cases: guarded {guarded.mean():.4f}, unguarded {unguarded.mean():.4f}, "
          f"plain {plain.mean():.4f}: {'pass' if ii else 'FAIL'}")
    print(f"rule: {'PASS: ship the guard' if i and ii else 'FAIL'}  ({time.perf_counter() - started:.0f} s)")


def colour_round() -> None:
    """Round 3: the shipped training config against a strong colour cast in training (cast 0.5)."""
    from slot_training.training import train_from_data

    started = time.perf_counter()
    configs = {"shipped": BEFORE_CAST, f"cast {CAST}": SlotTrainConfig(cast=CAST)}
    data = sources(SlotTrainConfig().size)
    zero, looks, known = {}, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, config in configs.items():
            for name in EXPECTED_ZERO_SHOT:
                fold = fold_classifier(name, Path(tmp) / f"{label}-{name}", config)
                test = held_out(name, data)
                y = test.occupied.astype(int)
                for look_name, look in {"as recorded": None, **COLOUR_LOOKS}.items():
                    images = test.images if look is None else looked(test, look)
                    p = np.concatenate([fold.outputs(edge_input(images[i : i + 256]))[0]
                                        for i in range(0, len(images), 256)])
                    (zero if look is None else looks)[label, name, look_name] = float(np.mean((p >= 0.5) == (y == 1)))
                print(f"  {label}, {name} held out: zero-shot {zero[label, name, 'as recorded']:.4f}", flush=True)
            metrics = train_from_data(ROOT / "data/sample/slots/cnrpark_camA/labels.csv",
                                      [ROOT / "data/sample/slots/pklot_pucpr_more/labeled"],
                                      ROOT / "data/sample/slots/pklot_pucpr_frames/labeled", Path(tmp) / label,
                                      config, progress=False)
            known[label] = [metrics["int8"][check]["accuracy"] for check in metrics["checks"]]
            print(f"  {label}, known cameras {' / '.join(f'{a:.4f}' for a in known[label])}", flush=True)
    base, cand = configs
    for name in EXPECTED_ZERO_SHOT:
        print(f"\n{name} held out, the model as trained (no calibration)")
        print(f"{'look':<20} {base:>8} {cand:>9}")
        for look_name in ("as recorded", *COLOUR_LOOKS):
            table = zero if look_name == "as recorded" else looks
            print(f"{look_name:<20} {table[base, name, look_name]:>8.4f} {table[cand, name, look_name]:>9.4f}")
    if abs(zero[base, "cnrpark_camA", "as recorded"] - 0.9158) > 0.00006 \
            or abs(zero[base, "pklot_pucpr", "as recorded"] - 0.8862) > 0.00006:
        raise SystemExit("the shipped config does not reproduce benchmarks/slots.py; no verdict")
    gains = np.array([looks[cand, n, k] - looks[base, n, k] for n in EXPECTED_ZERO_SHOT for k in COLOUR_LOOKS])
    one = all(zero[cand, n, "as recorded"] >= zero[base, n, "as recorded"] - 0.005 for n in EXPECTED_ZERO_SHOT)
    two = bool(gains.mean() >= 0.03 and gains.min() >= -0.01)
    three = all(c >= b - 0.005 for b, c in zip(known[base], known[cand], strict=True))
    print(f"\n(1) zero-shot as recorded: {'pass' if one else 'FAIL'}")
    print(f"(2) colour looks: mean gain {gains.mean():+.4f} (at least +0.03), worst {gains.min():+.4f} "
          f"(limit -0.01): {'pass' if two else 'FAIL'}")
    print(f"(3) known cameras {' / '.join(f'{a:.4f}' for a in known[cand])} against "
          f"{' / '.join(f'{a:.4f}' for a in known[base])}: {'pass' if three else 'FAIL'}")
    print(f"rule: {'PASS: cast 0.5 may become the default' if one and two and three else 'FAIL'}"
          f"  ({time.perf_counter() - started:.0f} s)")


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--guard", action="store_true", help="round 2: the threshold mode's guard on fresh looks")
    parser.add_argument("--colour", action="store_true", help="round 3: a strong colour cast in training")
    args = parser.parse_args()
    colour_round() if args.colour else guard_round() if args.guard else auto_round()


if __name__ == "__main__":
    main()
