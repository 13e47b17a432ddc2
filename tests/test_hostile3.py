"""Hostile inputs, round 3 (issue #21): each case as the issue reported it, on a small scale
(limits are simulated with small caps, never gigabytes)."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke, manifest
from rich.console import Console

from attnviz.errors import OutputWriteError, SelectionError
from attnviz.inputs import check_input, read_inputs, read_lines
from attnviz.io import DirectoryLock, atomic_write, check_writable
from attnviz.result import AttentionResult

ATTNVIZ = [sys.executable, "-m", "attnviz"]


def _result(tokens: list[str], text: str = "t", seed: int = 0) -> AttentionResult:
    array = np.random.default_rng(seed).random((2, 2, len(tokens), len(tokens))).astype(np.float32)
    array /= array.sum(-1, keepdims=True)
    return AttentionResult.from_arrays(array, tokens, model="m", text=text)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    """A saved result whose text holds bidi, line-separator and C1 characters."""
    path = tmp_path_factory.mktemp("saved") / "hostile.npz"
    _result(["[CLS]", "a\u202eb", "c", "[SEP]"], text="x\u202ey\u2028z\u009bw").save(path)
    return path


def _run(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, **kwargs.pop("env", {})}
    return subprocess.run(ATTNVIZ + args, capture_output=True, env=env, timeout=120, **kwargs)


def _one_error_line(stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace")
    assert "Traceback" not in text, text
    lines = [line for line in text.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, text
    return lines[0]


# 2. unbounded lines ---------------------------------------------------------------------------
class Endless(io.RawIOBase):
    """``size`` bytes of 'a' with no newline, produced as read (never held whole)."""

    def __init__(self, size: int, tail: bytes = b"") -> None:
        self.left, self.tail = size, tail

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
        if self.left <= 0:
            n = min(len(buffer), len(self.tail))
            buffer[:n], self.tail = self.tail[:n], self.tail[n:]
            return n
        n = min(len(buffer), self.left)
        buffer[:n] = b"a" * n
        self.left -= n
        return n


def test_a_line_over_the_cap_fails_alone_and_memory_stays_bounded(tmp_path):
    import tracemalloc

    tracemalloc.start()
    lines = list(read_lines(io.BufferedReader(Endless(20_000_000, b"\nafter\n")), limit=100_000))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert lines == [None, b"after"]
    assert peak < 5_000_000  # 20 MB streamed through, a few chunks held

    path = tmp_path / "t.txt"
    path.write_bytes(b"first\n" + b"x" * 5000 + b"\nlast\n")
    records = list(read_inputs(path, max_line_bytes=1000))
    assert [(r.line, r.text) for r in records] == [(1, "first"), (2, None), (3, "last")]
    assert "longer than 1,000 bytes" in (records[1].error or "")


# 13, 14. line endings and a byte order mark ----------------------------------------------------
def test_carriage_return_endings_split_lines_even_across_chunks(tmp_path):
    path = tmp_path / "mac.txt"
    path.write_bytes(b"one\rtwo\r\nthree\n\rfour")
    assert [r.text for r in read_inputs(path)] == ["one", "two", "three", "four"]

    class Bytewise(io.RawIOBase):  # one byte per read: "\r" and "\n" arrive apart
        def __init__(self, data: bytes) -> None:
            self.data = data

        def readable(self) -> bool:
            return True

        def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def]
            if not self.data:
                return 0
            buffer[0], self.data = self.data[0], self.data[1:]
            return 1

    assert list(read_lines(Bytewise(b"a\r\nb\rc"))) == [b"a", b"b", b"c"]  # type: ignore[arg-type]


def test_a_bom_before_jsonl_in_a_txt_file_is_still_jsonl(tmp_path):
    path = tmp_path / "records.txt"
    path.write_bytes(b'\xef\xbb\xbf{"text": "hello", "id": "a"}\n{"text": "world"}\n')
    records = list(read_inputs(path))
    assert [(r.text, r.id, r.error) for r in records] == [("hello", "a", None), ("world", None, None)]


# 12. a FIFO is read once ---------------------------------------------------------------------
def test_a_fifo_is_checked_without_opening_and_read_once(tmp_path):
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)
    got: list = []

    def reader() -> None:
        check_input(fifo)  # opening here would take the writer's data and lose it
        got.extend(r.text for r in read_inputs(fifo))

    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    with open(fifo, "wb") as writer:
        writer.write(b"alpha\nbeta\n")
    thread.join(timeout=20)
    assert not thread.is_alive(), "reading the FIFO hung"
    assert got == ["alpha", "beta"]


# 4, 11. huge and wide labels -------------------------------------------------------------------
def test_a_10mb_token_label_is_drawn_cut_with_an_ellipsis(tmp_path):
    from attnviz.outputs import write_view
    from attnviz.render.terminal import print_view
    from attnviz.render.views import LABEL_LIMIT, build_view

    result = _result(["[CLS]", "x" * 10_000_000, "b", "[SEP]"])
    data = build_view(result, "grid")
    assert max(len(label) for label in data.key_labels) == LABEL_LIMIT
    assert data.key_labels[1] == "x" * (LABEL_LIMIT - 1) + "…"
    console = Console(file=io.StringIO(), width=80, color_system=None)
    print_view(result, "encoder", "grid", console, lines=60)
    out = console.file.getvalue()
    assert len(out) < 20_000 and "x…" in out
    write_view(data, tmp_path / "fast.png", fast=True)
    write_view(data, tmp_path / "mpl.svg")
    assert "x" * 100 not in (tmp_path / "mpl.svg").read_text()


def test_rows_are_padded_by_display_width_so_wide_tokens_keep_columns_aligned():
    from rich.cells import cell_len

    from attnviz.render.terminal import print_heatmap

    labels = ["猫猫猫猫", "a", "日本"]
    matrix = np.eye(3, dtype=np.float32)
    console = Console(file=io.StringIO(), width=80, color_system=None)
    print_heatmap(matrix, labels, labels, console)
    rows = [line for line in console.file.getvalue().splitlines() if line[:3].strip() in ("0", "1", "2")]
    starts = [cell_len(line[: line.index("█")]) - 6 * i for i, line in enumerate(rows[:3])]
    # the diagonal's full cell sits i cells (6 characters wide each here) right of row 0's
    assert len(set(starts)) == 1, rows


# 6. --resume over damaged records --------------------------------------------------------------
def test_resume_over_a_damaged_export_json_or_manifest_record(tiny_models, tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("the cat sat\nthe dog ran\n")
    out = tmp_path / "out"
    args = ["export", source, "-o", out, "-m", tiny_models["bert"], "--format", "npz", "--workers", "0"]
    assert invoke(*args).exit_code == 0
    settings = (out / "export.json").read_text()

    (out / "export.json").write_text('{"model": ')
    damaged = invoke(*args, "--resume")
    assert damaged.exit_code == 2 and damaged.exception is None or isinstance(damaged.exception, SystemExit)
    assert "export.json is damaged" in damaged.stderr and "--overwrite" in damaged.stderr

    (out / "export.json").write_text(settings)
    records = manifest(out)
    records[0]["files"] = 5  # not a list
    records[1]["files"] = ["../../escape.npz"]
    (out / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records) + "[1, 2\n")
    resumed = invoke(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert sorted(r["line"] for r in manifest(out) if r["status"] == "ok") == [1, 2]  # both done again


# 7. closed or full stdout, closed stdin --------------------------------------------------------
@pytest.mark.parametrize("args", [["--version"], ["-h"], ["render", "SAVED"], ["render", "SAVED", "--json"]])
def test_a_full_stdout_is_one_error_line(saved, args):
    args = [str(saved) if a == "SAVED" else a for a in args]
    with open("/dev/full", "wb") as full:
        done = subprocess.run(ATTNVIZ + args, stdout=full, stderr=subprocess.PIPE, timeout=120)
    assert done.returncode == 1
    assert _one_error_line(done.stderr) == "error: cannot write to standard output: the disk is full"


@pytest.mark.parametrize("args", [["--version"], ["-h"], ["render", "SAVED"]])
def test_a_closed_stdout_is_like_a_closed_pipe(saved, args):
    args = [str(saved) if a == "SAVED" else a for a in args]
    done = subprocess.run(ATTNVIZ + args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120, **_closed(1))
    assert done.returncode == 0, done.stderr
    assert b"Traceback" not in done.stderr


def test_show_dash_with_a_closed_stdin_is_one_error_line():
    done = subprocess.run(ATTNVIZ + ["show", "-"], capture_output=True, timeout=120, **_closed(0))
    assert done.returncode == 2
    assert _one_error_line(done.stderr) == "error: the text is empty"  # a closed stdin reads as empty


def _closed(fd: int) -> dict:
    """Popen arguments that start the child with descriptor ``fd`` closed."""
    return {"preexec_fn": lambda: os.close(fd)}


# 8. a non-UTF-8 output encoding ------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_terminal_views_fall_back_to_ascii_drawing(saved, encoding):
    done = _run(["render", str(saved)], env={"PYTHONIOENCODING": encoding})
    assert done.returncode == 0, done.stderr
    out = done.stdout.decode(encoding)
    assert out.isascii() or encoding == "latin-1"
    assert "█" not in out and "·" not in out
    assert "#" in out or ":" in out  # the ASCII shades draw the maps


# 9. --json escapes bidi and C1 -----------------------------------------------------------------
def test_json_escapes_bidi_line_separators_and_c1(saved):
    done = _run(["render", str(saved), "--json"])
    assert done.returncode == 0, done.stderr
    raw = done.stdout.decode("utf-8")
    for char in ("\u202e", "\u2028", "\u009b"):
        assert char not in raw
    assert "\\u202e" in raw and "\\u2028" in raw and "\\u009b" in raw
    assert json.loads(raw)["text"] == "x\u202ey\u2028z\u009bw"


# 10. glyph warnings ---------------------------------------------------------------------------
def test_missing_glyphs_are_said_once_without_raw_bytes(tmp_path):
    import warnings

    from attnviz.render import fonts, image
    from attnviz.render.views import build_view

    result = _result(["[CLS]", "猫\x1b[31m", "犬\x07", "[SEP]"])
    data = build_view(result, "grid")
    fonts._told = False
    stderr = io.StringIO()
    handler = __import__("logging").StreamHandler(stderr)
    fonts._LOG.addHandler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for name in ("a.png", "b.svg"):
                image.save_figure(image.figure_for_view(data), tmp_path / name)
    finally:
        fonts._LOG.removeHandler(handler)
    assert not [w for w in caught if "Glyph" in str(w.message)]
    said = stderr.getvalue()
    assert "\x1b" not in said and "\x07" not in said
    if fonts.font_file_for("猫") is None or fonts.font_file_for("犬") is None:
        assert said.count("no glyph") == 1  # once, though two figures lacked the same glyphs
    else:
        assert said == ""


# 15, 16, 17. the output directory and -o -----------------------------------------------------
def test_symlinks_in_the_output_directory_are_not_followed(tmp_path):
    from attnviz.export.manifest import ManifestWriter

    outside = tmp_path / "outside"
    directory = tmp_path / "dir"
    directory.mkdir()
    (directory / ".attnviz.lock").symlink_to(outside / "lock")
    (directory / "manifest.jsonl").symlink_to(outside / "manifest")
    with pytest.raises(OutputWriteError, match="symbolic link"):
        DirectoryLock(directory).acquire()
    with pytest.raises(OutputWriteError, match="symbolic link"):
        ManifestWriter(directory / "manifest.jsonl")
    assert not outside.exists()


def test_new_files_respect_the_umask_and_replaced_files_keep_their_mode(tmp_path):
    old = os.umask(0o077)
    try:
        fresh = atomic_write(tmp_path / "new.txt", lambda h: h.write(b"x"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    private = tmp_path / "private.txt"
    private.write_bytes(b"old")
    private.chmod(0o600)
    old = os.umask(0o022)
    try:
        atomic_write(private, lambda h: h.write(b"new"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(private.stat().st_mode) == 0o600 and private.read_bytes() == b"new"


def test_an_output_naming_a_fifo_or_a_device_is_refused(tmp_path, saved):
    fifo = tmp_path / "out.png"
    os.mkfifo(fifo)
    with pytest.raises(OutputWriteError, match="is a FIFO"):
        check_writable(fifo)
    with pytest.raises(OutputWriteError, match="is a FIFO"):
        atomic_write(fifo, lambda h: h.write(b"x"))
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    with pytest.raises(OutputWriteError, match="is a device"):
        check_writable("/dev/null")
    result = invoke("render", saved, "-o", fifo)
    assert result.exit_code == 1 and "is a FIFO" in result.stderr
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_an_unknown_scale_is_refused_before_any_work(saved):
    result = invoke("render", saved, "--scale", "loud")
    assert result.exit_code == 2 and "unknown --scale 'loud'" in result.stderr
    with pytest.raises(SelectionError):
        from attnviz.render.colors import color_scale

        color_scale(np.ones((2, 2)), None, "loud")


def test_an_export_line_over_the_models_cap_fails_alone_in_the_manifest(tiny_models, tmp_path):
    from attnviz.inputs import MAX_LINE_BYTES, line_cap

    assert line_cap(2048) == 2048 * 64 and line_cap(512) == 1 << 16 and line_cap(10**30) == MAX_LINE_BYTES
    source = tmp_path / "in.txt"
    source.write_text("the cat sat\n" + "cat " * 40_000 + "\nthe dog ran\n")  # 160 KB: over a tiny model's cap
    out = tmp_path / "out"
    result = invoke("export", source, "-o", out, "-m", tiny_models["bert"], "--format", "npz", "--workers", "0")
    assert result.exit_code == 1  # some texts failed
    records = {r["line"]: r for r in manifest(out)}
    assert records[1]["status"] == "ok" and records[3]["status"] == "ok"
    assert records[2]["status"] == "failed" and "longer than 65,536 bytes" in records[2]["error"]


def test_show_dash_refuses_nul_bytes_and_stdin_past_the_cap(monkeypatch):
    from attnviz.errors import InputError
    from attnviz.inputs import read_stdin_text

    result = invoke("show", "-", input=b"\x00" * 100_000)
    assert result.exit_code == 2 and "NUL bytes" in result.stderr
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbfword " * 1000)))
    with pytest.raises(InputError, match="longer than 1,000 bytes"):
        read_stdin_text(limit=1000)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"\xef\xbb\xbfhello\r\n")))
    assert read_stdin_text() == "hello"
