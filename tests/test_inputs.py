"""Reading texts: line numbers, blank lines, CRLF, BOM, JSONL detection."""

from __future__ import annotations

import pytest

from attnviz.errors import InputError
from attnviz.inputs import read_inputs


def test_text_file_keeps_line_numbers_and_strips_line_endings(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes("\ufeffone\r\n\r\n  \r\ntwo words\nthree".encode())
    records = list(read_inputs(path))
    assert [(r.line, r.text) for r in records] == [(1, "one"), (4, "two words"), (5, "three")]


def test_jsonl_is_detected_by_the_first_line(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text('{"text": "a", "target": "b", "id": 7}\n{"text": 3}\n')
    first, second = read_inputs(path)
    assert (first.text, first.target, first.id) == ("a", "b", "7")
    assert second.error == "line 2: a JSONL record needs a string field 'text'"


def test_jsonl_extension_forces_jsonl(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text("plain text\n")
    (record,) = read_inputs(path)
    assert record.error is not None and "not valid JSON" in record.error


def test_a_file_of_only_bad_lines_is_not_called_empty(tmp_path):
    path = tmp_path / "t.txt"
    path.write_bytes(b"\xff\xfe\xfa\n")
    (record,) = read_inputs(path)
    assert "not valid UTF-8" in record.error


def test_unknown_encoding_errors_mode(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("a\n")
    with pytest.raises(InputError, match="unknown encoding_errors 'ignore'") as caught:
        list(read_inputs(path, encoding_errors="ignore"))
    assert caught.value.worded(lambda option: "--" + option.replace("_", "-"))[0].startswith(
        "unknown --encoding-errors"
    )
