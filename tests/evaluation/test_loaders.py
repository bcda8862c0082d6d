"""Loaders on the real LLMBar / RM-Bench files (read in place) and on small files written here."""

import json
from collections import Counter

import pytest

from cerm_reward.data.items import EvalItem
from cerm_reward.data.loaders import LOADERS, FormatError, load_items, looks_like_eval_items
from tests.evaluation.helpers import SHARED_DATA

LLMBAR = SHARED_DATA / "llmbar"
RM_BENCH = SHARED_DATA / "rm-bench"
needs_data = pytest.mark.skipif(not LLMBAR.is_dir() or not RM_BENCH.is_dir(), reason="shared benchmark data not present")


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


@needs_data
def test_llmbar_real_files():
    items = load_items("llmbar", LLMBAR)
    assert len(items) == 419
    assert Counter(i.subset for i in items) == {
        "Natural": 100,
        "Adversarial_Neighbor": 134,
        "Adversarial_GPTInst": 92,
        "Adversarial_GPTOut": 47,
        "Adversarial_Manual": 46,
    }
    assert len({i.id for i in items}) == 419
    by_id = {i.id: i for i in items}
    for file in sorted(LLMBAR.glob("*.json")):
        rows = json.loads(file.read_text(encoding="utf-8"))
        for index, row in enumerate(rows):
            item = by_id[f"{file.stem}-{index}"]
            assert item.prompt == row["input"]
            assert item.chosen_responses == [row[f"output_{row['label']}"]]
            assert item.rejected_responses == [row[f"output_{3 - row['label']}"]]


@needs_data
def test_llmbar_single_file():
    items = load_items("llmbar", LLMBAR / "Adversarial_GPTOut.json")
    assert len(items) == 47 and items[0].id == "Adversarial_GPTOut-0"


@needs_data
def test_rm_bench_real_files():
    items = load_items("rm-bench", RM_BENCH)
    assert len(items) == 798
    assert Counter(i.subset for i in items) == {"chat": 129, "code": 228, "safety-refuse": 284, "safety-response": 157}
    assert len({i.id for i in items}) == 798  # chat and code share 23 source ids: the domain prefix keeps them apart
    rows = {f"chat-{row['id']}": row for row in json.loads((RM_BENCH / "chat_filtered.json").read_text(encoding="utf-8"))}
    for item in items:
        assert item.meta["style"] == [0, 1, 2, 0, 1, 2]
        assert item.chosen == [0, 1, 2] and item.rejected == [3, 4, 5]
        if item.id in rows:
            assert item.chosen_responses == rows[item.id]["chosen"]
            assert item.rejected_responses == rows[item.id]["rejected"]
            assert item.meta["source_subset"] == "alpacaeval"


def test_pairs_strings_lists_ids_and_subsets(tmp_path):
    path = write_jsonl(
        tmp_path / "mine.jsonl",
        [
            {"prompt": "Name a prime.", "chosen": "Seven.", "rejected": "Nine."},
            {"id": 7, "subset": "math", "prompt": "2+2?", "chosen": ["Four.", "4"], "rejected": ["Five."]},
            {"prompt": [{"role": "user", "content": "Say hi."}], "chosen": "Hi!", "rejected": "No."},
        ],
    )
    items = load_items("pairs", path)
    assert [i.subset for i in items] == ["mine", "math", "mine"]
    assert items[1].id == "7" and items[1].chosen == [0, 1] and items[1].rejected == [2]
    assert items[2].prompt == "Say hi."
    again = load_items("pairs", path)
    assert items[0].id == again[0].id and len(items[0].id) == 16  # content hash, stable across loads


def test_repeated_ids_are_made_unique(tmp_path):
    row = {"id": "x", "prompt": "q", "chosen": "a", "rejected": "b"}
    items = load_items("pairs", write_jsonl(tmp_path / "d.jsonl", [row, row]))
    assert [i.id for i in items] == ["x", "x#2"]
    assert items[1].meta["duplicate_of"] == "x"


def test_rewardbench_json_list(tmp_path):
    path = tmp_path / "rb.json"
    path.write_text(
        json.dumps([{"id": 3, "prompt": "Capital of Peru?", "chosen": "Lima.", "rejected": "Quito.", "subset": "hep-go"}])
    )
    [item] = load_items("rewardbench", path)
    assert (item.id, item.subset, item.chosen_responses, item.rejected_responses) == ("3", "hep-go", ["Lima."], ["Quito."])


def test_rewardbench2_best_of_4_and_ties(tmp_path):
    path = write_jsonl(
        tmp_path / "rb2.jsonl",
        [
            {
                "id": "17",
                "prompt": "q",
                "chosen": ["good"],
                "rejected": ["b1", "b2", "b3"],
                "subset": "Factuality",
                "num_correct": 1,
            },
            {"id": "ref:4", "prompt": "q4", "chosen": ["c"], "rejected": ["w1", "w2"], "subset": "Ties", "num_correct": 1},
            {"id": "tied:4", "prompt": "q4", "chosen": ["c1", "c2"], "rejected": ["w1"], "subset": "Ties", "num_correct": 2},
            {"id": "17", "prompt": "q", "chosen": ["g"], "rejected": ["b"], "subset": "Math"},
        ],
    )
    items = load_items("rewardbench2", path)
    assert [i.id for i in items] == ["Factuality:17", "Ties:ref:4", "Ties:tied:4", "Math:17"]
    assert items[0].chosen == [0] and items[0].rejected == [1, 2, 3]
    assert items[2].meta["ties_kind"] == "tied" and items[2].meta["ties_prompt"] == 4 and items[2].chosen == [0, 1]


@pytest.mark.parametrize(
    "row, message",
    [
        ({"id": "1", "prompt": "q", "chosen": ["a", "b"], "rejected": ["c"], "subset": "Focus"}, "one chosen"),
        ({"id": "r:1", "prompt": "q", "chosen": ["a"], "rejected": ["c"], "subset": "Ties"}, "ref:<k>"),
        ({"id": "1", "prompt": "q", "chosen": ["a"], "rejected": ["c"], "subset": "Math", "num_correct": 2}, "num_correct"),
    ],
)
def test_rewardbench2_rejects_malformed_rows(tmp_path, row, message):
    with pytest.raises(FormatError, match=message):
        load_items("rewardbench2", write_jsonl(tmp_path / "bad.jsonl", [row]))


def test_judgebench_labels_and_categories(tmp_path):
    path = write_jsonl(
        tmp_path / "jb.jsonl",
        [
            {"pair_id": "p1", "source": "mmlu-pro-law", "question": "q", "response_A": "A1", "response_B": "B1", "label": "A>B"},
            {"pair_id": "p2", "source": "livecodebench", "question": "q", "response_A": "A2", "response_B": "B2", "label": "B>A"},
        ],
    )
    first, second = load_items("judgebench", path)
    assert (first.subset, first.chosen, first.responses) == ("knowledge", [0], ["A1", "B1"])
    assert (second.subset, second.chosen, second.rejected) == ("coding", [1], [0])
    with pytest.raises(FormatError, match="label"):
        load_items(
            "judgebench",
            write_jsonl(
                tmp_path / "tie.jsonl",
                [{**dict(pair_id="p", question="q"), "response_A": "a", "response_B": "b", "label": "A=B"}],
            ),
        )


def test_longform_rewardbench(tmp_path):
    path = write_jsonl(
        tmp_path / "lf.jsonl",
        [
            {"id": "a", "subset": "QA", "prompt": "q", "chosen": ["one two three"], "rejected": ["x", "y z", "w"]},
            {"id": "b", "subset": "Reasoning", "prompt": "q", "chosen": ["ok"], "rejected": ["no"]},
        ],
    )
    qa, reasoning = load_items("longform-rewardbench", path)
    assert qa.meta["word_counts"] == [3, 1, 2, 1] and qa.rejected == [1, 2, 3]
    assert reasoning.rejected == [1]


def test_best_of_n_quality(tmp_path):
    path = write_jsonl(tmp_path / "bon.jsonl", [{"prompt": "q", "responses": ["a", "b", "c"], "quality": [0.2, 0.9, 0.9]}])
    [item] = load_items("best-of-n", path)
    assert item.chosen == [1, 2] and item.rejected == [0] and item.meta["quality"] == [0.2, 0.9, 0.9]


def test_missing_field_names_file_and_row(tmp_path):
    path = write_jsonl(tmp_path / "x.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "a"}])
    with pytest.raises(FormatError, match=r"x\.jsonl\[1\]: missing field 'rejected'"):
        load_items("pairs", path)


def test_registry():
    assert set(LOADERS) == {
        "items",
        "pairs",
        "llmbar",
        "rm-bench",
        "rewardbench",
        "rewardbench2",
        "judgebench",
        "longform-rewardbench",
        "best-of-n",
    }
    with pytest.raises(ValueError, match="unknown format"):
        load_items("nope", "x.json")


def test_items_written_by_the_harness_load_back_with_their_own_benchmark(tmp_path):
    item = EvalItem("n1", "needle", "factuality", "p", ["good", "bad"], [0], [1], {"word_count": 1200})
    path = tmp_path / "needles.jsonl"
    path.write_text(json.dumps(item.to_dict()) + "\n")
    assert looks_like_eval_items(path) and not looks_like_eval_items(tmp_path / "missing.jsonl")
    assert load_items("items", path) == [item]
    path.write_text('{"id": "n2", "benchmark": "needle"}\n')
    with pytest.raises(FormatError, match=r"needles\.jsonl\[0\]: not an evaluation item"):
        load_items("items", path)
