"""Training the judge with OpenRLHF: the AgentExecutor file, loaded as OpenRLHF 0.11.2 loads it, on the real vLLM engine.

OpenRLHF's own loader (``openrlhf.trainer.ray.vllm_engine._load_agent_executor``) imports the
file by path; ``llm_engine`` is the in-process vLLM engine behind OpenRLHF's
``generate(prompt_token_ids, sampling_params, multi_modal_data=...)`` contract.
"""

import json

import pytest

pytest.importorskip("openrlhf")

from cerm_reward.engines.embedded import embedded_checkpoint  # noqa: E402
from cerm_reward.training.cerm.rewards import pair_rewards  # noqa: E402
from cerm_reward.training.cerm.settings import RewardSettings, TwoStageSettings  # noqa: E402

PAIR = {"pair_id": "p1", "query": "Name a prime number above 10.", "chosen": "11 is prime.", "rejected": "12 is prime."}


class OpenRLHFEngine:
    """OpenRLHF's ``llm_engine.generate`` on the in-process vLLM engine: token ids in, a vLLM RequestOutput out."""

    def __init__(self, engine) -> None:
        self.engine = engine
        self.calls: list[tuple[list[int], list[int]]] = []

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        from vllm.inputs import TokensPrompt
        from vllm.sampling_params import RequestOutputKind

        params = sampling_params.clone()
        params.output_kind = RequestOutputKind.FINAL_ONLY
        params.seed = len(self.calls)
        final = None
        async for output in self.engine._llm.generate(
            TokensPrompt(prompt_token_ids=list(prompt_token_ids)), params, request_id=f"agent-{len(self.calls)}"
        ):
            final = output
        self.calls.append((list(prompt_token_ids), list(final.outputs[0].token_ids)))
        return final


def load_executor_class():
    """Load the file exactly as OpenRLHF does (its loader needs vLLM's GPU-only imports, so its steps are repeated)."""
    import importlib.util

    from openrlhf.utils.agent import AgentExecutorBase

    from cerm_reward.integrations.openrlhf import judge_agent

    spec = importlib.util.spec_from_file_location("agent_module", judge_agent.__file__)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert issubclass(module.AgentExecutor, AgentExecutorBase)
    return module.AgentExecutor


@pytest.mark.engine
async def test_the_executor_builds_one_sequence_with_three_trained_spans(embedded_engine):
    from transformers import AutoTokenizer
    from vllm import SamplingParams

    tokenizer = AutoTokenizer.from_pretrained(str(embedded_checkpoint()))
    settings = TwoStageSettings(
        criteria={"max_tokens": 24, "temperature": 1.0}, evaluation={"max_tokens": 20, "temperature": 1.0}
    )
    executor = load_executor_class()(settings)
    engine = OpenRLHFEngine(embedded_engine)
    result = await executor.execute(PAIR["query"], json.dumps(PAIR), SamplingParams(temperature=1.0), 2048, tokenizer, engine)

    tokens, ranges = result["observation_tokens"], result["action_ranges"]
    assert len(engine.calls) == 3 and len(ranges) == 3
    for (prompt, generated), (start, end) in zip(engine.calls, ranges, strict=True):
        assert tokens[:start] == prompt  # each turn continues the whole sequence so far
        assert tokens[start:end] == generated  # the trained span is exactly the generated tokens
    trained = {i for start, end in ranges for i in range(start, end)}
    untrained = tokenizer.decode([t for i, t in enumerate(tokens) if i not in trained])
    for injected in (PAIR["query"], PAIR["chosen"], PAIR["rejected"], "[Start of Response]"):
        assert injected in untrained  # prompts and injected turns lie outside the action ranges
    whole = tokenizer.decode(tokens)
    criteria = tokenizer.decode(engine.calls[0][1], skip_special_tokens=True).strip()
    assert whole.index(criteria) < whole.index(PAIR["chosen"]) < whole.index(PAIR["rejected"])

    logs = result["extra_logs"]
    score = lambda key: None if logs[key] < 0 else logs[key]  # noqa: E731
    expected = pair_rewards(
        [[score("cerm_chosen_score")]], [[score("cerm_rejected_score")]], RewardSettings(), [bool(logs["cerm_criteria_failed"])]
    )
    assert result["reward"] == expected.criteria[0] == result["scores"]


def test_settings_come_from_the_yaml_named_in_the_environment(tmp_path, monkeypatch):
    path = tmp_path / "training.yaml"
    path.write_text("num_criteria: 8\nrewards: {tie_reward: 0.5}\n")
    monkeypatch.setenv("CERM_TRAINING_CONFIG", str(path))
    executor = load_executor_class()()
    assert (executor.settings.num_criteria, executor.settings.rewards.tie_reward) == (8, 0.5)
