"""Issue 18's findings about the in-process vLLM engine, replayed on loopback with real kills.

2: a dead engine is visible (``/health`` 503) and ends the server with exit code 3, or is
   restarted with ``--on-engine-death restart``.
3: kill -9 of `cerm serve` or `cerm score` leaves no vLLM EngineCore or worker behind.
4: tokenizing a large request does not hold the event loop (``/health`` under 1 s).
Each process here loads the embedded judge in-process (25 to 60 s on two cores); the three
start together (the `engines` fixture).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psutil
import pytest

from tests.abuse.watch import HealthWatch, descendants, wait_for, wait_until_gone
from tests.conftest import VLLM_CPU_DEFAULT_EXECUTOR
from tests.serving.launcher import REPO, CermServer, start_cerm_serve

pytestmark = [pytest.mark.abuse, pytest.mark.engine]


def embedded_config(folder) -> str:
    path = folder / "embedded.yaml"
    path.write_text(json.dumps({
        "engine": {"enforce_eager": True, "kv_cache_gib": 0.5, "max_model_len": 2048},
        "judge": {"criteria": {"max_tokens": 16}, "evaluation": {"max_tokens": 8},
                  "failure": {"max_resamples": 0, "on_failure": "neutral"}},
    }))  # fmt: skip
    return path


def health_status(url: str) -> int | None:
    """``/health``'s status, or None while the server does not answer (it is opening a new engine)."""
    try:
        return httpx.get(f"{url}/health", timeout=2).status_code
    except httpx.HTTPError:
        return None


def engine_core(pid: int) -> psutil.Process:
    """The vLLM engine-core child of ``pid`` (the process that holds the model)."""

    def find():
        for child in descendants(pid):
            try:
                if "EngineCore" in child.name() or "EngineCore" in " ".join(child.cmdline()):
                    return child
            except psutil.NoSuchProcess:
                continue
        return None

    return wait_for(find, 120, "vLLM's engine core")


@dataclass(frozen=True)
class Engines:
    """The module's three processes that load the judge in-process."""

    default: CermServer  # --on-engine-death exit (the default)
    restart: CermServer  # --on-engine-death restart
    score: subprocess.Popen  # a `cerm score` run, killed as soon as its engine core exists


@pytest.fixture(scope="module")
def engines(tmp_path_factory) -> Iterator[Engines]:
    """All three start together: most of an engine load is one core's work (imports, process
    spawns, the weights read), so loads side by side on two cores cost little more wall time than
    one; started one test after the other they cost this module about two minutes more."""
    folder = tmp_path_factory.mktemp("engine-abuse")
    config = embedded_config(folder)
    rollouts = folder / "in.jsonl"
    rollouts.write_text("".join(json.dumps({"query": f"What is {i} + {i}?", "responses": ["x"] * 4}) + "\n" for i in range(50)))
    command = [sys.executable, "-m", "cerm_reward.cli", "score", str(rollouts), "-o", str(folder / "out.jsonl")]
    # The two that a kill -9 must not orphan run vLLM's CPU default process tree (engine core, and the
    # worker as its child); the default server, whose engine core is killed, runs the suite's one process.
    env = {**os.environ, **VLLM_CPU_DEFAULT_EXECUTOR}
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    score = subprocess.Popen([*command, "-c", str(config)], cwd=REPO, env=env, **quiet)
    restart = start_cerm_serve(config, "--on-engine-death", "restart", env=VLLM_CPU_DEFAULT_EXECUTOR)
    started = Engines(start_cerm_serve(config), restart, score)
    try:
        yield started
    finally:
        started.default.stop()
        started.restart.stop()
        if score.poll() is None:
            score.kill()


def test_finding_3_kill_9_of_cerm_score_leaves_no_engine(engines):
    """First in the module: the score run is killed as soon as its engine core exists, while the
    two servers are still loading their judges."""
    process = engines.score
    try:
        engine_core(process.pid)
        time.sleep(1)
        owned = descendants(process.pid)
        process.kill()
        process.wait(10)
        assert wait_until_gone(owned, 60) == []
    finally:
        if process.poll() is None:
            process.kill()


def test_findings_2_and_4_a_large_request_keeps_health_fast_and_a_dead_engine_ends_the_server(engines):
    server = engines.default.wait_healthy(240)
    try:
        owned = [psutil.Process(server.process.pid), *descendants(server.process.pid)]
        with HealthWatch(server.url) as watch:  # ~1 MB to tokenize in-process: seconds of tokenizer work
            body = {"query": "Summarise this text.", "responses": ["The river flows to the sea. " * 36000]}
            reply = httpx.post(f"{server.url}/v1/score_group", json=body, timeout=170)
        assert reply.status_code == 200
        watch.assert_responsive()

        engine_core(server.process.pid).kill()
        wait_for(lambda: health_status(server.url) == 503, 10, "/health to say 503")
        assert server.process.wait(60) == 3
        assert "the judge engine died" in server.log()
        assert wait_until_gone(owned, 60) == []
    finally:
        server.stop()


def test_finding_2_restart_brings_the_engine_back_and_finding_3_kill_9_of_serve_leaves_no_engine(engines):
    server = engines.restart.wait_healthy(240)
    try:
        engine_core(server.process.pid).kill()
        # the new engine loads on the server's loop: /health is 503 or silent meanwhile, never "ok"
        wait_for(lambda: health_status(server.url) != 200, 10, "/health to stop saying ok")
        wait_for(lambda: health_status(server.url) == 200, 240, "the restarted engine")
        reply = httpx.post(f"{server.url}/v1/score_group", json={"query": "Is 7 prime?", "responses": ["Yes."]}, timeout=170)
        assert reply.status_code == 200 and reply.json()["judgements"][0]["failure"] != "engine_error"

        engine_core(server.process.pid)
        owned = descendants(server.process.pid)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(10)
        assert wait_until_gone(owned, 60) == []
    finally:
        server.stop()
