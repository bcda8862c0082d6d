"""OpenRLHF 0.11.2's remote-reward contract, without OpenRLHF.

OpenRLHF posts ``{"query": [...], "prompts": [...], "labels": [...]}`` where each
query is the decoded prompt + response *with* special tokens and each prompt is
the chat-templated prompt. It reads back ``{"rewards", "scores", "extra_logs"}``
and turns every ``extra_logs`` value into a tensor, so every value must be a
number and the key set must be the same on every call (failures included).

A sample is split in linear time (one request of 8 MiB must not hold the server): the response
is ``query[len(prompt):]`` (OpenRLHF's own rule, from its ``prompts`` field), the prompt is read
back into the whole conversation with the policy's chat template (:mod:`.chat_format`), and the
policy's reasoning is dropped as on the verl path (:mod:`cerm_reward.judges.reasoning`). A
sample that cannot be split is an :data:`INVALID_INPUT` failure, never a whole-text judgement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cerm_reward.integrations.openrlhf.chat_format import ChatFormat, FormatMismatch, Message, parse_known
from cerm_reward.judges.reasoning import strip_reasoning
from cerm_reward.results import FailureKind, Judgement

_END_MARKERS = ("<|im_end|>", "<|eot_id|>", "<|endoftext|>", "</s>", "<|end_of_text|>", "<end_of_turn>", "<eos>")
INVALID_INPUT = "invalid_input"
"""Failure kind of a sample whose prompt and response cannot be told apart (no judge call is made)."""

EXTRA_LOG_KEYS = (
    "judge_failed",
    "judge_repaired",
    "judge_empty_response",
    "judge_response_truncated",
    "judge_think_unclosed",
    "judge_latency_s",
    "judge_prompt_tokens",
    "judge_completion_tokens",
    *(f"judge_failure_{kind.value}" for kind in FailureKind),
    f"judge_failure_{INVALID_INPUT}",
)
"""The fixed, all-numeric key set of ``extra_logs``."""


@dataclass(frozen=True)
class Sample:
    """One OpenRLHF sample as the judge needs it, or the reason it cannot be judged."""

    conversation: list[Message]
    response: str
    notes: list[str] = field(default_factory=list)
    invalid: str | None = None
    """Why the sample could not be split (it then gets the failure policy's value, kind ``invalid_input``)."""


def split_prompt(prompt: str, chat_format: ChatFormat | None) -> tuple[list[Message], str]:
    """The conversation in ``prompt`` and the text after its generation prompt.

    With the policy's format only that format is tried; without it, the known formats; a prompt
    that none of them reads and that has no template markup at all is one user message.
    """
    if chat_format is not None:
        return chat_format.parse(prompt)
    known = parse_known(prompt)
    if known is not None:
        return known[0], known[1]
    if any(marker in prompt for marker in ("<|im_start|>", "<|start_header_id|>", "<start_of_turn>", "[INST]")):
        raise FormatMismatch("the prompt has chat markup that no known template reads; pass --policy-tokenizer")
    if not prompt.strip():
        raise FormatMismatch("the prompt is empty")
    return [{"role": "user", "content": prompt.strip()}], ""


_TRAILING_ENDS = re.compile("(?:\\s|" + "|".join(re.escape(m[::-1]) for m in _END_MARKERS) + ")*")
"""Whitespace and end-of-turn tokens, reversed: matched once at the start of the reversed text."""


MAX_TRAILING_MARKERS_CHARS = 65536
"""More end-of-turn text than this after a response is not a rollout's end: the sample is refused."""


def strip_end_markers(text: str) -> str:
    """``text`` without trailing whitespace and end-of-turn tokens.

    One anchored match on the reversed last 64 KiB: bounded work whatever the size (stripping one
    marker at a time copied the string each time: 8 MiB of ``</s>`` took minutes). A response
    that still ends in markers past that window raises :class:`FormatMismatch`.
    """
    window = text[-MAX_TRAILING_MARKERS_CHARS - 32 :][::-1]
    matched = _TRAILING_ENDS.match(window).end()  # type: ignore[union-attr] - ``*`` always matches
    if matched > MAX_TRAILING_MARKERS_CHARS:
        raise FormatMismatch(f"the response ends in over {MAX_TRAILING_MARKERS_CHARS} characters of end-of-turn tokens")
    return text[: len(text) - matched]


def to_sample(
    query: str, prompt: str, label: str | None, *, label_as_reference: bool, chat_format: ChatFormat | None = None
) -> Sample:
    """The conversation and cleaned response of one OpenRLHF sample (``invalid`` says why not)."""
    if not query.startswith(prompt):
        return Sample([], "", invalid="the query does not start with its prompt")
    try:
        conversation, tail = split_prompt(prompt, chat_format)
    except FormatMismatch as error:
        return Sample([], "", invalid=str(error))
    try:
        response, notes = strip_reasoning(strip_end_markers(tail + query[len(prompt) :]))
    except FormatMismatch as error:
        return Sample([], "", invalid=str(error))
    if label_as_reference and label:
        last_user = max(i for i, m in enumerate(conversation) if m["role"] == "user")
        content = conversation[last_user]["content"].strip()
        reference = f"\n\n[Reference Answer]\n{label}\n[End of Reference Answer]"
        conversation[last_user] = {"role": "user", "content": content + reference}
    return Sample(conversation, response, notes)


def reward_of(judgement: Judgement, fallback: float) -> float:
    """The reward OpenRLHF trains on: the score, or ``fallback`` when the policy excluded it."""
    return judgement.score if judgement.score is not None else fallback


def extra_logs_of(judgements: list[Judgement | None], samples: list[Sample]) -> dict[str, list[float]]:
    """Per-sample numeric logs with the fixed key set of :data:`EXTRA_LOG_KEYS` (None: an invalid sample)."""
    logs: dict[str, list[float]] = {key: [] for key in EXTRA_LOG_KEYS}
    for judgement, sample in zip(judgements, samples, strict=True):
        row = dict.fromkeys(EXTRA_LOG_KEYS, 0.0)
        row["judge_think_unclosed"] = float("think_unclosed" in sample.notes)
        if judgement is None:
            row["judge_failed"] = row[f"judge_failure_{INVALID_INPUT}"] = 1.0
        else:
            row.update(
                judge_failed=float(judgement.failure is not None),
                judge_repaired=float("repaired" in judgement.flags),
                judge_empty_response=float("empty_response" in judgement.flags),
                judge_response_truncated=float("response_truncated" in judgement.flags),
                judge_latency_s=judgement.latency_s,
                judge_prompt_tokens=float(judgement.usage.prompt_tokens),
                judge_completion_tokens=float(judgement.usage.completion_tokens),
            )
            if judgement.failure is not None:
                row[f"judge_failure_{judgement.failure.value}"] = 1.0
        for key in EXTRA_LOG_KEYS:
            logs[key].append(row[key])
    return logs
