"""SQLite adapter: one WAL-mode file in the data folder, the local default.

Each thread gets its own connection; writers serialise on SQLite's lock (busy_timeout),
so several processes (API, CLI import, pipeline) can share one file safely.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from parking_core.contracts import Device, Forecast, Lot, PutOutcome, Reading, utc_iso
from parking_core.store.codec import reading_from_row, slots_to_json
from parking_core.store.port import ConflictError, DeviceExistsError, NotFoundError, classify_batch

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


class SQLiteStore:
    def __init__(self, path: Path | str, synchronous: str = "NORMAL"):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._synchronous = synchronous
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with self._conn() as conn:
            conn.executescript(_SCHEMA)
            if conn.execute("SELECT COUNT(*) FROM schema_version").fetchone()[0] == 0:
                conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))

    # -- connections -----------------------------------------------------------------
    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN/COMMIT ourselves so batches are atomic.
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def close(self) -> None:
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
        self._local = threading.local()

    # -- lots ------------------------------------------------------------------------
    def put_lot(self, lot: Lot) -> None:
        self._conn().execute(
            "INSERT INTO lots (lot_id, body) VALUES (?, ?) ON CONFLICT(lot_id) DO UPDATE SET body=excluded.body",
            (lot.lot_id, lot.model_dump_json()),
        )

    def get_lot(self, lot_id: str) -> Lot | None:
        row = self._conn().execute("SELECT body FROM lots WHERE lot_id=?", (lot_id,)).fetchone()
        return Lot.model_validate_json(row[0]) if row else None

    def list_lots(self) -> list[Lot]:
        rows = self._conn().execute("SELECT body FROM lots ORDER BY lot_id").fetchall()
        return [Lot.model_validate_json(r[0]) for r in rows]

    # -- readings --------------------------------------------------------------------
    def put_readings(self, readings: Sequence[Reading]) -> list[PutOutcome]:
        if not readings:
            return []
        conn = self._conn()
        received = utc_iso(datetime.now(UTC))
        conn.execute("BEGIN IMMEDIATE")
        try:
            # Fast path: plain inserts; only keys that already existed need a comparison.
            clashes: list[int] = []
            for i, r in enumerate(readings):
                cur = conn.execute(
                    "INSERT INTO readings (lot_id, observed_at, device_id, capacity, occupied, slots, received_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
                    (r.lot_id, utc_iso(r.observed_at), r.device_id, r.capacity, r.occupied,
                     slots_to_json(r), received),
                )
                if cur.rowcount == 0:
                    clashes.append(i)
            outcomes: list[PutOutcome] = ["created"] * len(readings)
            conflicts: list[int] = []
            for i in clashes:
                r = readings[i]
                row = conn.execute(
                    f"SELECT {_READING_COLUMNS} FROM readings WHERE lot_id=? AND observed_at=? AND device_id=?",
                    (r.lot_id, utc_iso(r.observed_at), r.device_id),
                ).fetchone()
                outcome, conflict = classify_batch([r], {r.key: reading_from_row(*row)})
                outcomes[i] = outcome[0]
                if conflict:
                    conflicts.append(i)
            if conflicts:
                raise ConflictError(conflicts)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return outcomes

    def query_readings(
        self, lot_id: str, start: datetime, end: datetime, limit: int | None = None
    ) -> list[Reading]:
        sql = (
            f"SELECT {_READING_COLUMNS} FROM readings WHERE lot_id=? AND observed_at>=? AND observed_at<?"
            " ORDER BY observed_at, device_id"
        )
        params: tuple = (lot_id, utc_iso(start), utc_iso(end))
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        return [reading_from_row(*row) for row in self._conn().execute(sql, params)]

    def latest_reading(self, lot_id: str) -> Reading | None:
        row = self._conn().execute(
            f"SELECT {_READING_COLUMNS} FROM readings WHERE lot_id=? ORDER BY observed_at DESC LIMIT 1",
            (lot_id,),
        ).fetchone()
        return reading_from_row(*row) if row else None

    def count_readings(self, lot_id: str | None = None) -> int:
        if lot_id is None:
            return self._conn().execute("SELECT COUNT(*) FROM readings").fetchone()[0]
        return self._conn().execute("SELECT COUNT(*) FROM readings WHERE lot_id=?", (lot_id,)).fetchone()[0]

    # -- forecasts -------------------------------------------------------------------
    def put_forecast(self, forecast: Forecast) -> None:
        self._conn().execute(
            "INSERT INTO forecasts (lot_id, issued_at, model_version, body) VALUES (?, ?, ?, ?)"
            " ON CONFLICT(lot_id, issued_at) DO UPDATE SET model_version=excluded.model_version, body=excluded.body",
            (forecast.lot_id, utc_iso(forecast.issued_at), forecast.model_version, forecast.model_dump_json()),
        )

    def latest_forecast(self, lot_id: str) -> Forecast | None:
        row = self._conn().execute(
            "SELECT body FROM forecasts WHERE lot_id=? ORDER BY issued_at DESC LIMIT 1", (lot_id,)
        ).fetchone()
        return Forecast.model_validate_json(row[0]) if row else None

    def query_forecasts(self, lot_id: str, start: datetime, end: datetime) -> list[Forecast]:
        rows = self._conn().execute(
            "SELECT body FROM forecasts WHERE lot_id=? AND issued_at>=? AND issued_at<? ORDER BY issued_at",
            (lot_id, utc_iso(start), utc_iso(end)),
        )
        return [Forecast.model_validate_json(r[0]) for r in rows]

    # -- devices ---------------------------------------------------------------------
    def add_device(self, device: Device, key_hash: str) -> None:
        try:
            self._conn().execute(
                "INSERT INTO devices (device_id, lot_id, key_hash, created_at, revoked_at) VALUES (?, ?, ?, ?, NULL)",
                (device.device_id, device.lot_id, key_hash, utc_iso(device.created_at)),
            )
        except sqlite3.IntegrityError as exc:
            raise DeviceExistsError(f"device {device.device_id!r} already exists") from exc

    def _device(self, where: str, value: str) -> Device | None:
        row = self._conn().execute(
            f"SELECT device_id, lot_id, created_at, revoked_at FROM devices WHERE {where}=?", (value,)
        ).fetchone()
        return _device_from_row(row) if row else None

    def get_device(self, device_id: str) -> Device | None:
        return self._device("device_id", device_id)

    def device_for_key_hash(self, key_hash: str) -> Device | None:
        return self._device("key_hash", key_hash)

    def list_devices(self) -> list[Device]:
        rows = self._conn().execute(
            "SELECT device_id, lot_id, created_at, revoked_at FROM devices ORDER BY device_id"
        ).fetchall()
        return [_device_from_row(r) for r in rows]

    def revoke_device(self, device_id: str, at: datetime) -> Device:
        self._conn().execute(
            "UPDATE devices SET revoked_at=? WHERE device_id=? AND revoked_at IS NULL", (utc_iso(at), device_id)
        )
        device = self.get_device(device_id)
        if device is None:
            raise NotFoundError(f"no device {device_id!r}")
        return device


def _device_from_row(row: tuple) -> Device:
    device_id, lot_id, created_at, revoked_at = row
    return Device(
        device_id=device_id,
        lot_id=lot_id,
        created_at=datetime.fromisoformat(created_at),
        revoked_at=datetime.fromisoformat(revoked_at) if revoked_at else None,
    )
