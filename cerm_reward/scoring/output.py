"""Append-only, resumable JSONL output keyed by (group id, response index).

Each group's lines go out in one write followed by flush and fsync, so a killed
run leaves whole groups behind, plus at most one partial last line, which the
next run cuts off before appending. A rerun skips every (id, index) already
present: nothing is lost and nothing is written twice.

One run at a time per output: the writer holds an exclusive lock (``<output>.lock``, holding the
writer's PID) from before it reads the file until it closes, so a second run on the same output
is refused naming the first one's PID instead of writing every line a second time.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from typing import Any

from cerm_reward.errors import InputError
from cerm_reward.jsonl import append_jsonl, complete_lines, loads_line, truncate


class OutputLock:
    """An exclusive, non-blocking lock on ``<path>.lock``; the file says which process holds it."""

    def __init__(self, path: Path) -> None:
        self.path = path.with_name(path.name + ".lock")
        while True:
            handle = self.path.open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "?"
                handle.close()
                raise InputError(
                    f"{path} is being written by another cerm score (PID {holder}); wait for it or pick another output"
                ) from None
            if self._still_linked(handle):
                break
            handle.close()  # the holder removed the file as we opened it: lock the new one
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        self._handle = handle

    def _still_linked(self, handle: Any) -> bool:
        try:
            return os.stat(self.path).st_ino == os.fstat(handle.fileno()).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # while still locked: a newcomer locks a fresh file
        self._handle.close()


class ResumableJsonlWriter:
    def __init__(self, path: Path) -> None:
        """Lock, read and open ``path`` for appending; a path that cannot be written is an :class:`InputError`."""
        self.path = path
        self.done: set[tuple[str, int]] = set()
        self.repaired_tail = False
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._lock = OutputLock(path)
        except OSError as error:
            raise InputError(f"{path}: cannot write the output here ({error.strerror or error})") from None
        try:
            if path.exists():
                self._load_existing()
            self._handle = path.open("ab")
        except OSError as error:
            self._lock.release()
            raise InputError(f"{path}: cannot write the output here ({error.strerror or error})") from None
        except BaseException:
            self._lock.release()
            raise

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
        self._lock.release()

    def __enter__(self) -> ResumableJsonlWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
