"""Reports as JSON (for machines and later comparison) and Markdown tables (for docs and reviews).

Every table states the protocol, the tie convention and the failure counts next to the
accuracy, because a number without them cannot be compared with a published one; every report
also says which items the scores matched (:class:`~cerm_reward.evaluation.matching.MatchAccount`)
and which items failed, by kind, because an accuracy over a half-matched file looks like any other.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cerm_reward.evaluation.matching import MatchAccount, shown
from cerm_reward.evaluation.metrics import BenchmarkReport


def _pct(value: float | None) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{100 * value:.1f}"


def _failures(failures: dict[str, int]) -> str:
    return ", ".join(f"{kind} {count}" for kind, count in failures.items()) or "none"


def _metric(value: float) -> str:
    if math.isnan(value):
        return "–"
    return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"


def report_to_dict(
    reports: Sequence[BenchmarkReport], *, meta: dict[str, Any] | None = None, match: MatchAccount | None = None
) -> dict[str, Any]:
    """``{"meta": ..., "match": ..., "benchmarks": [report, ...]}`` with NaN written as null."""

    def clean(value: Any) -> Any:
        if isinstance(value, float) and math.isnan(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value

    body = {"meta": dict(meta or {}), "match": match.to_dict() if match is not None else None}
    return clean({**body, "benchmarks": [r.to_dict() for r in reports]})


def write_json(
    reports: Sequence[BenchmarkReport],
    path: str | Path,
    *,
    meta: dict[str, Any] | None = None,
    match: MatchAccount | None = None,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(report_to_dict(reports, meta=meta, match=match), indent=2, ensure_ascii=False)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def match_markdown(match: MatchAccount) -> str:
    """The match-accounting block: what the scores covered, before any number."""
    lines = ["### Scores matched", "", f"- source: {match.source}", f"- items matched: {match.matched} of {match.items}"]
    if match.rows is not None:
        lines += [
            f"- rows in the file: {match.rows}",
            f"- missing (scored as `missing_score` failures): {len(match.missing_ids)}"
            + (f" ({shown(match.missing_ids)})" if match.missing_ids else ""),
            f"- unknown ids (no such item in the data): {len(match.unknown_ids)}"
            + (f" ({shown(match.unknown_ids)})" if match.unknown_ids else ""),
            f"- duplicate rows with the same scores: {match.duplicate_rows} (a duplicate with other scores is refused)",
        ]
    return "\n".join(lines) + "\n"


def failure_ids_lines(report: BenchmarkReport) -> list[str]:
    """``kind (n): id, id, ...`` per failure kind, for the Markdown report and the console."""
    return [f"{kind} ({len(ids)}): {shown(ids)}" for kind, ids in report.failure_ids.items()]


def markdown(report: BenchmarkReport) -> str:
    """One benchmark as a Markdown section: header facts, then a row per subset and the overall row."""
    metric_keys = sorted({key for s in report.subsets for key in s.metrics})
    alt = report.alt_convention is not None
    header = ["subset", "n", "accuracy"] + (["acc. (alt ties)"] if alt else [])
    header += ["acc. w/o failures", "ties", "failed", "failures by kind", *metric_keys]
    lines = [
        f"### {report.benchmark}",
        "",
        f"- protocol: {report.protocol}",
        f"- ties: {report.tie_convention}" + (f"; alt: {report.alt_convention}" if alt else ""),
        f"- overall: {report.overall_rule}",
        "- failures: an item whose comparison needs a missing score counts as incorrect; counted by kind below",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" if i == 0 else "---:" for i in range(len(header))) + "|",
    ]
    for s in report.subsets:
        row = [s.name, str(s.n), _pct(s.accuracy)] + ([_pct(s.accuracy_alt)] if alt else [])
        row += [_pct(s.accuracy_without_failures), str(s.ties), str(s.n_failed), _failures(s.failures)]
        row += [_metric(s.metrics[k]) if k in s.metrics else "–" for k in metric_keys]
        lines.append("| " + " | ".join(row) + " |")
    total = ["**overall**", str(report.n), f"**{_pct(report.overall)}**"] + ([_pct(report.overall_alt)] if alt else [])
    total += [_pct(report.overall_without_failures), str(report.ties), str(report.n_failed), _failures(report.failures)]
    total += ["" for _ in metric_keys]
    lines.append("| " + " | ".join(total) + " |")
    if report.metrics:
        lines += ["", "| metric | value |", "|---|---:|"]
        lines += [f"| {key} | {_metric(value)} |" for key, value in report.metrics.items()]
    if report.failure_ids:
        lines += ["", "Failed items by kind:", ""] + [f"- {line}" for line in failure_ids_lines(report)]
    if report.notes:
        lines += [""] + [f"- note: {note}" for note in report.notes]
    return "\n".join(lines) + "\n"


def write_markdown(
    reports: Sequence[BenchmarkReport],
    path: str | Path,
    *,
    title: str = "Evaluation report",
    match: MatchAccount | None = None,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    body = "\n".join(([match_markdown(match)] if match is not None else []) + [markdown(r) for r in reports])
    path.write_text(f"# {title}\n\nAccuracies in percent.\n\n{body}", encoding="utf-8")
    return path
