"""JSON Lines, read and written in one place: one JSON value a line, UTF-8, ``\\n``-terminated.

Readers name the file and line of a value that does not parse (an :class:`InputError`, which
the CLI reports as the user's to fix), so no caller reports a bad line its own way. Writers
keep non-ASCII text as is (``ensure_ascii=False``): prompts and responses stay readable.

The append-only files of a resumable run (``cerm score`` output, ``cerm eval``'s result store)
also need to survive a kill: :func:`append_jsonl` makes a batch of lines one write followed by
flush and fsync, so a kill leaves whole lines plus at most one torn last line, and
:func:`complete_lines` / :func:`truncate` let the next run find that tail and cut it off.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from cerm_reward.errors import InputError


def dumps_line(value: Any, *, compact: bool = False) -> str:
    """One line of JSON with its newline; ``compact`` drops the spaces after separators."""
    separators = (",", ":") if compact else None
    return json.dumps(value, ensure_ascii=False, separators=separators) + "\n"


def loads_line(text: str | bytes, *, path: str | Path, number: int) -> Any:
    """The value on one line; a line that is not JSON is an :class:`InputError` naming ``path:number``."""
    try:
        return json.loads(text)
    except ValueError as error:  # JSONDecodeError, or bytes that are not UTF-8
        reason = error.msg if isinstance(error, json.JSONDecodeError) else str(error)
        raise InputError(f"{path}:{number}: not JSON ({reason})") from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(line number, value)`` for every non-blank line, numbered from 1 as an editor shows them."""
    with Path(path).open("rb") as handle:  # bytes: a line that is not UTF-8 is then an InputError naming it
        for number, text in enumerate(handle, 1):
            if text.strip():
                yield number, loads_line(text, path=path, number=number)


def write_jsonl(values: Iterable[Any], path: str | Path) -> None:
    """Replace ``path`` with one line per value, making its folder if needed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        handle.writelines(dumps_line(value) for value in values)


def append_jsonl(handle: IO[bytes], values: Iterable[Any], *, compact: bool = False, durable: bool = True) -> None:
    """Append the values' lines to a binary handle as one write; ``durable`` then flushes and fsyncs.

    One write per batch is what lets a reader treat a torn tail as the only damage a kill can do.
    """
    handle.write("".join(dumps_line(value, compact=compact) for value in values).encode("utf-8"))
    if durable:
        sync(handle)


def sync(handle: IO[bytes]) -> None:
    """Flush and fsync: what was appended survives a kill or a power cut from here on."""
    handle.flush()
    os.fsync(handle.fileno())


@dataclass(frozen=True)
class Line:
    """One newline-terminated line of an append-only file."""

    number: int
    """1-based, as an editor shows it."""
    start: int
    """Byte offset where the line starts."""
    end: int
    """Byte offset just after its newline."""
    text: bytes

    def is_blank(self) -> bool:
        return not self.text.strip()


def complete_lines(data: bytes) -> tuple[list[Line], int]:
    """The newline-terminated lines of ``data`` and the length they cover.

    Bytes after the last newline are a torn tail (a write a kill interrupted): they are not a
    line, and a resumable writer cuts them off (:func:`truncate`) before appending.
    """
    lines: list[Line] = []
    start = 0
    while (newline := data.find(b"\n", start)) != -1:
        lines.append(Line(len(lines) + 1, start, newline + 1, data[start:newline]))
        start = newline + 1
    return lines, start


def truncate(path: str | Path, length: int) -> None:
    """Cut ``path`` to ``length`` bytes, durably."""
    with Path(path).open("r+b") as handle:
        handle.truncate(length)
        sync(handle)
