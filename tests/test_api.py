"""The ingestion API under uvicorn on 127.0.0.1, over a real SQLite file."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import REPO, SAMPLE_CSV, make_lot, start_server

from parking_core.devices import register_device
from parking_core.store.sqlite import SQLiteStore

T = datetime(2016, 11, 1, 8, 0, tzinfo=UTC)


def reading(i: int = 0, lot: str = "LOT-A", device: str = "cam-a", occupied: int = 10, **kw) -> dict:
    return {
        "lot_id": lot,
        "device_id": device,
        "observed_at": (T + timedelta(minutes=i)).isoformat(),
        "capacity": 100,
        "occupied": occupied,
        **kw,
    }


@pytest.fixture
def keys(data_dir):
    store = SQLiteStore(data_dir / "parkcast.sqlite3")
    store.put_lot(make_lot("LOT-A"))
    store.put_lot(make_lot("LOT-B"))
    _, key_a = register_device(store, "LOT-A", "cam-a")
    _, key_b = register_device(store, "LOT-B", "cam-b")
    _, key_old = register_device(store, "LOT-A", "cam-old")
    store.revoke_device("cam-old", datetime.now(UTC))
    store.close()
    return {"a": key_a, "b": key_b, "revoked": key_old}


@pytest.fixture
def api(keys, live_server):
    with httpx.Client(base_url=live_server.url, timeout=10) as client:
        yield client


def count(data_dir) -> int:
    with sqlite3.connect(data_dir / "parkcast.sqlite3") as conn:
        return conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0]


def post(api, body, key) -> httpx.Response:
    return api.post("/v1/readings", json=body, headers={"X-API-Key": key} if key else {})


def test_single_reading_then_duplicate_then_conflict(api, keys, data_dir):
    r = post(api, reading(0), keys["a"])
    assert r.status_code == 201 and r.json() == {"accepted": 1, "duplicates": 0, "results": ["created"]}
    r = post(api, reading(0), keys["a"])
    assert r.status_code == 200 and r.json()["results"] == ["duplicate"]
    r = post(api, reading(0, occupied=11), keys["a"])
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"
    assert count(data_dir) == 1


def test_batch(api, keys, data_dir):
    batch = {"readings": [reading(i) for i in range(100)]}
    r = post(api, batch, keys["a"])
    assert r.status_code == 201 and r.json()["accepted"] == 100
    assert post(api, [reading(i) for i in range(100, 150)], keys["a"]).json()["accepted"] == 50
    r = post(api, {"readings": [reading(i) for i in range(101)]}, keys["a"])
    assert r.status_code == 422
    assert count(data_dir) == 150


@pytest.mark.parametrize(
    "body, field",
    [
        (reading(0, observed_at="2016-11-01T08:00:00"), "observed_at"),
        (reading(0, occupied=-1), "occupied"),
        (reading(0, occupied=150), "occupied"),
        (reading(0, observed_at=(datetime.now(UTC) + timedelta(hours=2)).isoformat()), "observed_at"),
        (reading(0, capacity="many"), "capacity"),
        ({k: v for k, v in reading(0).items() if k != "occupied"}, "occupied"),
        ({"readings": [reading(0), reading(1), reading(2, occupied=-5)]}, "readings[2].occupied"),
        ({"readings": []}, "readings"),
        ("just a string", "body"),
    ],
)
def test_bad_input_is_422_naming_the_field_and_stores_nothing(api, keys, data_dir, body, field):
    r = post(api, body, keys["a"])
    assert r.status_code == 422, r.text
    fields = [f["field"] for f in r.json()["error"]["fields"]]
    assert field in fields, r.json()
    assert count(data_dir) == 0


def test_not_json(api, keys, data_dir):
    r = api.post("/v1/readings", content=b"{not json", headers={"X-API-Key": keys["a"]})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "body"
    assert count(data_dir) == 0


def test_authentication_and_lot_ownership(api, keys, data_dir):
    assert post(api, reading(0), None).status_code == 401
    assert post(api, reading(0), "pk_wrong").status_code == 401
    assert post(api, reading(0, device="cam-old"), keys["revoked"]).status_code == 401
    # cam-b belongs to LOT-B: it may not write LOT-A, nor speak for another device.
    r = post(api, reading(0, device="cam-b"), keys["b"])
    assert r.status_code == 403 and r.json()["error"]["fields"][0]["field"] == "lot_id"
    assert post(api, reading(0, lot="LOT-B", device="cam-a"), keys["b"]).status_code == 403
    # To a device any lot but its own is forbidden, known or not (the fuzzer's "positive" data).
    assert post(api, {"readings": [reading(0), reading(1, lot="NOPE")]}, keys["a"]).status_code == 403
    # A batch with one foreign reading is refused whole.
    r = post(api, {"readings": [reading(0, lot="LOT-B", device="cam-b"), reading(1, device="cam-b")]}, keys["b"])
    assert r.status_code == 403
    assert count(data_dir) == 0
    assert post(api, reading(0, lot="LOT-B", device="cam-b"), keys["b"]).status_code == 201


def test_revocation_takes_effect_at_once(api, keys, live_server):
    assert post(api, reading(0), keys["a"]).status_code == 201
    subprocess.run(
        [sys.executable, "-m", "parkcast.cli", "devices", "revoke", "cam-a"],
        env={"PARKCAST_DATA_DIR": str(live_server.data_dir), "PATH": ""},
        cwd=REPO,
        check=True,
        capture_output=True,
    )
    assert post(api, reading(1), keys["a"]).status_code == 401


def test_read_routes(api, keys):
    post(api, {"readings": [reading(i * 30, occupied=i) for i in range(6)]}, keys["a"])
    lots = api.get("/v1/lots").json()
    assert [lot["lot_id"] for lot in lots] == ["LOT-A", "LOT-B"]
    assert lots[0]["latest"]["occupied"] == 5 and lots[1]["latest"] is None
    assert api.get("/v1/lots/LOT-A").json()["latest"]["occupancy_rate"] == 0.05
    assert api.get("/v1/lots/NOPE").status_code == 404
    params = {"start": "2016-11-01T09:00:00+01:00", "end": "2016-11-01T10:00:00Z"}
    body = api.get("/v1/lots/LOT-A/readings", params=params).json()
    assert body["count"] == 4 and body["readings"][0]["observed_at"] == "2016-11-01T08:00:00Z"
    assert api.get("/v1/lots/NOPE/readings", params=params).status_code == 404
    r = api.get("/v1/lots/LOT-A/readings", params={"start": "2016-11-01T09:00:00", "end": params["end"]})
    assert r.status_code == 422 and r.json()["error"]["fields"][0]["field"] == "start"
    r = api.get("/v1/lots/LOT-A/readings", params={"start": params["end"], "end": params["start"]})
    assert r.status_code == 422
    assert api.get("/v1/lots/LOT-A/readings", params={**params, "limit": "x"}).status_code == 422
    # Past year 9999 once in UTC: a clear 422, not a 500.
    r = api.get("/v1/lots/LOT-A/readings", params={"start": params["start"], "end": "9999-12-31T23:59:59-05:00"})
    assert r.status_code == 422 and "outside the supported date range" in r.json()["error"]["fields"][0]["message"]


def test_openapi_is_served(api):
    spec = api.get("/openapi.json").json()
    assert {"/v1/readings", "/v1/lots", "/v1/lots/{lot_id}/readings"} <= set(spec["paths"])
    assert "Reading" in spec["components"]["schemas"]
    assert api.get("/docs").status_code == 200


def test_sigkill_loses_no_acknowledged_reading(keys, data_dir):
    server = start_server(data_dir)
    acknowledged: list[dict] = []
    stop = threading.Event()

    def writer():
        with httpx.Client(base_url=server.url, timeout=5) as client:
            i = 0
            while not stop.is_set():
                batch = [reading(i + k) for k in range(20)]
                try:
                    r = post(client, {"readings": batch}, keys["a"])
                except httpx.HTTPError:
                    return
                if r.status_code in (200, 201):
                    acknowledged.extend(batch)
                i += 20

    thread = threading.Thread(target=writer)
    thread.start()
    while len(acknowledged) < 400:
        threading.Event().wait(0.01)
    server.kill()  # SIGKILL mid-stream
    stop.set()
    thread.join()

    server = start_server(data_dir, port=server.port)
    try:
        with sqlite3.connect(data_dir / "parkcast.sqlite3") as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with httpx.Client(base_url=server.url) as client:
            got = client.get(
                "/v1/lots/LOT-A/readings", params={"start": T.isoformat(), "end": (T + timedelta(days=30)).isoformat()}
            ).json()
            stored = {r["observed_at"] for r in got["readings"]}
            want = {datetime.fromisoformat(r["observed_at"]).strftime("%Y-%m-%dT%H:%M:%SZ") for r in acknowledged}
            assert want <= stored
            # Batches are atomic: whatever was stored is whole batches of 20.
            assert len(stored) % 20 == 0
            # And the server works again.
            assert post(client, reading(99_999), keys["a"]).status_code == 201
    finally:
        server.kill()


def test_concurrent_writers(keys, data_dir):
    """Two API workers, eight HTTP clients and a CSV import write one file at the same time."""
    # One device sends all 80 batches at once: the per-device rate limit (tested on its own) is off.
    server = start_server(data_dir, workers=2, PARKCAST_RATE_LIMIT_PER_DEVICE="0")
    errors: list[str] = []

    def client_writer(n: int):
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for b in range(10):
                batch = [reading(n * 10_000 + b * 25 + k) for k in range(25)]
                r = post(client, {"readings": batch}, keys["a"])
                if r.status_code != 201:
                    errors.append(r.text)

    importer = subprocess.Popen(
        [sys.executable, "-m", "parkcast.cli", "import-csv", str(SAMPLE_CSV)],
        env={"PARKCAST_DATA_DIR": str(data_dir), "PATH": ""},
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    threads = [threading.Thread(target=client_writer, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out, err = importer.communicate(timeout=120)
    server.kill()
    assert importer.returncode == 0, err
    assert errors == []
    assert b"accepted: 28744" in out
    with sqlite3.connect(data_dir / "parkcast.sqlite3") as conn:
        assert conn.execute("SELECT COUNT(*) FROM readings WHERE lot_id='LOT-A'").fetchone()[0] == 8 * 10 * 25
        assert conn.execute("SELECT COUNT(*) FROM readings").fetchone()[0] == 2000 + 28_744
