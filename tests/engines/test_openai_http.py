"""The HTTP engine against a real `vllm serve` process on loopback (started once per session)."""

import httpx
import pytest

from cerm_reward import CermJudge, CermJudgeConfig
from cerm_reward.config import EngineConfig, FailurePolicy
from cerm_reward.engines import open_engine
from cerm_reward.engines.base import EngineError, GenerationParams, PromptTooLongError
from cerm_reward.engines.openai_http import normalise_base_url
from cerm_reward.judges.parsing import parse_evaluation
from cerm_reward.judges.repair import score_regex
from tests.conftest import SERVED_NAME, TEST_CONTEXT

pytestmark = pytest.mark.server


@pytest.fixture
async def http_engine(vllm_server):
    engine = await open_engine(EngineConfig(kind="http", base_url=vllm_server))
    yield engine
    await engine.aclose()


@pytest.mark.parametrize(
    ("given", "expected"),
    [("127.0.0.1:8000", "http://127.0.0.1:8000"), ("http://h:1/v1/", "http://h:1"), ("https://h", "https://h")],
)
def test_base_url_forms(given, expected):
    assert normalise_base_url(given) == expected


async def test_connect_learns_the_served_model(http_engine):
    assert http_engine.model_id == SERVED_NAME
    assert http_engine.max_model_len == TEST_CONTEXT


async def test_bare_host_port_as_verl_passes_it(vllm_server):
    engine = await open_engine(EngineConfig(kind="http", base_url=vllm_server.removeprefix("http://"), model=SERVED_NAME))
    assert engine.model_id == SERVED_NAME
    await engine.aclose()


async def test_structured_output_over_http(http_engine):
    result = await http_engine.chat(
        [{"role": "user", "content": "Score this: 2+2=4"}],
        GenerationParams(max_tokens=12, temperature=0.8, n=2, regex=score_regex((0, 10))),
    )
    assert len(result.completions) == 2
    assert all(parse_evaluation(c.text).score is not None for c in result.completions)


async def test_token_counts_match_the_in_process_tokenizer(http_engine, embedded_engine):
    messages = [{"role": "user", "content": "Count me, please: naïve café {braces}"}]
    assert await http_engine.count_chat_tokens(messages) == await embedded_engine.count_chat_tokens(messages)
    text = "one two three four five six"
    assert await http_engine.count_text_tokens(text) == await embedded_engine.count_text_tokens(text)
    assert await http_engine.truncate_text(text, 3) == await embedded_engine.truncate_text(text, 3)


async def test_errors_are_engine_errors(http_engine, vllm_server):
    with pytest.raises(PromptTooLongError):
        await http_engine.chat([{"role": "user", "content": "word " * 5000}], GenerationParams(max_tokens=4))
    with pytest.raises(EngineError, match="not served"):
        await open_engine(EngineConfig(kind="http", base_url=vllm_server, model="no-such-model"))
    with pytest.raises(EngineError, match="cannot list models"):
        await open_engine(EngineConfig(kind="http", base_url="127.0.0.1:9"))


async def test_judge_over_http_shares_criteria_and_repairs(http_engine):
    judge = CermJudge(
        http_engine,
        CermJudgeConfig(
            criteria={"max_tokens": 48}, evaluation={"max_tokens": 16}, failure=FailurePolicy(max_resamples=0, repair=True)
        ),
    )
    result = await judge.score_group("Is 91 prime?", ["No, 91 = 7 x 13.", "Yes.", "Maybe."])
    assert judge.stats.criteria_generations == 1
    assert all(j.failure is None and 0 <= j.score <= 10 for j in result.judgements)
    assert judge.stats.repairs_succeeded == judge.stats.repairs_attempted == 3


async def test_server_health_is_reachable(vllm_server):
    assert httpx.get(f"{vllm_server}/health").status_code == 200
