"""Start `cerm serve` as a real process on a free loopback port and wait until it is healthy."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


class CermServer:
    def __init__(self, process: subprocess.Popen, url: str) -> None:
        self.process, self.url = process, url

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)


def launch_cerm_serve(config: Path, *flags: str, timeout_s: float = 120) -> CermServer:
    port = free_port()
    command = [sys.executable, "-m", "cerm_reward.cli", "serve", "-c", str(config), "--port", str(port), *flags]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    server = CermServer(process, f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"cerm serve exited {process.returncode}: {process.stdout.read()[-3000:]}")
        try:
            if httpx.get(f"{server.url}/health", timeout=1).status_code == 200:
                return server
        except httpx.HTTPError:
            time.sleep(0.3)
    server.stop()
    pytest.fail("cerm serve did not become healthy")
