"""Read texts to process: a text file (one text per line), JSONL records, or stdin.

Lines are decoded one by one, so one bad line (invalid UTF-8, broken JSON) becomes one
failed record, never a lost run. Blank lines are skipped; line numbers are kept (1-based,
as editors show them).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from attnviz.errors import InputError

ENCODING_ERRORS = ("strict", "replace")
_BINARY_SNIFF = 8192


@dataclass(frozen=True)
class InputRecord:
    """One input: its 1-based ``line``, an optional ``id``, and either the texts or an ``error``."""

    line: int
    text: str | None
    pair: str | None = None
    target: str | None = None
    id: str | None = None
    error: str | None = None


def open_input(path: str | os.PathLike[str]) -> tuple[IO[bytes], str]:
    if str(path) == "-":
        return sys.stdin.buffer, "stdin"
    target = Path(path)
    if not target.exists():
        raise InputError(f"no such file: {target}", hint="check the path")
    if target.is_dir():
        raise InputError(f"{target} is a directory, not a text file", hint="pass a text or JSONL file, or - for stdin")
    try:
        handle = open(target, "rb")  # noqa: SIM115 - closed by read_inputs
    except OSError as exc:
        raise InputError(f"cannot read {target}: {exc.strerror or exc}", hint="check the file's permissions") from exc
    return handle, str(target)


def _is_jsonl(name: str, first_line: bytes) -> bool:
    if name.endswith((".jsonl", ".ndjson")):
        return True
    return first_line.lstrip().startswith(b"{")


def _record_from_json(line_number: int, raw: str) -> InputRecord:
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        return InputRecord(
            line_number, None, error=f"line {line_number} is not valid JSON: {exc.msg} at column {exc.colno}"
        )
    if not isinstance(value, dict) or not isinstance(value.get("text"), str):
        return InputRecord(line_number, None, error=f"line {line_number}: a JSONL record needs a string field 'text'")
    fields = {}
    for name in ("pair", "target"):
        item = value.get(name)
        if item is not None and not isinstance(item, str):
            return InputRecord(line_number, None, error=f"line {line_number}: field '{name}' must be a string")
        fields[name] = item
    record_id = value.get("id")
    return InputRecord(
        line_number,
        value["text"],
        fields["pair"],
        fields["target"],
        id=None if record_id is None else str(record_id),
    )


def _looks_binary(head: bytes) -> bool:
    """A NUL byte in otherwise good UTF-8 text fails only its line (as it does further
    down the file); a head that is not UTF-8 text, or is over 10% control bytes, is binary."""
    if b"\x00" not in head:
        return False
    control = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end of the sniffed head
            return True
    return control > len(head) // 10


def read_inputs(
    path: str | os.PathLike[str],
    *,
    encoding_errors: str = "strict",
) -> Iterator[InputRecord]:
    """Yield one :class:`InputRecord` per non-blank line of ``path`` (``-`` for stdin).

    Raises :class:`InputError` for a missing file, a directory, an unreadable or binary file
    or one with no text at all. JSONL is detected by the extension or a first line starting
    with ``{``.
    """
    if encoding_errors not in ENCODING_ERRORS:
        raise InputError(f"unknown --encoding-errors '{encoding_errors}'", hint="use strict or replace")
    handle, name = open_input(path)
    try:
        head = handle.peek(_BINARY_SNIFF)[:_BINARY_SNIFF] if hasattr(handle, "peek") else b""
        if _looks_binary(head):
            raise InputError(
                f"{name} looks like a binary file (it contains NUL bytes)", hint="pass a UTF-8 text or JSONL file"
            )
        seen_text = False
        mode: bool | None = None
        for line_number, raw_bytes in enumerate(handle, start=1):
            stripped = raw_bytes.rstrip(b"\r\n")
            if not stripped.strip():
                continue
            seen_text = True
            if b"\x00" in stripped:
                yield InputRecord(line_number, None, error=f"line {line_number} contains NUL bytes (binary data?)")
                continue
            try:
                raw = stripped.decode("utf-8", errors=encoding_errors)
            except UnicodeDecodeError as exc:
                yield InputRecord(
                    line_number,
                    None,
                    error=f"line {line_number} is not valid UTF-8 (byte 0x{stripped[exc.start]:02x} at column {exc.start + 1}); "
                    "use --encoding-errors replace",
                )
                continue
            raw = raw.lstrip("\ufeff") if line_number == 1 else raw
            if mode is None:
                mode = _is_jsonl(name, stripped)
            yield _record_from_json(line_number, raw) if mode else InputRecord(line_number, raw)
        if not seen_text:
            raise InputError(f"{name} has no text: it is empty or only blank lines", hint="put one text per line")
    except OSError as exc:
        raise InputError(f"cannot read {name}: {exc.strerror or exc}") from exc
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()
