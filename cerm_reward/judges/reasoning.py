"""The policy's reasoning is not what the judge scores: one rule for every framework's rollouts.

Chat templates such as Qwen3's put the opening ``<think>`` tag in the prompt, so only the closing
tag may appear in a rollout: everything up to the last closing tag is reasoning and is dropped.
A rollout that opened its reasoning and never closed it was cut off while thinking: it has no
answer, so it becomes an empty response, which the judge scores by its empty-response rule
instead of judging half a thought. verl's reward path and OpenRLHF's ``/get_reward`` both use it.
"""

from __future__ import annotations

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"


def strip_reasoning(text: str, think_open: str = THINK_OPEN, think_close: str = THINK_CLOSE) -> tuple[str, list[str]]:
    """The answer part of ``text`` (stripped of surrounding space) and notes: ``think_stripped`` or ``think_unclosed``."""
    close_at = text.rfind(think_close)
    if close_at >= 0:
        return text[close_at + len(think_close) :].strip(), ["think_stripped"]
    if think_open in text:
        return "", ["think_unclosed"]
    return text.strip(), []
