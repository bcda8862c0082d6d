"""Reading a rollouts JSONL file: one group per line, checked before any scoring starts.

Line format: ``{"query": str | [chat messages], "responses": [str, ...], "id"?: str}``.
A line without an ``id`` gets one derived from its content, so a rerun of the
same file finds the same ids and resumes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cerm_reward.errors import InputError
from cerm_reward.judges.queries import InvalidInputError, render_query, validate_responses


@dataclass(frozen=True)
class RolloutGroup:
    id: str
    line: int
    query: str | list[dict[str, Any]]
    responses: list[str]


class RolloutFileError(InputError):
    """The file has invalid lines; ``problems`` lists (line number, message)."""

    def __init__(self, path: Path, problems: list[tuple[int, str]]) -> None:
        shown = "\n".join(f"  {path}:{line}: {message}" for line, message in problems[:20])
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} invalid line(s) in {path}:\n{shown}{more}")
        self.problems = problems


def content_id(query: Any, responses: list[str]) -> str:
    payload = json.dumps({"query": query, "responses": responses}, sort_keys=True, ensure_ascii=False)
    return "g-" + hashlib.sha256(payload.encode()).hexdigest()[:16]


def parse_line(text: str) -> tuple[str | None, Any, list[str]]:
    """(id or None, query, responses) of one line; raises ``InvalidInputError`` naming the field."""
    try:
        record = json.loads(text)
    except json.JSONDecodeError as error:
        raise InvalidInputError(f"not valid JSON ({error.msg} at column {error.colno})") from None
    if not isinstance(record, dict):
        raise InvalidInputError(f"expected a JSON object, got {type(record).__name__}")
    for required in ("query", "responses"):
        if required not in record:
            raise InvalidInputError(f"missing field {required!r}")
    render_query(record["query"])
    responses = validate_responses(record["responses"])
    group_id = record.get("id")
    if group_id is not None and (not isinstance(group_id, (str, int)) or isinstance(group_id, bool)):
        raise InvalidInputError(f"id: expected a string, got {type(group_id).__name__}")
    return (str(group_id) if group_id is not None else None), record["query"], responses


def read_rollouts(path: Path, *, skip_invalid: bool = False) -> tuple[list[RolloutGroup], list[tuple[int, str]]]:
    """All groups of ``path`` and the problems found.

    Raises :class:`RolloutFileError` on any invalid line unless ``skip_invalid``.
    Duplicate ids are always an error: resuming relies on them.
    """
    groups: list[RolloutGroup] = []
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                problems.append((number, f"not UTF-8 text (byte {raw[error.start]:#04x} at column {error.start + 1})"))
                continue
            if not text.strip():
                continue
            try:
                group_id, query, responses = parse_line(text)
            except InvalidInputError as error:
                problems.append((number, str(error)))
                continue
            group_id = group_id or content_id(query, responses)
            if group_id in seen:
                problems.append((number, f"duplicate id {group_id!r} (first on line {seen[group_id]})"))
                continue
            seen[group_id] = number
            groups.append(RolloutGroup(group_id, number, query, responses))
    duplicates = [p for p in problems if p[1].startswith("duplicate id")]
    if problems and (not skip_invalid or duplicates):
        raise RolloutFileError(path, problems)
    return groups, problems
