"""Issue 18's findings against `cerm serve` replayed on loopback (the engine: the session's `vllm serve`).

Each test names its finding. One token server is shared by the module; a second one, with a long
evaluation budget, serves the disconnect test. Every test watches `/health` (under 1 s
throughout) and the module checks that the servers leave no process behind.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from tests.abuse.watch import HealthWatch, descendants, wait_for, wait_until_gone
from tests.serving.launcher import REPO, CermServer, launch_cerm_serve

pytestmark = [pytest.mark.abuse, pytest.mark.server]
TOKEN = "abuse-suite-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHATML = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"


def judge_config(folder, vllm_server: str, evaluation_tokens: int = 8):
    path = folder / "judge.yaml"
    path.write_text(json.dumps({
        "engine": {"kind": "http", "base_url": vllm_server},
        "judge": {"criteria": {"max_tokens": 24}, "evaluation": {"max_tokens": evaluation_tokens},
                  "failure": {"max_resamples": 0, "on_failure": "neutral"}},
    }))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def servers(vllm_server, tmp_path_factory):
    started: list[CermServer] = []
    yield started
    processes = [p for server in started for p in [psutil.Process(server.process.pid), *descendants(server.process.pid)]]
    for server in started:
        server.stop()
    assert wait_until_gone(processes, 30) == []  # no process left behind


@pytest.fixture(scope="module")
def server(servers, vllm_server, tmp_path_factory) -> CermServer:
    config = judge_config(tmp_path_factory.mktemp("abuse"), vllm_server)
    flags = ["--max-responses", "64", "--max-inflight-samples", "8", "--max-pending-prefetches", "4", "-v"]
    servers.append(launch_cerm_serve(config, *flags, token=TOKEN))
    return servers[-1]


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics", headers=AUTH).text
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(wanted + " "))


def test_finding_1_an_8_mib_prompt_is_split_without_freezing_the_server(server):
    # unmatched start tags, quadratic for the old regex; twice in the body (query and prompt), 18 bytes each in JSON
    prompt = "<|im_start|>user\n" * ((8 * 2**20 - 4096) // 36)
    body = {"query": [prompt + "answer"], "prompts": [prompt]}
    with HealthWatch(server.url) as watch:
        started = time.monotonic()
        reply = httpx.post(f"{server.url}/get_reward", json=body, headers=AUTH, timeout=60)
        took = time.monotonic() - started
    watch.assert_responsive()
    assert reply.status_code == 200 and took < 5
    assert reply.json()["extra_logs"]["judge_failure_invalid_input"] == [1.0]  # counted, never judged whole
    assert metric(server.url, "cerm_judge_failures_total", kind="invalid_input") >= 1


def test_finding_4_prefetches_and_in_flight_samples_are_bounded_with_429(server):
    with HealthWatch(server.url) as watch:
        queries = [f"Prefetch flood {i}: what is {i} squared?" for i in range(64)]
        first = httpx.post(f"{server.url}/v1/prefetch", json={"queries": queries}, headers=AUTH)
        assert first.status_code == 202 and first.json()["accepted"] <= 4
        second = httpx.post(f"{server.url}/v1/prefetch", json={"queries": ["one more?"]}, headers=AUTH)
        assert second.status_code == 429 and second.headers["retry-after"] and "prefetches pending" in second.json()["error"]

        async def burst():
            async with httpx.AsyncClient(timeout=170, headers=AUTH) as client:
                body = {"query": "Name a colour.", "responses": ["Red.", "Blue.", "Green.", "Teal."]}
                return await asyncio.gather(*(client.post(f"{server.url}/v1/score_group", json=body) for _ in range(4)))

        replies = asyncio.run(burst())
    watch.assert_responsive()
    codes = sorted(r.status_code for r in replies)
    assert codes.count(200) >= 1 and codes.count(429) >= 1, codes  # 8 samples fit, 16 do not
    assert all(r.headers["retry-after"] for r in replies if r.status_code == 429)
    wait_for(lambda: metric(server.url, "cerm_admitted", kind="prefetches") == 0, 60, "the prefetches to finish")
    assert metric(server.url, "cerm_admitted", kind="samples") == 0


def _raw_request(url: str, head: str, chunks, *, read_timeout_s: float = 30) -> tuple[int, float]:
    """Send ``head`` then the chunks on a raw socket until the server answers; (status, seconds)."""
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=read_timeout_s) as sock:
        sock.sendall(head.encode())
        try:
            for chunk in chunks:
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed: read what it said
        answer = sock.recv(65536).decode(errors="replace")
    return int(answer.split(" ", 2)[1]), time.monotonic() - started


def test_finding_5_a_chunked_body_is_cut_at_the_limit_and_the_token_comes_first(server):
    process = psutil.Process(server.process.pid)
    rss_before = process.memory_info().rss
    chunk = b"x" * 2**20
    framed = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
    head = "POST /get_reward HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
    with HealthWatch(server.url) as watch:
        status, took = _raw_request(server.url, head + f"Authorization: Bearer {TOKEN}\r\n\r\n", (framed for _ in range(256)))
        assert status == 413 and took < 10
        stranger, _ = _raw_request(server.url, head + "\r\n", (framed for _ in range(256)))
        assert stranger == 401  # refused before its body is read
    watch.assert_responsive()
    assert process.memory_info().rss - rss_before < 100 * 2**20  # 256 MB sent, at most the 8 MiB limit held
    not_json = httpx.post(f"{server.url}/get_reward", content=b"{not json", headers={"content-type": "application/json"})
    assert not_json.status_code == 401  # the token before the body


def test_finding_6_unknown_paths_do_not_grow_the_metrics(server):
    with HealthWatch(server.url) as watch, httpx.Client(headers=AUTH) as client:
        for i in range(1000):
            assert client.get(f"{server.url}/made-up/{i}").status_code == 404
    watch.assert_responsive()
    text = httpx.get(f"{server.url}/metrics", headers=AUTH).text
    assert len(text) < 64 * 1024 and "/made-up/" not in text
    assert metric(server.url, "cerm_requests_total", endpoint="unmatched", status="404") >= 1000


def test_finding_7_the_token_is_never_logged_and_the_docs_are_closed(server):
    assert httpx.get(f"{server.url}/metrics?token={TOKEN}").status_code == 200  # OpenRLHF's way to send it
    for path in ("/docs", "/openapi.json", "/redoc"):
        assert httpx.get(f"{server.url}{path}").status_code == 401
    wait_for(lambda: "/metrics?token=" in server.log(), 10, "the access log line")
    assert TOKEN not in server.log() and "token=***" in server.log()


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--token", ""], "is empty"),
        (["--token", "x", "--host", "0.0.0.0"], "at least 16 characters"),
        (["--host", "0.0.0.0"], "set --token"),
        (["--deadline-s", "inf"], "deadline_s: Input should be a finite number"),
        (["--max-body-bytes", "0"], "max_body_bytes: Input should be greater than 0"),
        (["--max-inflight-samples", "-1"], "max_inflight_samples"),
    ],
)
def test_findings_7_and_8_bad_tokens_and_limit_flags_exit_2_with_one_line(flags, message):
    environment = {k: v for k, v in os.environ.items() if k != "CERM_SERVE_TOKEN"}
    done = subprocess.run([sys.executable, "-m", "cerm_reward.cli", "serve", *flags], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env=environment)  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert message in " ".join(done.stderr.split()) and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("path", "raw", "field"),
    [
        ("/v1/score_group", rb'{"query": "Q", "responses": ["a", "\udc00"]}', "responses[1]"),
        ("/v1/score_group", rb'{"query": "Q", "responses": ["a"], "id": "\ud800"}', "id"),
        ("/v1/score_group", rb'{"query": [{"role": "user", "content": "\ud800"}], "responses": ["a"]}', "query[0].content"),
        ("/get_reward", rb'{"query": ["\ud800"], "prompts": ["p"]}', "query[0]"),
    ],
)
def test_finding_8_unencodable_strings_are_a_422_naming_the_field(server, path, raw, field):
    reply = httpx.post(f"{server.url}{path}", content=raw, headers={**AUTH, "content-type": "application/json"})
    assert reply.status_code == 422 and reply.json()["error"].startswith(f"invalid request: {field}: not valid Unicode")


def test_finding_8_every_4xx_has_the_one_error_shape(server):
    for reply in (
        httpx.get(f"{server.url}/nowhere", headers=AUTH),
        httpx.get(f"{server.url}/get_reward", headers=AUTH),  # 405
        httpx.post(f"{server.url}/v1/score_group", json={"query": "Q"}, headers=AUTH),
    ):
        assert 400 <= reply.status_code < 500 and set(reply.json()) <= {"error", "details"} and reply.json()["error"]


def test_finding_9_a_client_that_leaves_stops_its_judging(servers, vllm_server, tmp_path_factory):
    config = judge_config(tmp_path_factory.mktemp("long"), vllm_server, evaluation_tokens=3000)
    servers.append(launch_cerm_serve(config, "--on-failure", "neutral"))
    long = servers[-1]

    def running() -> float:
        text = httpx.get(f"{vllm_server}/metrics").text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("vllm:num_requests_running"))

    async def leave_early():
        async with httpx.AsyncClient(timeout=300) as client:
            body = {"query": "Write a very long story about rivers.", "responses": ["Once upon a time..."] * 4}
            request = asyncio.ensure_future(client.post(f"{long.url}/v1/score_group", json=body))
            await asyncio.to_thread(wait_for, lambda: running() >= 4, 120, "the evaluations to start")
            request.cancel()  # the client goes away

    with HealthWatch(long.url) as watch:
        asyncio.run(leave_early())
        wait_for(lambda: running() == 0, 10, "vLLM to stop the abandoned evaluations")
    watch.assert_responsive()
    assert metric(long.url, "cerm_requests_total", endpoint="/v1/score_group", status="499") == 1  # answered nobody
