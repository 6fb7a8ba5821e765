"""The Lambda handlers under hypothesis-generated API Gateway HTTP API (v2) events: hostile
paths, methods, queries, headers and bodies (JSON or not, base64 or not). Every answer is a
documented status with the one error shape; nothing raises; nothing invalid is stored. The
handlers run over a real SQLite store (PARKCAST_STORE=sqlite) so each example costs little."""

from __future__ import annotations

import base64
import json
import sqlite3
from datetime import UTC, datetime

import pytest
from conftest import make_lot
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_lambdas import Context, http_event, load_handler

from parking_core.devices import register_device
from parking_core.store.sqlite import SQLiteStore

DOCUMENTED = {200, 201, 401, 403, 404, 405, 409, 413, 422, 429, 503}
ROUTES = ["/v1/readings", "/v1/lots", "/v1/status", "/v1/lots/{}", "/v1/lots/{}/forecast", "/v1/lots/{}/readings"]
text = st.text(max_size=40)
ids = st.one_of(st.just("LOT-A"), st.just("Broad%20Street"), text)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | text,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=20,
)


def reading_like(i: int):
    return st.fixed_dictionaries({
        "lot_id": st.sampled_from(["LOT-A", "LOT-B", "", "x" * 70]),
        "device_id": st.sampled_from(["cam-a", "cam-b"]),
        "observed_at": st.sampled_from(["2020-01-01T00:00:00Z", "2020-01-01", "2999-01-01T00:00:00Z", "soon"]),
        "capacity": st.sampled_from([100, 0, -1, "100", 100.0, True]),
        "occupied": st.integers(-5, 200),
    })


bodies = st.one_of(
    st.none(),
    text,
    json_values.map(json.dumps),
    reading_like(0).map(json.dumps),
    st.lists(reading_like(0), min_size=0, max_size=3).map(lambda r: json.dumps({"readings": r})),
    st.just("[" * 5000 + "]" * 5000),
)


@st.composite
def events(draw):
    route = draw(st.sampled_from(ROUTES)).format(draw(ids))
    # Mostly the route's own method, so most events get past routing into the core.
    own = "POST" if route == "/v1/readings" else "GET"
    method = draw(st.one_of(st.just(own), st.just(own), st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD"])))
    query = draw(st.one_of(st.none(), st.dictionaries(
        st.sampled_from(["trend_hours", "start", "end", "limit", "x"]),
        st.one_of(text, st.sampled_from(["²", "5", "-1", "99999999999999999999", "2020-01-01T00:00:00Z",
                                         "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59-23:59"])),
        max_size=3)))
    key = draw(st.sampled_from([None, "KEY", "pk_wrong", ""]))
    body = draw(bodies)
    as_base64 = draw(st.booleans()) and body is not None
    event = http_event(method, route, body=body, headers={} if key is None else {"x-api-key": key},
                       query=query, base64_body=False)
    if as_base64:
        event["body"], event["isBase64Encoded"] = base64.b64encode(body.encode()).decode(), True
    return ("ingest" if route == "/v1/readings" else "read"), event


@pytest.fixture(scope="module")
def handlers(tmp_path_factory):
    from parking_core.aws.runtime import runtime

    data = tmp_path_factory.mktemp("lambda-fuzz")
    store = SQLiteStore(data / "parkcast.sqlite3")
    store.put_lot(make_lot("LOT-A"))
    store.put_lot(make_lot("LOT-B"))
    _, key = register_device(store, "LOT-A", "cam-a")
    store.close()
    env = {"PARKCAST_STORE": "sqlite", "PARKCAST_DATA_DIR": str(data), "PARKCAST_PREDICTOR": "none",
           "PARKCAST_REGISTRY": "local", "PARKCAST_OBJECT_STORE_URL": (data / "objects").as_uri()}
    with pytest.MonkeyPatch.context() as patch:
        for name, value in env.items():
            patch.setenv(name, value)
        runtime.cache_clear()
        yield {"read": load_handler("read_api"), "ingest": load_handler("run_prediction_trigger")}, key, data
    runtime.cache_clear()


@settings(max_examples=400, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(which_event=events())
@example(("ingest", http_event("POST", "/v1/readings", headers={"x-api-key": "KEY"}, body={
    "lot_id": "LOT-A", "device_id": "cam-a", "observed_at": "2020-01-01T00:00:00Z", "capacity": 100, "occupied": 5})))
# Found by hand or by earlier runs; kept so every run tries them.
@example(("read", http_event("GET", "/v1/lots", query={"trend_hours": "²"})))
@example(("read", http_event("GET", "/v1/lots/LOT-A/readings", query={"end": "0001-01-01T00:00:00+00:00"})))
@example(("ingest", http_event("POST", "/v1/readings", body="[" * 5000 + "]" * 5000, headers={"x-api-key": "KEY"})))
def test_every_answer_is_documented(handlers, which_event):
    modules, key, data = handlers
    which, event = which_event
    if event["headers"].get("x-api-key") == "KEY":
        event["headers"]["x-api-key"] = key
    answer = modules[which].handler(event, Context())
    assert answer["statusCode"] in DOCUMENTED, answer
    body = json.loads(answer["body"])
    if answer["statusCode"] >= 400:
        error = body["error"]
        assert set(error) == {"code", "message", "fields"} and isinstance(error["fields"], list), body
        assert all(set(f) == {"field", "message"} for f in error["fields"]), body


def test_what_the_fuzzing_stored_is_valid(handlers):
    """Runs after the fuzzing above (file order): every stored reading is the seeded device's own."""
    _, _, data = handlers
    with sqlite3.connect(data / "parkcast.sqlite3") as conn:
        rows = conn.execute("SELECT lot_id, device_id, observed_at, capacity, occupied FROM readings").fetchall()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert rows
    for lot_id, device_id, observed_at, capacity, occupied in rows:
        assert (lot_id, device_id, capacity) == ("LOT-A", "cam-a", 100) and 0 <= occupied <= 110
        assert datetime.fromisoformat(observed_at) <= datetime.now(UTC)
