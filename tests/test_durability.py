"""What the SQLite files promise, and only that (README "Durability").

- The API's store (WAL, `synchronous=NORMAL`, the default): a reading the API acknowledged
  survives the API process being killed at any instant. It does not promise to survive a power
  cut or an OS crash: the last commits may sit in the WAL without an fsync. `FULL`
  (`PARKCAST_SQLITE_SYNCHRONOUS=FULL`) is the setting for that; power loss is not simulated here.
- The edge outbox: WAL with `synchronous=FULL` always (a Pi loses power).

Tested: the setting each file is opened with reads back from SQLite, on every connection; and a
real API server SIGKILLed in the middle of a stream of POSTs has stored every reading it
acknowledged, exactly once.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from datetime import datetime, timedelta

import httpx
import pytest
from conftest import T0, make_lot, start_server

from parking_core.config import Settings
from parking_core.contracts import utc_iso
from parking_core.devices import register_device
from parking_core.store import open_store
from parking_core.store.sqlite import SQLiteStore

SYNCHRONOUS = {"NORMAL": 1, "FULL": 2}  # what PRAGMA synchronous answers


def synchronous_of(store: SQLiteStore) -> int:
    """The level on the calling thread's read connection."""
    return store._reader().execute("PRAGMA synchronous").fetchone()[0]


@pytest.mark.parametrize("level", ["NORMAL", "FULL"])
def test_the_configured_synchronous_level_is_applied_on_every_connection(tmp_path, monkeypatch, level):
    monkeypatch.setenv("PARKCAST_SQLITE_SYNCHRONOUS", level)
    monkeypatch.setenv("PARKCAST_DATA_DIR", str(tmp_path))
    store = open_store(Settings())
    seen = [synchronous_of(store)]
    worker = threading.Thread(target=lambda: seen.append(synchronous_of(store)))  # a thread's own connection
    worker.start()
    worker.join()
    seen.append(store._write(lambda conn: conn.execute("PRAGMA synchronous").fetchone()[0]))  # the writer's
    assert seen == [SYNCHRONOUS[level]] * 3
    assert store._reader().execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.close()


def test_the_default_is_normal_and_a_typo_is_refused(monkeypatch):
    monkeypatch.delenv("PARKCAST_SQLITE_SYNCHRONOUS", raising=False)
    assert Settings().sqlite_synchronous == "NORMAL"
    monkeypatch.setenv("PARKCAST_SQLITE_SYNCHRONOUS", "OFF")  # would lose commits on a power cut silently
    with pytest.raises(ValueError, match="sqlite_synchronous"):
        Settings()


def test_the_edge_outbox_is_full(tmp_path):
    from edge_runtime.outbox import Outbox

    outbox = Outbox(tmp_path / "outbox.sqlite3")
    with outbox._lock:
        assert outbox._conn.execute("PRAGMA synchronous").fetchone()[0] == SYNCHRONOUS["FULL"]
        assert outbox._conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    outbox.close()


@pytest.mark.slow
def test_sigkill_mid_stream_loses_no_acknowledged_reading(tmp_path):
    store = SQLiteStore(tmp_path / "parkcast.sqlite3")
    store.put_lot(make_lot("LOT-A"))
    _, key = register_device(store, "LOT-A", "cam-1")
    store.close()
    # One device streams as fast as the API answers: its per-device rate limit is off here, or
    # most requests would be 429s (not acknowledged, so never at risk) and prove nothing.
    server = start_server(tmp_path, PARKCAST_SQLITE_SYNCHRONOUS="NORMAL", PARKCAST_RATE_LIMIT_PER_DEVICE="0")
    acknowledged: list[str] = []
    stop = threading.Event()

    def post_until_refused() -> None:
        with httpx.Client(timeout=5, headers={"X-API-Key": key}) as client:
            for i in range(5000):
                when = (T0 + timedelta(minutes=i)).isoformat()
                body = {"lot_id": "LOT-A", "device_id": "cam-1", "observed_at": when, "capacity": 100,
                        "occupied": i % 100}
                try:
                    r = client.post(f"{server.url}/v1/readings", json=body)
                except httpx.HTTPError:
                    return  # the server is gone: what it did not answer was never promised
                if r.status_code == 201:
                    acknowledged.append(when)
                if stop.is_set():
                    return

    writer = threading.Thread(target=post_until_refused)
    writer.start()
    try:
        deadline = time.monotonic() + 60
        while len(acknowledged) < 150 and writer.is_alive() and time.monotonic() < deadline:
            time.sleep(0.01)
        server.proc.send_signal(signal.SIGKILL)  # mid-stream: no shutdown hook, no checkpoint
        server.proc.wait(timeout=10)
    finally:
        stop.set()
        writer.join(timeout=30)
    assert len(acknowledged) >= 150
    with sqlite3.connect(tmp_path / "parkcast.sqlite3") as conn:  # a fresh reader, as after a restart
        stored = {row[0] for row in conn.execute("SELECT observed_at FROM readings WHERE lot_id = 'LOT-A'")}
    lost = [when for when in acknowledged if utc_iso(datetime.fromisoformat(when)) not in stored]
    assert not lost, f"{len(lost)} acknowledged reading(s) lost, first {lost[0]}"
