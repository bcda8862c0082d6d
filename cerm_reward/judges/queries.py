"""Validation of judge inputs and rendering of a chat-style query into the ``{query}`` slot."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cerm_reward.errors import InputError

Query = str | Sequence[dict[str, Any]]
_ROLE_LABELS = {"system": "System", "user": "User", "assistant": "Assistant"}


class InvalidInputError(InputError):
    """A query or response the judge cannot take; the message names the field."""


def render_query(query: Query) -> str:
    """A string query as is; a chat as its text.

    A chat of one user message becomes that message's content. A longer chat is
    rendered as ``Role: content`` paragraphs, since the published prompt has a
    single query slot.
    """
    if isinstance(query, str):
        if not query.strip():
            raise InvalidInputError("query: must be a non-empty string or chat")
        return query
    if not isinstance(query, Sequence) or not query:
        raise InvalidInputError(f"query: expected a string or a non-empty list of chat messages, got {type(query).__name__}")
    turns: list[tuple[str, str]] = []
    for position, message in enumerate(query):
        if not isinstance(message, dict) or not isinstance(message.get("content"), str):
            raise InvalidInputError(f"query[{position}]: expected {{'role': str, 'content': str}}")
        role = message.get("role")
        if role not in _ROLE_LABELS:
            raise InvalidInputError(f"query[{position}].role: expected one of {sorted(_ROLE_LABELS)}, got {role!r}")
        turns.append((role, message["content"]))
    if len(turns) == 1 and turns[0][0] == "user":
        return render_query(turns[0][1])
    text = "\n\n".join(f"{_ROLE_LABELS[role]}: {content}" for role, content in turns)
    if not any(content.strip() for _, content in turns):
        raise InvalidInputError("query: every message is empty")
    return text


def validate_responses(responses: Any) -> list[str]:
    if isinstance(responses, str) or not isinstance(responses, Sequence):
        raise InvalidInputError(f"responses: expected a list of strings, got {type(responses).__name__}")
    if not responses:
        raise InvalidInputError("responses: the list is empty")
    for position, response in enumerate(responses):
        if not isinstance(response, str):
            raise InvalidInputError(f"responses[{position}]: expected a string, got {type(response).__name__}")
    return list(responses)
