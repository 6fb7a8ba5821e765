"""The packaged slot model and the installer's commands on a Raspberry Pi's CPU, emulated: do they
give there the answers they give on x86?

onnxruntime runs the int8 graph with integer kernels chosen for the CPU it finds. On x86 without
VNNI the 8-bit weights saturated (docs/benchmarks.md, "int8 on CPUs without VNNI"); the 7-bit weights
fixed that, checked on x86 only. A Pi runs other kernels: a Pi 4's Cortex-A72 has no dot-product
instructions (NEON widening multiplies), a Pi 5's Cortex-A76 has them (SDOT/UDOT). Here both run
under qemu-user (emulated ARM instructions, not compared with a board; its speed says nothing about
a Pi), with Debian's arm64 Python 3.11 (Raspberry Pi OS Bookworm's) and the aarch64 onnxruntime and numpy wheels of the
versions in .venv. Inputs are the edge's own crops of the repo's labelled PUCPR frames and camera
A's validation patches, prepared on x86, so only onnxruntime differs. For each CPU: the int8 model
with every optimisation (the daemon's session) against the reference arithmetic (every graph
optimisation off, on x86), the calls that differ from x86's, and accuracy.

--cli: `pip install -c constraints.txt "parkcast[edge]"` resolved for aarch64 with wheels only (as
a Pi would, compiling nothing), and that install alone runs classify, propose, adapt and classify
with the adapter on an emulated Pi 4, beside the checkout on x86, on the same hazy frames.

    .venv/bin/python benchmarks/edge_arm.py --setup /tmp/arm        # once, as root on Debian 12: 1-3 min, 400 MB
    .venv/bin/python benchmarks/edge_arm.py --root /tmp/arm         # 11 min (both CPUs at once)
    .venv/bin/python benchmarks/edge_arm.py --root /tmp/arm --cli   # 3 min

qemu-user shows the program the host's /proc/cpuinfo, and onnxruntime's CPU probe (cpuinfo) crashes
on an x86 one; a small preloaded library (built here with Debian's cross compiler) shows it a Pi's
instead. The instruction set itself is the emulated CPU's (-cpu cortex-a72 / cortex-a76). Do not
run --setup into a root while a check is using it (rewriting a loaded library kills the run).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge_runtime.classifier import CHUNK, MODELS  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
SLOTS = REPO / "data" / "sample" / "slots"
CPUS = {"cortex-a72": "Pi 4 (Cortex-A72, no dot product)", "cortex-a76": "Pi 5 (Cortex-A76, dot product)"}
# /proc/cpuinfo of each board as Linux prints it (part numbers and features of the real cores)
CPUINFO = {"cortex-a72": ("0x0", "0xd08", "3", "fp asimd evtstrm crc32 cpuid"),
           "cortex-a76": ("0x4", "0xd0b", "1", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp "
                                               "cpuid asimdrdm lrcpc dcpop asimddp")}
ARM64_PACKAGES = ["libc6", "python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libexpat1", "zlib1g",
                  "libssl3", "libffi8", "libstdc++6", "libgcc-s1", "libbz2-1.0", "liblzma5", "libgomp1", "libuuid1",
                  "libcrypt1", "libzstd1", "libsqlite3-0"]
SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
static const char *swap(const char *path) {
    const char *fake = getenv("FAKE_CPUINFO");
    return path && fake && strcmp(path, "/proc/cpuinfo") == 0 ? fake : path;
}
#define OPEN(name) int name(const char *path, int flags, ...) { \
    static int (*real)(const char *, int, ...); if (!real) real = dlsym(RTLD_NEXT, #name); \
    va_list ap; va_start(ap, flags); int mode = va_arg(ap, int); va_end(ap); return real(swap(path), flags, mode); }
OPEN(open) OPEN(open64)
int openat(int dir, const char *path, int flags, ...) {
    static int (*real)(int, const char *, int, ...); if (!real) real = dlsym(RTLD_NEXT, "openat");
    va_list ap; va_start(ap, flags); int mode = va_arg(ap, int); va_end(ap); return real(dir, swap(path), flags, mode);
}
#define FOPEN(name) FILE *name(const char *path, const char *m) { \
    static FILE *(*real)(const char *, const char *); if (!real) real = dlsym(RTLD_NEXT, #name); \
    return real(swap(path), m); }
FOPEN(fopen) FOPEN(fopen64)
"""
# Runs under qemu: every model x optimisation level on the prepared inputs, CHUNK slots a run as the
# daemon does. Arguments: inputs.npz, models folder, chunk, model file names.
CHILD = r"""
import sys, numpy as np, onnxruntime as ort
inputs, out, chunk = np.load(sys.argv[1]), {}, int(sys.argv[3])
for n, name in enumerate(sys.argv[4:]):
    for level in ("ENABLE_ALL", "DISABLE_ALL")[: 2 if n == 0 else 1]:  # the reference of the first model only
        options = ort.SessionOptions()
        options.graph_optimization_level = getattr(ort.GraphOptimizationLevel, "ORT_" + level)
        options.intra_op_num_threads = 1
        session = ort.InferenceSession(sys.argv[2] + "/" + name, options, providers=["CPUExecutionProvider"])
        x, feed = inputs["x"], session.get_inputs()[0].name
        out[name + ":" + level] = np.concatenate([session.run(None, {feed: x[i:i + chunk]})[0][:, 1]
                                                  for i in range(0, len(x), chunk)])
        print(name, level, "done", flush=True)
np.savez(sys.argv[1].replace(".npz", "-out.npz"), **out)
"""


def run(*command, **kw) -> None:
    print("+", " ".join(map(str, command)), flush=True)
    subprocess.run(command, check=True, **kw)


def setup(root: Path) -> None:
    """Debian's qemu-user and aarch64 cross compiler, an arm64 Python sysroot, the aarch64 wheels."""
    root.mkdir(parents=True, exist_ok=True)
    run("apt-get", "install", "-y", "-q", "qemu-user-static", "gcc-aarch64-linux-gnu", stdout=subprocess.DEVNULL)
    run("dpkg", "--add-architecture", "arm64")
    run("apt-get", "update", "-q", stdout=subprocess.DEVNULL)
    debs = root / "debs"
    debs.mkdir(exist_ok=True)
    run("apt-get", "download", *(f"{p}:arm64" for p in ARM64_PACKAGES), cwd=debs, stdout=subprocess.DEVNULL)
    for deb in sorted(debs.glob("*.deb")):
        run("dpkg", "-x", deb, root / "sysroot", stdout=subprocess.DEVNULL)
    import numpy
    import onnxruntime
    wheels = root / "wheels"
    run(sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version", "3.11",
        "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux2014_aarch64", "-d", wheels,
        f"onnxruntime=={onnxruntime.__version__}", f"numpy=={numpy.__version__}")
    for wheel in wheels.glob("*.whl"):
        zipfile.ZipFile(wheel).extractall(root / "site")
    install_edge(root, run)
    (root / "shim.c").write_text(SHIM)
    run("aarch64-linux-gnu-gcc", "-shared", "-fPIC", "-O2", "-o", root / "shim.so", root / "shim.c", "-ldl")
    for cpu, (variant, part, revision, features) in CPUINFO.items():
        (root / f"cpuinfo-{cpu}").write_text("\n".join(
            f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\nCPU implementer\t: 0x41\n"
            f"CPU architecture: 8\nCPU variant\t: {variant}\nCPU part\t: {part}\nCPU revision\t: {revision}\n"
            for i in range(4)))
    print(f"ready: {root}")


def install_edge(root: Path, run, package_only: bool = False) -> None:
    """`pip install -c constraints.txt "parkcast[edge]"` as on a Pi, resolved here for aarch64 and
    Python 3.11 with wheels only (a Pi compiling a dependency would be a finding too), into
    ROOT/edge. `package_only`: replace only parkcast itself, from the checkout as it is now."""
    left = not (REPO / "build").exists()
    shutil.rmtree(root / "parkcast-wheel", ignore_errors=True)
    run(sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", root / "parkcast-wheel", REPO)
    if left:  # setuptools builds inside the checkout
        shutil.rmtree(REPO / "build", ignore_errors=True)
    package = next((root / "parkcast-wheel").glob("parkcast-*.whl"))
    run(sys.executable, "-m", "pip", "install", "-q", "--target", root / "edge", "--only-binary=:all:",
        "--python-version", "3.11", "--implementation", "cp", "--platform", "manylinux_2_28_aarch64",
        "--platform", "manylinux2014_aarch64", "--platform", "linux_aarch64", "-c", REPO / "constraints.txt",
        *(["--no-deps", "--upgrade", str(package)] if package_only else [f"{package}[edge]"]))


def inputs() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edge's crops of every labelled PUCPR frame in the repo, then camera A's validation
    patches: model input, occupied, which set (0 PUCPR, 1 camera A)."""
    from PIL import Image

    from edge_runtime.classifier import SlotClassifier
    from edge_runtime.evaluate import read_labels
    from edge_runtime.preprocess import crop_all, to_array
    from edge_runtime.slotmap import load_slot_map

    size, xs, ys, sets = SlotClassifier().size, [], [], []  # the packaged model's input side
    for xml in sorted(SLOTS.glob("pklot_pucpr_*/labeled/*.xml")):
        slot_map = load_slot_map(xml)
        keep = [i for i, s in enumerate(slot_map.slots) if s.occupied is not None]
        xs.append(crop_all(Image.open(xml.with_suffix(".jpg")), slot_map, size)[keep])
        ys.append([slot_map.slots[i].occupied for i in keep])
        sets.append(np.zeros(len(keep), dtype=int))
    rows = read_labels(SLOTS / "cnrpark_camA" / "labels.csv", split="val")
    xs.append(to_array([Image.open(path) for path, _ in rows], size))
    ys.append([o for _, o in rows])
    sets.append(np.ones(len(rows), dtype=int))
    return np.concatenate(xs), np.concatenate(ys).astype(bool), np.concatenate(sets)


def run_all(root: Path, x: np.ndarray, models: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """CHILD on this machine, then on both emulated CPUs at once (one thread each, two cores)."""
    with tempfile.TemporaryDirectory() as tmp:
        jobs = {}
        for name, cpu in (("x86 (this machine)", None), *((board, cpu) for cpu, board in CPUS.items())):
            folder = Path(tmp) / (cpu or "x86")
            folder.mkdir()
            np.savez(folder / "in.npz", x=x)
            path = f"import sys; sys.path.insert(0, {str(root / 'site')!r})\n" if cpu else ""
            (folder / "child.py").write_text(path + CHILD)
            python = [*emulator(root, cpu), str(root / "sysroot" / "usr" / "bin" / "python3.11")] if cpu \
                else [sys.executable]
            jobs[name] = (folder, subprocess.Popen([*python, str(folder / "child.py"), str(folder / "in.npz"),
                                                    str(MODELS), str(CHUNK), *models],
                                                   env={**os.environ, "PYTHONNOUSERSITE": "1"},
                                                   stdout=None if cpu else subprocess.DEVNULL))
            if cpu is None:  # this machine first, alone
                jobs[name][1].wait()
        started, runs = time.perf_counter(), {}
        for name, (folder, job) in jobs.items():
            if job.wait():
                raise SystemExit(f"{name}: the run failed (exit {job.returncode})")
            runs[name] = dict(np.load(folder / "in-out.npz"))
        print(f"emulated runs: {time.perf_counter() - started:.0f} s", flush=True)
        return runs


def emulator(root: Path, cpu: str) -> list[str]:
    """qemu-user as a Pi's CPU, with the arm64 sysroot and the fake /proc/cpuinfo."""
    return ["qemu-aarch64-static", "-cpu", cpu, "-L", str(root / "sysroot"), "-E", f"LD_PRELOAD={root / 'shim.so'}",
            "-E", f"FAKE_CPUINFO={root / f'cpuinfo-{cpu}'}"]


def hazy_day(folder: Path) -> tuple[Path, Path]:
    """The repo's 20 labelled frames of the PUCPR camera through a dirty lens (contrast x0.4, the
    look of benchmarks/calibration_looks.py where the model is furthest off, 0.85), as PNG so both
    machines read the same pixels; each frame's XML beside it (the truth a person would see)."""
    from PIL import Image, ImageEnhance

    source = SLOTS / "pklot_pucpr_more" / "labeled"
    folder.mkdir()
    for jpg in sorted(source.glob("*.jpg")):
        ImageEnhance.Contrast(Image.open(jpg).convert("RGB")).enhance(0.4).save(folder / f"{jpg.stem}.png")
        shutil.copy(jpg.with_suffix(".xml"), folder / f"{jpg.stem}.xml")
    return folder, sorted(folder.glob("*.xml"))[0]


def cli_sequence(python: list[str], day: Path, slots: Path, work: Path, cwd: Path) -> dict:
    """What an installer runs on the Pi: classify a frame, propose slots over the day's frames,
    label the proposals from the top until 20 of each (from the frames' XML, as a person would by
    eye), adapt, classify the frame again with the adapter. Each step's result."""
    import csv
    import json

    from edge_runtime.labels import write_rows
    from edge_runtime.slotmap import load_slot_map

    frame = slots.with_suffix(".png")

    def edge(*arguments) -> str:
        done = subprocess.run([*python, "-m", "edge_runtime.cli", *map(str, arguments)], capture_output=True,
                              text=True, cwd=cwd)
        if done.returncode:
            raise SystemExit(f"{arguments[0]} failed:\n{done.stderr[-2000:]}")
        return done.stdout

    def truth(xml: Path) -> dict[str, bool]:  # the labelled slots (PKLot leaves a few without a label)
        return {s.slot_id: s.occupied for s in load_slot_map(xml).slots if s.occupied is not None}

    plain = json.loads(edge("classify", "--frame", frame, "--slots", slots))
    edge("propose", "--frames", day, "--slots", slots, "--out", work / "proposed", "--per-class", 20)
    with open(work / "proposed" / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    counts, labelled = [0, 0], []
    for row in rows:  # from the top, until 20 of each; a slot nobody could label stays blank
        label = truth((day / row["frame"]).with_suffix(".xml")).get(row["slot_id"])
        if label is None:
            continue
        label = int(label)
        if counts[label] < 20:
            row["occupied"], counts[label] = str(label), counts[label] + 1
            labelled.append((row["frame"], row["slot_id"]))
        if min(counts) == 20:
            break
    write_rows(work / "proposed" / "labels.csv", list(rows[0]), rows)
    edge("adapt", "--labels", work / "proposed" / "labels.csv", "--out", work / "adapter.json")
    adapted = json.loads(edge("classify", "--frame", frame, "--slots", slots, "--adapter", work / "adapter.json"))
    head, right = json.loads((work / "adapter.json").read_text())["head"], truth(slots)
    return {**{step: (np.array([s["occupied"] for s in result["slots"]]),
                      np.array([s["confidence"] for s in result["slots"]]),
                      [s["occupied"] == right[s["slot_id"]] for s in result["slots"] if s["slot_id"] in right])
               for step, result in (("plain", plain), ("adapted", adapted))},
            "labelled": labelled, "strength": head["strength"], "weights": np.array(head["weights"])}


def compare_cli(root: Path) -> None:
    """cli_sequence on this machine (the checkout) and on an emulated Pi 4 (only what pip installed
    there for aarch64), on the same hazy frames."""
    sysroot = root / "sysroot"
    install_edge(root, run, package_only=True)  # the Pi runs this checkout's code, as installed there
    runs = {}
    with tempfile.TemporaryDirectory() as tmp:
        day, slots = hazy_day(Path(tmp) / "day")
        pi = [*emulator(root, "cortex-a72"), "-E", f"PYTHONPATH={root / 'edge'}",
              str(sysroot / "usr" / "bin" / "python3.11")]
        for name, python, cpu in (("x86 (this machine)", [sys.executable], None),
                                  (CPUS["cortex-a72"], pi, "cortex-a72")):
            started = time.perf_counter()
            work = Path(tmp) / (cpu or "x86")
            work.mkdir()
            runs[name] = cli_sequence(python, day, slots, work, work if cpu else REPO)
            print(f"{name}: classify, propose, label, adapt, classify in {time.perf_counter() - started:.0f} s",
                  flush=True)
    (_, x), (_, a) = runs.items()
    print(f"\n{'step (hazy frames of the PUCPR camera)':<44} {'x86':>10} {'emulated Pi 4':>14}")
    for step in ("plain", "adapted"):
        (sx, cx, rx), (sa, ca, ra) = x[step], a[step]
        print(f"{'classify ' + step + f': right of {len(rx)} labelled':<44} {sum(rx):>10} {sum(ra):>14}  "
              f"(calls unlike x86: {int((sx != sa).sum())} of {len(sx)}, largest confidence gap "
              f"{np.abs(cx - ca).max():.3f})")
    shared = len(set(x["labelled"]) & set(a["labelled"]))
    print(f"{'propose: the 40 slots labelled':<44} {len(x['labelled']):>10} {len(a['labelled']):>14}  "
          f"({shared} the same; order {'the same' if x['labelled'] == a['labelled'] else 'differs'})")
    print(f"{'adapt: strength chosen by CV':<44} {x['strength']!s:>10} {a['strength']!s:>14}  "
          f"(largest weight gap {np.abs(x['weights'] - a['weights']).max():.2e})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--setup", type=Path, help="build the emulation root here (root, Debian 12)")
    ap.add_argument("--root", type=Path, help="an emulation root made by --setup")
    ap.add_argument("--models", nargs="+", default=["slot_classifier.int8.onnx"],
                    help="packaged models (e.g. also slot_classifier.onnx); the first also runs its reference")
    ap.add_argument("--limit", type=int, help="only the first N patches (a quick check of the set-up)")
    ap.add_argument("--cli", action="store_true", help="the installer's commands on an emulated Pi 4 instead")
    args = ap.parse_args()
    if args.setup:
        setup(args.setup)
        return
    if not args.root:
        ap.error("--root DIR (made by --setup DIR) is required")
    if args.cli:
        compare_cli(args.root)
        return
    x, y, sets = inputs()
    if args.limit:
        x, y, sets = x[: args.limit], y[: args.limit], sets[: args.limit]
    print(f"{len(x)} patches: {int((sets == 0).sum())} PUCPR slots (repo frames), {int((sets == 1).sum())} "
          "camera A validation patches", flush=True)
    runs = run_all(args.root, x, args.models)
    for model in args.models:
        served = runs["x86 (this machine)"][f"{model}:ENABLE_ALL"]
        first = model == args.models[0]
        reference = runs["x86 (this machine)"][f"{model}:DISABLE_ALL"] if first else served
        print(f"\n{model}: the daemon's session (every optimisation) on each CPU, against "
              + ("the reference arithmetic (x86, every optimisation off)" if first else "x86's answers"))
        print(f"{'CPU':<36} {'max |P - ref|':>14} {'mean':>8} {'max |P - own ref|':>18} {'calls unlike x86':>17} "
              f"{'PUCPR acc':>10} {'camA val acc':>13} {'max |P - Pi 4 P|':>17}")
        pi4 = runs[CPUS["cortex-a72"]][f"{model}:ENABLE_ALL"]
        for cpu, out in runs.items():
            p = out[f"{model}:ENABLE_ALL"]
            own = f"{np.abs(p - out[f'{model}:DISABLE_ALL']).max():.4f}" if f"{model}:DISABLE_ALL" in out else ""
            accuracy = [float(((p[sets == s] >= 0.5) == y[sets == s]).mean()) for s in (0, 1)]
            print(f"{cpu:<36} {np.abs(p - reference).max():>14.4f} {np.abs(p - reference).mean():>8.4f} {own:>18} "
                  f"{int(((p >= 0.5) != (served >= 0.5)).sum()):>17} {accuracy[0]:>10.4f} {accuracy[1]:>13.4f} "
                  f"{np.abs(p - pi4).max():>17.2e}")


if __name__ == "__main__":
    main()
