"""Chat turns appended to a token sequence, for trainers that train one sequence per rollout (OpenRLHF).

A multi-turn trajectory kept as one token sequence needs, after each generated turn, the tokens
the chat template puts between that turn and the next generation prompt (end-of-turn marker,
next user message, assistant header). They are found by rendering the chat with and without the
next user message and taking the difference, so any chat template works; the end-of-turn token
the model generated itself is not repeated.
"""

from __future__ import annotations

from typing import Any


def injected_turn_ids(
    tokenizer: Any,
    history: list[dict[str, str]],
    next_user: str,
    *,
    generated_eos: bool,
    chat_template_kwargs: dict[str, Any] | None = None,
) -> list[int]:
    """Token ids from the end of ``history``'s last (generated) assistant turn to the next generation prompt."""
    kwargs = chat_template_kwargs or {}
    closed = tokenizer.apply_chat_template(history, tokenize=False, **kwargs)
    opened = tokenizer.apply_chat_template(
        [*history, {"role": "user", "content": next_user}], tokenize=False, add_generation_prompt=True, **kwargs
    )
    if not opened.startswith(closed):
        raise ValueError("the chat template renders a longer chat with a different prefix; cannot append turns")
    last = history[-1]["content"]
    at = closed.rfind(last.strip()) if last.strip() else len(closed)
    end_marker = closed[at + len(last.strip()) :] if at >= 0 else ""
    eos = tokenizer.eos_token or ""
    if generated_eos and eos and end_marker.startswith(eos):
        end_marker = end_marker[len(eos) :]
    return tokenizer.encode(end_marker + opened[len(closed) :], add_special_tokens=False)
