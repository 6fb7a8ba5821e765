"""The edge runtime: slot maps, the crop, the packaged classifier's accuracy (camera A val and
PKLot frames through the full path), the CLI, smoothing, and the daemon's reliability against
the real API on loopback (outage, SIGKILL, corrupt frames, missing camera, bad slot map)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO, start_server
from PIL import Image

from edge_runtime.slotmap import SlotMapError, load_slot_map

SLOTS = REPO / "data" / "sample" / "slots"
PKLOT = SLOTS / "pklot_pucpr_frames" / "labeled"
XML = PKLOT / "2012-09-11_15_16_58.xml"
FRAMES = sorted(PKLOT.glob("*.jpg"))


# -- slot maps and the crop ------------------------------------------------------------------

def test_pklot_xml_either_tag_case_csv_and_json_agree(tmp_path):
    xml = load_slot_map(XML)
    assert len(xml.slots) == 100 and xml.lot_id == "pucpr"
    assert xml.slots[0].points == ((278, 230), (290, 186), (324, 185), (308, 230))
    assert sum(s.occupied is None for s in xml.slots) == 1  # space 67 has no label
    upper = tmp_path / "upper.xml"
    upper.write_text(XML.read_text().replace("<point", "<Point").replace("<contour>", "<Contour>")
                     .replace("</contour>", "</Contour>"))
    assert [s.points for s in load_slot_map(upper).slots] == [s.points for s in xml.slots]
    csv_map = load_slot_map(PKLOT / "slots.csv", "2012-09-11_15_16_58.jpg")
    assert [s.points for s in csv_map.slots] == [s.points for s in xml.slots]
    assert [s.occupied for s in csv_map.slots] == [s.occupied for s in xml.slots]
    ours = tmp_path / "slots.json"
    ours.write_text(json.dumps({**xml.to_json(), "frame_size": [1280, 720]}))
    assert [s.points for s in load_slot_map(ours).slots] == [s.points for s in xml.slots]
    # A contour-less space falls back to its rotated rectangle.
    rect_only = tmp_path / "rect.xml"
    rect_only.write_text('<parking id="x"><space id="1"><rotatedRect><center x="100" y="100"/><size w="40" h="20"/>'
                         '<angle d="0"/></rotatedRect></space></parking>')
    (slot,) = load_slot_map(rect_only).slots
    assert sorted(slot.points) == [(80, 90), (80, 110), (120, 90), (120, 110)]


@pytest.mark.parametrize(("content", "suffix", "message"), [
    ('{"version": 1, "slots": [{"id": "a", "points": [[0, 0], [10, 0], [10, 10]]}]}', ".json", "has 3 points"),
    ('{"version": 1, "slots": [{"id": "a", "points": [[0,0],[9,0],[9,9],[0,9]]}, '
     '{"id": "a", "points": [[20,0],[29,0],[29,9],[20,9]]}]}', ".json", "appears twice"),
    ('{"version": 1, "slots": [{"id": "a", "points": [[0,0],[1,0],[1,1],[0,1]]}]}', ".json", "degenerate"),
    ('{"version": 1, "frame_size": [100, 100], "slots": [{"id": "a", "points": [[0,0],[500,0],[500,50],[0,50]]}]}',
     ".json", "outside the 100x100 frame"),
    ('{"slots": []}', ".json", 'expected {"version": 1'),
    ("not json", ".json", "not valid JSON"),
    ("<parking><space id='1'></parking>", ".xml", "not valid XML"),
    ("a,b\n1,2\n", ".csv", "missing column(s)"),
    ("", ".yaml", "unknown slot map format"),
    ("<parking><space id='1'><contour><point x='1O' y='2'/></contour></space></parking>", ".xml",
     "space 1: coordinates must be numbers"),
    ("<parking><space id='1'><contour><point y='2'/></contour></space></parking>", ".xml",
     "space 1: coordinates must be numbers"),
    ('{"version": 1, "slots": [{"id": "' + "A" * 65 + '", "points": [[0,0],[9,0],[9,9],[0,9]]}]}', ".json",
     "must be 1-64 characters"),
    ('{"version": 1, "slots": [{"id": "", "points": [[0,0],[9,0],[9,9],[0,9]]}]}', ".json",
     "slot id '' must be 1-64 characters"),
])
def test_invalid_slot_maps_fail_with_a_clear_error(tmp_path, content, suffix, message):
    path = tmp_path / f"map{suffix}"
    path.write_text(content)
    with pytest.raises(SlotMapError, match=message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")):
        load_slot_map(path)


def test_perspective_crop_fills_the_patch_with_the_slot():
    from edge_runtime.preprocess import crop

    frame = Image.new("RGB", (200, 200), (0, 0, 255))
    frame.paste((255, 0, 0), (60, 40, 140, 100))  # the slot: a red rectangle
    patch = np.asarray(crop(frame, [(140, 100), (60, 100), (60, 40), (140, 40)], 32), dtype=int)
    assert (patch[2:-2, 2:-2, 0] > 200).all() and (patch[2:-2, 2:-2, 2] < 50).all()
    # A slanted slot (PKLot space 1's shape): its bounding box would hold blue corners; the
    # perspective crop holds only the slot.
    from PIL import ImageDraw

    quad = [(278, 230), (290, 186), (324, 185), (308, 230)]
    frame = Image.new("RGB", (400, 300), (0, 0, 255))
    ImageDraw.Draw(frame).polygon(quad, fill=(255, 0, 0))
    patch = np.asarray(crop(frame, quad, 32), dtype=int)
    assert (patch[3:-3, 3:-3, 0] > 200).all() and (patch[3:-3, 3:-3, 2] < 50).all()


# -- the packaged classifier -----------------------------------------------------------------

def test_packaged_int8_model_meets_its_accuracy_targets():
    from edge_runtime.classifier import DEFAULT_MODEL, SlotClassifier
    from edge_runtime.evaluate import evaluate_frames, evaluate_patches

    assert DEFAULT_MODEL.stat().st_size <= 2 * 1024 * 1024
    classifier = SlotClassifier()
    val = evaluate_patches(classifier, SLOTS / "cnrpark_camA" / "labels.csv", split="val")
    assert val["n"] == 663 and val["accuracy"] >= 0.98
    frames = evaluate_frames(classifier, [(xml.with_suffix(".jpg"), load_slot_map(xml)) for xml in PKLOT.glob("*.xml")])
    # Other days of a camera the model was trained on (the LOSO benchmark judges unseen cameras).
    assert frames["n"] == 299 and frames["accuracy"] >= 0.97


def test_the_int8_model_answers_alike_on_every_cpu():
    """onnxruntime runs the int8 graph with this CPU's integer kernels; with every graph
    optimisation off it runs the reference arithmetic (dequantize, float convolution, quantize).
    On x86 without VNNI, uint8 x int8 products saturate in pairs unless the weights are 7-bit
    (slot_training.training.quantize_int8): the 8-bit model moved P(taken) by up to 0.46 there.
    The kernels may round differently from the reference, nothing more."""
    import onnxruntime as ort

    from edge_runtime.classifier import DEFAULT_MODEL
    from edge_runtime.preprocess import crop_all

    patches = crop_all(Image.open(FRAMES[0]).convert("RGB"), load_slot_map(XML), 64)  # the edge's own crops

    def probabilities(level):
        options = ort.SessionOptions()
        options.graph_optimization_level = level
        session = ort.InferenceSession(str(DEFAULT_MODEL), options, providers=["CPUExecutionProvider"])
        return session.run(None, {session.get_inputs()[0].name: patches})[0][:, 1]

    kernels = probabilities(ort.GraphOptimizationLevel.ORT_ENABLE_ALL)
    reference = probabilities(ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    assert len(kernels) == len(load_slot_map(XML).slots) and np.abs(kernels - reference).max() < 0.05


def test_long_batches_run_in_chunks_with_the_same_answers():
    """A frame's slots go to onnxruntime CHUNK at a time (a model with the 224 px teacher would hold
    hundreds of MB of activations for 100 at once), in order."""
    from edge_runtime.classifier import CHUNK, SlotClassifier

    x = np.random.default_rng(0).standard_normal((CHUNK * 2 + 5, 3, 64, 64)).astype(np.float32)
    classifier = SlotClassifier()
    session, runs = classifier.session, []

    class Counting:
        def run(self, names, feed):
            runs.append(len(next(iter(feed.values()))))
            return session.run(names, feed)

    classifier.session = Counting()
    p, e = classifier.outputs(x)
    assert runs == [CHUNK, CHUNK, 5]
    classifier.session = session
    one_by_one = [classifier.outputs(x[i : i + 1]) for i in range(len(x))]
    np.testing.assert_allclose(p, np.concatenate([q for q, _ in one_by_one]), atol=1e-6)
    np.testing.assert_allclose(e, np.concatenate([f for _, f in one_by_one]), atol=1e-5)


def test_classify_and_eval_commands(tmp_path):
    from edge_runtime.cli import main

    runner = CliRunner()
    frame = PKLOT / "2012-09-19_14_48_39.jpg"
    r = runner.invoke(main, ["classify", "--frame", str(frame), "--slots", str(PKLOT / "slots.csv"),
                             "--overlay", str(tmp_path / "o.png")])
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["capacity"] == 100 and abs(out["occupied"] - 81) <= 8  # 81 taken in the labels
    assert Image.open(tmp_path / "o.png").size == (1280, 720)
    labels = tmp_path / "labels.csv"
    rows = [line.split(",") for line in (SLOTS / "cnrpark_camA" / "labels.csv").read_text().splitlines()[1:]]
    labels.write_text("path,occupied\n" + "".join(f"{SLOTS / 'cnrpark_camA' / r[0]},{r[2]}\n" for r in rows[-60:]))
    r = runner.invoke(main, ["eval", "--labels", str(labels)])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.splitlines()[0])["n"] == 60 and "predicted free" in r.output
    bad = tmp_path / "bad.csv"
    bad.write_text("path,occupied\nx.jpg,maybe\n")
    r = runner.invoke(main, ["eval", "--labels", str(bad)])
    assert r.exit_code != 0 and "occupied must be 0 or 1" in r.output
    r = runner.invoke(main, ["classify", "--frame", str(frame), "--slots", str(tmp_path / "none.json")])
    assert r.exit_code != 0 and "no such slot map" in r.output
    not_a_model = tmp_path / "model.onnx"
    not_a_model.write_text("a text file, not a model")
    r = runner.invoke(main, ["classify", "--frame", str(frame), "--slots", str(XML), "--model", str(not_a_model)])
    assert r.exit_code == 1 and "not an ONNX model onnxruntime can run" in r.output
    r = runner.invoke(main, ["classify", "--frame", str(frame), "--slots", str(XML), "--threshold", "nan"])
    assert r.exit_code == 2 and "--threshold" in r.output


def test_hysteresis_does_not_flicker():
    from edge_runtime.smoothing import Smoother

    smoother = Smoother(1, alpha=0.5, on=0.6, off=0.4)
    seen = [bool(smoother.update([p])[0]) for p in [0.2, 0.55, 0.45, 0.58, 0.5, 0.9, 0.95, 0.5, 0.45, 0.6, 0.1, 0.05]]
    assert seen == [False, False, False, False, False, True, True, True, True, True, False, False]
    # Without averaging: between `off` and `on` the state holds, where a 0.5 cut would flip each frame.
    raw = Smoother(1, alpha=1.0, on=0.6, off=0.4)
    assert [bool(raw.update([p])[0]) for p in [0.7, 0.45, 0.55, 0.45, 0.3, 0.55, 0.59, 0.61]] == \
        [True, True, True, True, False, False, False, True]
    # The state follows the average, not the frame: one confident frame after an empty one is not a car.
    averaged = Smoother(1, alpha=0.5, on=0.6, off=0.4)
    assert [bool(averaged.update([p])[0]) for p in [0.0, 1.0, 1.0]] == [False, False, True]


def test_the_edge_needs_neither_torch_nor_dagster():
    """Every module of edge_runtime imported (the CLI loads some lazily), and the classifier run on
    a frame, in a process where the heavy libraries cannot be imported at all."""
    code = (
        "import sys\n"
        "for heavy in ('torch', 'dagster', 'lightning', 'pandas', 'polars', 'sklearn'):\n"
        "    sys.modules[heavy] = None  # importing it raises ImportError\n"
        "import importlib, pkgutil, edge_runtime\n"
        "names = [m.name for m in pkgutil.iter_modules(edge_runtime.__path__)]\n"
        "for name in names:\n"
        "    importlib.import_module(f'edge_runtime.{name}')\n"
        "from PIL import Image\n"
        "from edge_runtime.classifier import SlotClassifier\n"
        "from edge_runtime.preprocess import crop_all\n"
        "from edge_runtime.slotmap import load_slot_map\n"
        f"frame = Image.open({str(FRAMES[0])!r}).convert('RGB')\n"
        f"slots = load_slot_map({str(FRAMES[0].with_suffix('.xml'))!r})\n"
        "classifier = SlotClassifier()\n"
        "p, _ = classifier.outputs(crop_all(frame, slots, classifier.size))\n"
        "print(len(names), len(p))\n")
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    modules, patches = map(int, r.stdout.split())
    assert modules >= 15 and patches == 100


# -- the daemon against the real API -----------------------------------------------------------

@pytest.fixture
def api_site(data_dir):
    """An API data folder with the PUCPR lot and a device key (the server is started by each test)."""
    from parking_core.contracts import Lot
    from parking_core.devices import register_device
    from parking_core.store.sqlite import SQLiteStore

    store = SQLiteStore(data_dir / "parkcast.sqlite3")
    store.put_lot(Lot(lot_id="pucpr", name="PKLot PUCPR", capacity=100, timezone="America/Sao_Paulo"))
    _, key = register_device(store, "pucpr", "pi-pucpr")
    store.close()
    return data_dir, key


def write_config(tmp_path: Path, api_url: str, key: str, frames: Path, **extra) -> Path:
    config = tmp_path / "edge.toml"
    source = extra.pop("source", {})
    lines = [f'api_url = "{api_url}"', 'lot_id = "pucpr"', 'device_id = "pi-pucpr"', f'api_key = "{key}"',
             f'slot_map = "{XML}"', f'outbox = "{tmp_path / "outbox.sqlite3"}"',
             f'health_file = "{tmp_path / "health.json"}"', f"heartbeat_s = {extra.pop('heartbeat_s', 0.3)}"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    lines += ["[source]", 'kind = "folder"', f'path = "{frames}"', f"interval_s = {source.get('interval_s', 0.15)}",
              f"loop = {json.dumps(source.get('loop', True))}", "[upload]", "backoff_base_s = 0.2",
              "backoff_max_s = 1.0", "timeout_s = 3"]
    config.write_text("\n".join(lines) + "\n")
    return config


def frames_folder(tmp_path: Path, corrupt: bool = False, copies: int = 1) -> Path:
    """The labelled frames, each `copies` times (a longer replay for the daemon)."""
    folder = tmp_path / "frames"
    folder.mkdir(parents=True, exist_ok=True)
    for k in range(copies):
        for f in FRAMES:
            shutil.copy(f, folder / (f.name if copies == 1 else f"{k:02d}_{f.name}"))
    if corrupt:
        (folder / "2012-09-15_00_00_00.jpg").write_bytes(b"\xff\xd8 this is not a jpeg")
    return folder


def outbox_rows(tmp_path: Path) -> list[tuple[str, str, str | None, str | None]]:
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as conn:
        return conn.execute("SELECT key, body, sent_at, dead_reason FROM outbox ORDER BY id").fetchall()


def server_keys(data_dir: Path) -> list[str]:
    with sqlite3.connect(data_dir / "parkcast.sqlite3") as conn:
        rows = conn.execute("SELECT observed_at FROM readings WHERE lot_id = 'pucpr' ORDER BY observed_at").fetchall()
    return [r[0] for r in rows]


def wait_for(predicate, timeout: float = 60.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def start_daemon(config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "run", "--config", str(config)], cwd=REPO,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def instant(text: str) -> str:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC).isoformat()


def assert_each_reading_stored_once(tmp_path: Path, data_dir: Path) -> None:
    """The outbox the daemon left is empty (every row acknowledged, none set aside) and every
    reading in it is on the server exactly once, with the counts the device made."""
    rows = outbox_rows(tmp_path)
    assert rows and all(sent and not dead for _, _, sent, dead in rows), "the outbox is not empty"
    with sqlite3.connect(data_dir / "parkcast.sqlite3") as conn:
        stored = conn.execute("SELECT observed_at, COUNT(*), MIN(occupied), MAX(occupied) FROM readings "
                              "WHERE lot_id = 'pucpr' GROUP BY observed_at").fetchall()
    on_server = {instant(at): (count, low, high) for at, count, low, high in stored}
    made = {instant(json.loads(body)["observed_at"]): json.loads(body)["occupied"] for _, body, _, _ in rows}
    assert on_server == {at: (1, occupied, occupied) for at, occupied in made.items()}


@pytest.mark.slow
def test_api_outage_then_every_reading_arrives_exactly_once(tmp_path, api_site):
    """The API is down while the daemon replays its frames; it comes back while the daemon, its
    replay over, is draining its outbox. The daemon itself uploads everything and stops."""
    from edge_runtime.config import load_config
    from edge_runtime.daemon import Daemon
    from parkcast.processes import free_port

    data_dir, key = api_site
    port = free_port()
    frames = frames_folder(tmp_path, copies=8)
    config = write_config(tmp_path, f"http://127.0.0.1:{port}", key, frames, source={"loop": False})
    daemon = Daemon(load_config(config))
    thread = threading.Thread(target=daemon.run, kwargs={"install_signals": False})
    thread.start()
    server = None
    try:
        wait_for(lambda: daemon.stats["frames"] == len(list(frames.iterdir())), what="the replay to end, API down")
        queued = outbox_rows(tmp_path)  # read from the file: the daemon owns its connection
        assert len(queued) >= 8 and not any(sent for _, _, sent, _ in queued) and daemon.uploader.failures > 0
        health = json.loads((tmp_path / "health.json").read_text())
        assert health["pending"] >= 1 and "network" in (health["last_upload_error"] or "")
        server = start_server(data_dir, port=port)  # the API comes back
        thread.join(timeout=60)  # no stop signal: the daemon finishes by itself once its outbox is empty
        assert not thread.is_alive(), "the daemon did not drain its outbox"
        assert daemon.uploader.uploaded == daemon.stats["readings"] == len(outbox_rows(tmp_path)) >= 8
        health = json.loads((tmp_path / "health.json").read_text())
        assert (health["pending"], health["dead"], health["uploaded"]) == (0, 0, daemon.stats["readings"])
        assert_each_reading_stored_once(tmp_path, data_dir)
    finally:
        daemon.stopping.set()
        thread.join(timeout=30)
        if server:
            server.kill(signal.SIGTERM)


@pytest.mark.slow
def test_sigkill_mid_upload_loses_nothing_after_restart(tmp_path, api_site):
    """The daemon is SIGKILLed while an upload hangs (the API frozen with SIGSTOP): the API
    stores that batch once it runs again, the daemon never saw the acknowledgement. The
    restarted daemon re-sends it (stored once), uploads what the killed one left, its own
    replay, and stops by itself with an empty outbox."""
    data_dir, key = api_site
    server = start_server(data_dir)
    try:
        frames = frames_folder(tmp_path, copies=4)
        config = write_config(tmp_path, server.url, key, frames, heartbeat_s=0.1, source={"interval_s": 0.05})
        proc = start_daemon(config)
        wait_for(lambda: len(server_keys(data_dir)) >= 10, what="first uploads")
        server.proc.send_signal(signal.SIGSTOP)  # uploads hang: sent, never acknowledged
        try:
            wait_for(lambda: sum(not sent for _, _, sent, _ in outbox_rows(tmp_path)) >= 5, what="unsent readings")
            proc.send_signal(signal.SIGKILL)  # no chance to flush anything
            proc.wait(timeout=10)
        finally:
            server.proc.send_signal(signal.SIGCONT)
        left = sum(not sent for _, _, sent, _ in outbox_rows(tmp_path))
        config = write_config(tmp_path, server.url, key, frames, heartbeat_s=0.1,
                              source={"interval_s": 0.05, "loop": False})
        proc = start_daemon(config)  # replays the frames once, drains, exits
        assert proc.wait(timeout=90) == 0
        health = json.loads((tmp_path / "health.json").read_text())
        assert health["pid"] == proc.pid and (health["pending"], health["dead"]) == (0, 0)
        assert health["uploaded"] >= left + health["readings"] and health["readings"] >= 1
        assert_each_reading_stored_once(tmp_path, data_dir)
    finally:
        server.proc.send_signal(signal.SIGCONT)
        server.kill(signal.SIGTERM)


@pytest.mark.slow
def test_corrupt_frames_and_a_missing_camera_keep_the_daemon_up(tmp_path, api_site):
    from edge_runtime.config import load_config
    from edge_runtime.daemon import Daemon

    data_dir, key = api_site
    server = start_server(data_dir)
    try:
        missing = tmp_path / "camera"  # no frames yet: the camera is "missing"
        config = write_config(tmp_path, server.url, key, missing, source={"interval_s": 0.05})
        daemon = Daemon(load_config(config))
        thread = threading.Thread(target=daemon.run, kwargs={"install_signals": False})
        thread.start()
        try:
            wait_for(lambda: daemon.stats["source_errors"] >= 2, what="camera retries")
            assert thread.is_alive() and json.loads((tmp_path / "health.json").read_text())["status"] == "degraded"
            shutil.copytree(frames_folder(tmp_path / "src", corrupt=True), missing)  # the camera comes back
            wait_for(lambda: daemon.stats["frame_errors"] >= 1 and daemon.stats["readings"] >= 3,
                     what="readings after the camera returned")
            wait_for(lambda: len(server_keys(data_dir)) >= 3, what="uploads")
            assert thread.is_alive() and json.loads((tmp_path / "health.json").read_text())["status"] == "ok"
        finally:
            daemon.stopping.set()
            thread.join(timeout=30)
    finally:
        server.kill(signal.SIGTERM)


def test_an_unwritable_health_file_or_a_damaged_outbox(tmp_path):
    """The health file is diagnostics: when it cannot be written (a full or read-only disk) the
    daemon counts on. An outbox that is not a database stops the start with a message, and the
    file is left as it was (it may hold readings)."""
    from edge_runtime.cli import main
    from edge_runtime.config import load_config
    from edge_runtime.daemon import Daemon

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the health file's folder should be")
    config = write_config(tmp_path, "http://127.0.0.1:9", "k", frames_folder(tmp_path), source={"loop": False})
    text = config.read_text().replace(str(tmp_path / "health.json"), str(blocker / "health.json"))
    config.write_text(text)
    daemon = Daemon(load_config(config))
    for _ in range(2):  # what run() does per frame: the health write after each step must not raise
        daemon.step()
        daemon.write_health()
    assert daemon.stats["readings"] >= 1 and daemon.outbox.counts()["pending"] >= 1 and daemon.health_failing
    daemon.outbox.close()

    outbox = tmp_path / "outbox.sqlite3"
    for suffix in ("-wal", "-shm"):
        Path(f"{outbox}{suffix}").unlink(missing_ok=True)
    outbox.write_bytes(b"garbage, not SQLite" * 100)
    r = CliRunner().invoke(main, ["run", "--config", str(config)])
    assert r.exit_code == 2 and "is not a readable outbox" in r.output and "nothing was deleted" in r.output
    assert outbox.read_bytes() == b"garbage, not SQLite" * 100


def test_a_wrong_clock_holds_readings_back(tmp_path, api_site):
    from edge_runtime.config import load_config
    from edge_runtime.daemon import Daemon

    _, key = api_site
    config = write_config(tmp_path, "http://127.0.0.1:9", key, frames_folder(tmp_path))
    daemon = Daemon(load_config(config), clock=lambda: datetime(1970, 1, 1, 0, 5, tzinfo=UTC))
    assert daemon.process(Image.open(FRAMES[0])) is None
    assert daemon.stats["clock_holds"] == 1 and daemon.outbox.counts()["pending"] == 0
    daemon.clock = lambda: datetime.now(UTC)
    daemon.smoother.__init__(100, alpha=1.0, on=0.5, off=0.4999)  # states follow each frame at once
    reading = daemon.process(Image.open(FRAMES[0]))
    assert reading["capacity"] == 100 and len(reading["slots"]) == 100
    assert daemon.outbox.counts()["pending"] == 1
    # A clock set back behind the last reading (an NTP step, a dead RTC battery): held back too,
    # although the next frame shows other states.
    back = datetime.fromisoformat(reading["observed_at"]) - timedelta(minutes=5)
    daemon.clock = lambda: back
    assert daemon.process(Image.open(FRAMES[1])) is None
    assert daemon.stats["clock_holds"] == 2 and daemon.outbox.counts()["pending"] == 1
    daemon.outbox.close()


def test_ids_the_api_would_refuse_are_refused_at_start(tmp_path):
    """A lot or device id the API refuses would make every reading a dead letter: the config is
    refused instead, with the rule (the edge's copy of it equals the API's)."""
    from edge_runtime.config import ID_RE, ConfigError, load_config
    from parking_core.contracts import ID_PATTERN

    assert ID_RE.pattern == ID_PATTERN[1:-1]
    good = write_config(tmp_path, "http://127.0.0.1:9", "k", tmp_path)
    assert load_config(good).lot_id == "pucpr"
    for name, value in (("lot_id", "Broad St/1"), ("device_id", "x" * 65), ("lot_id", " lead")):
        text = good.read_text().replace(f'{name} = "{"pucpr" if name == "lot_id" else "pi-pucpr"}"',
                                        f"{name} = {json.dumps(value)}")
        bad = tmp_path / f"bad-{name}.toml"
        bad.write_text(text)
        with pytest.raises(ConfigError, match=f"{name} .* must be 1-64 characters"):
            load_config(bad)


def test_an_invalid_slot_map_or_config_is_a_clear_error_at_start(tmp_path, api_site):
    _, key = api_site
    bad_map = tmp_path / "slots.json"
    bad_map.write_text('{"version": 1, "slots": [{"id": "a", "points": [[0, 0], [5, 0], [5, 5]]}]}')
    config = write_config(tmp_path, "http://127.0.0.1:9", key, frames_folder(tmp_path))
    config.write_text(config.read_text().replace(f'slot_map = "{XML}"', f'slot_map = "{bad_map}"'))
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "run", "--config", str(config)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "slot a has 3 points" in r.stderr
    config.write_text(config.read_text().replace("[source]", "[source]\nspeed = 3"))
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "run", "--config", str(config)], cwd=REPO,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "unknown key(s) speed" in r.stderr
    os.remove(bad_map)


def test_slot_classifier_asset_trains_exports_and_stores_its_card(data_dir):
    import dagster as dg

    from parking_assets.edge_assets import slot_classifier
    from parking_assets.resources import ParkcastResource

    parkcast = ParkcastResource(data_dir=str(data_dir))
    result = dg.materialize([slot_classifier], resources={"parkcast": parkcast},
                            run_config={"ops": {"slot_classifier": {"config": {"epochs": 5, "limit": 256}}}})
    assert result.success
    meta = result.asset_materializations_for_node("slot_classifier")[0].metadata
    assert meta["int8_bytes"].value < meta["fp32_bytes"].value
    # Five epochs of the head on 256 patches, seeded: 0.969 on camera A's validation patches and
    # 0.977 on the PKLot frames on the dev machine (9 s); a constant or untrained classifier is far below.
    assert meta["val_accuracy_int8"].value >= 0.90 and meta["external_accuracy_int8"].value >= 0.85
    objects = parkcast.objects()
    prefix = objects.key_of(meta["uri"].value)
    assert {k.rsplit("/", 1)[-1] for k in objects.list(prefix)} == {
        "slot_classifier.onnx", "slot_classifier.int8.onnx", "metrics.json", "MODEL_CARD.md"}
    assert "PKLot PUCPR" in objects.get_bytes(f"{prefix}/MODEL_CARD.md").decode()


def test_a_video_file_plays_through_the_opencv_source(tmp_path):
    # No importorskip: `make test` has OpenCV (the pipeline extra), so a missing cv2 is a failure,
    # not a silent skip. On a Pi it comes with the edge-video extra.
    import cv2

    from edge_runtime.sources import SourceUnavailable, open_source

    path = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 5, (320, 240))
    for i in range(3):
        writer.write(np.full((240, 320, 3), i * 60, np.uint8))
    writer.release()
    source = open_source("video", str(path))
    assert [source.read().size for _ in range(3)] == [(320, 240)] * 3
    with pytest.raises(SourceUnavailable, match="gave no frame"):
        source.read()
