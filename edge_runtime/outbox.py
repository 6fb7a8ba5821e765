"""The durable outbox: every reading is committed to SQLite (WAL, synchronous=FULL, so it
survives power loss) before any upload is tried, and leaves only when the API acknowledged it.
The reading's idempotency key is unique here and on the server, so a reading sent twice (the
daemon killed between the upload and the acknowledgement) is stored once."""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import UTC, datetime
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    body TEXT NOT NULL,
    created_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at TEXT,
    dead_reason TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE sent_at IS NULL AND dead_reason IS NULL;
"""


class OutboxError(ValueError):
    pass


class Outbox:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, timeout=30, isolation_level=None, check_same_thread=False)
        try:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(SCHEMA)
        except sqlite3.DatabaseError as exc:  # not a database, or damaged: never overwrite what may be readings
            self._conn.close()
            raise OutboxError(f"{self.path} is not a readable outbox ({exc}): move it aside and start again; "
                              "nothing was deleted") from None

    def put(self, reading: dict) -> bool:
        """False when a reading with the same key is already in (sent or not)."""
        key = f"{reading['lot_id']}|{reading['device_id']}|{reading['observed_at']}"
        with self._lock:
            cur = self._conn.execute("INSERT OR IGNORE INTO outbox (key, body, created_at) VALUES (?, ?, ?)",
                                     (key, json.dumps(reading), _now()))
            return cur.rowcount == 1

    def pending(self, limit: int = 100) -> list[tuple[int, dict]]:
        with self._lock:
            rows = self._conn.execute("SELECT id, body FROM outbox WHERE sent_at IS NULL AND dead_reason IS NULL "
                                      "ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [(i, json.loads(body)) for i, body in rows]

    def _update(self, sql: str, ids: list[int], *args) -> None:
        if not ids:
            return
        marks = ",".join("?" * len(ids))
        with self._lock:
            self._conn.execute(sql.format(marks=marks), (*args, *ids))

    def mark_sent(self, ids: list[int]) -> None:
        self._update("UPDATE outbox SET sent_at = ? WHERE id IN ({marks})", ids, _now())

    def mark_attempt(self, ids: list[int]) -> None:
        self._update("UPDATE outbox SET attempts = attempts + 1 WHERE id IN ({marks})", ids)

    def mark_dead(self, ids: list[int], reason: str) -> None:
        """The API refused it for good (422/409): kept for inspection, never retried."""
        self._update("UPDATE outbox SET dead_reason = ? WHERE id IN ({marks})", ids, reason[:500])

    def counts(self) -> dict[str, int]:
        with self._lock:
            pending, sent, dead = self._conn.execute(
                "SELECT SUM(sent_at IS NULL AND dead_reason IS NULL), SUM(sent_at IS NOT NULL), "
                "SUM(dead_reason IS NOT NULL) FROM outbox").fetchone()
        return {"pending": pending or 0, "sent": sent or 0, "dead": dead or 0}

    def prune(self, keep_sent: int = 10_000) -> None:
        """Sent readings are kept for a while (diagnosis), then dropped."""
        with self._lock:
            self._conn.execute("DELETE FROM outbox WHERE sent_at IS NOT NULL AND id < "
                               "(SELECT COALESCE(MAX(id), 0) - ? FROM outbox)", (keep_sent,))

    def close(self) -> None:
        with self._lock:
            self._conn.close()


def _now() -> str:
    return datetime.now(UTC).isoformat()
