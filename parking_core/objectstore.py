"""Object store over fsspec: a local folder (file://) by default, S3 (s3://) in AWS.

Keys are '/'-separated paths relative to the root URL. Writes are atomic on both
backends: S3 PUTs are atomic by nature; locally we write a temporary file and rename it.
"""

from __future__ import annotations

import json
import posixpath
import uuid
from typing import Any

import fsspec


class ObjectStore:
    def __init__(self, root_url: str, **storage_options: Any):
        self.fs, root = fsspec.core.url_to_fs(root_url, **storage_options)
        self.root = root.rstrip("/")
        self.url = root_url.rstrip("/")
        self._local = self.fs.protocol in ("file", ("file", "local")) or "file" in self.fs.protocol
        if self._local:
            self.fs.makedirs(self.root, exist_ok=True)

    def _path(self, key: str) -> str:
        key = key.strip("/")
        if not key or ".." in key.split("/"):
            raise ValueError(f"invalid object key {key!r}")
        return f"{self.root}/{key}"

    def uri(self, key: str) -> str:
        return f"{self.url}/{key.strip('/')}"

    def key_of(self, uri_or_key: str) -> str:
        """The key of a URI under this store's root (a bare key passes through)."""
        return uri_or_key[len(self.url) + 1 :] if uri_or_key.startswith(self.url + "/") else uri_or_key

    def put_bytes(self, key: str, data: bytes) -> None:
        path = self._path(key)
        if self._local:
            self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
            tmp = f"{path}.tmp-{uuid.uuid4().hex}"
            with self.fs.open(tmp, "wb") as fh:
                fh.write(data)
            self.fs.mv(tmp, path)
        else:
            self.fs.pipe_file(path, data)

    def get_bytes(self, key: str) -> bytes:
        try:
            return self.fs.cat_file(self._path(key))
        except FileNotFoundError:
            raise KeyError(key) from None

    def put_json(self, key: str, value: Any) -> None:
        self.put_bytes(key, json.dumps(value, indent=2, sort_keys=True, default=str).encode())

    def get_json(self, key: str) -> Any:
        return json.loads(self.get_bytes(key))

    def exists(self, key: str) -> bool:
        return self.fs.exists(self._path(key))

    def delete(self, key: str) -> None:
        path = self._path(key)
        if self.fs.exists(path):
            self.fs.rm(path)

    def list(self, prefix: str = "") -> list[str]:
        """Keys under prefix (recursive), sorted, relative to the root."""
        base = f"{self.root}/{prefix.strip('/')}".rstrip("/")
        if not self.fs.exists(base):
            return []
        self.fs.invalidate_cache()
        found = self.fs.find(base)
        keys = [p[len(self.root) + 1 :] for p in found]
        return sorted(k for k in keys if ".tmp-" not in k)
