"""A full ingestion flow with logging turned up (API at DEBUG, the Lambda handlers, the edge
uploader) never writes a device key or its hash, whatever the request: accepted, duplicate,
conflicting, refused, wrong key, rate limited, broken JSON, a store that cannot write."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta

import httpx
from conftest import make_lot, start_server
from test_lambdas import Context, http_event, load_handler

from parking_core.devices import register_device
from parking_core.store import hash_api_key
from parking_core.store.sqlite import SQLiteStore

T = datetime(2016, 11, 1, 8, 0, tzinfo=UTC)


def reading(i: int, **kw) -> dict:
    return {"lot_id": "LOT-A", "device_id": "cam-a", "observed_at": (T + timedelta(minutes=i)).isoformat(),
            "capacity": 100, "occupied": 10, **kw}


def exercise(post) -> set[int]:
    """Every kind of answer the ingestion path gives, through `post(body, key)` -> status; the
    statuses seen. The batch of 100 comes last: a store at its page cap cannot write it."""
    return {
        post(reading(0), "KEY"),
        post(reading(0), "KEY"),  # duplicate
        post(reading(0, occupied=11), "KEY"),  # conflict
        post(reading(1, occupied=-1), "KEY"),  # invalid
        post(reading(2, lot_id="LOT-B"), "KEY"),  # forbidden
        post("{not json", "KEY"),
        post(reading(3), "KEY" + "x"),  # a key one character off
        post(reading(4), None),
        post({"readings": [reading(100 + i) for i in range(100)]}, "KEY"),
    }


ANSWERED = {201, 200, 409, 422, 403, 401}  # stored, duplicate, conflict, invalid/not JSON, forbidden, bad key


def test_no_key_or_hash_in_any_log(data_dir, tmp_path, capfd, caplog, monkeypatch):
    caplog.set_level(logging.DEBUG)
    store = SQLiteStore(data_dir / "parkcast.sqlite3")
    store.put_lot(make_lot("LOT-A"))
    store.put_lot(make_lot("LOT-B"))
    _, key = register_device(store, "LOT-A", "cam-a")
    store.close()
    secrets = [key, key.removeprefix("pk_"), hash_api_key(key)]
    capfd.readouterr()  # from here on, everything written counts

    # The local API at DEBUG, with a rate limit that trips and a store that cannot write.
    server = start_server(data_dir, PARKCAST_LOG_LEVEL="DEBUG", PARKCAST_RATE_LIMIT_PER_DEVICE="0.2",
                          PARKCAST_RATE_LIMIT_BURST="8", PARKCAST_SQLITE_MAX_PAGES="1")
    try:
        with httpx.Client(base_url=server.url, timeout=10) as client:
            def post(body, k):
                content = body if isinstance(body, str) else httpx.Request("POST", "/", json=body).content
                headers = {"Content-Type": "application/json"}
                if k is not None:
                    headers["X-API-Key"] = k.replace("KEY", key)
                return client.post("/v1/readings", content=content, headers=headers).status_code

            statuses = exercise(post) | {post(reading(10 + i), "KEY") for i in range(5)}
            assert statuses >= ANSWERED | {503, 429}  # every case, the store that cannot write included
    finally:
        server.kill()

    # The Lambda handlers over the same file (their logger writes JSON lines to stdout).
    monkeypatch.setenv("PARKCAST_STORE", "sqlite")
    monkeypatch.setenv("PARKCAST_DATA_DIR", str(data_dir))
    monkeypatch.setenv("POWERTOOLS_LOG_LEVEL", "DEBUG")
    from parking_core.aws.runtime import runtime

    runtime.cache_clear()
    ingest = load_handler("run_prediction_trigger")

    def lambda_post(body, k):
        headers = {} if k is None else {"x-api-key": k.replace("KEY", key)}
        return ingest.handler(http_event("POST", "/v1/readings", body=body, headers=headers), Context())["statusCode"]

    assert exercise(lambda_post) >= ANSWERED
    runtime.cache_clear()

    # The edge uploader, with its key, against an API that is not there.
    from edge_runtime.outbox import Outbox
    from edge_runtime.uploader import Uploader

    outbox = Outbox(tmp_path / "outbox.sqlite3")
    outbox.put(reading(20))
    uploader = Uploader(outbox, "http://127.0.0.1:9", key, timeout_s=1)
    uploader.upload_once()
    outbox.close()

    captured = capfd.readouterr()
    logs = captured.out + captured.err + "\n".join(
        f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "request refused" in logs or "unauthenticated" in logs  # the flow did log
    assert "store unavailable" in logs  # ...the 503 path too
    for secret in secrets:
        assert secret not in logs
    assert os.environ.get("POWERTOOLS_LOGGER_LOG_EVENT", "false").lower() != "true"
