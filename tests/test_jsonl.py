"""The one JSON Lines module: what the readers report and what the writers leave on disk after a kill."""

from __future__ import annotations

import pytest

from cerm_reward.errors import InputError
from cerm_reward.jsonl import append_jsonl, complete_lines, read_jsonl, truncate, write_jsonl


def test_written_lines_read_back_with_editor_line_numbers_and_blank_lines_skipped(tmp_path):
    path = tmp_path / "deep" / "rows.jsonl"
    write_jsonl([{"q": "Ünïcode"}, [1, 2]], path)
    assert path.read_text(encoding="utf-8") == '{"q": "Ünïcode"}\n[1, 2]\n'  # text kept readable
    with path.open("a", encoding="utf-8") as handle:
        handle.write("\n   \n" + '{"last": true}\n')
    assert list(read_jsonl(path)) == [(1, {"q": "Ünïcode"}), (2, [1, 2]), (5, {"last": True})]


def test_a_line_separator_inside_a_string_does_not_split_the_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    write_jsonl([{"text": "one\u2028two\x1cthree"}, {"n": 2}], path)
    assert [number for number, _ in read_jsonl(path)] == [1, 2]


def test_a_bad_line_is_an_input_error_naming_file_and_line(tmp_path):
    path = tmp_path / "rows.jsonl"
    path.write_text('{"ok": 1}\n\n{"broken": \n', encoding="utf-8")
    with pytest.raises(InputError, match=r"rows\.jsonl:3: not JSON"):
        list(read_jsonl(path))


def test_appended_batches_are_whole_lines_and_a_torn_tail_is_found_and_cut(tmp_path):
    path = tmp_path / "run.jsonl"
    with path.open("ab") as handle:
        append_jsonl(handle, [{"id": "a"}, {"id": "b"}], compact=True)
        append_jsonl(handle, [{"id": "c", "x": 1}])
    intact = path.read_bytes()
    assert intact == b'{"id":"a"}\n{"id":"b"}\n{"id": "c", "x": 1}\n'
    with path.open("ab") as handle:
        handle.write(b'{"id": "d", "x')  # the write a kill interrupted
    lines, end = complete_lines(path.read_bytes())
    assert [(line.number, line.start, line.text) for line in lines] == [
        (1, 0, b'{"id":"a"}'),
        (2, 11, b'{"id":"b"}'),
        (3, 22, b'{"id": "c", "x": 1}'),
    ]
    assert end == len(intact) == lines[-1].end
    truncate(path, end)
    assert path.read_bytes() == intact
