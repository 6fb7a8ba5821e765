"""SQLite adapter: one WAL-mode file in the data folder, the local default.

Writes of one process go through one writer thread with group commit: each write is queued
with a future, the writer runs every pending write in one transaction (each inside its own
savepoint, so one request's conflict never undoes another's) and answers the futures only
after COMMIT returned. Nothing in the process waits in SQLite's busy handler, which sleeps
in steps of up to 100 ms when several connections of one process fight for the write lock.
Reads use one connection per thread; WAL lets them run beside the writer. Several processes
(API workers, CLI import, pipeline) still share one file safely through SQLite's lock.

Storage faults (disk full, read-only file, lock held elsewhere too long) surface as
StoreUnavailable, which adapters answer with 503; the writer opens a fresh connection after
such a fault, so the store recovers by itself once the cause is gone.
"""

from __future__ import annotations

import asyncio
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from parking_core.contracts import Device, Forecast, Lot, PutOutcome, Reading, utc_iso
from parking_core.store.codec import reading_from_row, slots_to_json
from parking_core.store.port import (
    ConflictError,
    DeviceExistsError,
    DeviceInactive,
    NotFoundError,
    StoreUnavailable,
    classify_batch,
)

T = TypeVar("T")

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS lots (
    lot_id TEXT PRIMARY KEY,
    body   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS readings (
    lot_id      TEXT NOT NULL REFERENCES lots(lot_id),
    observed_at TEXT NOT NULL,          -- fixed-width UTC, sorts in time order
    device_id   TEXT NOT NULL,
    capacity    INTEGER NOT NULL CHECK (capacity > 0),
    occupied    INTEGER NOT NULL CHECK (occupied >= 0),
    slots       TEXT,
    received_at TEXT NOT NULL,
    PRIMARY KEY (lot_id, observed_at, device_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS forecasts (
    lot_id        TEXT NOT NULL REFERENCES lots(lot_id),
    issued_at     TEXT NOT NULL,
    model_version TEXT NOT NULL,
    body          TEXT NOT NULL,
    PRIMARY KEY (lot_id, issued_at)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS devices (
    device_id  TEXT PRIMARY KEY,
    lot_id     TEXT NOT NULL REFERENCES lots(lot_id),
    key_hash   TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    revoked_at TEXT
);
"""

_READING_COLUMNS = "lot_id, device_id, observed_at, capacity, occupied, slots"
# bandit B608: built once from the constant above; every value is a bound parameter.
_SELECT_RANGE = (f"SELECT {_READING_COLUMNS} FROM readings WHERE lot_id=? AND observed_at>=? "  # nosec B608
                 "AND observed_at<? ORDER BY observed_at, device_id")
_SELECT_LATEST = f"SELECT {_READING_COLUMNS} FROM readings WHERE lot_id=? ORDER BY observed_at DESC LIMIT 1"  # nosec B608
_SELECT_ONE = f"SELECT {_READING_COLUMNS} FROM readings WHERE lot_id=? AND observed_at=? AND device_id=?"  # nosec B608


# Writes joined into one transaction at most; bounds the time the first of them waits.
MAX_GROUP = 128


def _is_fault(exc: BaseException) -> bool:
    """SQLite errors that say the store cannot write now (not that the request was wrong)."""
    return isinstance(exc, sqlite3.OperationalError | sqlite3.DatabaseError) and not isinstance(
        exc, sqlite3.IntegrityError
    )


class _Writer:
    """The one thread of this process that writes; see the module docstring."""

    def __init__(self, connect: Callable[[], sqlite3.Connection]):
        self._connect = connect
        self._conn: sqlite3.Connection | None = None
        self._queue: queue.SimpleQueue[tuple[Callable[[sqlite3.Connection], Any], Future] | None] = (
            queue.SimpleQueue()
        )
        self._thread = threading.Thread(target=self._run, name="sqlite-writer", daemon=True)
        self._thread.start()

    def enqueue(self, fn: Callable[[sqlite3.Connection], T]) -> Future:
        future: Future = Future()
        self._queue.put((fn, future))
        return future

    def submit(self, fn: Callable[[sqlite3.Connection], T], timeout: float) -> T:
        try:
            return self.enqueue(fn).result(timeout)
        except FutureTimeout:
            raise _not_committed(timeout) from None

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                break
            group = [job]
            while len(group) < MAX_GROUP:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    self._commit(group)
                    self._close()
                    return
                group.append(job)
            self._commit(group)
        self._close()

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _commit(self, group: list[tuple[Callable[[sqlite3.Connection], Any], Future]]) -> None:
        done: list[tuple[Future, Any]] = []
        try:
            if self._conn is None:
                self._conn = self._connect()
            conn = self._conn
            conn.execute("BEGIN IMMEDIATE")
            for fn, future in group:
                conn.execute("SAVEPOINT request")
                try:
                    result = fn(conn)
                except Exception as exc:
                    if _is_fault(exc):
                        raise  # the whole group fails below; SQLite may have rolled it back already
                    conn.execute("ROLLBACK TO request")
                    conn.execute("RELEASE request")
                    future.set_exception(exc)
                    continue
                conn.execute("RELEASE request")
                done.append((future, result))
            conn.execute("COMMIT")
        except Exception as exc:  # noqa: BLE001 - every failure here is answered on the futures
            fault = StoreUnavailable(f"the store cannot write now: {exc}")
            if self._conn is not None:
                try:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                self._close()  # a fresh connection next time: recovers once the cause is gone
            for _, future in group:
                if not future.done():
                    future.set_exception(fault)
            return
        for future, result in done:
            future.set_result(result)


def _not_committed(timeout: float) -> StoreUnavailable:
    # The write may still commit later: the caller retries with the same key, which is a duplicate.
    return StoreUnavailable(f"the store did not commit within {timeout:g}s")


class SQLiteStore:
    def __init__(self, path: Path | str, synchronous: str = "NORMAL", busy_timeout_s: float = 10.0,
                 max_pages: int = 0, write_timeout_s: float = 30.0):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._busy_timeout_ms = int(busy_timeout_s * 1000)
        self._max_pages = max_pages
        self._write_timeout = write_timeout_s
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._writer: _Writer | None = None
        conn = self._open()
        try:
            conn.execute("PRAGMA journal_mode=WAL")  # persistent: stored in the file
            conn.executescript(_SCHEMA)
            if conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        finally:
            conn.close()

    # -- connections -----------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves so batches are atomic.
        conn = sqlite3.connect(self.path, timeout=self._busy_timeout_ms / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={self._busy_timeout_ms}")
        return conn

    def _open_writer(self) -> sqlite3.Connection:
        conn = self._open()
        if self._max_pages:
            # A cap on the file (PARKCAST_SQLITE_MAX_PAGES): past it, writes fail as on a full disk.
            conn.execute(f"PRAGMA max_page_count={int(self._max_pages)}")
        return conn

    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open()
            conn.execute("PRAGMA query_only=1")  # every write goes through the writer thread
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _rows(self, sql: str, params: tuple = ()) -> list[tuple]:
        try:
            return self._reader().execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailable(f"the store cannot be read now: {exc}") from None

    def _writer_thread(self) -> _Writer:
        with self._lock:
            if self._writer is None:
                self._writer = _Writer(self._open_writer)
            return self._writer

    def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        return self._writer_thread().submit(fn, self._write_timeout)

    def close(self) -> None:
        with self._lock:
            writer, self._writer = self._writer, None
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        if writer is not None:
            writer.stop()
        self._local = threading.local()

    # -- lots ------------------------------------------------------------------------
    def put_lot(self, lot: Lot) -> None:
        self._write(lambda conn: conn.execute(
            "INSERT INTO lots (lot_id, body) VALUES (?, ?) ON CONFLICT(lot_id) DO UPDATE SET body=excluded.body",
            (lot.lot_id, lot.model_dump_json()),
        ))

    def get_lot(self, lot_id: str) -> Lot | None:
        rows = self._rows("SELECT body FROM lots WHERE lot_id=?", (lot_id,))
        return Lot.model_validate_json(rows[0][0]) if rows else None

    def list_lots(self) -> list[Lot]:
        return [Lot.model_validate_json(r[0]) for r in self._rows("SELECT body FROM lots ORDER BY lot_id")]

    # -- readings --------------------------------------------------------------------
    def put_readings(self, readings: Sequence[Reading]) -> list[PutOutcome]:
        if not readings:
            return []
        received = utc_iso(datetime.now(UTC))
        return self._write(lambda conn: _insert_readings(conn, readings, received))

    async def put_readings_async(self, readings: Sequence[Reading], device_id: str | None = None
                                 ) -> list[PutOutcome]:
        """put_readings for an asyncio caller: the event loop hands the write straight to the writer
        thread and is woken by its commit. One thread hop per request instead of two (loop -> worker
        pool -> writer), which is what bounded single-reading throughput and its p99. With
        `device_id`, the write happens only if that device is active in the same transaction
        (DeviceInactive otherwise): a caller may then authenticate from a cache, and a key revoked
        a moment ago still writes nothing."""
        if not readings:
            return []
        received = utc_iso(datetime.now(UTC))

        def write(conn: sqlite3.Connection) -> list[PutOutcome]:
            if device_id is not None:
                row = conn.execute("SELECT revoked_at FROM devices WHERE device_id=?", (device_id,)).fetchone()
                if row is None or row[0] is not None:
                    raise DeviceInactive(f"device {device_id!r} is revoked or unknown")
            return _insert_readings(conn, readings, received)

        future = self._writer_thread().enqueue(write)
        try:
            # shield: a timed-out or disconnected request must not cancel the writer's future.
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), self._write_timeout)
        except TimeoutError:
            raise _not_committed(self._write_timeout) from None

    def query_readings(
        self, lot_id: str, start: datetime, end: datetime, limit: int | None = None
    ) -> list[Reading]:
        sql = _SELECT_RANGE
        params: tuple = (lot_id, utc_iso(start), utc_iso(end))
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        return [reading_from_row(*row) for row in self._rows(sql, params)]

    def latest_reading(self, lot_id: str) -> Reading | None:
        rows = self._rows(_SELECT_LATEST, (lot_id,))
        return reading_from_row(*rows[0]) if rows else None

    def count_readings(self, lot_id: str | None = None) -> int:
        if lot_id is None:
            return self._rows("SELECT COUNT(*) FROM readings")[0][0]
        return self._rows("SELECT COUNT(*) FROM readings WHERE lot_id=?", (lot_id,))[0][0]

    # -- forecasts -------------------------------------------------------------------
    def put_forecast(self, forecast: Forecast) -> None:
        self._write(lambda conn: conn.execute(
            "INSERT INTO forecasts (lot_id, issued_at, model_version, body) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(lot_id, issued_at) DO UPDATE SET model_version=excluded.model_version, body=excluded.body",
            (forecast.lot_id, utc_iso(forecast.issued_at), forecast.model_version, forecast.model_dump_json()),
        ))

    def latest_forecast(self, lot_id: str) -> Forecast | None:
        rows = self._rows("SELECT body FROM forecasts WHERE lot_id=? ORDER BY issued_at DESC LIMIT 1", (lot_id,))
        return Forecast.model_validate_json(rows[0][0]) if rows else None

    def query_forecasts(self, lot_id: str, start: datetime, end: datetime) -> list[Forecast]:
        rows = self._rows(
            "SELECT body FROM forecasts WHERE lot_id=? AND issued_at>=? AND issued_at<? ORDER BY issued_at",
            (lot_id, utc_iso(start), utc_iso(end)),
        )
        return [Forecast.model_validate_json(r[0]) for r in rows]

    # -- devices ---------------------------------------------------------------------
    def add_device(self, device: Device, key_hash: str) -> None:
        try:
            self._write(lambda conn: conn.execute(
                "INSERT INTO devices (device_id, lot_id, key_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, NULL)",
                (device.device_id, device.lot_id, key_hash, utc_iso(device.created_at)),
            ))
        except sqlite3.IntegrityError as exc:
            raise DeviceExistsError(f"device {device.device_id!r} already exists") from exc

    def _device(self, where: str, value: str) -> Device | None:
        # bandit B608: `where` is one of two column names fixed in this class, never input.
        sql = f"SELECT device_id, lot_id, created_at, revoked_at FROM devices WHERE {where}=?"  # nosec B608
        rows = self._rows(sql, (value,))
        return _device_from_row(rows[0]) if rows else None

    def get_device(self, device_id: str) -> Device | None:
        return self._device("device_id", device_id)

    def device_for_key_hash(self, key_hash: str) -> Device | None:
        return self._device("key_hash", key_hash)

    def list_devices(self) -> list[Device]:
        rows = self._rows("SELECT device_id, lot_id, created_at, revoked_at FROM devices ORDER BY device_id")
        return [_device_from_row(r) for r in rows]

    def revoke_device(self, device_id: str, at: datetime) -> Device:
        self._write(lambda conn: conn.execute(
            "UPDATE devices SET revoked_at=? WHERE device_id=? AND revoked_at IS NULL", (utc_iso(at), device_id)
        ))
        device = self.get_device(device_id)
        if device is None:
            raise NotFoundError(f"no device {device_id!r}")
        return device


def _insert_readings(conn: sqlite3.Connection, readings: Sequence[Reading], received: str) -> list[PutOutcome]:
    """Runs on the writer inside the request's savepoint; ConflictError undoes the whole request."""
    # Fast path: plain inserts; only keys that already existed need a comparison.
    clashes: list[int] = []
    for i, r in enumerate(readings):
        cur = conn.execute(
            "INSERT INTO readings (lot_id, observed_at, device_id, capacity, occupied, slots, received_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (r.lot_id, utc_iso(r.observed_at), r.device_id, r.capacity, r.occupied, slots_to_json(r), received),
        )
        if cur.rowcount == 0:
            clashes.append(i)
    outcomes: list[PutOutcome] = ["created"] * len(readings)
    conflicts: list[int] = []
    for i in clashes:
        r = readings[i]
        row = conn.execute(
            _SELECT_ONE,
            (r.lot_id, utc_iso(r.observed_at), r.device_id),
        ).fetchone()
        outcome, conflict = classify_batch([r], {r.key: reading_from_row(*row)})
        outcomes[i] = outcome[0]
        if conflict:
            conflicts.append(i)
    if conflicts:
        raise ConflictError(conflicts)
    return outcomes


def _device_from_row(row: tuple) -> Device:
    device_id, lot_id, created_at, revoked_at = row
    return Device(
        device_id=device_id,
        lot_id=lot_id,
        created_at=datetime.fromisoformat(created_at),
        revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
    )
