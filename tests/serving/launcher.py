"""Start `cerm serve` as a real process on a free loopback port and wait until it is healthy.

Its output goes to a file (a pipe nobody reads would fill and block the server mid-test), read
back with :meth:`CermServer.log`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


class CermServer:
    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process, self.url, self.log_path = process, url, log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def launch_cerm_serve(
    config: Path | None, *flags: str, timeout_s: float = 120, env: dict[str, str] | None = None, token: str | None = None
) -> CermServer:
    """``cerm serve -c config flags...``; ``token`` (sent on the health probe too) goes through ``CERM_SERVE_TOKEN``."""
    port = free_port()
    command = [sys.executable, "-m", "cerm_reward.cli", "serve", "--port", str(port), *flags]
    if config is not None:
        command += ["-c", str(config)]
    environment = {**os.environ, **(env or {})}
    if token is not None:
        environment["CERM_SERVE_TOKEN"] = token
    log = Path(tempfile.mkstemp(prefix="cerm-serve-", suffix=".log")[1])
    with log.open("w") as sink:
        process = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, env=environment)
    server = CermServer(process, f"http://127.0.0.1:{port}", log)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"cerm serve exited {process.returncode}: {server.log()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    pytest.fail(f"cerm serve did not become healthy: {server.log()[-3000:]}")
