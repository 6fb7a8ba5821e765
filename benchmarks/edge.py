"""Edge runtime: classifier throughput on one core (fp32, int8), model sizes, frame-to-reading
latency for a 100-slot frame (decode, 100 perspective crops, one batch, smoothing, outbox
commit), and the daemon's memory.

    .venv/bin/python benchmarks/edge.py [--seconds 5] [--models DIR]

--models: a folder written by `parkcast train-slots --out DIR` instead of the packaged model (for
example one built with `--teacher 224`).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from PIL import Image  # noqa: E402

from edge_runtime.classifier import MODELS, SlotClassifier  # noqa: E402
from edge_runtime.preprocess import crop_all  # noqa: E402
from edge_runtime.slotmap import load_slot_map  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
PKLOT = REPO / "data" / "sample" / "slots" / "pklot_pucpr_frames" / "labeled"


def throughput(model: Path, batch, seconds: float) -> float:
    classifier = SlotClassifier(model, threads=1)
    classifier.predict(batch)
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        classifier.predict(batch)
        done += len(batch)
    return done / (time.perf_counter() - started)


def frame_latency(frames: int, model: Path) -> list[float]:
    from edge_runtime.config import EdgeConfig
    from edge_runtime.daemon import Daemon

    tmp = Path(tempfile.mkdtemp())
    config = EdgeConfig(api_url="http://127.0.0.1:9", lot_id="pucpr", device_id="bench", api_key="x",
                        slot_map=str(PKLOT / "2012-09-11_15_16_58.xml"), outbox=str(tmp / "o.sqlite3"),
                        health_file=str(tmp / "h.json"), heartbeat_s=0, model=str(model))
    start = datetime.now(UTC)
    ticks = iter(start + timedelta(seconds=i) for i in range(10**6))
    daemon = Daemon(config, clock=lambda: next(ticks))
    paths = sorted(PKLOT.glob("*.jpg"))
    out = []
    for i in range(frames):
        started = time.perf_counter()
        frame = Image.open(paths[i % len(paths)]).convert("RGB")  # decode is part of the path
        assert daemon.process(frame) is not None
        out.append((time.perf_counter() - started) * 1000)
    daemon.outbox.close()
    return out


def daemon_memory(seconds: float, model: Path) -> tuple[float, float]:
    tmp = Path(tempfile.mkdtemp())
    config = tmp / "edge.toml"
    config.write_text(f'api_url = "http://127.0.0.1:9"\nlot_id = "pucpr"\ndevice_id = "bench"\napi_key = "x"\n'
                      f'slot_map = "{PKLOT / "2012-09-11_15_16_58.xml"}"\nheartbeat_s = 1\nmodel = "{model}"\n'
                      f'[source]\nkind = "folder"\npath = "{PKLOT}"\ninterval_s = 0.2\n')
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "run", "--config", str(config)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp)
    time.sleep(seconds)
    status = Path(f"/proc/{proc.pid}/status").read_text().splitlines()
    proc.terminate()
    proc.wait(timeout=30)
    value = {line.split(":")[0]: int(line.split()[1]) / 1024 for line in status if line.startswith(("VmRSS", "VmHWM"))}
    return value["VmRSS"], value["VmHWM"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--models", type=Path, default=MODELS, help="folder of slot_classifier[.int8].onnx")
    args = ap.parse_args()
    int8 = args.models / "slot_classifier.int8.onnx"
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    slot_map = load_slot_map(PKLOT / "2012-09-11_15_16_58.xml")
    batch = crop_all(Image.open(PKLOT / "2012-09-11_15_16_58.jpg"), slot_map, SlotClassifier().size)
    rows = [(name, (args.models / f).stat().st_size / 1024, throughput(args.models / f, batch, args.seconds))
            for name, f in (("fp32", "slot_classifier.onnx"), ("int8", "slot_classifier.int8.onnx"))]
    latency = frame_latency(60, int8)
    rss, peak = daemon_memory(max(8.0, args.seconds * 2), int8)
    print(f"\nparkcast edge benchmark ({os.cpu_count()} CPUs, measured on one core, batches of 100 slots; "
          f"{args.models})")
    print(f"{'model':<6} {'size KB':>8} {'patches/s':>10}")
    for name, size, rate in rows:
        print(f"{name:<6} {size:>8.0f} {rate:>10.0f}")
    ordered = sorted(latency)
    print(f"frame -> reading (1280x720 JPEG, 100 slots, int8): p50 {statistics.median(ordered):.1f} ms, "
          f"p99 {ordered[int(0.99 * (len(ordered) - 1))]:.1f} ms")
    print(f"daemon RSS after {max(8.0, args.seconds * 2):.0f} s of replay: {rss:.0f} MB (peak {peak:.0f} MB)")
    print("targets: >= 500 patches/s on one core (int8), model <= 2 MB, RSS <= 150 MB")


if __name__ == "__main__":
    main()
