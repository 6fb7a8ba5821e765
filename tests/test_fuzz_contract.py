"""Contract fuzzing: schemathesis, driven by the server's own /openapi.json, against the real
API on loopback with every check on. Then the store is held to the answers: the readings in it
are exactly those the 201 answers accepted, each stored once, all the seeded device's own."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime

import pytest
from conftest import REPO, make_lot, start_server

from parking_core.devices import register_device
from parking_core.store.sqlite import SQLiteStore

pytest.importorskip("schemathesis")


@pytest.mark.slow
def test_openapi_contract_holds_under_fuzzing(data_dir, tmp_path):
    store = SQLiteStore(data_dir / "parkcast.sqlite3")
    store.put_lot(make_lot("LOT-A"))
    _, key = register_device(store, "LOT-A", "cam-a")
    store.close()
    # The rate limit would answer most requests 429 (documented, but it starves the fuzzer).
    server = start_server(data_dir, PARKCAST_RATE_LIMIT_PER_DEVICE="0")
    har = tmp_path / "fuzz.har"
    try:
        run = subprocess.run(
            [sys.executable, "-m", "schemathesis.cli", "run", f"{server.url}/openapi.json", "--checks", "all",
             "--max-examples", "40", "--seed", "14", "--workers", "1", "--no-color", "--header", f"X-API-Key: {key}",
             "--report", "har", "--report-har-path", str(har), "--generation-database", "none"],
            env={**os.environ, "SCHEMATHESIS_HOOKS": "fuzz_hooks", "PYTHONPATH": str(REPO / "tests"),
                 "FUZZ_LOT": "LOT-A", "FUZZ_DEVICE": "cam-a"},
            capture_output=True, text=True, timeout=300, cwd=tmp_path,
        )
    finally:
        server.kill()
    assert run.returncode == 0, run.stdout[-6000:] + run.stderr[-2000:]
    assert "failure" not in run.stdout.splitlines()[-1], run.stdout[-3000:]

    accepted = 0
    statuses = set()
    for entry in json.loads(har.read_text())["log"]["entries"]:
        request, response = entry["request"], entry["response"]
        statuses.add(response["status"])
        if request["method"] == "POST" and request["url"].endswith("/v1/readings") and response["status"] == 201:
            accepted += json.loads(response["content"]["text"])["accepted"]
    assert 201 in statuses and 422 in statuses and 405 in statuses  # it did reach the store and the edges
    with sqlite3.connect(data_dir / "parkcast.sqlite3") as conn:
        rows = conn.execute("SELECT lot_id, device_id, observed_at, capacity, occupied FROM readings").fetchall()
        per_key = conn.execute(
            "SELECT MAX(n) FROM (SELECT COUNT(*) AS n FROM readings GROUP BY lot_id, device_id, observed_at)"
        ).fetchone()[0]
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert len(rows) == accepted > 0 and per_key == 1
    for lot_id, device_id, observed_at, capacity, occupied in rows:
        assert (lot_id, device_id) == ("LOT-A", "cam-a")
        assert capacity > 0 and 0 <= occupied <= int(capacity * 1.1)
        assert datetime.fromisoformat(observed_at) <= datetime.now(UTC)
