"""The object store contract on a local folder and on S3 (moto's server on loopback)."""

from __future__ import annotations

import pytest

from parkcast.processes import free_port
from parking_core.objectstore import ObjectStore


@pytest.fixture(scope="module")
def moto_s3_endpoint():
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture(params=["file", "s3"])
def objects(request, tmp_path):
    if request.param == "file":
        return ObjectStore(tmp_path.as_uri() + "/objects")
    import boto3

    endpoint = request.getfixturevalue("moto_s3_endpoint")
    bucket = f"parkcast-test-{tmp_path.name.lower().replace('_', '-')}"[:63]
    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return ObjectStore(f"s3://{bucket}/root", client_kwargs={"endpoint_url": endpoint}, skip_instance_cache=True)


def test_bytes_and_json_roundtrip(objects):
    objects.put_bytes("a/b/c.bin", b"\x00\x01")
    objects.put_json("drift/2016-11-21/report.json", {"drift": False, "p": 0.3})
    assert objects.get_bytes("a/b/c.bin") == b"\x00\x01"
    assert objects.get_json("drift/2016-11-21/report.json") == {"drift": False, "p": 0.3}
    assert objects.exists("a/b/c.bin") and not objects.exists("a/b/missing")


def test_overwrite_replaces(objects):
    objects.put_bytes("k", b"one")
    objects.put_bytes("k", b"two")
    assert objects.get_bytes("k") == b"two"


def test_list_is_recursive_sorted_relative(objects):
    for key in ["readings/date=2016-11-02/part.parquet", "readings/date=2016-11-01/part.parquet", "other/x"]:
        objects.put_bytes(key, b"x")
    assert objects.list("readings") == [
        "readings/date=2016-11-01/part.parquet",
        "readings/date=2016-11-02/part.parquet",
    ]
    assert objects.list("nothing-here") == []


def test_missing_key_and_delete(objects):
    with pytest.raises(KeyError):
        objects.get_bytes("missing")
    objects.put_bytes("gone", b"x")
    objects.delete("gone")
    objects.delete("gone")  # idempotent
    assert not objects.exists("gone")


@pytest.mark.parametrize("bad", ["", "/", "../escape", "a/../../b"])
def test_keys_cannot_escape_the_root(objects, bad):
    with pytest.raises(ValueError):
        objects.put_bytes(bad, b"x")


def test_uri(objects):
    assert objects.uri("a/b") == objects.url + "/a/b"
