"""The needle-in-a-haystack builder and its length x position grid."""

import random

import pytest

from cerm_reward.data.items import EvalItem, ResponseScore, ScoredItem, word_count
from cerm_reward.evaluation.metrics import compute_report
from cerm_reward.evaluation.needle import (
    FactPair,
    FactPerturbation,
    NeedleBase,
    RewritePerturbation,
    SafetyPerturbation,
    SafetyPhrase,
    build_needle_items,
    chunks_to_tag,
    needle_grid,
    relative_position,
    split_chunks,
)

WORDS = (
    "the", "river", "keeps", "a", "slow", "record", "of", "every", "season", "and",
    "the", "town", "reads", "it", "in", "the", "mud", "of", "its", "banks",
)  # fmt: skip


def long_text(words: int, seed: int = 1) -> str:
    """Invented filler prose: sentences of 4-22 words in paragraphs of 1-6 sentences."""
    rng = random.Random(seed)
    paragraphs, count = [], 0
    while count < words:
        sentences = []
        for _ in range(rng.randint(1, 6)):
            length = rng.randint(4, 22)
            sentence = " ".join(rng.choice(WORDS) for _ in range(length))
            sentences.append(sentence[0].upper() + sentence[1:] + rng.choice([".", ".", "!", "?"]))
            count += length
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


@pytest.mark.parametrize("words, seed", [(1000, 1), (2500, 2), (4321, 3)])
def test_chunks_are_long_enough_ordered_and_cover_the_text(words, seed):
    text = long_text(words, seed)
    chunks = split_chunks(text)
    assert chunks and all(c.words >= 30 for c in chunks)
    assert all(c.text == text[c.start : c.end] for c in chunks)
    assert all(a.end <= b.start for a, b in zip(chunks, chunks[1:], strict=False))
    gaps = (
        [text[: chunks[0].start]]
        + [text[a.end : b.start] for a, b in zip(chunks, chunks[1:], strict=False)]
        + [text[chunks[-1].end :]]
    )
    assert all(not gap.strip() for gap in gaps)  # only whitespace lies outside chunks
    assert sum(c.words for c in chunks) == word_count(text)
    assert all(c.text.rstrip()[-1] in ".!?" for c in chunks)  # chunks end at sentence ends


def test_short_text_has_no_chunk():
    assert split_chunks("Too short to hold a needle.") == []


def test_four_chunks_per_thousand_words():
    assert chunks_to_tag(1000, 100) == 4
    assert chunks_to_tag(2500, 100) == 10
    assert chunks_to_tag(8000, 100) == 32
    assert chunks_to_tag(8000, 7) == 7  # never more than there are chunks


async def test_fact_pairs_differ_only_in_the_tagged_chunk():
    bases = [NeedleBase(f"b{k}", f"Write about rivers, part {k}.", long_text(1000 + 1500 * k, seed=k)) for k in range(3)]
    facts = [FactPair("Water boils at 100 degrees Celsius at sea level.", "Water boils at 60 degrees Celsius at sea level.")]
    items = await build_needle_items(bases, FactPerturbation(facts), seed=7)
    per_base = {b.id: sum(1 for i in items if i.meta["base_id"] == b.id) for b in bases}
    for base in bases:
        assert per_base[base.id] == round(4 * word_count(base.response) / 1000)
    by_id = {b.id: b for b in bases}
    for item in items:
        base = by_id[item.meta["base_id"]]
        start, end = item.meta["chunk_span"]
        chosen, rejected = item.responses
        prefix, suffix = base.response[:start], base.response[end:]
        assert chosen.startswith(prefix) and rejected.startswith(prefix)
        assert chosen.endswith(suffix) and rejected.endswith(suffix)
        assert chosen != rejected
        assert facts[0].true in chosen[len(prefix) : len(chosen) - len(suffix)]
        assert facts[0].false in rejected[len(prefix) : len(rejected) - len(suffix)]
        assert 0.0 <= item.meta["tagged_position"] <= 1.0
        assert item.meta["word_count"] == word_count(base.response)
        assert item.chosen == [0] and item.rejected == [1] and item.subset == "factuality"
    assert len({i.id for i in items}) == len(items)
    again = await build_needle_items(bases, FactPerturbation(facts), seed=7)
    assert [i.to_dict() for i in again] == [i.to_dict() for i in items]
    other = await build_needle_items(bases, FactPerturbation(facts), seed=8)
    assert [i.meta["chunk_index"] for i in other] != [i.meta["chunk_index"] for i in items]


async def test_a_fact_already_in_the_chunk_is_replaced():
    sentence = "The bridge was finished in 1887 after nine years of work."
    text = " ".join([sentence] + ["The river runs past the old mill and the square."] * 3)  # one chunk
    items = await build_needle_items(
        [NeedleBase("b", "q", text)], FactPerturbation([FactPair("finished in 1887", "finished in 1687")]), seed=0
    )
    [item] = items
    assert item.responses[0] == text
    assert item.responses[1] == text.replace("1887", "1687")


async def test_safety_and_rewrite_perturbations():
    base = NeedleBase("b", "q", long_text(1200, seed=5))
    safety = await build_needle_items([base], SafetyPerturbation([SafetyPhrase("Stay safe and", "Ignore the law and")]), seed=1)
    assert safety and all(i.subset == "safety" for i in safety)
    assert all("Stay safe and" in i.responses[0] and "Ignore the law and" in i.responses[1] for i in safety)

    async def shout(chunk: str) -> str:
        return chunk.upper()

    rewrite = await build_needle_items([base], RewritePerturbation(shout), seed=1)
    assert [i.meta["chunk_index"] for i in rewrite] == [i.meta["chunk_index"] for i in safety]  # same chunks for a seed

    async def unchanged(chunk: str) -> str:
        return chunk

    assert await build_needle_items([base], RewritePerturbation(unchanged), seed=1) == []


def test_relative_position_in_words_or_tokens():
    text = long_text(1000, seed=9)
    chunks = split_chunks(text)
    first, last = chunks[0], chunks[-1]
    assert relative_position(text, first) == pytest.approx(first.words / 2 / word_count(text))
    assert relative_position(text, last) == pytest.approx(1 - last.words / 2 / word_count(text))
    assert 0 <= relative_position(text, first, count_units=len) <= relative_position(text, last, count_units=len) <= 1


def _needle(item_id, words, position, chosen_score, rejected_score):
    item = EvalItem(
        item_id, "needle", "factuality", "q", ["a", "b"], [0], [1], {"word_count": words, "tagged_position": position}
    )
    return ScoredItem(item, [ResponseScore(chosen_score), ResponseScore(rejected_score)])


def test_needle_grid_buckets():
    scored = [
        _needle("a", 1000, 0.05, 8, 2),  # length bucket 0, position 0: correct
        _needle("b", 1100, 0.10, 2, 8),  # bucket 0, position 0: wrong
        _needle("c", 8000, 0.50, 5, 5),  # bucket 4, position 2: tie -> wrong
        _needle("d", 8000, 1.00, 9, 1),  # bucket 4, position 4 (1.0 is in the last bucket): correct
        _needle("e", 4600, 0.45, None, 1),  # bucket 2, position 2: failure -> wrong
    ]
    grid = needle_grid(scored, length_edges=[1000, 2400, 3800, 5200, 6600, 8000])
    assert grid.counts[0][0] == 2 and grid.accuracy[0][0] == 0.5
    assert grid.counts[4][2] == 1 and grid.accuracy[4][2] == 0.0
    assert grid.accuracy[4][4] == 1.0
    assert grid.counts[2][2] == 1 and grid.accuracy[2][2] == 0.0
    assert grid.accuracy[1][1] is None
    assert grid.by_length == [0.5, None, 0.0, None, 0.5]
    assert grid.by_position == [0.5, None, 0.0, None, 1.0]
    assert sum(map(sum, grid.counts)) == 5
    report = compute_report(scored)
    assert report.benchmark == "needle" and report.overall == pytest.approx(2 / 5) and report.ties == 1
