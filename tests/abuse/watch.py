"""What every abuse test checks around its attack: `/health` answers in under a second throughout,
and no process is left behind."""

from __future__ import annotations

import threading
import time

import httpx
import psutil

HEALTH_LIMIT_S = 1.0


class HealthWatch:
    """Polls ``/health`` from a thread while the block runs; ``worst`` is the slowest answer (a failed
    poll counts as the full timeout)."""

    def __init__(self, url: str, *, period_s: float = 0.1) -> None:
        self.url, self.period_s = url, period_s
        self.worst = 0.0
        self.polls = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=5) as client:
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    client.get(f"{self.url}/health")
                    took = time.perf_counter() - started
                except httpx.HTTPError:
                    took = 5.0
                self.worst, self.polls = max(self.worst, took), self.polls + 1
                self._stop.wait(self.period_s)

    def __enter__(self) -> HealthWatch:
        self._thread.start()
        while not self.polls and self._thread.is_alive():  # a baseline answer before the attack starts
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        time.sleep(self.period_s * 2)  # and answers after it
        self._stop.set()
        self._thread.join(10)

    def assert_responsive(self) -> None:
        assert self.polls >= 2, "the watch did not run"
        assert self.worst < HEALTH_LIMIT_S, f"/health took {self.worst:.2f}s"


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def wait_until_gone(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """The processes still alive (zombies count as gone) after up to ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while True:
        alive = [p for p in processes if _alive(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.2)


def wait_for(condition, timeout_s: float, what: str, period_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(period_s)
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}")


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
