"""Match accounting: which of the items to score a source of scores covers.

A file of precomputed scores is matched to the benchmark's items by id. A file for another
dataset, one without ids, or one covering half the items would otherwise produce a confident
accuracy over failures; so every report carries this account next to its numbers, and the
command refuses a file that matches nothing (or, unless asked, only part of the items).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cerm_reward.data.items import EvalItem

SHOWN_IDS = 10
"""Ids a one-line summary shows before "and N more" (the JSON report lists them all)."""


def shown(ids: Sequence[str], limit: int = SHOWN_IDS) -> str:
    """``a, b, c`` or ``a, b, ... and 7 more``: ids short enough for a console line."""
    head = ", ".join(ids[:limit])
    return head + (f" and {len(ids) - limit} more" if len(ids) > limit else "")


@dataclass(frozen=True)
class MatchAccount:
    """How a source of scores met the selected items."""

    source: str
    """The scores file, or ``judge`` when a judge scores every item itself."""
    items: int
    """Items selected for the run."""
    matched: int
    """Selected items the source has scores for."""
    missing_ids: tuple[str, ...]
    """Selected items the source has no row for (scored as ``missing_score`` failures)."""
    unknown_ids: tuple[str, ...]
    """Row ids that name no item of the data at all (rows of unselected items are not unknown)."""
    duplicate_rows: int = 0
    """Rows repeating an id with the same scores (accepted; a repeat with other scores is refused)."""
    rows: int | None = None
    """Rows in the scores file (``None`` for a judge)."""

    @classmethod
    def complete(cls, items: Sequence[EvalItem]) -> MatchAccount:
        """A judge's account: it scores every item it is given."""
        return cls(source="judge", items=len(items), matched=len(items), missing_ids=(), unknown_ids=())

    @property
    def is_partial(self) -> bool:
        return 0 < self.matched < self.items

    def summary(self) -> str:
        """One line: matched of items, and what did not match."""
        line = f"{self.source}: {self.matched} of {self.items} items matched"
        if self.rows is None:
            return line
        line += f" ({self.rows} rows); missing {len(self.missing_ids)}, unknown ids {len(self.unknown_ids)}"
        line += f", duplicate rows {self.duplicate_rows} (same scores; conflicting duplicates are refused)"
        if self.missing_ids:
            line += f"; missing: {shown(self.missing_ids)}"
        if self.unknown_ids:
            line += f"; unknown: {shown(self.unknown_ids)}"
        return line

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "items": self.items,
            "matched": self.matched,
            "missing": len(self.missing_ids),
            "unknown": len(self.unknown_ids),
            "duplicate_rows": self.duplicate_rows,
            "rows": self.rows,
            "missing_ids": list(self.missing_ids),
            "unknown_ids": list(self.unknown_ids),
        }
