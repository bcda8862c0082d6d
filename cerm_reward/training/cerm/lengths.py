"""How long the two-stage prompts of a pair get, in the judge's own tokens.

The longest prompt of the rollout is stage 2: [criteria prompt with the query, the criteria the
judge wrote, evaluation prompt with the response]. Its length is known before training up to the
criteria, which are bounded by their token budget, so ``stage2_prompt_bound`` counts the chat
with empty criteria and adds that budget plus a small margin (re-tokenising decoded criteria can
differ from the generated ids by a few tokens). Curation drops pairs above the bound and the
agent loop refuses a ``max_prompt_length`` below the template's own size, so verl never
left-truncates a prompt, which would silently cut the query out of the judge's view.
"""

from __future__ import annotations

from typing import Any

from cerm_reward.judges.templates import JudgeTemplate

RETOKENISE_MARGIN_TOKENS = 16
"""Slack for criteria whose re-tokenised text is a few tokens longer than the generated ids."""


def chat_token_count(tokenizer: Any, messages: list[dict[str, str]], chat_template_kwargs: dict[str, Any] | None = None) -> int:
    """Tokens of ``messages`` rendered by the model's chat template, generation prompt included."""
    text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **(chat_template_kwargs or {}))
    return len(tokenizer.encode(text, add_special_tokens=False))


def stage2_prompt_bound(
    tokenizer: Any,
    template: JudgeTemplate,
    query: str,
    response: str,
    criteria_max_tokens: int,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> int:
    """An upper bound on the stage-2 prompt of ``response`` under any criteria the budget allows."""
    empty = template.evaluation_messages(query, "", response)
    return chat_token_count(tokenizer, empty, chat_template_kwargs) + criteria_max_tokens + RETOKENISE_MARGIN_TOKENS


def template_overhead(
    tokenizer: Any, template: JudgeTemplate, criteria_max_tokens: int, chat_template_kwargs: dict[str, Any] | None = None
) -> int:
    """The stage-2 bound of an empty query and response: the least ``max_prompt_length`` that can work."""
    return stage2_prompt_bound(tokenizer, template, "", "", criteria_max_tokens, chat_template_kwargs)
