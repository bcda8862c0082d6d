"""Resumable runs: an append-only JSONL file of finished items, and a score cache.

A benchmark run with a generative judge takes hours; it must survive being killed.
:class:`ResultStore` writes one line per finished item and makes it durable (flush +
fsync) before the item counts as done, so a killed run loses at most the items in flight.
On reopening it reads the good lines back and cuts a torn last line (the one a kill
interrupted), so the resumed run scores exactly the items that are missing: none twice,
none lost.

:class:`ScoreCache` is keyed by everything a score depends on, so an identical input met
again (in another run, another benchmark, a repeated row) reuses its score instead of paying
for another judge call, and nothing else ever does: a pointwise judge's score depends on
(judge identity, prompt, response) (:func:`response_key`), a group-dependent judge's on the
whole group and the response's position in it (:func:`group_key`).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from cerm_reward.data.items import EvalItem, ResponseScore, ScoredItem
from cerm_reward.errors import CermError, InputError
from cerm_reward.jsonl import append_jsonl, complete_lines, loads_line, sync, truncate


class StoreError(CermError):
    """The store file is damaged somewhere other than its last line, or used inconsistently."""


class ResultStore:
    """Append-only JSONL of finished items, keyed by item id.

    One line per item::

        {"id": ..., "benchmark": ..., "subset": ..., "judge": <scorer identity>,
         "scores": [{"score", "failure", "detail", "length"}, ...]}

    ``fsync_every`` trades durability for speed: 1 (default) syncs every line; n syncs every
    n lines (a kill may then lose up to n-1 finished items, which a resume scores again).
    Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, path: str | Path, *, fsync_every: int = 1) -> None:
        if fsync_every < 1:
            raise ValueError("fsync_every must be >= 1")
        self.path = Path(path)
        self.fsync_every = fsync_every
        self.truncated_bytes = 0
        """Bytes of a torn last line cut off when the file was opened."""
        self._records: dict[str, dict[str, Any]] = {}
        self._pending = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._recover()
        self._file = open(self.path, "ab")  # noqa: SIM115 - lives as long as the store

    def _recover(self) -> None:
        """Read the good lines; drop a torn last line and truncate the file to the last newline."""
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        lines, good_end = complete_lines(data)
        for line in lines:
            if line.is_blank():
                continue
            try:
                record = loads_line(line.text, path=self.path, number=line.number)
                if not isinstance(record, dict) or "id" not in record:
                    raise InputError(f"{self.path}:{line.number}: not a record")
            except InputError as exc:
                if data[line.end :].strip():
                    raise StoreError(f"{self.path}: damaged line at byte {line.start} ({exc}); not a torn tail") from exc
                good_end = line.start  # a complete but unreadable last line: treat like a torn tail
                break
            if record["id"] in self._records:
                raise StoreError(f"{self.path}: id {record['id']!r} appears twice")
            self._records[record["id"]] = record
        if good_end < len(data):
            self.truncated_bytes = len(data) - good_end
            truncate(self.path, good_end)

    # -- reading --

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._records

    def __len__(self) -> int:
        return len(self._records)

    @property
    def ids(self) -> set[str]:
        return set(self._records)

    def get(self, item_id: str) -> dict[str, Any] | None:
        return self._records.get(item_id)

    def records(self) -> Iterator[dict[str, Any]]:
        return iter(list(self._records.values()))

    def scores(self, item_id: str) -> list[ResponseScore]:
        record = self._records[item_id]
        return [ResponseScore.from_dict(s) for s in record["scores"]]

    def scored_items(self, items: Iterable[EvalItem]) -> list[ScoredItem]:
        """The given items that are finished, with their stored scores, in the given order."""
        return [ScoredItem(item, self.scores(item.id)) for item in items if item.id in self._records]

    # -- writing --

    def append(self, item: EvalItem, scores: Sequence[ResponseScore], *, judge: str, extra: dict[str, Any] | None = None) -> None:
        """Record a finished item; an id already stored is an error (it would be a duplicate)."""
        if item.id in self._records:
            raise StoreError(f"{self.path}: {item.id!r} is already stored")
        if len(scores) != len(item.responses):
            raise ValueError(f"{item.id}: {len(scores)} scores for {len(item.responses)} responses")
        record: dict[str, Any] = {
            "id": item.id,
            "benchmark": item.benchmark,
            "subset": item.subset,
            "judge": judge,
            "scores": [s.to_dict() for s in scores],
        }
        if extra:
            record.update(extra)
        append_jsonl(self._file, [record], compact=True, durable=False)
        self._pending += 1
        if self._pending >= self.fsync_every:
            self.sync()
        self._records[item.id] = record

    def sync(self) -> None:
        """Flush and fsync what was appended."""
        if self._file.closed:
            return
        sync(self._file)
        self._pending = 0

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _digest(parts: list[Any]) -> str:
    """SHA-256 of the JSON-encoded parts, so field boundaries cannot blur."""
    payload = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def response_key(judge: str, prompt: str, response: str) -> str:
    """The key of a pointwise judge's score: (judge identity, prompt, response) (three parts, where a
    group key has five, so the two kinds never meet; caches written before group keys stay valid)."""
    return _digest([judge, prompt, response])


def group_key(judge: str, prompt: str, responses: Sequence[str], position: int) -> str:
    """The key of a group-dependent judge's score: (judge identity, prompt, every response in order, position).

    The same text in another group, or at another position of the same group, is another key.
    """
    return _digest(["group", judge, prompt, list(responses), position])


class ScoreCache:
    """SQLite cache of response scores keyed by :func:`response_key` or :func:`group_key`.

    Only scores are cached by default: a failure (engine error, timeout, unparsable
    evaluation) may not happen again, so it is retried next time. Pass
    ``cache_failures=True`` to cache failed results too (for a deterministic scorer).
    ``hits`` and ``misses`` count lookups since opening.
    """

    def __init__(self, path: str | Path, *, cache_failures: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.cache_failures = cache_failures
        self.hits = 0
        self.misses = 0
        self._db = sqlite3.connect(self.path)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS scores (key TEXT PRIMARY KEY, judge TEXT NOT NULL, score REAL,"
            " failure TEXT, detail TEXT, length INTEGER)"
        )
        self._db.commit()

    def get(self, key: str) -> ResponseScore | None:
        row = self._db.execute("SELECT score, failure, detail, length FROM scores WHERE key = ?", (key,)).fetchone()
        if row is None:
            self.misses += 1
            return None
        self.hits += 1
        return ResponseScore(score=row[0], failure=row[1], detail=row[2], length=row[3])

    def put(self, key: str, judge: str, result: ResponseScore) -> bool:
        """Store a result under ``key`` (``judge`` is kept beside it for inspection); returns whether
        it was stored (failures are skipped unless enabled)."""
        if result.failure is not None and not self.cache_failures:
            return False
        self._db.execute(
            "INSERT OR REPLACE INTO scores (key, judge, score, failure, detail, length) VALUES (?, ?, ?, ?, ?, ?)",
            (key, judge, result.score, result.failure, result.detail, result.length),
        )
        self._db.commit()
        return True

    def __len__(self) -> int:
        return self._db.execute("SELECT COUNT(*) FROM scores").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ScoreCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
