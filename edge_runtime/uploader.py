"""Upload the outbox to the API: batches of up to 100, the device's X-API-Key, exponential
backoff with full jitter on network errors and 5xx, so a fleet recovering from an outage does
not stampede the API. A reading the API refuses for good (422, 409) is set aside, one by one,
so it cannot block the queue; 401/403 keep everything and wait (a key may be reissued).
429 (rate limited) and 503 (store unavailable) keep everything and wait at least what the
API's Retry-After asks (capped at backoff_max_s), never less than the jittered backoff."""

from __future__ import annotations

import logging
import random
import threading
import time

import httpx

from edge_runtime.outbox import Outbox

log = logging.getLogger("parkcast.edge.uploader")


class Uploader:
    def __init__(self, outbox: Outbox, api_url: str, api_key: str, batch: int = 100, timeout_s: float = 10.0,
                 backoff_base_s: float = 1.0, backoff_max_s: float = 60.0, seed: int | None = None):
        self.outbox, self.batch = outbox, batch
        self.url = api_url.rstrip("/") + "/v1/readings"
        self.client = httpx.Client(timeout=timeout_s, headers={"X-API-Key": api_key})
        self.base, self.cap = backoff_base_s, backoff_max_s
        self.failures = 0
        self.uploaded = 0  # readings this process saw acknowledged (the health file reports it)
        # bandit B311: backoff jitter, not a secret.
        self.random = random.Random(seed)  # nosec B311
        self.last_success: float | None = None
        self.last_error: str | None = None
        self.retry_after: float = 0.0  # the API's last Retry-After, seconds
        self.stopping = threading.Event()
        self.wake = threading.Event()

    def backoff(self) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2^failures)], but not before Retry-After."""
        jitter = self.random.uniform(0, min(self.cap, self.base * 2 ** min(self.failures, 30)))
        return max(jitter, min(self.cap, self.retry_after))

    def _post(self, readings: list[dict]) -> httpx.Response:
        return self.client.post(self.url, json={"readings": readings})

    def upload_once(self) -> int:
        """Send one batch; returns how many readings left the outbox (sent or set aside)."""
        items = self.outbox.pending(self.batch)
        if not items:
            return 0
        ids = [i for i, _ in items]
        self.outbox.mark_attempt(ids)
        try:
            response = self._post([body for _, body in items])
        except httpx.HTTPError as exc:
            return self._failed(f"network: {exc.__class__.__name__}: {exc}")
        if response.status_code in (200, 201):
            self.outbox.mark_sent(ids)
            self.uploaded += len(ids)
            self.failures, self.last_success, self.last_error = 0, time.time(), None
            log.info("uploaded", extra={"readings": len(ids), "status": response.status_code})
            return len(ids)
        if response.status_code in (409, 422):
            return self._isolate(items, response)
        return self._failed(f"HTTP {response.status_code}: {response.text[:200]}", response)

    def _isolate(self, items: list[tuple[int, dict]], response: httpx.Response) -> int:
        if len(items) == 1:
            (reading_id, body), reason = items[0], f"HTTP {response.status_code}: {response.text[:300]}"
            self.outbox.mark_dead([reading_id], reason)
            log.error("reading refused by the API, set aside", extra={"reading": body, "reason": reason})
            return 1
        done = 0
        for item in items:  # one by one: only the bad ones are set aside
            try:
                single = self._post([item[1]])
            except httpx.HTTPError as exc:
                return done + self._failed(f"network: {exc}")
            if single.status_code in (200, 201):
                self.outbox.mark_sent([item[0]])
                self.uploaded += 1
                done += 1
            elif single.status_code in (409, 422):
                done += self._isolate([item], single)
            else:
                return done + self._failed(f"HTTP {single.status_code}", single)
        return done

    def _failed(self, error: str, response: httpx.Response | None = None) -> int:
        self.failures += 1
        self.last_error = error
        self.retry_after = _retry_after(response)
        log.warning("upload failed, will retry", extra={"error": error, "failures": self.failures})
        return 0

    def run(self) -> None:
        """Until stop(): send while there is work, back off after failures, sleep when idle."""
        while not self.stopping.is_set():
            try:
                sent = self.upload_once()
            except Exception:  # noqa: BLE001 - the uploader thread must never die
                log.exception("uploader error")
                sent, self.failures = 0, self.failures + 1
            if sent:
                continue
            delay = self.backoff() if self.failures else 1.0
            self.wake.wait(delay)
            self.wake.clear()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()


def _retry_after(response: httpx.Response | None) -> float:
    """Seconds from a 429/503 answer's Retry-After (delta-seconds form); 0 when absent or odd."""
    if response is None or response.status_code not in (429, 503):
        return 0.0
    value = response.headers.get("Retry-After", "")
    return float(value) if value.isascii() and value.isdigit() else 0.0
