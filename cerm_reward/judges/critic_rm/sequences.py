"""The token sequence Critic-RM reads: the critique turn's prompt, then the critique as the reply.

Training and inference must build exactly the same sequence, or the head scores a layout it
never saw; both call :func:`encode`. The prompt is rendered with the model's chat template (as
the engine that writes critiques renders it), the critique follows as the assistant turn, and
the head reads the hidden state of the sequence's last token. Long texts are cut to their token
limits first, so one long response cannot push the critique out of the window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from cerm_reward.judges.critic_rm.templates import CriticTemplate

IGNORE_INDEX = -100
"""Label of a token the critique NLL skips (PyTorch's cross-entropy convention)."""


@dataclass(frozen=True)
class InputLimits:
    """Token limits of each part; saved with the head so inference cuts texts as training did."""

    max_query_tokens: int
    max_response_tokens: int
    max_critique_tokens: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]
    """The critique's tokens (end of turn included) when the LM trains on it, ``IGNORE_INDEX`` elsewhere."""


def cut_to_tokens(tokenizer: Any, text: str, max_tokens: int) -> str:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return text if len(ids) <= max_tokens else tokenizer.decode(ids[:max_tokens])


def encode(
    tokenizer: Any,
    template: CriticTemplate,
    limits: InputLimits,
    query: str,
    response: str,
    critique: str,
    *,
    train_lm: bool,
) -> Encoded:
    """(prompt, response, critique) as token ids, with LM labels on the critique when ``train_lm``."""
    messages = template.critique_messages(
        cut_to_tokens(tokenizer, query, limits.max_query_tokens),
        cut_to_tokens(tokenizer, response, limits.max_response_tokens),
    )
    critique = cut_to_tokens(tokenizer, critique, limits.max_critique_tokens)
    prefix_text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    full_text = tokenizer.apply_chat_template(
        [*messages, {"role": "assistant", "content": critique}], tokenize=False, add_generation_prompt=False
    )
    if not full_text.startswith(prefix_text):
        raise ValueError("the chat template does not render the prompt as a prefix of prompt + reply")
    prefix_ids = tokenizer(prefix_text, add_special_tokens=False)["input_ids"]
    reply_ids = tokenizer(full_text[len(prefix_text) :], add_special_tokens=False)["input_ids"]
    labels = [IGNORE_INDEX] * len(prefix_ids) + (list(reply_ids) if train_lm else [IGNORE_INDEX] * len(reply_ids))
    return Encoded(list(prefix_ids) + list(reply_ids), labels)
