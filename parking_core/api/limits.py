"""Abuse limits and security headers of the local API, all set by PARKCAST_* settings:
per-device rate limit (429 + Retry-After), request body size (413) and read timeout (408),
JSON depth and string length (422), CORS for the one dashboard origin, and the headers a
browser needs to keep the dashboard to its own files (CSP and friends)."""

from __future__ import annotations

import asyncio
import math
import threading
import time
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import JSONResponse

from parking_core import service


class DeviceRateLimiter:
    """Token bucket per device: `rate` requests per second on average, bursts up to `burst`.
    A Pi posts every few seconds; after an outage its outbox drains at `rate` batches of 100."""

    def __init__(self, rate: float, burst: int):
        self.rate, self.burst = rate, burst
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}

    def check(self, device_id: str) -> None:
        if self.rate <= 0:
            return
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.get(device_id, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[device_id] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise service.RateLimited(
                    f"more than {self.rate:g} requests/s from device {device_id!r}; retry in {wait} s",
                    retry_after_s=wait,
                )
            self._buckets[device_id] = (tokens - 1.0, now)


class JsonLimits:
    """Parse a body as JSON within depth and string-length limits (a deep or huge document costs
    memory and CPU long before validation would refuse it)."""

    def __init__(self, max_depth: int, max_string: int, max_bytes: int = service.MAX_BODY_BYTES):
        self.max_depth, self.max_string, self.max_bytes = max_depth, max_string, max_bytes

    def parse(self, body: bytes) -> Any:
        payload = service.parse_json_body(body, self.max_bytes)
        stack = [(payload, 1)]
        while stack:
            value, depth = stack.pop()
            if isinstance(value, str):
                if len(value) > self.max_string:
                    raise self._refuse(f"a JSON string is longer than {self.max_string} characters")
            elif isinstance(value, dict | list):
                if depth > self.max_depth:
                    raise self._refuse(f"JSON nested deeper than {self.max_depth}")
                items = value.items() if isinstance(value, dict) else enumerate(value)
                for key, item in items:
                    if isinstance(key, str) and len(key) > self.max_string:
                        raise self._refuse(f"a JSON key is longer than {self.max_string} characters")
                    stack.append((item, depth + 1))
        return payload

    @staticmethod
    def _refuse(message: str) -> service.InvalidInput:
        return service.InvalidInput(message, [service.FieldError("body", message)])


class BodyLimit:
    """ASGI middleware: refuse a body over `max_bytes` (413) before reading it all, and a body that
    trickles in slower than one chunk per `timeout_s` (408): a slow client cannot hold a worker."""

    def __init__(self, app, max_bytes: int, timeout_s: float):
        self.app, self.max_bytes, self.timeout_s = app, max_bytes, timeout_s

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._error(413, "payload_too_large", f"body larger than {self.max_bytes} bytes", scope, send)
            return
        received = 0
        started = False

        async def limited_receive():
            nonlocal received, started
            async with asyncio.timeout(self.timeout_s):  # no task per chunk, unlike wait_for
                message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _TooLarge
            return message

        async def tracking_send(message):
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _TooLarge:
            if not started:
                await self._error(413, "payload_too_large", f"body larger than {self.max_bytes} bytes", scope, send)
        except TimeoutError:
            if not started:
                await self._error(408, "request_timeout", f"body not received within {self.timeout_s:g}s",
                                  scope, send)

    @staticmethod
    async def _error(status: int, code: str, message: str, scope, send) -> None:
        body = {"error": {"code": code, "message": message, "fields": [{"field": "body", "message": message}]}}
        await JSONResponse(body, status, headers={"Connection": "close"})(scope, _no_body, send)


class _TooLarge(Exception):
    pass


async def _no_body():
    return {"type": "http.request", "body": b"", "more_body": False}


# The dashboard served here talks to this API only; it sets bar widths and legend colours in
# style attributes, nothing else inline.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; style-src-attr 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)


class SecurityHeaders:
    """Headers on every answer: the dashboard runs only its own files, is never framed, and
    nothing is sniffed or leaked through the Referer."""

    def __init__(self, app, csp: str):
        self.app = app
        self.headers = [
            (b"content-security-policy", csp.encode()),
            (b"x-content-type-options", b"nosniff"),
            (b"x-frame-options", b"DENY"),
            (b"referrer-policy", b"no-referrer"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
        ]

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message):
            if message["type"] == "http.response.start":
                message["headers"] = list(message.get("headers", [])) + self.headers
            await send(message)

        await self.app(scope, receive, with_headers)


def install(app, settings) -> None:
    """Outermost first: headers on every answer (413s included), then the body limit, then CORS."""
    if settings.cors_origin:
        app.add_middleware(CORSMiddleware, allow_origins=[settings.cors_origin], allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type", "X-API-Key"], max_age=600)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, timeout_s=settings.body_timeout_s)
    app.add_middleware(SecurityHeaders, csp=CONTENT_SECURITY_POLICY)
