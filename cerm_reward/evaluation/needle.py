"""Long-form RewardBench's needle-in-a-haystack test: minimal pairs inside long responses.

A long base response is split into chunks of at least 30 words (at paragraph and sentence
boundaries, so an edit never straddles a half sentence); 4 chunks per 1,000 words are
chosen with a seeded RNG, and for each a pair of responses is built that differ only in
that chunk: the chosen one carries the good version (a true fact, a benign phrase, the
original text), the rejected one the bad version. Each pair records the response's word
count and where the chunk sits (0 = start, 1 = end), so accuracy can be read by length
and by position, which is where generative judges are reported to "lose the middle".
(Long-form RewardBench, Huang, He et al., AAAI 2026; docs/method.md §3.)

Positions are measured in words by default. The paper speaks of token positions; pass
``count_units`` (a callable counting a text's tokens, e.g. a tokenizer's encode + len) to
measure in tokens instead.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cerm_reward.data.items import EvalItem, ScoredItem, content_id, word_count
from cerm_reward.data.loaders import FormatError, read_rows

MIN_CHUNK_WORDS = 30
CHUNKS_PER_1000_WORDS = 4
NEEDLE_BENCHMARK = "needle"

_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n\s*")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+")


@dataclass(frozen=True)
class Chunk:
    """A span ``text[start:end]`` of the base response."""

    index: int
    start: int
    end: int
    text: str
    words: int


def _sentence_spans(text: str) -> list[tuple[int, int]]:
    """(start, end) of each sentence, outer whitespace excluded; a paragraph break always ends one."""
    spans: list[tuple[int, int]] = []
    paragraph_start = 0
    breaks = [(m.start(), m.end()) for m in _PARAGRAPH_BREAK.finditer(text)] + [(len(text), len(text))]
    for break_start, break_end in breaks:
        paragraph = text[paragraph_start:break_start]
        cursor = 0
        ends = [(m.start(), m.end()) for m in _SENTENCE_END.finditer(paragraph)] + [(len(paragraph), len(paragraph))]
        for end, next_start in ends:
            piece = paragraph[cursor:end]
            if piece.strip():
                lead = len(piece) - len(piece.lstrip())
                spans.append((paragraph_start + cursor + lead, paragraph_start + cursor + len(piece.rstrip())))
            cursor = next_start
        paragraph_start = break_end
    return spans


def split_chunks(text: str, *, min_words: int = MIN_CHUNK_WORDS) -> list[Chunk]:
    """Split ``text`` into chunks of at least ``min_words`` words, at sentence boundaries.

    Sentences (a paragraph break always ends one) accumulate into a chunk until it has
    ``min_words`` words, so a chunk never cuts a sentence or a paragraph's last sentence in
    half. A short remainder joins the previous chunk. A text shorter than ``min_words`` yields no
    chunk. The text between chunks (whitespace) belongs to none, so replacing a chunk's span
    leaves every other character of the response as it was.
    """
    spans = _sentence_spans(text)
    groups: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    for span in spans:
        current.append(span)
        if word_count(text[current[0][0] : span[1]]) >= min_words:
            groups.append(current)
            current = []
    if current:
        if groups:
            groups[-1].extend(current)
        else:
            groups.append(current)
    chunks = []
    for group in groups:
        start, end = group[0][0], group[-1][1]
        words = word_count(text[start:end])
        if words >= min_words:
            chunks.append(Chunk(len(chunks), start, end, text[start:end], words))
    return chunks


def chunks_to_tag(total_words: int, available: int, *, per_1000: float = CHUNKS_PER_1000_WORDS) -> int:
    """How many chunks of a ``total_words`` response become pairs: ``per_1000`` per 1,000 words
    (rounded, at least 1), no more than there are chunks."""
    return min(available, max(1, round(per_1000 * total_words / 1000)))


def select_chunks(
    chunks: Sequence[Chunk], total_words: int, *, seed: int | str, per_1000: float = CHUNKS_PER_1000_WORDS
) -> list[Chunk]:
    """A deterministic sample (same seed -> same chunks), in text order."""
    count = chunks_to_tag(total_words, len(chunks), per_1000=per_1000)
    rng = random.Random(str(seed))
    return sorted(rng.sample(list(chunks), count), key=lambda c: c.index)


# --- perturbations ---------------------------------------------------------------------------


class Perturbation(Protocol):
    """Makes the (good, bad) versions of one chunk; ``None`` skips the chunk."""

    kind: str

    async def apply(self, chunk: str, rng: random.Random) -> tuple[str, str] | None: ...


@dataclass(frozen=True)
class FactPair:
    true: str
    false: str


def _rows(path: str | Path, *fields: str) -> Iterator[dict[str, Any]]:
    """The rows of a needle input file; one that is not an object with ``fields`` is a :class:`FormatError`."""
    for index, row in enumerate(read_rows(path)):
        missing = [name for name in fields if not isinstance(row, dict) or name not in row]
        if missing:
            raise FormatError(f"{path}[{index}]: missing field {missing[0]!r}")
        yield row


def load_fact_pairs(path: str | Path) -> list[FactPair]:
    """``{"true": ..., "false": ...}`` rows (JSONL or a JSON list)."""
    return [FactPair(str(row["true"]), str(row["false"])) for row in _rows(path, "true", "false")]


def _insert_after_first_sentence(chunk: str, sentence: str) -> str:
    match = _SENTENCE_END.search(chunk)
    if match is None:
        return f"{chunk} {sentence}"
    return f"{chunk[: match.end()]}{sentence} {chunk[match.end() :]}"


class FactPerturbation:
    """Factuality needles from user-supplied (true, false) fact pairs.

    If the chunk already states a fact's true version, the rejected chunk replaces it with
    the false one (the chosen chunk is the original); otherwise both versions are inserted
    after the chunk's first sentence, the true one in the chosen chunk. Facts are drawn
    with the builder's seeded RNG.
    """

    kind = "factuality"

    def __init__(self, facts: Sequence[FactPair]) -> None:
        if not facts:
            raise ValueError("FactPerturbation needs at least one fact pair")
        self.facts = list(facts)

    async def apply(self, chunk: str, rng: random.Random) -> tuple[str, str] | None:
        for fact in self.facts:
            if fact.true and fact.true in chunk:
                return chunk, chunk.replace(fact.true, fact.false, 1)
        fact = rng.choice(self.facts)
        return _insert_after_first_sentence(chunk, fact.true), _insert_after_first_sentence(chunk, fact.false)


@dataclass(frozen=True)
class SafetyPhrase:
    safe: str
    harmful: str


def load_safety_phrases(path: str | Path) -> list[SafetyPhrase]:
    """``{"safe": ..., "harmful": ...}`` rows (``benign`` is accepted for ``safe``)."""
    return [SafetyPhrase(str(row.get("safe", row.get("benign"))), str(row["harmful"])) for row in _rows(path, "harmful")]


class SafetyPerturbation:
    """Safety needles: a benign phrase (chosen) or a harmful phrase (rejected) prepended to the chunk."""

    kind = "safety"

    def __init__(self, phrases: Sequence[SafetyPhrase]) -> None:
        if not phrases:
            raise ValueError("SafetyPerturbation needs at least one phrase pair")
        self.phrases = list(phrases)

    async def apply(self, chunk: str, rng: random.Random) -> tuple[str, str] | None:
        phrase = rng.choice(self.phrases)
        return f"{phrase.safe} {chunk}", f"{phrase.harmful} {chunk}"


REWRITE_INSTRUCTION = (
    "Rewrite the passage below so that it contains exactly one clear factual error or one wrong "
    "step, and change nothing else: keep its length, wording and style. Reply with the rewritten "
    "passage only."
)
"""This project's instruction for engine-made needles (used by ``cerm needle build --rewrite``)."""


def rewrite_messages(chunk: str) -> list[dict[str, str]]:
    """The chat asking a model to plant one error in ``chunk``."""
    return [{"role": "user", "content": f"{REWRITE_INSTRUCTION}\n\n[Passage]\n{chunk}"}]


class RewritePerturbation:
    """Needles from an async rewriter (e.g. a judge engine told to plant an error): the chosen
    chunk is the original, the rejected one the rewrite. An empty or unchanged rewrite skips the chunk."""

    def __init__(self, rewrite: Callable[[str], Awaitable[str]], *, kind: str = "rewrite") -> None:
        self.rewrite = rewrite
        self.kind = kind

    async def apply(self, chunk: str, rng: random.Random) -> tuple[str, str] | None:
        rewritten = (await self.rewrite(chunk)).strip()
        if not rewritten or rewritten == chunk.strip():
            return None
        return chunk, rewritten


# --- building items --------------------------------------------------------------------------


@dataclass(frozen=True)
class NeedleBase:
    """A long base response (1,000-8,000 words in the paper) and the prompt it answers."""

    id: str
    prompt: str
    response: str


def load_needle_bases(path: str | Path) -> list[NeedleBase]:
    """``{"id"?, "prompt", "response"}`` rows."""
    bases = []
    for row in _rows(path, "prompt", "response"):
        prompt, response = str(row["prompt"]), str(row["response"])
        bases.append(NeedleBase(str(row.get("id") or content_id(prompt, response)), prompt, response))
    return bases


def relative_position(text: str, chunk: Chunk, count_units: Callable[[str], int] = word_count) -> float:
    """Where the chunk's middle sits in the response, 0 (start) .. 1 (end), in ``count_units``."""
    total = count_units(text)
    if total <= 0:
        return 0.0
    before = count_units(text[: chunk.start])
    middle = before + count_units(chunk.text) / 2
    return min(1.0, max(0.0, middle / total))


async def build_needle_items(
    bases: Sequence[NeedleBase],
    perturbation: Perturbation,
    *,
    seed: int = 0,
    per_1000: float = CHUNKS_PER_1000_WORDS,
    min_words: int = MIN_CHUNK_WORDS,
    count_units: Callable[[str], int] | None = None,
) -> list[EvalItem]:
    """Pairwise items (chosen first) that differ only inside one tagged chunk.

    ``meta``: ``base_id``, ``chunk_index``, ``word_count`` (of the base response),
    ``tagged_position`` (0..1, middle of the chunk, in words unless ``count_units`` is
    given), ``position_unit``, ``chunk_words``, ``perturbation``. The subset is the
    perturbation kind. Same bases + seed -> same items.
    """
    units = count_units or word_count
    items = []
    for base in bases:
        total = word_count(base.response)
        chunks = split_chunks(base.response, min_words=min_words)
        if not chunks:
            continue
        rng = random.Random(f"{seed}:{base.id}:{perturbation.kind}")
        for chunk in select_chunks(chunks, total, seed=f"{seed}:{base.id}", per_1000=per_1000):
            versions = await perturbation.apply(chunk.text, rng)
            if versions is None:
                continue
            good, bad = versions
            before, after = base.response[: chunk.start], base.response[chunk.end :]
            items.append(
                EvalItem(
                    id=f"{base.id}-c{chunk.index}-{perturbation.kind}",
                    benchmark=NEEDLE_BENCHMARK,
                    subset=perturbation.kind,
                    prompt=base.prompt,
                    responses=[before + good + after, before + bad + after],
                    chosen=[0],
                    rejected=[1],
                    meta={
                        "base_id": base.id,
                        "chunk_index": chunk.index,
                        "chunk_span": [chunk.start, chunk.end],
                        "chunk_words": chunk.words,
                        "word_count": total,
                        "tagged_position": relative_position(base.response, chunk, units),
                        "position_unit": "words" if count_units is None else "tokens",
                        "perturbation": perturbation.kind,
                    },
                )
            )
    return items


# --- metric ----------------------------------------------------------------------------------


@dataclass
class NeedleGrid:
    """Pairwise accuracy (ties incorrect) by length bucket x position bucket."""

    length_edges: list[float]
    position_edges: list[float]
    accuracy: list[list[float | None]]
    """``accuracy[length_bucket][position_bucket]``; ``None`` for an empty cell."""
    counts: list[list[int]]
    by_length: list[float | None]
    by_position: list[float | None]

    def to_dict(self) -> dict[str, object]:
        return {
            "length_edges": self.length_edges,
            "position_edges": self.position_edges,
            "accuracy": self.accuracy,
            "counts": self.counts,
            "by_length": self.by_length,
            "by_position": self.by_position,
        }


def _bucket(value: float, edges: Sequence[float]) -> int:
    """Index i with edges[i] <= value < edges[i+1]; the last bucket includes its upper edge."""
    for i in range(len(edges) - 1):
        if value < edges[i + 1]:
            return i
    return len(edges) - 2


def needle_grid(
    scored: Sequence[ScoredItem],
    *,
    length_edges: Sequence[float] | None = None,
    buckets: int = 5,
) -> NeedleGrid:
    """Accuracy bucketed by ``word_count`` x ``tagged_position`` (``buckets`` each).

    Position buckets split 0..1 evenly. Length buckets split the observed word-count range
    evenly unless ``length_edges`` is given (e.g. ``[1000, 2400, 3800, 5200, 6600, 8000]``).
    A pair is correct iff s(chosen) > s(rejected); a tie or a missing score is incorrect.
    """
    if not scored:
        raise ValueError("no scored needle items")
    lengths = [float(s.item.meta["word_count"]) for s in scored]
    if length_edges is None:
        low, high = min(lengths), max(lengths)
        step = (high - low) / buckets if high > low else 1.0
        length_edges = [low + i * step for i in range(buckets)] + [max(high, low + buckets * step)]
    position_edges = [i / buckets for i in range(buckets + 1)]
    n_len, n_pos = len(length_edges) - 1, len(position_edges) - 1
    correct = [[0] * n_pos for _ in range(n_len)]
    counts = [[0] * n_pos for _ in range(n_len)]
    for s, length in zip(scored, lengths, strict=True):
        chosen, rejected = s.values[s.item.chosen[0]], s.values[s.item.rejected[0]]
        i = _bucket(length, length_edges)
        j = _bucket(float(s.item.meta["tagged_position"]), position_edges)
        counts[i][j] += 1
        correct[i][j] += chosen is not None and rejected is not None and chosen > rejected
    accuracy = [[correct[i][j] / counts[i][j] if counts[i][j] else None for j in range(n_pos)] for i in range(n_len)]

    def marginal(rows: list[list[int]], hits: list[list[int]]) -> list[float | None]:
        return [sum(h) / sum(r) if sum(r) else None for r, h in zip(rows, hits, strict=True)]

    by_length = marginal(counts, correct)
    transposed_counts = [list(col) for col in zip(*counts, strict=True)]
    transposed_correct = [list(col) for col in zip(*correct, strict=True)]
    by_position = marginal(transposed_counts, transposed_correct)
    return NeedleGrid(list(length_edges), position_edges, accuracy, counts, by_length, by_position)
