"""Child processes on loopback: free ports, waiting for a server, a supervisor that stops its
children by PID, and the headless Chromium settings the browser tests and benchmarks share."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


def _reset_signals() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def wait_http(url: str, timeout: float = 60.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{proc.args!r} exited with {proc.returncode} before {url} answered")
        try:
            with urllib.request.urlopen(url, timeout=2):  # nosec B310 - loopback URLs this module builds
                return
        except OSError:
            time.sleep(0.2)
    raise TimeoutError(f"{url} did not answer within {timeout:.0f}s")


# Headless Debian chromium for the browser tests and benchmarks/web.py; the flags keep it off a
# network it cannot reach (background services, component updates).
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Supervisor:
    procs: list[tuple[str, subprocess.Popen]] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str] | None = None,
              log: Path | None = None) -> subprocess.Popen:
        """log: the child's stdout and stderr go to this file (appended), not to the terminal."""
        out = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            out = open(log, "ab")  # noqa: SIM115 - the child holds it; closed below once handed over
        try:
            proc = subprocess.Popen(args, env=env, preexec_fn=_reset_signals, stdout=out,  # nosec B603 - our own commands
                                    stderr=subprocess.STDOUT if out else None)
        finally:
            if out is not None:
                out.close()
        self.procs.append((name, proc))
        return proc

    def stop(self) -> None:
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for _, proc in reversed(self.procs):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()

    def wait_any(self) -> tuple[str, int]:
        while True:
            for name, proc in self.procs:
                if proc.poll() is not None:
                    return name, proc.returncode
            time.sleep(0.5)
