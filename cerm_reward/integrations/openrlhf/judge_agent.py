"""Training a CE-RM judge with OpenRLHF 0.11.2: ``--train.agent_func_path /path/to/judge_agent.py``.

OpenRLHF trains one token sequence per ``execute`` with one scalar reward, so the two-stage
rollout becomes, per sample, one criteria and one evaluation of each response in one sequence:

    [criteria prompt | criteria | eval prompt(chosen) | e+ | eval prompt(rejected) | e-]

with the three generated spans as ``action_ranges`` (the only trained tokens). The reward is the
criteria reward of :mod:`cerm_reward.training.cerm.rewards` (1 when e+ scores above e-, ties and
failures as configured), and ``--rollout.n_samples_per_prompt`` = K_c samples of the pair are
normalised together by ``--algo.advantage.estimator group_norm``. Compared with the verl loop
this is an approximation, said plainly in docs/training.md: one advantage per sequence instead of
three groups, one evaluation per response per criteria, and e- is written with e+ in context.

Rows come from ``cerm train prepare-data --openrlhf-output``: ``prompt`` = the query, ``label`` =
the pair as JSON. Settings: ``CERM_TRAINING_CONFIG`` = a YAML of
:class:`cerm_reward.training.cerm.settings.TwoStageSettings` (read at import; defaults otherwise).
"""

from __future__ import annotations

import json
import os
from copy import deepcopy

import yaml
from openrlhf.utils.agent import AgentExecutorBase

from cerm_reward.judges.parsing import extract_criteria_items, parse_evaluation
from cerm_reward.judges.templates import load_template
from cerm_reward.training.cerm.chat_turns import injected_turn_ids
from cerm_reward.training.cerm.rewards import pair_rewards
from cerm_reward.training.cerm.settings import TwoStageSettings


def _settings() -> TwoStageSettings:
    path = os.environ.get("CERM_TRAINING_CONFIG")
    if not path:
        return TwoStageSettings()
    with open(path, encoding="utf-8") as handle:
        return TwoStageSettings.model_validate(yaml.safe_load(handle) or {})


class AgentExecutor(AgentExecutorBase):
    """One sample = criteria, then one evaluation of the chosen and one of the rejected response."""

    def __init__(self, settings: TwoStageSettings | None = None) -> None:
        self.settings = settings or _settings()
        self.template = load_template(self.settings.template)

    async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None):
        pair = json.loads(label)
        query, settings = pair["query"], self.settings
        messages = self.template.criteria_messages(query)
        text = hf_tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        tokens = hf_tokenizer.encode(text, add_special_tokens=False)
        ranges: list[tuple[int, int]] = []
        texts: list[str] = []
        finished: list[bool] = []
        turns = [("criteria", None), ("evaluation", pair["chosen"]), ("evaluation", pair["rejected"])]
        for turn, response in turns:
            if response is not None:
                user = self.template.evaluation_prompt(response)
                tokens = tokens + injected_turn_ids(hf_tokenizer, messages, user, generated_eos=finished[-1])
                messages = [*messages, {"role": "user", "content": user}]
            budget = min(getattr(settings, turn).max_tokens, max_length - len(tokens))
            if budget <= 0:
                break  # no room left: the missing turns count as failures
            params = deepcopy(sampling_params)
            params.max_tokens = budget
            params.temperature = getattr(settings, turn).temperature
            output = (await llm_engine.generate(tokens, params, multi_modal_data=None)).outputs[0]
            ranges.append((len(tokens), len(tokens) + len(output.token_ids)))
            tokens = tokens + list(output.token_ids)
            reply = hf_tokenizer.decode(output.token_ids, skip_special_tokens=True)
            texts.append(reply)
            finished.append(output.finish_reason != "length")
            messages = [*messages, {"role": "assistant", "content": reply}]
        criteria_failed = not texts or not (finished[0] and extract_criteria_items(texts[0]))
        scores = [
            parse_evaluation(texts[i], finished=finished[i], score_range=settings.score_range).score if i < len(texts) else None
            for i in (1, 2)
        ]
        rewards = pair_rewards([[scores[0]]], [[scores[1]]], settings.rewards, criteria_failed=[criteria_failed])
        reward = rewards.criteria[0]
        return {
            "prompt": prompt,
            "label": label,
            "images": images,
            "mm_train_inputs": None,
            "observation_tokens": tokens,
            "action_ranges": ranges,
            "rollout_log_probs": None,
            "truncated": not all(finished),
            "reward": reward,
            "scores": reward,
            "extra_logs": {
                "cerm_chosen_score": -1.0 if scores[0] is None else scores[0],
                "cerm_rejected_score": -1.0 if scores[1] is None else scores[1],
                "cerm_failed_evaluations": float(rewards.failed_evaluations),
                "cerm_criteria_failed": float(criteria_failed),
            },
        }
