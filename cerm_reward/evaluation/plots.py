"""PNG figures of an evaluation: where a judge is right, how its scores separate, and what
length does to them.

matplotlib (the ``eval`` extra) is imported on first use with the Agg backend, so the
rest of the harness works without it and plots render on a machine with no display.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cerm_reward.data.items import ScoredItem, word_count
from cerm_reward.evaluation.metrics import BenchmarkReport
from cerm_reward.evaluation.needle import NeedleGrid


def plots_available() -> bool:
    """Whether matplotlib (the ``eval`` extra) is installed, without importing it."""
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ImportError("plots need matplotlib: pip install 'cerm-reward[eval]'") from exc
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    _pyplot().close(fig)
    return path


def plot_subset_accuracy(report: BenchmarkReport, path: str | Path) -> Path:
    """Bar chart of accuracy per subset, with the overall as a dashed line and n under each bar."""
    plt = _pyplot()
    names = [s.name for s in report.subsets]
    values = [100 * s.accuracy for s in report.subsets]
    fig, ax = plt.subplots(figsize=(max(4.0, 1.0 + 0.9 * len(names)), 3.6))
    bars = ax.bar(range(len(names)), values, color="#4c72b0")
    for bar in bars:
        ax.annotate(
            f"{bar.get_height():.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8
        )
    ax.axhline(100 * report.overall, color="#c44e52", linestyle="--", linewidth=1, label=f"overall {100 * report.overall:.1f}")
    ax.set_xticks(range(len(names)), [f"{n}\n(n={s.n})" for n, s in zip(names, report.subsets, strict=True)], fontsize=8)
    ax.set_ylim(0, 105)
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{report.benchmark}: accuracy per subset", fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    return _save(fig, path)


def _chosen_rejected_scores(scored: Sequence[ScoredItem]) -> tuple[list[float], list[float]]:
    chosen, rejected = [], []
    for s in scored:
        values = s.values
        chosen += [values[i] for i in s.item.chosen if values[i] is not None]
        rejected += [values[i] for i in s.item.rejected if values[i] is not None]
    return chosen, rejected  # type: ignore[return-value]


def plot_score_distributions(scored: Sequence[ScoredItem], path: str | Path, *, title: str = "") -> Path:
    """Overlaid histograms of chosen and rejected scores (failed responses left out, counted in the legend)."""
    plt = _pyplot()
    chosen, rejected = _chosen_rejected_scores(scored)
    failed = sum(1 for s in scored for r in s.scores if r.score is None)
    fig, ax = plt.subplots(figsize=(5, 3.6))
    every = chosen + rejected
    bins: Any = 21
    if every and all(float(v).is_integer() or (2 * v).is_integer() for v in every):
        low, high = min(every), max(every)
        bins = [low - 0.25 + 0.5 * k for k in range(int((high - low) / 0.5) + 2)]  # one bin per half point
    ax.hist(chosen, bins=bins, alpha=0.6, label=f"chosen (n={len(chosen)})", color="#55a868")
    ax.hist(rejected, bins=bins, alpha=0.6, label=f"rejected (n={len(rejected)})", color="#c44e52")
    ax.set_xlabel("score")
    ax.set_ylabel("responses")
    ax.set_title(title or "chosen vs rejected scores" + (f" ({failed} failed)" if failed else ""), fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_score_vs_length(scored: Sequence[ScoredItem], path: str | Path, *, title: str = "") -> Path:
    """Scatter of score against response length (the scorer's tokens when given, else words)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.6))
    unit = "tokens"
    for label, color, attr in (("chosen", "#55a868", "chosen"), ("rejected", "#c44e52", "rejected")):
        xs, ys = [], []
        for s in scored:
            for i in getattr(s.item, attr):
                result = s.scores[i]
                if result.score is None:
                    continue
                if result.length is None:
                    unit = "words"
                xs.append(result.length if result.length is not None else word_count(s.item.responses[i]))
                ys.append(result.score)
        ax.scatter(xs, ys, s=8, alpha=0.5, label=label, color=color)
    ax.set_xlabel(f"response length ({unit})")
    ax.set_ylabel("score")
    ax.set_title(title or "score vs length", fontsize=10)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_needle_heatmap(grid: NeedleGrid, path: str | Path, *, title: str = "") -> Path:
    """Heatmap of needle accuracy, length bucket (rows) x position bucket (columns), n in each cell."""
    plt = _pyplot()
    import math

    data = [[math.nan if v is None else 100 * v for v in row] for row in grid.accuracy]
    fig, ax = plt.subplots(figsize=(5.6, 4.2))
    image = ax.imshow(data, vmin=0, vmax=100, cmap="viridis", aspect="auto", origin="lower")
    for i, row in enumerate(grid.accuracy):
        for j, value in enumerate(row):
            text = "–" if value is None else f"{100 * value:.0f}\nn={grid.counts[i][j]}"
            ax.text(j, i, text, ha="center", va="center", fontsize=7, color="white")
    edges = grid.position_edges
    ax.set_xticks(range(len(edges) - 1), [f"{edges[k]:.1f}-{edges[k + 1]:.1f}" for k in range(len(edges) - 1)], fontsize=7)
    lengths = grid.length_edges
    ax.set_yticks(
        range(len(lengths) - 1), [f"{lengths[k]:.0f}-{lengths[k + 1]:.0f}" for k in range(len(lengths) - 1)], fontsize=7
    )
    ax.set_xlabel("relative position of the needle")
    ax.set_ylabel("response length (words)")
    ax.set_title(title or "needle accuracy (%)", fontsize=10)
    fig.colorbar(image, ax=ax, label="accuracy (%)")
    return _save(fig, path)


def plot_report(report: BenchmarkReport, scored: Sequence[ScoredItem], directory: str | Path) -> list[Path]:
    """The three standard figures of one benchmark into ``directory`` (``<benchmark>-*.png``)."""
    directory = Path(directory)
    name = report.benchmark
    return [
        plot_subset_accuracy(report, directory / f"{name}-accuracy.png"),
        plot_score_distributions(scored, directory / f"{name}-scores.png", title=f"{name}: chosen vs rejected scores"),
        plot_score_vs_length(scored, directory / f"{name}-length.png", title=f"{name}: score vs length"),
    ]
