"""`cerm serve` for real: a server process on loopback, judging through `vllm serve` on the embedded model.

OpenRLHF's own client code (its remote-reward request path and its reward_func file loader)
is used against our server and our file.
"""

import asyncio
import json
import signal
import subprocess
import sys
import time

import httpx
import pytest

from cerm_reward.integrations.openrlhf.contract import EXTRA_LOG_KEYS
from tests.serving.launcher import REPO, CermServer, launch_cerm_serve

pytestmark = pytest.mark.server
CHATML = "<|im_start|>user\n{q}<|im_end|>\n<|im_start|>assistant\n"


@pytest.fixture(scope="module")
def start_server(vllm_server, tmp_path_factory):
    """Start `cerm serve` processes (http engine -> the session's vllm serve); all stopped at the end."""
    started: list[CermServer] = []

    def start(*flags: str, evaluation_tokens: int = 8) -> CermServer:
        config = tmp_path_factory.mktemp("serve") / "judge.yaml"
        config.write_text(json.dumps({
            "engine": {"kind": "http", "base_url": vllm_server},
            "judge": {"criteria": {"max_tokens": 24}, "evaluation": {"max_tokens": evaluation_tokens},
                      "failure": {"max_resamples": 0, "on_failure": "neutral"}},
        }))  # fmt: skip
        started.append(launch_cerm_serve(config, *flags))
        return started[-1]

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(start_server) -> CermServer:
    return start_server("--max-body-bytes", "65536", "--max-responses", "64")


def sample(question: str, answer: str) -> tuple[str, str]:
    prompt = CHATML.format(q=question)
    return prompt + answer + "<|im_end|>", prompt


def metric(url: str, name: str, **labels: str) -> float:
    text = httpx.get(f"{url}/metrics").text
    wanted = name + ("{" + ",".join(f'{k}="{v}"' for k, v in labels.items()) + "}" if labels else "")
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(wanted + " "))


def test_health_and_metrics(server):
    health = httpx.get(f"{server.url}/health").json()
    assert health == {"status": "ok", "judge": "cerm", "model": "smollm2-judge", "template": "cerm-v1"}
    assert "cerm_criteria_cache_lookups_total" in httpx.get(f"{server.url}/metrics").text


async def test_openrlhf_http_client_gets_rewards(server):
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    executor = SingleTurnAgentExecutor(remote_rm_url=f"{server.url}/get_reward")
    query, prompt = sample("Is 91 prime?", "No: 91 = 7 x 13.")
    [reply] = await executor._fetch_rewards_via_http([query], [prompt], ["No"])
    assert len(reply["rewards"]) == 1 and 0.0 <= reply["rewards"][0] <= 10.0
    assert reply["scores"] == reply["rewards"]
    assert tuple(reply["extra_logs"]) == EXTRA_LOG_KEYS


async def test_openrlhf_loads_and_calls_our_reward_func_file(server, tmp_path, monkeypatch):
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    path = tmp_path / "reward_func.py"
    command = [sys.executable, "-m", "cerm_reward.cli", "openrlhf", "reward-func", "-o", str(path), "--url", server.url]
    assert subprocess.run(command, cwd=REPO).returncode == 0
    monkeypatch.delenv("CERM_REWARD_URL", raising=False)  # the address comes from the copy itself
    executor = SingleTurnAgentExecutor(remote_rm_url=str(path))
    assert executor.reward_func is not None
    query, prompt = sample("Name a prime number.", "7")
    [reply] = await executor._fetch_rewards_via_func([query], [prompt], [None])
    assert len(reply["rewards"]) == 1 and tuple(reply["extra_logs"]) == EXTRA_LOG_KEYS


async def test_64_concurrent_single_sample_requests_lose_and_duplicate_nothing(server):
    questions = [f"What is {a} + {a}?" for a in range(8)]
    answers = ["", "It is {s}.", "Maybe {s}.", "{s}", "", "I think {s}.", "Not sure.", "{s}!"]
    requests = []
    for a, question in enumerate(questions):
        for k, answer in enumerate(answers):
            requests.append((question, answer.format(s=2 * a), k))
    generations_before = metric(server.url, "cerm_criteria_generations_total")
    async with httpx.AsyncClient(timeout=170) as client:

        async def post(question, answer):
            query, prompt = sample(question, answer)
            return await client.post(f"{server.url}/get_reward", json={"query": [query], "prompts": [prompt], "labels": [None]})

        replies = await asyncio.gather(*(post(q, a) for q, a, _ in requests))
    assert [r.status_code for r in replies] == [200] * 64
    for (_, answer, _), reply in zip(requests, replies, strict=True):
        body = reply.json()
        assert len(body["rewards"]) == 1
        assert body["extra_logs"]["judge_empty_response"] == [1.0 if answer == "" else 0.0]  # each reply is its own sample's
    # OpenRLHF sends samples one by one: the 8 samples of each prompt still share one criteria generation.
    assert metric(server.url, "cerm_criteria_generations_total") - generations_before == len(questions)


def test_native_score_group(server):
    reply = httpx.post(
        f"{server.url}/v1/score_group", json={"query": "Is 91 prime?", "responses": ["No.", "Yes.", ""], "id": "g1"}, timeout=170
    )
    assert reply.status_code == 200
    body = reply.json()
    assert body["id"] == "g1" and [j["response_index"] for j in body["judgements"]] == [0, 1, 2]
    assert len({j["criteria_id"] for j in body["judgements"]}) == 1
    assert body["judgements"][2]["flags"] == ["empty_response"]


BAD_REQUESTS = [
    ("/get_reward", b"{not json", 400, "not valid JSON"),
    ("/get_reward", {"query": "one", "prompts": ["p"]}, 422, "query"),
    ("/get_reward", {"query": ["q"]}, 422, "prompts: Field required"),
    ("/get_reward", {"query": ["q", "r"], "prompts": ["p"]}, 422, "prompts: expected 2 items like query, got 1"),
    ("/get_reward", {"query": ["q"], "prompts": ["p"], "labels": [1, 2]}, 422, "labels: expected 1 items"),
    ("/get_reward", {"query": [1], "prompts": ["p"]}, 422, "query[0]"),
    ("/get_reward", {"query": ["q"] * 65, "prompts": ["p"] * 65}, 413, "65 samples exceed the limit of 64"),
    ("/get_reward", {"query": ["x" * 70000], "prompts": ["p"]}, 413, "exceeds the limit of 65536"),
    ("/v1/score_group", {"query": "Q", "responses": [1]}, 422, "responses[0]"),
    ("/v1/score_group", {"query": "  ", "responses": ["a"]}, 422, "query"),
    ("/v1/score_group", {"query": "Q", "responses": []}, 422, "responses"),
    ("/v1/score_group", {"query": [{"role": "robot", "content": "x"}], "responses": ["a"]}, 422, "role"),
    ("/v1/score_group", {"query": "Q", "responses": ["a"] * 65}, 413, "65 exceed the limit of 64"),
]


@pytest.mark.parametrize(("path", "body", "status", "message"), BAD_REQUESTS)
def test_bad_input_gets_a_4xx_naming_the_problem(server, path, body, status, message):
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    reply = httpx.post(f"{server.url}{path}", content=content, headers={"content-type": "application/json"})
    assert reply.status_code == status, reply.text
    assert message in reply.json()["error"]


def test_a_prompt_that_cannot_be_split_is_an_invalid_input_failure_not_a_4xx(server):
    reply = httpx.post(f"{server.url}/get_reward", json={"query": ["", "x"], "prompts": ["", "y"]})
    assert reply.status_code == 200
    assert reply.json()["extra_logs"]["judge_failure_invalid_input"] == [1.0, 1.0]


def test_token_is_required_when_set(start_server):
    secured = start_server("--token", "s3cret-but-long-enough")
    body = {"query": "Q?", "responses": [""]}
    assert httpx.get(f"{secured.url}/health").status_code == 200
    missing = httpx.post(f"{secured.url}/v1/score_group", json=body)
    assert missing.status_code == 401 and "missing bearer token" in missing.json()["error"]
    wrong = httpx.post(f"{secured.url}/v1/score_group", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401 and "wrong bearer token" in wrong.json()["error"]
    assert (
        httpx.post(
            f"{secured.url}/v1/score_group", json=body, headers={"Authorization": "Bearer s3cret-but-long-enough"}, timeout=170
        ).status_code
        == 200
    )
    assert httpx.get(f"{secured.url}/metrics?token=s3cret-but-long-enough").status_code == 200
    assert httpx.get(f"{secured.url}/metrics").status_code == 401


def test_binding_beyond_loopback_requires_a_token():
    done = subprocess.run(
        [sys.executable, "-m", "cerm_reward.cli", "serve", "--host", "0.0.0.0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "set --token" in " ".join(done.stderr.split())


def test_a_request_past_the_deadline_gets_the_policy_value(start_server):
    slow = start_server("--deadline-s", "0.5", "--on-failure", "minimum", evaluation_tokens=512)
    started = time.monotonic()
    reply = httpx.post(
        f"{slow.url}/v1/score_group", json={"query": "Write a long essay on rivers.", "responses": ["Rivers..."]}, timeout=60
    )
    assert reply.status_code == 200 and time.monotonic() - started < 10
    [judgement] = reply.json()["judgements"]
    assert judgement["failure"] == "timeout" and judgement["score"] == 0.0 and "deadline" in judgement["failure_detail"]
    query, prompt = sample("Write a long poem about the sea.", "The sea...")
    rewards = httpx.post(f"{slow.url}/get_reward", json={"query": [query], "prompts": [prompt]}, timeout=60).json()
    assert rewards["rewards"] == [0.0] and rewards["extra_logs"]["judge_failure_timeout"] == [1.0]
    assert metric(slow.url, "cerm_judge_failures_total", kind="timeout") == 2
    assert "request deadline of 0.5s passed" in slow.log()


def test_shutdown_finishes_in_flight_requests(start_server):
    doomed = start_server(evaluation_tokens=32)

    async def run():
        async with httpx.AsyncClient(timeout=170) as client:
            request = asyncio.ensure_future(
                client.post(
                    f"{doomed.url}/v1/score_group", json={"query": "Explain tides briefly.", "responses": ["The moon.", "Wind."]}
                )
            )
            await asyncio.sleep(1.0)
            doomed.process.send_signal(signal.SIGTERM)
            return await request

    reply = asyncio.run(run())
    assert reply.status_code == 200 and len(reply.json()["judgements"]) == 2
    # uvicorn re-raises SIGTERM once its graceful shutdown is done, as a signalled process should.
    assert doomed.process.wait(60) in (0, -signal.SIGTERM)


def test_prefetch_generates_criteria_once_before_the_responses_exist(server):
    query = "Prefetch me: what is the boiling point of water at sea level?"
    generations = metric(server.url, "cerm_criteria_generations_total")
    shared = metric(server.url, "cerm_criteria_cache_lookups_total", result="hit") + metric(
        server.url, "cerm_criteria_cache_lookups_total", result="joined"
    )
    accepted = httpx.post(f"{server.url}/v1/prefetch", json={"queries": [query]})
    assert accepted.status_code == 202 and accepted.json() == {"accepted": 1}
    deadline = time.monotonic() + 120
    while metric(server.url, "cerm_criteria_generations_total") == generations and time.monotonic() < deadline:
        time.sleep(0.2)
    reply = httpx.post(f"{server.url}/v1/score_group", json={"query": query, "responses": ["100 C."]}, timeout=170)
    assert reply.status_code == 200
    assert metric(server.url, "cerm_criteria_generations_total") == generations + 1  # not generated again
    now_shared = metric(server.url, "cerm_criteria_cache_lookups_total", result="hit") + metric(
        server.url, "cerm_criteria_cache_lookups_total", result="joined"
    )
    assert now_shared == shared + 1  # the request found the prefetched criteria (done or in flight)


def test_bad_prefetch_is_refused(server):
    reply = httpx.post(f"{server.url}/v1/prefetch", json={"queries": ["ok", " "]})
    assert reply.status_code == 422 and "queries[1]" in reply.json()["error"]
    assert httpx.post(f"{server.url}/v1/prefetch", json={"queries": []}).status_code == 422
