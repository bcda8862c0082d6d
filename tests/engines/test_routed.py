"""Prefix-aware routing over several servers: stable, spread, and a query's every call on one server.

The end-to-end test runs the real CE-RM judge through the real routed and HTTP engines against
two stub OpenAI servers on loopback (the test name says so): a stub can tell which server each
call reached, which is what routing is about. The prefix-cache figure on real `vllm serve`
processes is `cerm bench`'s.
"""

import asyncio
import json
import subprocess
import sys
from collections import Counter

from cerm_reward.config import CermConfig
from cerm_reward.engines import opened_engine
from cerm_reward.engines.routed import RoutedHttpEngine, conversation_key, server_for
from cerm_reward.judges.registry import judge_on
from cerm_reward.judges.templates import load_template

TEMPLATE = load_template("cerm-v1")


def test_a_querys_criteria_turn_and_every_evaluation_route_to_one_server():
    for servers in (2, 4):
        for i in range(50):
            query = f"Question {i}: why is the sky blue?"
            turns = [TEMPLATE.criteria_messages(query)]
            turns += [TEMPLATE.evaluation_messages(query, "1. Accuracy", answer) for answer in ("Rayleigh.", "", "Dust.")]
            assert len({server_for(conversation_key(turn), servers) for turn in turns}) == 1


def test_routing_spreads_queries_over_servers():
    for servers in (2, 4):
        load = Counter(server_for(conversation_key(TEMPLATE.criteria_messages(f"q{i}")), servers) for i in range(4000))
        assert set(load) == set(range(servers))
        assert max(load.values()) / min(load.values()) < 1.2  # within 20% of each other


def test_routing_is_the_same_in_another_process_whatever_its_hash_seed():
    keys = [conversation_key(TEMPLATE.criteria_messages(f"q{i}")) for i in range(20)]
    here = [server_for(key, 4) for key in keys]
    script = (
        "import json, sys\n"
        "from cerm_reward.engines.routed import server_for\n"
        "print(json.dumps([server_for(k.encode(), 4) for k in json.loads(sys.stdin.read())]))\n"
    )
    for seed in ("1", "2"):
        done = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps([key.decode() for key in keys]),
            capture_output=True,
            text=True,
            env={"PYTHONHASHSEED": seed, "PATH": ""},
            timeout=120,
            check=True,
        )
        assert json.loads(done.stdout) == here


async def _stub_openai_server(calls: list[str]) -> asyncio.AbstractServer:
    """Answers /v1/models and /v1/chat/completions (criteria, then a boxed score); records each chat's opening."""

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:  # the client closed its connection
                break
            lines = head.decode().split("\r\n")
            length = next((int(line.split(":")[1]) for line in lines if line.lower().startswith("content-length")), 0)
            body = json.loads(await reader.readexactly(length)) if length else {}
            if lines[0].startswith("GET /v1/models"):
                reply, status = {"data": [{"id": "judge", "max_model_len": 4096}]}, "200 OK"
            elif lines[0].startswith("POST /v1/chat/completions"):
                calls.append(body["messages"][0]["content"])
                text = "[Start of Criteria]\n1. Correct\n[End of Criteria]" if len(body["messages"]) == 1 else "\\boxed{7}"
                choices = [{"index": i, "message": {"content": text}, "finish_reason": "stop"} for i in range(body["n"])]
                reply, status = {"choices": choices, "usage": {"prompt_tokens": 10, "completion_tokens": 2}}, "200 OK"
            else:
                reply, status = {"error": "not here"}, "404 Not Found"
            data = json.dumps(reply).encode()
            writer.write(f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {len(data)}\r\n\r\n".encode())
            writer.write(data)
            await writer.drain()
        writer.close()

    return await asyncio.start_server(answer, "127.0.0.1", 0)


async def test_the_judge_through_the_routed_engine_keeps_each_group_on_one_of_two_stub_servers():
    calls: list[list[str]] = [[], []]
    servers = [await _stub_openai_server(seen) for seen in calls]
    urls = tuple(f"127.0.0.1:{server.sockets[0].getsockname()[1]}" for server in servers)
    config = CermConfig.model_validate(
        {
            "engine": {"kind": "http", "base_urls": urls},
            "judge": {"criteria": {"max_tokens": 64}, "evaluation": {"max_tokens": 64}, "failure": {"max_resamples": 0}},
        }
    )
    queries = [f"Name a colour ({i})." for i in range(8)]
    try:
        async with opened_engine(config.engine) as engine:
            assert isinstance(engine, RoutedHttpEngine) and engine.servers == 2
            judge = judge_on(engine, config)
            results = await asyncio.gather(*(judge.score_group(query, ["Red.", "Blue.", "Green."]) for query in queries))
    finally:
        for server in servers:
            server.close()
    assert all(j.score == 7.0 for result in results for j in result.judgements)
    assert all(calls)  # both servers took groups
    for query in queries:
        reached = [index for index, seen in enumerate(calls) if any(query in opening for opening in seen)]
        assert len(reached) == 1  # criteria and all three evaluations of a query: one server
        assert sum(query in opening for opening in calls[reached[0]]) == 4
