"""`cerm eval --judge precomputed` on bad and partial inputs (in process, no engine): every bad
input is exit 2 with file, line and field; a partial file needs --allow-partial; the match
account and the invalid scores are in report.json, report.md and on the console."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cerm_reward.cli.app import app

ROWS = [
    {"pair_id": f"p{k}", "question": "q", "response_A": "a", "response_B": "b", "label": "A>B", "source": "livebench-math"}
    for k in range(1, 4)
]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def evaluate(tmp_path: Path, score_rows: list, *extra: str, name: str = "scores.jsonl"):
    data = write_jsonl(tmp_path / "judgebench.jsonl", ROWS)
    scores = write_jsonl(tmp_path / name, score_rows)
    args = ["eval", str(data), "--format", "judgebench", "--judge", "precomputed", "--scores", str(scores)]
    result = CliRunner().invoke(app, [*args, "-o", str(tmp_path / "run"), "--no-cache", "--no-plots", *extra])
    return result, scores, " ".join(result.output.split())


def assert_user_error(result) -> None:
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # reported, not raised: no traceback


@pytest.mark.parametrize(
    "rows",
    [[], [{"id": "x1", "scores": [1, 0]}, {"id": "x2", "scores": [0, 1]}]],
    ids=["empty", "another-dataset"],
)
def test_a_scores_file_that_matches_no_item_is_refused(tmp_path, rows):
    result, scores, output = evaluate(tmp_path, rows)
    assert_user_error(result)
    assert f"error: {scores}: no row matches any of the 3 items ({len(rows)} rows" in output
    assert not (tmp_path / "run" / "report.json").exists()


def test_a_partial_file_is_refused_then_reported_up_front_with_allow_partial(tmp_path):
    rows = [{"id": "p1", "scores": [0.9, 0.1]}, {"id": "p3", "scores": [0.2, 0.7]}, {"id": "zz", "scores": [1, 0]}]
    refused, scores, output = evaluate(tmp_path, rows)
    assert_user_error(refused)
    assert f"{scores}: scores for 2 of 3 items; missing p2. Pass --allow-partial" in output

    done, _, output = evaluate(tmp_path, rows, "--allow-partial")
    assert done.exit_code == 0, done.output
    assert output.index("partial scores:") < output.index("overall")  # announced before the numbers
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    match = report["match"]
    assert (match["items"], match["matched"], match["missing_ids"], match["unknown_ids"], match["rows"]) == (
        3,
        2,
        ["p2"],
        ["zz"],
        3,
    )
    assert report["benchmarks"][0]["failure_ids"] == {"missing_score": ["p2"]}
    markdown = (tmp_path / "run" / "report.md").read_text()
    assert "- items matched: 2 of 3" in markdown and "missing (scored as `missing_score` failures): 1 (p2)" in markdown
    assert "unknown ids (no such item in the data): 1 (zz)" in markdown
    assert f"scores matched: {scores}: 2 of 3 items matched (3 rows); missing 1, unknown ids 1" in output


def test_invalid_scores_are_counted_with_their_item_ids_everywhere(tmp_path):
    rows = [{"id": "p1", "scores": [float("nan"), 0.1]}, {"id": "p2", "scores": ["high", 0]}, {"id": "p3", "scores": [2, 1]}]
    done, _, output = evaluate(tmp_path, rows)
    assert done.exit_code == 0, done.output
    bench = json.loads((tmp_path / "run" / "report.json").read_text())["benchmarks"][0]
    assert bench["failures"] == {"invalid_score": 2} and bench["failure_ids"] == {"invalid_score": ["p1", "p2"]}
    assert bench["overall"] == pytest.approx(1 / 3) and bench["metrics"]["accuracy_ties_to_B"] == pytest.approx(1 / 3)
    assert "- invalid_score (2): p1, p2" in (tmp_path / "run" / "report.md").read_text()
    assert "failed items, invalid_score (2): p1, p2" in output


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"id": "p1", "scores": [1, 0]}, ["p2", [1, 0]]], ":2: expected an object with 'id' and 'scores', got list"),
        ([{"id": "p1", "scores": [[1, 2], 0]}, {"id": "p1", "scores": [1, 0]}], ":2: id 'p1' repeats"),
        ([{"id": "p1", "scores": [1, 0, 0]}], ":1.scores: 3 scores for the 2 responses of item 'p1'"),
    ],
    ids=["row-is-a-list", "conflicting-duplicate", "wrong-count"],
)
def test_a_malformed_scores_file_is_exit_2_naming_file_line_and_field(tmp_path, rows, message):
    result, scores, output = evaluate(tmp_path, rows)
    assert_user_error(result)
    assert f"error: {scores}{message}" in output


def test_scores_without_the_precomputed_judge_are_refused(tmp_path):
    data = write_jsonl(tmp_path / "judgebench.jsonl", ROWS)
    scores = write_jsonl(tmp_path / "scores.jsonl", [{"id": "p1", "scores": [1, 0]}])
    result = CliRunner().invoke(app, ["eval", str(data), "--format", "judgebench", "--scores", str(scores), "-o", str(tmp_path)])
    assert_user_error(result)
    assert "--scores is read only with --judge precomputed" in " ".join(result.output.split())
