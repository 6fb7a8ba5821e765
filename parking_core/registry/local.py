"""Local model registry: a SQLite file in the data folder (same states as SageMaker's)."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

from parking_core.registry.port import (
    ApprovalStatus,
    ModelVersion,
    ProductionPointerMixin,
    VersionNotFound,
    check_transition,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    grp        TEXT NOT NULL,
    version    INTEGER NOT NULL,
    status     TEXT NOT NULL,
    model_uri  TEXT NOT NULL,
    created_at TEXT NOT NULL,
    metrics    TEXT NOT NULL,
    lineage    TEXT NOT NULL,
    evaluation TEXT,
    promotion  TEXT,
    note       TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (grp, version)
);
CREATE TABLE IF NOT EXISTS status_history (
    grp TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL, at TEXT NOT NULL, note TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS production (
    grp TEXT NOT NULL, version INTEGER NOT NULL, since TEXT NOT NULL
);
"""


class LocalModelRegistry(ProductionPointerMixin):
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._conn() as conn:
            conn.executescript(_SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        return conn

    def _row_to_version(self, row: tuple) -> ModelVersion:
        grp, version, status, uri, created, metrics, lineage, evaluation, promotion, note = row
        return ModelVersion(
            group=grp,
            version=version,
            status=ApprovalStatus(status),
            model_uri=uri,
            created_at=datetime.fromisoformat(created),
            metrics=json.loads(metrics),
            lineage=json.loads(lineage),
            evaluation=json.loads(evaluation) if evaluation else None,
            promotion=json.loads(promotion) if promotion else None,
            status_note=note,
        )

    def register(self, group: str, model_uri: str, metrics: dict, lineage: dict) -> ModelVersion:
        now = datetime.now(UTC).isoformat()
        with self._conn() as conn:
            conn.execute("BEGIN IMMEDIATE")
            (last,) = conn.execute("SELECT COALESCE(MAX(version), 0) FROM versions WHERE grp=?", (group,)).fetchone()
            version = last + 1
            conn.execute(
                "INSERT INTO versions (grp, version, status, model_uri, created_at, metrics, lineage)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (group, version, ApprovalStatus.PENDING, model_uri, now, json.dumps(metrics), json.dumps(lineage)),
            )
            conn.execute(
                "INSERT INTO status_history VALUES (?, ?, ?, ?, ?)",
                (group, version, ApprovalStatus.PENDING, now, "registered"),
            )
        return self.get(group, version)

    def get(self, group: str, version: int) -> ModelVersion:
        with self._conn() as conn:
            row = conn.execute("SELECT * FROM versions WHERE grp=? AND version=?", (group, version)).fetchone()
        if row is None:
            raise VersionNotFound(f"{group} has no version {version}")
        return self._row_to_version(row)

    def list(self, group: str) -> list[ModelVersion]:
        with self._conn() as conn:
            rows = conn.execute("SELECT * FROM versions WHERE grp=? ORDER BY version", (group,)).fetchall()
        return [self._row_to_version(r) for r in rows]

    def set_status(self, group: str, version: int, status: ApprovalStatus, note: str = "") -> ModelVersion:
        current = self.get(group, version)
        check_transition(current.status, ApprovalStatus(status))
        now = datetime.now(UTC).isoformat()
        with self._conn() as conn:
            conn.execute(
                "UPDATE versions SET status=?, note=? WHERE grp=? AND version=?", (status, note, group, version)
            )
            conn.execute("INSERT INTO status_history VALUES (?, ?, ?, ?, ?)", (group, version, status, now, note))
        return self.get(group, version)

    def _set_json(self, column: str, group: str, version: int, value: dict) -> None:
        self.get(group, version)
        with self._conn() as conn:
            # bandit B608: `column` is a name fixed by this class's own callers, never input.
            sql = f"UPDATE versions SET {column}=? WHERE grp=? AND version=?"  # nosec B608
            conn.execute(sql, (json.dumps(value), group, version))

    def attach_evaluation(self, group: str, version: int, report: dict) -> None:
        self._set_json("evaluation", group, version, report)

    def record_promotion(self, group: str, version: int, decision: dict) -> None:
        self._set_json("promotion", group, version, decision)

    def set_production(self, group: str, version: int) -> None:
        self._require_approved(group, version)
        with self._conn() as conn:
            conn.execute("INSERT INTO production VALUES (?, ?, ?)", (group, version, datetime.now(UTC).isoformat()))

    def production_history(self, group: str) -> list[int]:
        with self._conn() as conn:
            rows = conn.execute("SELECT version FROM production WHERE grp=? ORDER BY rowid", (group,)).fetchall()
        return [r[0] for r in rows]
