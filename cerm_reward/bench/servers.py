"""Several ``vllm serve`` processes of one judge model on loopback, for the sections that need real servers.

verl's default mode hosts the judge on its own vLLM servers, one per reward replica; the
routing section stands in for them with these. They boot in parallel (each costs a minute of
CPU) and are always stopped, whatever the section does: a server left behind would hold
gigabytes and its port.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from cerm_reward.errors import CermError

STOP_WAIT_S = 30.0


class ServerStartError(CermError):
    """A ``vllm serve`` exited or did not answer ``/health`` in time (its log is named)."""


@dataclass(frozen=True)
class ServerSettings:
    """How each server runs: float32 and eager mode (what the CPU build runs fastest), a fixed KV cache."""

    model: str
    max_model_len: int = 4096
    kv_cache_bytes: int = 512 * 2**20
    """A fixed KV cache: vLLM's default share of memory is a share of *host* memory on a CPU build."""
    startup_timeout_s: float = 600.0


@dataclass(frozen=True)
class RunningServer:
    url: str
    process: subprocess.Popen
    log: Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(settings: ServerSettings, port: int) -> list[str]:
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", settings.model, "--host", "127.0.0.1", "--port", str(port),
        "--dtype", "float32", "--enforce-eager", "--max-model-len", str(settings.max_model_len),
        "--kv-cache-memory-bytes", str(settings.kv_cache_bytes),
    ]  # fmt: skip


@contextlib.contextmanager
def vllm_servers(count: int, settings: ServerSettings) -> Iterator[list[str]]:
    """``count`` healthy servers' base URLs for the block; every server is stopped when it ends.

    ``VLLM_SERVER_DEV_MODE=1`` makes vLLM serve ``POST /reset_prefix_cache``, so a bench run can
    start from cold caches. Each server runs in its own process group: stopping the group also
    stops the engine-core process the API server started.
    """
    logs = Path(tempfile.mkdtemp(prefix="cerm-bench-servers-"))
    environment = {**os.environ, "VLLM_SERVER_DEV_MODE": "1"}
    servers: list[RunningServer] = []
    try:
        for _ in range(count):
            port = free_port()
            log = logs / f"vllm-serve-{port}.log"
            with log.open("w") as sink:
                process = subprocess.Popen(
                    server_command(settings, port), stdout=sink, stderr=subprocess.STDOUT, env=environment, start_new_session=True
                )
            servers.append(RunningServer(f"http://127.0.0.1:{port}", process, log))
        wait_healthy(servers, settings.startup_timeout_s)
        yield [server.url for server in servers]
    finally:
        stop(servers)


def wait_healthy(servers: Sequence[RunningServer], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    waiting = list(servers)
    while waiting:
        for server in list(waiting):
            if server.process.poll() is not None:
                raise ServerStartError(f"vllm serve at {server.url} exited with {server.process.returncode}; see {server.log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                    waiting.remove(server)
        if waiting and time.monotonic() > deadline:
            raise ServerStartError(
                f"{len(waiting)} vllm serve process(es) not healthy within {timeout_s:g} s; see {waiting[0].log}"
            )
        if waiting:
            time.sleep(1)


def stop(servers: Sequence[RunningServer]) -> None:
    """SIGTERM to every server's process group (a clean vLLM shutdown), SIGKILL to those still alive after the wait."""
    for server in servers:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT_S
    for server in servers:
        try:
            server.process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)  # the group: its engine core too
            server.process.wait()
