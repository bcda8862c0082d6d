"""Reading rollouts files (line-numbered errors) and the resumable output writer."""

import json

import pytest

from cerm_reward.scoring.output import ResumableJsonlWriter
from cerm_reward.scoring.rollouts import RolloutFileError, content_id, read_rollouts


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def test_valid_file_with_and_without_ids(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", [
        json.dumps({"id": "g1", "query": "Q1", "responses": ["a", "b"]}),
        "",
        json.dumps({"query": [{"role": "user", "content": "Q2"}], "responses": ["c"]}),
        json.dumps({"id": 7, "query": "Q3", "responses": [""]}),
    ])  # fmt: skip
    groups, problems = read_rollouts(path)
    assert problems == []
    assert [g.id for g in groups] == ["g1", content_id([{"role": "user", "content": "Q2"}], ["c"]), "7"]
    assert [g.line for g in groups] == [1, 3, 4]


BAD_LINES = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    (json.dumps({"responses": ["a"]}), "missing field 'query'"),
    (json.dumps({"query": "Q"}), "missing field 'responses'"),
    (json.dumps({"query": "", "responses": ["a"]}), "query"),
    (json.dumps({"query": 5, "responses": ["a"]}), "query"),
    (json.dumps({"query": "Q", "responses": "a"}), "responses"),
    (json.dumps({"query": "Q", "responses": ["a", None]}), r"responses[1]"),
    (json.dumps({"query": "Q", "responses": ["a"], "id": [1]}), "id"),
]


@pytest.mark.parametrize(("line", "message"), BAD_LINES)
def test_malformed_line_names_its_number(tmp_path, line, message):
    path = write_lines(tmp_path / "in.jsonl", [json.dumps({"query": "Q", "responses": ["a"]}), line])
    with pytest.raises(RolloutFileError) as caught:
        read_rollouts(path)
    assert caught.value.problems[0][0] == 2
    assert message in caught.value.problems[0][1]
    assert f"{path}:2:" in str(caught.value)


def test_skip_invalid_keeps_good_lines_but_never_duplicate_ids(tmp_path):
    path = write_lines(tmp_path / "in.jsonl", ["{oops", json.dumps({"id": "a", "query": "Q", "responses": ["x"]})])
    groups, problems = read_rollouts(path, skip_invalid=True)
    assert [g.id for g in groups] == ["a"] and problems[0][0] == 1
    dup = write_lines(tmp_path / "dup.jsonl", [json.dumps({"id": "a", "query": "Q", "responses": ["x"]})] * 2)
    with pytest.raises(RolloutFileError, match="duplicate id 'a' \\(first on line 1\\)"):
        read_rollouts(dup, skip_invalid=True)


def record(group_id, index):
    return {"id": group_id, "response_index": index, "score": 1.0}


def test_writer_skips_done_lines_and_cuts_a_partial_tail(tmp_path):
    path = tmp_path / "out.jsonl"
    with ResumableJsonlWriter(path) as writer:
        assert writer.write_group([record("g", 0), record("g", 1)]) == 2
    with path.open("a") as handle:
        handle.write('{"id": "g", "response_ind')  # a kill in the middle of a write
    writer = ResumableJsonlWriter(path)
    assert writer.repaired_tail and writer.is_done("g", 1) and not writer.is_done("h", 0)
    assert writer.write_group([record("g", 1), record("h", 0)]) == 1
    writer.close()
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["id"], r["response_index"]) for r in lines] == [("g", 0), ("g", 1), ("h", 0)]


def test_writer_refuses_to_append_to_a_foreign_file(tmp_path):
    path = tmp_path / "out.jsonl"
    path.write_text('{"something": "else"}\n')
    with pytest.raises(ValueError, match="not a cerm score output line"):
        ResumableJsonlWriter(path)
    assert path.read_text() == '{"something": "else"}\n'


def test_non_utf8_lines_are_named_and_skippable(tmp_path):
    path = tmp_path / "in.jsonl"
    good = json.dumps({"id": "g1", "query": "Q", "responses": ["a"]}).encode()
    path.write_bytes(good + b"\n" + b'{"id": "g2", "query": "Caf\xe9", "responses": ["a"]}\n')
    with pytest.raises(RolloutFileError) as error:
        read_rollouts(path)
    assert f"{path}:2: not UTF-8 text (byte 0xe9 at column 27)" in str(error.value)
    groups, problems = read_rollouts(path, skip_invalid=True)
    assert [g.id for g in groups] == ["g1"] and problems == [(2, "not UTF-8 text (byte 0xe9 at column 27)")]


def test_a_second_writer_on_the_same_output_is_refused_naming_the_first(tmp_path):
    import os

    from cerm_reward.errors import InputError

    output = tmp_path / "out.jsonl"
    with ResumableJsonlWriter(output) as first:
        with pytest.raises(InputError, match=f"being written by another cerm score \\(PID {os.getpid()}\\)"):
            ResumableJsonlWriter(output)
        first.write_group([record("g", 0)])
    with ResumableJsonlWriter(output) as again:  # released on close
        assert again.is_done("g", 0)
    assert not (tmp_path / "out.jsonl.lock").exists()


def test_an_output_that_cannot_be_written_is_a_user_error(tmp_path):
    from cerm_reward.errors import InputError

    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="cannot write the output here"):
        ResumableJsonlWriter(tmp_path / "file" / "out.jsonl")
    (tmp_path / "folder.jsonl").mkdir()
    with pytest.raises(InputError, match="cannot write the output here"):
        ResumableJsonlWriter(tmp_path / "folder.jsonl")
