"""Start `cerm serve` as a real process on a free loopback port and wait until it is healthy.

Its output goes to a file (a pipe nobody reads would fill and block the server mid-test), read
back with :meth:`CermServer.log`.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from tests.conftest import free_port, wait_until_healthy

REPO = Path(__file__).resolve().parents[2]


class CermServer:
    def __init__(self, process: subprocess.Popen, url: str, log: Path) -> None:
        self.process, self.url, self.log_path = process, url, log

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_healthy(self, timeout_s: float) -> CermServer:
        """This server once ``/health`` says 200; the test fails with the log's tail if it exits or times out."""
        if wait_until_healthy(self.process, self.url, timeout_s=timeout_s, period_s=0.3):
            return self
        if self.process.poll() is not None:
            pytest.fail(f"cerm serve exited {self.process.returncode}: {self.log()[-3000:]}")
        self.stop()
        pytest.fail(f"cerm serve did not become healthy: {self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(30)


def start_cerm_serve(config: Path | None, *flags: str, env: dict[str, str] | None = None, token: str | None = None) -> CermServer:
    """``cerm serve -c config flags...`` started and not waited for (:meth:`CermServer.wait_healthy`),
    so that several can load their judges side by side; ``token`` goes through ``CERM_SERVE_TOKEN``."""
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
    return CermServer(process, f"http://127.0.0.1:{port}", log)


def launch_cerm_serve(
    config: Path | None, *flags: str, timeout_s: float = 120, env: dict[str, str] | None = None, token: str | None = None
) -> CermServer:
    """``cerm serve -c config flags...``, once healthy."""
    return start_cerm_serve(config, *flags, env=env, token=token).wait_healthy(timeout_s)
