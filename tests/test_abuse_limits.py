"""Abuse limits and security headers of the real API on loopback, all set by PARKCAST_*
settings: per-device rate limit (429 + Retry-After, honoured by the edge uploader), body size
(413), slow body (408), JSON depth and string length (422), CORS for one origin, CSP. Every
refusal has the one error shape and stores nothing."""

from __future__ import annotations

import socket
import sqlite3
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import make_lot, start_server

from parking_core.devices import register_device
from parking_core.store.sqlite import SQLiteStore

T = datetime(2016, 11, 1, 8, 0, tzinfo=UTC)
DASHBOARD = "https://dashboard.example.org"


def reading(i: int, device: str) -> dict:
    return {"lot_id": "LOT-A", "device_id": device, "observed_at": (T + timedelta(minutes=i)).isoformat(),
            "capacity": 100, "occupied": 10}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("limits")
    store = SQLiteStore(data_dir / "parkcast.sqlite3")
    store.put_lot(make_lot("LOT-A"))
    keys = {name: register_device(store, "LOT-A", name)[1] for name in ("rate", "other", "json", "edge")}
    store.close()
    server = start_server(data_dir, PARKCAST_RATE_LIMIT_PER_DEVICE="0.5", PARKCAST_RATE_LIMIT_BURST="3",
                          PARKCAST_MAX_BODY_BYTES="4096", PARKCAST_BODY_TIMEOUT_S="0.5",
                          PARKCAST_MAX_JSON_DEPTH="4", PARKCAST_MAX_JSON_STRING="100",
                          PARKCAST_CORS_ORIGIN=DASHBOARD)
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client, keys, data_dir, server
    server.kill()


def count(data_dir, device: str) -> int:
    with sqlite3.connect(data_dir / "parkcast.sqlite3") as conn:
        return conn.execute("SELECT COUNT(*) FROM readings WHERE device_id=?", (device,)).fetchone()[0]


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code and error["message"] and isinstance(error["fields"], list)


def test_rate_limit_per_device(site):
    client, keys, data_dir, _ = site
    for i in range(3):  # the burst
        assert client.post("/v1/readings", json=reading(i, "rate"), headers={"X-API-Key": keys["rate"]}).is_success
    r = client.post("/v1/readings", json=reading(3, "rate"), headers={"X-API-Key": keys["rate"]})
    assert_error(r, 429, "rate_limited")
    assert int(r.headers["Retry-After"]) >= 1
    assert count(data_dir, "rate") == 3
    # Another device of the same lot is not slowed by it.
    assert client.post("/v1/readings", json=reading(0, "other"), headers={"X-API-Key": keys["other"]}).is_success


def test_body_too_large_declared_or_streamed(site):
    client, keys, data_dir, _ = site
    stored_before = count(data_dir, "other")  # the module's other tests may have stored one
    big = {"readings": [reading(i, "other") for i in range(60)]}  # about 7 KB
    r = client.post("/v1/readings", json=big, headers={"X-API-Key": keys["other"]})
    assert_error(r, 413, "payload_too_large")

    def chunks():  # no Content-Length: the limit counts the bytes as they arrive
        yield b'{"readings": ['
        for i in range(60):
            yield (b"," if i else b"") + httpx.Request("POST", "/", json=reading(100 + i, "other")).content
        yield b"]}"

    r = client.post("/v1/readings", content=chunks(), headers={"X-API-Key": keys["other"],
                                                                "Content-Type": "application/json"})
    assert_error(r, 413, "payload_too_large")
    assert count(data_dir, "other") == stored_before  # neither body stored anything


def test_slow_body_times_out(site):
    _, keys, data_dir, server = site
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as conn:
        conn.sendall(b"POST /v1/readings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"X-API-Key: " + keys["other"].encode() + b"\r\nContent-Length: 200\r\n\r\n{\"lot")
        answer = b""
        while b"\r\n\r\n" not in answer:
            answer += conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408")


@pytest.mark.parametrize("body, message", [
    ({"readings": [{"a": [[[1]]]}]}, "nested deeper"),
    ({**reading(0, "json"), "lot_id": "L" * 101}, "longer than 100"),
])
def test_json_depth_and_string_length(site, body, message):
    client, keys, data_dir, _ = site
    r = client.post("/v1/readings", json=body, headers={"X-API-Key": keys["json"]})
    assert_error(r, 422, "validation_error")
    assert message in r.json()["error"]["message"]
    assert count(data_dir, "json") == 0


def test_cors_allows_only_the_dashboard_origin(site):
    client, *_ = site
    preflight = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-api-key"}
    ok = client.options("/v1/readings", headers={"Origin": DASHBOARD, **preflight})
    assert ok.status_code == 200 and ok.headers["access-control-allow-origin"] == DASHBOARD
    evil = client.options("/v1/readings", headers={"Origin": "https://evil.example", **preflight})
    assert evil.status_code >= 400 and "access-control-allow-origin" not in evil.headers
    simple = client.get("/v1/lots", headers={"Origin": "https://evil.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_dashboard_and_api_carry_security_headers(site):
    client, *_ = site
    for path in ("/", "/v1/lots"):
        r = client.get(path)
        assert r.status_code == 200
        csp = r.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert r.headers["referrer-policy"] == "no-referrer"


def test_edge_uploader_waits_for_retry_after(site, tmp_path):
    from edge_runtime.outbox import Outbox
    from edge_runtime.uploader import Uploader

    client, keys, data_dir, server = site
    for i in range(3):  # spend the device's burst
        client.post("/v1/readings", json=reading(i, "edge"), headers={"X-API-Key": keys["edge"]})
    outbox = Outbox(tmp_path / "outbox.sqlite3")
    for i in range(3, 6):
        outbox.put(reading(i, "edge"))
    uploader = Uploader(outbox, server.url, keys["edge"], backoff_base_s=0.01, seed=1)
    assert uploader.upload_once() == 0  # 429: everything kept
    assert outbox.counts()["pending"] == 3 and uploader.retry_after >= 1
    assert uploader.backoff() >= uploader.retry_after  # not the 10 ms the jitter alone would give
    time.sleep(uploader.retry_after)
    assert uploader.upload_once() == 3
    assert count(data_dir, "edge") == 6
