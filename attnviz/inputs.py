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
_CHUNK = 1 << 16
#: Longest input line read, in bytes: a longer line fails alone (its bytes are skipped, never
#: held), so an endless line cannot exhaust memory. 8 MiB is over ten times the characters
#: of the longest context of common models; callers pass less (the model's maximum length
#: in characters times a margin) when they know it.
MAX_LINE_BYTES = 8 << 20
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class InputRecord:
    """One input: its 1-based ``line``, an optional ``id``, and either the texts or an ``error``."""

    line: int
    text: str | None
    pair: str | None = None
    target: str | None = None
    id: str | None = None
    error: str | None = None


def check_input(path: str | os.PathLike[str]) -> None:
    """Refuse a missing path or a directory without opening it: opening a FIFO to check it
    would consume (and lose) what its writer sends, or wait for a writer."""
    if str(path) == "-":
        return
    target = Path(path)
    if not target.exists():
        raise InputError(f"no such file: {target}", hint="check the path")
    if target.is_dir():
        raise InputError(f"{target} is a directory, not a text file", hint="pass a text or JSONL file, or - for stdin")


def open_input(path: str | os.PathLike[str]) -> tuple[IO[bytes], str]:
    if str(path) == "-":
        if sys.stdin is None or getattr(sys.stdin, "buffer", None) is None:
            raise InputError("standard input is closed", hint="pipe the text in, or give a file")
        return sys.stdin.buffer, "stdin"
    check_input(path)
    target = Path(path)
    try:
        handle = open(target, "rb")  # noqa: SIM115 - closed by read_inputs
    except OSError as exc:
        raise InputError(f"cannot read {target}: {exc.strerror or exc}", hint="check the file's permissions") from exc
    return handle, str(target)


def _is_jsonl(name: str, first_line: bytes) -> bool:
    if name.endswith((".jsonl", ".ndjson")):
        return True
    return first_line.removeprefix(_BOM).lstrip().startswith(b"{")


def read_lines(handle: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[bytes | None]:
    """The lines of ``handle`` without their endings (``\\n``, ``\\r\\n`` or a lone ``\\r``, as
    old Mac files end lines), read in chunks. A line longer than ``limit`` bytes yields
    ``None`` and its bytes are skipped as they arrive, so memory stays bounded."""
    buffer = b""
    skipping = False  # inside a line already known to be too long
    after_cr = False  # the previous chunk ended in \r: a leading \n belongs to it
    while True:
        chunk = handle.read(_CHUNK) if not hasattr(handle, "read1") else handle.read1(_CHUNK)  # type: ignore[attr-defined]
        if not chunk:
            break
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]
        after_cr = chunk.endswith(b"\r")
        start = 0
        while True:
            cut = _next_break(chunk, start)
            if cut < 0:
                break
            if skipping:
                skipping = False
            else:
                line = buffer + chunk[start:cut]
                yield line if len(line) <= limit else None
            buffer = b""
            start = cut + (2 if chunk[cut : cut + 2] == b"\r\n" else 1)
        rest = chunk[start:]
        if skipping:
            continue
        if len(buffer) + len(rest) > limit:
            yield None
            buffer, skipping = b"", True
        else:
            buffer += rest
    if buffer and not skipping:
        yield buffer


def _next_break(chunk: bytes, start: int) -> int:
    newline, carriage = chunk.find(b"\n", start), chunk.find(b"\r", start)
    if newline < 0:
        return carriage
    return newline if carriage < 0 else min(newline, carriage)


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
    max_line_bytes: int = MAX_LINE_BYTES,
) -> Iterator[InputRecord]:
    """Yield one :class:`InputRecord` per non-blank line of ``path`` (``-`` for stdin).

    Raises :class:`InputError` for a missing file, a directory, an unreadable or binary file
    or one with no text at all. JSONL is detected by the extension or a first line starting
    with ``{`` (after a UTF-8 byte order mark). A line longer than ``max_line_bytes`` is one
    failed record. A FIFO is read once, as it arrives.
    """
    if encoding_errors not in ENCODING_ERRORS:
        raise InputError(
            f"unknown {{encoding_errors}} '{encoding_errors}'", hint="use strict or replace", option="encoding_errors"
        )
    handle, name = open_input(path)
    try:
        head = handle.peek(_BINARY_SNIFF)[:_BINARY_SNIFF] if hasattr(handle, "peek") else b""
        if _looks_binary(head):
            raise InputError(
                f"{name} looks like a binary file (it contains NUL bytes)", hint="pass a UTF-8 text or JSONL file"
            )
        seen_text = False
        mode: bool | None = None
        for line_number, stripped in enumerate(read_lines(handle, max_line_bytes), start=1):
            if stripped is None:
                seen_text = True
                yield InputRecord(
                    line_number, None, error=f"line {line_number} is longer than {max_line_bytes:,} bytes; skipped"
                )
                continue
            if line_number == 1:
                stripped = stripped.removeprefix(_BOM)
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
                    "to keep it, read the file with encoding errors replaced",
                )
                continue
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


def line_cap(max_tokens: int | None) -> int:
    """The longest line worth reading for a model of ``max_tokens`` tokens, in bytes: 64
    bytes a token (a generous number of characters a token, times UTF-8's 4 bytes), at
    least 64 KiB, at most :data:`MAX_LINE_BYTES`. A longer line could only be cut."""
    if not max_tokens or max_tokens <= 0:
        return MAX_LINE_BYTES
    return int(min(MAX_LINE_BYTES, max(1 << 16, max_tokens * 64)))


def read_stdin_text(limit: int = MAX_LINE_BYTES) -> str:
    """The whole of standard input as one text (``show -``), refused past ``limit`` bytes
    (read no further: memory stays bounded), with NUL bytes or invalid UTF-8."""
    stream = getattr(sys.stdin, "buffer", None)
    if stream is None:
        raise InputError("standard input is closed", hint="pipe the text in, or give it as an argument")
    data = stream.read(limit + 1)
    if len(data) > limit:
        raise InputError(
            f"standard input is longer than {limit:,} bytes", hint="give a shorter text, or export a file line by line"
        )
    if b"\x00" in data:
        raise InputError("standard input contains NUL bytes (binary data?)", hint="pipe in UTF-8 text")
    try:
        return data.decode("utf-8").removeprefix("\ufeff").rstrip("\r\n")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"standard input is not valid UTF-8 (byte {exc.start})", hint="re-save the text as UTF-8"
        ) from exc
