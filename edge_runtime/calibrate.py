"""Label-free calibration to a new camera, from unlabelled frames of it (`parkcast-edge calibrate`).

Why: the model trained on other cameras gets 0.90-0.93 of a new camera's slots right (issue 13),
but its errors are systematic for that camera (painted lines, a bright surface, another angle),
and the camera's own patches, even unlabelled, show where its two classes lie: a slot is either
free or taken, so the embeddings of many patches of one camera form two groups.

How (self-training, numpy, deterministic): the embedding is standardised with the camera's own
mean and spread (so features are read relative to this camera, not the training cameras); the
base model labels every patch; a logistic head is fitted on the patches it is most sure of in
each class (half of them), the head relabels every patch, and the share kept grows to all of
them over ROUNDS rounds. The head reads the camera's embedding only, not the base model's logit,
so it can overrule the base model where the camera's own structure disagrees with it.

Then the time structure of a fixed camera (when the slot ids are known, as `calibrate` knows
them from the slot map): each slot is seen in every frame, its empty bay looks nearly the same
every time and its cars differ, so within one slot the two states form two groups far apart in the
embedding. Self-training's errors are mostly whole slots on the wrong side (a bright row of bays
called taken in every frame, a dark car called free all day), while within the slot the head's
score still orders free below taken. So each slot's patches are split in two along the head's
score where the split best separates them in the embedding (least within-group sum of squares);
the split is taken as that slot's free / taken labels when the two groups' mean scores differ by
at least SPLIT_GAP x the spread of all scores (a slot seen in one state only splits into two
groups of cars or of empty views whose scores differ little), otherwise the head's own labels
stand; a last head is fitted on these labels. If the last head agrees less with its own per-slot
splits than the model as trained does with its splits (split_consistency), the model as trained
is kept (the file then changes nothing). The head reads no slot id: the calibration stays
one head for every slot.

The result is a head in the adapter's format (edge_runtime.adapt.Adapter), bound to the base
model by SHA-256, applied after the model; `parkcast-edge adapt --calibration FILE` fits a
labelled adapter on top of it.

A second, one-parameter mode (`threshold`): only the model's decision threshold moves, to Otsu's
split of the base logits of this camera's patches (the cut with the largest between-group
variance). On a new camera the model still ranks slots well (AUC 0.985-0.998 on the two held-out
cameras) but its bias is off (one camera's cars called free, the other's painted bays called
taken), which one threshold corrects without the model's features being reread. It gains less than
the full calibration on the held-out cameras; on session 7's 17 looks and a known camera it cost at
most 0.002 where the full calibration cost up to 0.108 (under colour casts on a camera the model
never saw, up to 0.033), and 0.015 on frames with one state rare (docs/benchmarks.md), so it is the
self-calibrating daemon's default mode. When one state is rare in the frames Otsu splits the common
one, so it refuses frames where the model calls fewer than 10 % or more than 90 % of the slots
taken. Under strong warm light (street light, an orange cast) Otsu's cut can fall beyond every slot
the model is unsure of and halve its accuracy, overturning a third or more of the calls it is sure
of; a helpful cut overturned at most 10 % of them, so the mode refuses a cut that would overturn
more than THRESHOLD_OVERRULED (20 %).

A third mode (`auto`, the default of `parkcast-edge calibrate`) fits both and keeps the full
calibration only where it leaves the threshold-shifted model's sure calls alone: on the new cameras
measured, the full calibration changed only calls the shifted model was unsure of (at most 0.2 %
of its sure ones), while where it harmed (frames brighter than any in training) it overturned up
to 7 % of them. It let one of the full mode's three measured harms through (brightness x2.2: 1.8 %
overturned, under the 2 % limit) and lost 0.010 against the threshold on PUCPR frames with a fifth
of the slots taken, so the unattended daemon stays on `threshold` by default (docs/benchmarks.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_runtime.adapt import (
    Adapter,
    AdaptError,
    base_model_header,
    class_weights,
    design,
    logit,
    newton,
    standardisation,
    start,
    write_document,
)

MIN_FRAMES = 20  # fewer frames: too few distinct cars and lights to see where this camera's two classes lie
MIN_PATCHES = 200
MIN_PER_CLASS = 20  # the base model must see at least this many of each class among the patches
ROUNDS = 10
FIRST_SHARE = 0.5  # round 1 trusts the surer half of each class; the last round, all patches
STRENGTH = 0.1  # L2 pull of the head's weights towards 0 (mean loss; same for any number of patches)
SPLIT_GAP = 0.7  # a slot's two groups must differ in mean score by this x the std of all scores
MIN_SLOT_PATCHES = 6  # a slot seen fewer times keeps the head's labels
SURE_LOGIT = float(np.log(0.9 / 0.1))  # the model "was sure": P(taken) < 0.1 or > 0.9
MODES = ("auto", "full", "threshold")
THRESHOLD_SHARE = (0.1, 0.9)  # threshold mode: the share of slots the model calls taken must lie in here
# threshold mode: the cut may overturn at most this share of the calls the model is sure of. Where
# Otsu's cut fell beyond every unsure patch (warm street light on PUCPR) it overturned 35-74 % and
# cost up to 0.41; where it helped, at most 10 % (benchmarks/calibration_new_looks.py).
THRESHOLD_OVERRULED = 0.2
MIN_SURE = 50  # a share of sure calls is measured over at least this many; fewer: too little evidence


class CalibrationError(AdaptError):
    pass


def check_slot_ids(slots: np.ndarray | None, patches: int) -> None:
    if slots is not None and len(slots) != patches:
        raise CalibrationError(f"{len(slots)} slot ids for {patches} patches")


def surest(score: np.ndarray, share: float, round_: int = 0) -> np.ndarray:
    """Self-training's patches for one round: in each class the head calls, the `share` it is surest of."""
    guess = score > 0
    keep = np.zeros(len(score), dtype=bool)
    for label in (False, True):
        members = np.flatnonzero(guess == label)
        if len(members) == 0:
            raise CalibrationError(f"self-training lost every {'taken' if label else 'free'} slot "
                                   f"(round {round_ + 1}); the frames do not show both classes clearly")
        sure = np.abs(score[members])
        keep[members[sure >= np.quantile(sure, 1 - share)]] = True
    return keep


def slot_split_labels(z: np.ndarray, score: np.ndarray, slots: np.ndarray, gap: float = SPLIT_GAP) -> tuple[
        np.ndarray, int]:
    """Labels (taken = True) from each slot's split in two along its scores (module docstring),
    and how many slots were split. z: standardised embedding; score: the head's logit."""
    labels = score > 0
    needed = gap * float(score.std())
    split = 0
    for slot in np.unique(slots):
        members = np.flatnonzero(slots == slot)
        if len(members) < MIN_SLOT_PATCHES:
            continue
        low, high = slot_cut(z, score, members)
        if score[high].mean() - score[low].mean() >= needed:
            labels[low], labels[high] = False, True
            split += 1
    return labels, split


def slot_cut(z: np.ndarray, score: np.ndarray, members: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One slot's patches cut in two along the score (lower, higher), where the cut leaves the
    least within-group sum of squares in the embedding."""
    order = members[np.argsort(score[members], kind="stable")]
    x = z[order]
    n = len(order)
    sums, squares = np.cumsum(x, axis=0), np.cumsum(np.square(x).sum(axis=1))
    k = np.arange(1, n)  # the k lowest scores are one group, the rest the other
    low = squares[:-1] - np.square(sums[:-1]).sum(axis=1) / k
    high = (squares[-1] - squares[:-1]) - np.square(sums[-1] - sums[:-1]).sum(axis=1) / (n - k)
    cut = int(k[np.argmin(low + high)])
    return order[:cut], order[cut:]


def split_consistency(z: np.ndarray, score: np.ndarray, slots: np.ndarray) -> float:
    """Label-free check of a scorer on this camera: the share of patches whose label agrees with
    the per-slot split of its own scores. A scorer that puts whole slots on the wrong side, or
    mixes a slot's empty views with its cars, disagrees with its splits; calibration is kept only
    if it agrees more than the model as trained (on the benchmark's cases this also flags
    self-training alone where it harmed: 0.926 against the model's 0.985)."""
    return float(((score > 0) == slot_split_labels(z, score, slots)[0]).mean())


def fit_calibration(embedding: np.ndarray, probabilities: np.ndarray, slots: np.ndarray | None = None,
                    rounds: int = ROUNDS, first_share: float = FIRST_SHARE, strength: float = STRENGTH) -> dict:
    """A head (adapter format) from the unlabelled patches of one camera: their embeddings, the
    base model's P(taken) and (optional) each patch's slot id, for the per-slot step."""
    embedding = np.asarray(embedding, dtype=np.float64)
    if len(embedding) < MIN_PATCHES:
        raise CalibrationError(f"only {len(embedding)} slot patches: calibration needs at least {MIN_PATCHES} "
                               "(more frames, over a day)")
    center, scale = standardisation(embedding)
    x = design(embedding, probabilities, center, scale)
    score = x[:, -2]  # the base model's logit
    counts = np.bincount((score > 0).astype(int), minlength=2)
    if counts.min() < MIN_PER_CLASS:
        raise CalibrationError(f"the model sees {counts[0]} free and {counts[1]} taken slots in these frames; "
                               f"calibration needs at least {MIN_PER_CLASS} of each: record frames while cars "
                               "come and go (a working day), not an empty or a full car park only")
    theta0 = np.zeros(x.shape[1])
    pull = np.full(x.shape[1], strength)
    pull[-2] = 1e9  # the base model's logit stays out: the head must read the camera's own features
    pull[-1] = 0.0  # the bias is free
    for r in range(rounds):
        guess = score > 0
        keep = surest(score, first_share + (1 - first_share) * r / max(rounds - 1, 1), r)
        y = guess[keep].astype(np.float64)
        theta = newton(x[keep], y, class_weights(y), strength, theta0=theta0, pull=pull)
        score = x @ theta
    split = consistency = None
    kept_base = False
    if slots is not None:
        slots = np.asarray(slots)
        check_slot_ids(slots, len(embedding))
        y, split = slot_split_labels(x[:, :-2], score, slots)
        if 0 < y.sum() < len(y):
            y = y.astype(np.float64)
            theta = newton(x, y, class_weights(y), strength, theta0=theta0, pull=pull)
            score = x @ theta
        consistency = {"base": split_consistency(x[:, :-2], x[:, -2], slots),
                       "calibrated": split_consistency(x[:, :-2], score, slots)}
        kept_base = consistency["calibrated"] <= consistency["base"]
        if kept_base:  # do no harm: keep the model as trained
            theta, score = start(x.shape[1]), x[:, -2]
    return {"center": center.tolist(), "scale": scale.tolist(), "weights": theta[:-1].tolist(),
            "bias": float(theta[-1]), "mode": "full", "rounds": rounds, "strength": strength, "slots_split": split,
            "split_consistency": consistency and {k: round(v, 4) for k, v in consistency.items()},
            "kept_base": kept_base, **changes(x[:, -2], score)}


def changes(base: np.ndarray, calibrated: np.ndarray) -> dict:
    """What a calibration does to the model's answers, from both logits: the share it calls taken,
    the share it leaves as the model had it, and, of the patches it turns to the other state, the
    share the model was sure of (P < 0.1 or > 0.9): 0.26-0.44 where the full mode harmed (brighter
    frames than in training), 0.00-0.27 where it helped (docs/benchmarks.md); reported for a person
    to weigh, not used to decide."""
    flipped = (calibrated > 0) != (base > 0)
    overruled = float((flipped & (np.abs(base) > SURE_LOGIT)).sum() / max(flipped.sum(), 1))
    return {"taken_share": round(float((calibrated > 0).mean()), 4),
            "agreement_with_base": round(1.0 - float(flipped.mean()), 4), "overruled_sure": round(overruled, 4)}


def otsu_threshold(values: np.ndarray) -> float:
    """The cut of `values` with the largest between-group variance (Otsu), midway between the two
    values it falls between."""
    z = np.sort(np.asarray(values, dtype=np.float64))
    k = np.arange(1, len(z))
    sums = np.cumsum(z)
    low, high = sums[:-1] / k, (sums[-1] - sums[:-1]) / (len(z) - k)
    best = int(np.argmax(k * (len(z) - k) * np.square(high - low)))
    return float((z[best] + z[best + 1]) / 2)


def fit_threshold(probabilities: np.ndarray, width: int, overruled: float | None = None) -> dict:
    """A head (adapter format, `width` = the embedding's) that only moves the base model's decision
    threshold to Otsu's split of its logits on this camera's patches (module docstring). Refuses a
    cut that would overturn more than `overruled` (default THRESHOLD_OVERRULED) of the calls the
    model is sure of."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    if not np.isfinite(probabilities).all():
        raise CalibrationError("the model's outputs hold non-finite values (NaN or inf): check the model file")
    if len(probabilities) < MIN_PATCHES:
        raise CalibrationError(f"only {len(probabilities)} slot patches: calibration needs at least {MIN_PATCHES} "
                               "(more frames, over a day)")
    base = logit(probabilities)
    taken = float((base > 0).mean())
    if not THRESHOLD_SHARE[0] <= taken <= THRESHOLD_SHARE[1]:
        raise CalibrationError(f"the model calls {taken:.0%} of the slots taken in these frames; a threshold needs "
                               f"frames where both are common ({THRESHOLD_SHARE[0]:.0%}-{THRESHOLD_SHARE[1]:.0%} "
                               "taken): record frames while cars come and go (a working day)")
    cut = otsu_threshold(base)
    _, flipped = sure_overturned(base, base > cut)
    limit = THRESHOLD_OVERRULED if overruled is None else overruled
    if flipped is not None and flipped > limit:
        raise CalibrationError(f"the threshold would overturn {flipped:.0%} of the calls the model is sure of (at "
                               f"most {limit:.0%}): these frames look unlike any the model knows (a strong colour "
                               "cast such as street light?); the model stays as trained")
    theta = start(width + 2)
    theta[-1] = -cut
    return {"center": [0.0] * width, "scale": [1.0] * width, "weights": theta[:-1].tolist(), "bias": float(theta[-1]),
            "mode": "threshold", "threshold_logit": round(cut, 4), "kept_base": False, "sure_overturned": flipped,
            **changes(base, base - cut)}


def sure_overturned(logits: np.ndarray, taken: np.ndarray) -> tuple[int, float | None]:
    """How many calls `logits` is sure of (|logit| > SURE_LOGIT), and the share of them that the
    calls `taken` put in the other state (None when fewer than MIN_SURE: too little to judge)."""
    sure = np.abs(logits) > SURE_LOGIT
    count = int(sure.sum())
    return count, (float((taken != (logits > 0))[sure].mean()) if count >= MIN_SURE else None)


AUTO_OVERRULED = 0.02  # auto mode: the full calibration may flip at most this share of the threshold's sure calls


def fit_auto(embedding: np.ndarray, probabilities: np.ndarray, slots: np.ndarray | None = None,
             overruled: float = AUTO_OVERRULED) -> dict:
    """Both calibrations on the same patches; the full one where it only changes calls the
    threshold-shifted model is unsure of (at most `overruled` of its sure calls flipped, out of
    at least MIN_SURE), else the threshold. Refuses where the threshold mode refuses."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    check_slot_ids(slots, len(probabilities))
    try:
        threshold = fit_threshold(probabilities, np.shape(embedding)[1])
    except CalibrationError as exc:
        raise CalibrationError(f"{exc} (auto mode needs what the threshold mode needs; full mode does not)") from None
    threshold = {**threshold, "mode": "auto", "chose": "threshold", "threshold_sure_flipped": None, "sure": None}
    try:
        full = fit_calibration(embedding, probabilities, slots)
    except CalibrationError:  # e.g. too few of one class for self-training: the threshold stands
        return threshold
    shifted = logit(probabilities) + threshold["bias"]  # the threshold head: base logit - cut
    full_taken = Adapter(full)(np.asarray(embedding, dtype=np.float64), probabilities) >= 0.5
    sure, flipped = sure_overturned(shifted, full_taken)
    checked = {"sure": sure, "threshold_sure_flipped": None if flipped is None else round(flipped, 4)}
    if full["kept_base"] or checked["threshold_sure_flipped"] is None \
            or checked["threshold_sure_flipped"] > overruled:
        return threshold | checked
    return {**full, "mode": "auto", "chose": "full", **checked}


def write_calibration(path: Path | str, head: dict, base_model: Path, frames: dict) -> dict:
    return write_document(path, {**base_model_header(base_model), "kind": "calibration", "frames": frames,
                                 "head": head})


def calibrate_outputs(probabilities: list[np.ndarray], embedding: list[np.ndarray] | int, slots: np.ndarray,
                      base_model: Path, out: Path | str, frames: dict, mode: str) -> dict:
    """Fit the calibration on the base model's outputs of several frames and write it to `out`:
    what `parkcast-edge calibrate` and the daemon's self-calibration both do. `threshold` mode
    reads no embedding, only its width (an int may stand for the list)."""
    if mode == "threshold":
        width = embedding if isinstance(embedding, int) else embedding[0].shape[1]
        head = fit_threshold(np.concatenate(probabilities), width)
    elif mode == "full":
        head = fit_calibration(np.concatenate(embedding), np.concatenate(probabilities), slots)
    elif mode == "auto":
        head = fit_auto(np.concatenate(embedding), np.concatenate(probabilities), slots)
    else:
        raise CalibrationError(f"unknown calibration mode {mode!r}: one of {', '.join(MODES)}")
    write_calibration(out, head, base_model, frames)
    return head


def reads_embedding(mode: str) -> bool:
    """Whether a mode needs the model's embedding of every patch (the threshold reads P(taken) only)."""
    return mode != "threshold"


def calibrate_frames(frames: list[Path], slot_map, classifier, out: Path, mode: str) -> dict:
    """Crop every slot of every frame, fit the calibration and write it to `out`."""
    from edge_runtime.preprocess import crop_all, open_frame

    if classifier.calibration is not None or classifier.adapter is not None or not classifier.has_embedding:
        raise CalibrationError("calibrate needs the plain base model (with an embedding output), "
                               "not a calibrated or adapted one")
    if len(frames) < MIN_FRAMES:
        raise CalibrationError(f"{len(frames)} frame(s): calibration needs at least {MIN_FRAMES} frames of this "
                               "camera, spread over a day with cars coming and going")
    probabilities, embedding, slots = [], [], []
    ids = np.array([s.slot_id for s in slot_map.slots])
    for frame in frames:
        p, e = classifier.outputs(crop_all(open_frame(frame, slot_map, CalibrationError), slot_map, classifier.size))
        probabilities.append(p)
        embedding.append(e)
        slots.append(ids)
    head = calibrate_outputs(probabilities, embedding, np.concatenate(slots), classifier.path, out,
                             {"count": len(frames), "slots": len(slot_map.slots), "first": frames[0].name,
                              "last": frames[-1].name}, mode)
    return {"frames": len(frames), "patches": sum(len(p) for p in probabilities), "taken_share": head["taken_share"],
            "agreement_with_base": head["agreement_with_base"], "overruled_sure": head["overruled_sure"],
            "kept_base": head["kept_base"], "mode": mode, "chose": head.get("chose", mode),
            "threshold_sure_flipped": head.get("threshold_sure_flipped"), "out": str(out)}


def load_calibration(path: Path | str) -> Adapter:
    return Adapter.load(path, kind="calibration", error=CalibrationError)
