"""Append-only, resumable JSONL output keyed by (group id, response index).

Each group's lines go out in one write followed by flush and fsync, so a killed
run leaves whole groups behind, plus at most one partial last line, which the
next run cuts off before appending. A rerun skips every (id, index) already
present: nothing is lost and nothing is written twice.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cerm_reward.errors import InputError
from cerm_reward.jsonl import append_jsonl, complete_lines, loads_line, truncate


class ResumableJsonlWriter:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[tuple[str, int]] = set()
        self.repaired_tail = False
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self._load_existing()
        self._handle = path.open("ab")

    def _load_existing(self) -> None:
        """Note every line already written; then cut a partial last line (it will be redone).

        A file that holds anything but score lines is refused before it is touched.
        """
        data = self.path.read_bytes()
        lines, keep = complete_lines(data)
        for line in lines:
            if line.is_blank():
                continue
            record = loads_line(line.text, path=self.path, number=line.number)
            try:
                self.done.add((str(record["id"]), int(record["response_index"])))
            except (KeyError, TypeError, ValueError) as error:
                raise InputError(
                    f"{self.path}:{line.number}: not a cerm score output line ({error}); refusing to append"
                ) from None
        if keep != len(data):
            truncate(self.path, keep)
            self.repaired_tail = True

    def is_done(self, group_id: str, response_index: int) -> bool:
        return (group_id, response_index) in self.done

    def write_group(self, records: list[dict[str, Any]]) -> int:
        """Write the records not yet present; returns how many were written."""
        fresh = [r for r in records if (str(r["id"]), int(r["response_index"])) not in self.done]
        if not fresh:
            return 0
        append_jsonl(self._handle, fresh)
        self.done.update((str(r["id"]), int(r["response_index"])) for r in fresh)
        return len(fresh)

    def close(self) -> None:
        self._handle.close()

    def __enter__(self) -> ResumableJsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
