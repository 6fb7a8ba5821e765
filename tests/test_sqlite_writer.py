"""The SQLite adapter's one-writer group commit: concurrent requests share transactions but
never each other's failures, and storage faults are StoreUnavailable with nothing written."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from conftest import make_lot, make_reading

from parking_core.contracts import utc_iso
from parking_core.store import ConflictError, DeviceInactive, StoreUnavailable
from parking_core.store.sqlite import SQLiteStore, _Writer


def keys_stored(path) -> list[tuple]:
    with sqlite3.connect(path) as conn:
        return conn.execute(
            "SELECT lot_id, device_id, observed_at, COUNT(*) FROM readings GROUP BY 1, 2, 3"
        ).fetchall()


def test_concurrent_requests_are_isolated_inside_one_group(tmp_path, monkeypatch):
    """Requests that queue while the writer waits for the lock are committed together, in one
    transaction; the one that conflicts fails alone, the others of its group are stored."""
    store = SQLiteStore(tmp_path / "s.sqlite3", busy_timeout_s=30)
    store.put_lot(make_lot("LOT-A"))
    groups: list[list[str]] = []  # per transaction of the writer, each request's outcome
    taken = threading.Event()
    commit = _Writer._commit

    def spy(writer, group):
        taken.set()
        commit(writer, group)
        groups.append([type(f.exception()).__name__ if f.exception() else "stored" for _, f in group])

    monkeypatch.setattr(_Writer, "_commit", spy)
    # 40 batches from 8 threads; batch 7 reuses key 0 with other values and must fail alone.
    batches = [[make_reading(1 + 3 * b + k) for k in range(3)] for b in range(40)]
    batches[7] = [make_reading(500), make_reading(0, occupied=11)]
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
    with ThreadPoolExecutor(9) as pool:
        first = pool.submit(store.put_readings, [make_reading(0, occupied=10)])
        assert taken.wait(30)  # the writer took the first request and waits for the lock...
        futures = [pool.submit(store.put_readings, b) for b in batches]
        queue, deadline = store._writer_thread()._queue, time.monotonic() + 30
        while queue.qsize() < 8:  # ...while the 8 threads' first batches (0-7) queue behind it
            assert time.monotonic() < deadline, "the first batches never reached the writer"
            time.sleep(0.01)
        other.execute("ROLLBACK")
    other.close()
    assert first.result() == ["created"]
    for i, future in enumerate(futures):
        if i == 7:
            assert isinstance(future.exception(), ConflictError)
        else:
            assert future.result() == ["created"] * 3
    assert groups[0] == ["stored"]
    assert sorted(groups[1]) == ["ConflictError"] + ["stored"] * 7  # one transaction, one failure in it
    stored = keys_stored(store.path)
    assert len(stored) == 1 + 39 * 3 and {n for *_, n in stored} == {1}
    assert utc_iso(make_reading(500).observed_at) not in {t for _, _, t, _ in stored}  # nothing of batch 7
    assert store.latest_reading("LOT-A").occupied == 10 and store.count_readings() == 1 + 39 * 3
    store.close()


def test_full_file_is_unavailable_and_writes_nothing(tmp_path):
    path = tmp_path / "s.sqlite3"
    SQLiteStore(path).put_lot(make_lot("LOT-A"))
    pages = sqlite3.connect(path).execute("PRAGMA page_count").fetchone()[0]
    store = SQLiteStore(path, max_pages=pages + 2)
    stored = 0
    with pytest.raises(StoreUnavailable):
        for b in range(100):
            store.put_readings([make_reading(100 * b + k, slots=None) for k in range(100)])
            stored += 100
    assert store.count_readings() == stored  # the batch that hit the cap left no row behind
    assert sqlite3.connect(path).execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store.close()
    # The operator raises the cap (or frees the disk): the same file takes writes again.
    bigger = SQLiteStore(path)
    assert bigger.put_readings([make_reading(10**6)]) == ["created"]
    bigger.close()


def test_lock_held_elsewhere_is_unavailable_then_recovers(tmp_path):
    store = SQLiteStore(tmp_path / "s.sqlite3", busy_timeout_s=0.2)
    store.put_lot(make_lot("LOT-A"))
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    with pytest.raises(StoreUnavailable):
        store.put_readings([make_reading(0)])
    assert store.count_readings() == 0  # reads go on meanwhile
    other.execute("ROLLBACK")
    assert store.put_readings([make_reading(0)]) == ["created"]
    other.close()
    store.close()


def test_async_writes_from_an_event_loop_share_the_writer_and_survive_a_timeout(tmp_path):
    """The API awaits writes on its event loop. A write that outlives the timeout answers
    StoreUnavailable, yet stays queued and commits once the lock frees; the writer keeps serving."""
    store = SQLiteStore(tmp_path / "s.sqlite3", busy_timeout_s=5, write_timeout_s=0.3)
    store.put_lot(make_lot("LOT-A"))

    async def many():
        return await asyncio.gather(*(store.put_readings_async([make_reading(i)]) for i in range(50)))

    assert asyncio.run(many()) == [["created"]] * 50

    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # the write lock held elsewhere for longer than the timeout
    with pytest.raises(StoreUnavailable, match="did not commit"):
        asyncio.run(store.put_readings_async([make_reading(100)]))
    other.execute("ROLLBACK")
    other.close()

    async def after():
        fresh = await store.put_readings_async([make_reading(101)])
        retry = await store.put_readings_async([make_reading(100)])  # the client's retry, same key
        return fresh, retry

    assert asyncio.run(after()) == (["created"], ["duplicate"])
    assert {n for *_, n in keys_stored(store.path)} == {1} and store.count_readings() == 52
    store.close()


def test_async_write_for_a_revoked_device_stores_nothing(tmp_path):
    """The API authenticates from a cache; the write itself refuses a device revoked meanwhile."""
    from datetime import UTC, datetime

    from parking_core.contracts import Device

    store = SQLiteStore(tmp_path / "s.sqlite3")
    store.put_lot(make_lot("LOT-A"))
    store.add_device(Device(device_id="cam-1", lot_id="LOT-A", created_at=datetime.now(UTC)), "h" * 64)
    assert asyncio.run(store.put_readings_async([make_reading(0)], device_id="cam-1")) == ["created"]
    store.revoke_device("cam-1", datetime.now(UTC))
    with pytest.raises(DeviceInactive):
        asyncio.run(store.put_readings_async([make_reading(1)], device_id="cam-1"))
    with pytest.raises(DeviceInactive):
        asyncio.run(store.put_readings_async([make_reading(2, device_id="ghost")], device_id="ghost"))
    assert store.count_readings() == 1
    store.close()
