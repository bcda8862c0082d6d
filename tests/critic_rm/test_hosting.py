"""`judge.kind: critic_rm` wherever CE-RM is hosted: `cerm score`, `cerm serve` (OpenRLHF's
/get_reward and the native endpoint) and the Ray judge pool reached from another process.

The critiques come from the real `vllm serve` of the embedded judge; each score is checked
against the saved head, recomputed here on the critique the judge reports.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import subprocess
import sys
import uuid

import httpx
import pytest

from cerm_reward.config import CermConfig
from cerm_reward.integrations.openrlhf.contract import EXTRA_LOG_KEYS
from tests.serving.launcher import REPO, launch_cerm_serve

pytestmark = pytest.mark.server
ROLLOUTS = [
    {"id": "primes", "query": "Name a prime number between 10 and 20.", "responses": ["13 is prime.", "15."]},
    {"id": "capital", "query": "What is the capital of France?", "responses": ["Paris.", "Lyon, I think.", "Rome."]},
]
CRITIQUE_TOKENS = 24


@pytest.fixture(scope="module")
def head(checkpoint):
    from cerm_reward.judges.critic_rm.head_scorer import HeadScorer

    return HeadScorer.load(checkpoint, device="cpu")


def head_score(head, query: str, response: str, critiques: list[str]) -> float:
    """What the judge must have scored: the head on (query, response, critique), averaged over critiques."""
    q, r = head.cut(query, response)
    return statistics.fmean(head.score([(q, r, critique) for critique in critiques]))


def critic_config(vllm_server: str, checkpoint, **judge) -> dict:
    critique = {"max_tokens": CRITIQUE_TOKENS}
    return {
        "engine": {"kind": "http", "base_url": vllm_server},
        "judge": {"kind": "critic_rm", "checkpoint": str(checkpoint), "critique": critique, **judge},
    }


def test_cerm_score_with_the_critic_rm_judge_matches_the_head_and_resumes(tmp_path, vllm_server, checkpoint, head):
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text("".join(json.dumps(group) + "\n" for group in ROLLOUTS))
    output = tmp_path / "scores.jsonl"
    command = [sys.executable, "-m", "cerm_reward.cli", "score", str(rollouts), "-o", str(output)]
    command += ["--judge", "critic_rm", "--checkpoint", str(checkpoint), "--engine", "http", "--base-url", vllm_server]
    command += ["--eval-max-tokens", str(CRITIQUE_TOKENS)]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    queries = {group["id"]: group for group in ROLLOUTS}
    assert sorted((row["id"], row["response_index"]) for row in rows) == sorted(
        (group["id"], index) for group in ROLLOUTS for index in range(len(group["responses"]))
    )
    for row in rows:
        group = queries[row["id"]]
        assert row["failure"] is None and row["criteria"] is None and row["evaluation"]
        assert row["model"] == str(checkpoint) and row["template"] == "critic-v1"
        expected = head_score(head, group["query"], group["responses"][row["response_index"]], [row["evaluation"]])
        assert row["score"] == pytest.approx(expected, abs=1e-4)
    assert "criteria generations" not in done.stdout and "responses scored" in done.stdout

    again = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert again.returncode == 0 and [json.loads(line) for line in output.read_text().splitlines()] == rows
    refused = subprocess.run([*command, "--criteria-max-tokens", "8"], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert refused.returncode == 2 and "does not apply to the critic_rm judge" in " ".join(refused.stderr.split())


@pytest.mark.engine
def test_with_no_engine_named_the_checkpoint_writes_its_own_critiques_in_process(tmp_path, checkpoint, head):
    """The default: vLLM serves the Critic-RM folder itself (its ``reward_head/`` is not read as model weights)."""
    rollouts = tmp_path / "rollouts.jsonl"
    rollouts.write_text(json.dumps(ROLLOUTS[0]) + "\n")
    config = tmp_path / "engine.yaml"
    config.write_text(json.dumps({"engine": {"kv_cache_gib": 0.25, "max_model_len": 1024, "enforce_eager": True}}))
    output = tmp_path / "scores.jsonl"
    command = [sys.executable, "-m", "cerm_reward.cli", "score", str(rollouts), "-o", str(output), "-c", str(config)]
    command += ["--judge", "critic_rm", "--checkpoint", str(checkpoint), "--eval-max-tokens", "16"]
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 2 and all(row["failure"] is None and row["usage"]["completion_tokens"] > 0 for row in rows)
    for row in rows:
        response = ROLLOUTS[0]["responses"][row["response_index"]]
        expected = head_score(head, ROLLOUTS[0]["query"], response, [row["evaluation"]])
        assert row["score"] == pytest.approx(expected, abs=1e-4)


async def test_cerm_serve_gives_openrlhf_critic_rm_rewards(tmp_path, vllm_server, checkpoint, head):
    from openrlhf.utils.agent import SingleTurnAgentExecutor

    config = tmp_path / "critic.yaml"
    config.write_text(json.dumps(critic_config(vllm_server, checkpoint)))
    server = launch_cerm_serve(config)
    try:
        health = httpx.get(f"{server.url}/health").json()
        assert health == {"status": "ok", "judge": "critic_rm", "model": str(checkpoint), "template": "critic-v1"}
        chat = "<|im_start|>user\nIs 91 prime?<|im_end|>\n<|im_start|>assistant\n"
        queries = [chat + answer + "<|im_end|>" for answer in ("No: 91 = 7 x 13.", "Yes.")]
        executor = SingleTurnAgentExecutor(remote_rm_url=f"{server.url}/get_reward")
        [reply] = await executor._fetch_rewards_via_http(queries, [chat, chat], ["No", "No"])
        assert len(reply["rewards"]) == 2 and all(isinstance(r, float) for r in reply["rewards"])
        assert tuple(reply["extra_logs"]) == EXTRA_LOG_KEYS and reply["extra_logs"]["judge_failed"] == [0.0, 0.0]

        query, responses = ROLLOUTS[1]["query"], ROLLOUTS[1]["responses"]
        native = httpx.post(f"{server.url}/v1/score_group", json={"query": query, "responses": responses}, timeout=120)
        judgements = native.json()["judgements"]
        for judgement, response in zip(judgements, responses, strict=True):
            expected = head_score(head, query, response, [judgement["evaluation"]])
            assert judgement["failure"] is None and judgement["score"] == pytest.approx(expected, abs=1e-4)
        assert httpx.post(f"{server.url}/v1/prefetch", json={"queries": [query]}).status_code == 202  # nothing to start
        metrics = httpx.get(f"{server.url}/metrics").text
        assert "cerm_judged_responses_total 5.0" in metrics
    finally:
        server.stop()


async def test_a_critic_rm_request_past_the_deadline_gets_the_neutral_score(tmp_path, vllm_server, checkpoint):
    config = tmp_path / "critic.yaml"
    config.write_text(json.dumps(critic_config(vllm_server, checkpoint, neutral_score=-1.5, critique={"max_tokens": 512})))
    server = launch_cerm_serve(config, "--deadline-s", "0.2")
    try:
        chat = "<|im_start|>user\nWrite a long essay on rivers.<|im_end|>\n<|im_start|>assistant\n"
        body = {"query": [chat + "Rivers...<|im_end|>"], "prompts": [chat]}
        reply = httpx.post(f"{server.url}/get_reward", json=body, timeout=60).json()
        assert reply["rewards"] == [-1.5] and reply["extra_logs"]["judge_failure_timeout"] == [1.0]
    finally:
        server.stop()


async def test_a_critic_rm_pool_serves_another_process_with_head_scores(local_ray, vllm_server, checkpoint, head):
    import ray

    from cerm_reward.serving.ray_pool import JudgePool, PoolConfig

    config = CermConfig.model_validate(critic_config(vllm_server, checkpoint, critiques_per_response=2))
    pool = JudgePool.create(config, PoolConfig(name=f"critic-{uuid.uuid4().hex[:6]}", replicas=2, num_cpus=0.1))
    try:
        replicas = await pool.ready()
        assert {r["judge"]["kind"] for r in replicas} == {"critic_rm"} and {r["template"] for r in replicas} == {"critic-v1"}

        @ray.remote(num_cpus=0.1)
        def from_another_process(name: str, query: str, responses: list[str]):
            return asyncio.run(JudgePool.connect(name).score_group(query, responses))

        groups = [(group["query"], group["responses"]) for group in ROLLOUTS]
        results = await asyncio.gather(*(from_another_process.remote(pool.config.name, q, r) for q, r in groups))
        for (query, responses), result in zip(groups, results, strict=True):
            assert result.criteria is None and result.criteria_lookup == "none"
            for judgement, response in zip(result.judgements, responses, strict=True):
                critiques = [sample.text for sample in judgement.samples]
                assert len(critiques) == 2 and judgement.failure is None, (judgement.failure, judgement.failure_detail)
                assert judgement.score == pytest.approx(head_score(head, query, response, critiques), abs=1e-4)
        stats = await pool.stats()
        assert sum(s["responses"] for s in stats) == 5 and sum(s["criteria_generations"] for s in stats) == 0
        assert sum(s["engine_calls"] for s in stats) == 5  # one call per response, n = 2 critiques each
    finally:
        pool.shutdown()
