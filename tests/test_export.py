"""`attnviz export`: every line of a file, nothing lost, resumable."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from helpers import invoke, manifest
from PIL import Image

from attnviz.export import base_name, slugify
from attnviz.inputs import InputRecord


def assert_consistent(directory: Path) -> None:
    """Every ok record's files exist and decode; no temp files are left behind."""
    assert not list(directory.glob(".*.part"))
    for record in manifest(directory):
        if record["status"] == "ok":
            for name in record["files"]:
                path = directory / name
                assert path.exists(), name
                if name.endswith(".png"):
                    Image.open(path).verify()


@pytest.fixture
def texts(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("the cat sat on the mat\n\na dog ran fast\nthe cat sat on the mat\n")
    return path


def test_export_grid_pngs_with_manifest(tiny_models, texts, tmp_path):
    out = tmp_path / "out"
    result = invoke("export", texts, "-o", out, "-m", tiny_models["bert"], "--workers", "1", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["exported"], summary["failed"], summary["files"]) == (3, 0, 3)
    records = manifest(out)
    assert [r["line"] for r in sorted(records, key=lambda r: r["line"])] == [1, 3, 4]  # blank line 2 skipped
    names = {r["line"]: r["files"][0] for r in records}
    assert names[1] == "000001-the-cat-sat-on-the-mat.grid.png"
    assert names[1] != names[4]  # repeated text, unique file
    assert all(r["status"] == "ok" and r["error"] is None and r["tokens"] > 0 for r in records)
    assert_consistent(out)


def test_export_head_view_and_several_formats(tiny_models, texts, tmp_path):
    out = tmp_path / "out"
    result = invoke(
        "export",
        texts,
        "-o",
        out,
        "-m",
        tiny_models["bert"],
        "--view",
        "head",
        "--format",
        "png,npz",
        "--format",
        "svg",
        "--layer",
        "1-2",
        "--workers",
        "0",
    )
    assert result.exit_code == 0, result.output
    record = next(r for r in manifest(out) if r["line"] == 3)
    pngs = [f for f in record["files"] if f.endswith(".png")]
    assert len(pngs) == 2 * 4 and "000003-a-dog-ran-fast.L01H00.png" in pngs
    assert len([f for f in record["files"] if f.endswith(".svg")]) == 8
    with np.load(out / "000003-a-dog-ran-fast.npz") as data:
        assert data["encoder"].shape == (2, 4, 6, 6)
    image = Image.open(out / "000003-a-dog-ran-fast.L02H03.png")
    assert image.format == "PNG" and image.size[0] > 200


def test_export_jsonl_with_ids_pairs_and_a_bad_line(tiny_models, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        '{"text": "the cat sat", "pair": "a dog ran", "id": "first"}\n'
        '{"text": broken\n'
        '{"no_text": 1}\n'
        '{"text": "a bird", "id": "../../etc/passwd"}\n'
    )
    out = tmp_path / "out"
    result = invoke("export", source, "-o", out, "-m", tiny_models["bert"], "--format", "npz", "--workers", "0")
    assert result.exit_code == 1  # some texts failed
    records = {r["line"]: r for r in manifest(out)}
    assert records[1]["status"] == "ok" and records[1]["id"] == "first"
    assert records[1]["files"] == ["000001-first.npz"]
    assert records[2]["status"] == "failed" and "line 2 is not valid JSON" in records[2]["error"]
    assert records[3]["status"] == "failed" and "'text'" in records[3]["error"]
    assert records[4]["files"] == ["000004-etc-passwd.npz"]
    assert sorted(p.name for p in out.iterdir()) == [
        ".attnviz.lock",
        "000001-first.npz",
        "000004-etc-passwd.npz",
        "export.json",
        "manifest.jsonl",
    ]
    with np.load(out / "000001-first.npz") as data:
        assert json.loads(str(data["meta"]))["pair"] == "a dog ran"


def test_export_from_stdin(tiny_models, tmp_path):
    out = tmp_path / "out"
    result = invoke(
        "export",
        "-",
        "-o",
        out,
        "-m",
        tiny_models["gpt2"],
        "--format",
        "json",
        "--workers",
        "0",
        input="the cat\nthe dog sat\n",
    )
    assert result.exit_code == 0, result.output
    assert len(manifest(out)) == 2
    document = json.loads((out / "000002-the-dog-sat.json").read_text())
    assert "decoder" in document


def test_invalid_utf8_line_is_named_and_replace_recovers(tiny_models, tmp_path):
    source = tmp_path / "latin.txt"
    source.write_bytes(b"the cat\ncaf\xe9 cat\n")
    out = tmp_path / "out"
    result = invoke("export", source, "-o", out, "-m", tiny_models["bert"], "--format", "npz", "--workers", "0")
    assert result.exit_code == 1
    failed = [r for r in manifest(out) if r["status"] == "failed"]
    assert len(failed) == 1 and "line 2 is not valid UTF-8" in failed[0]["error"]
    again = invoke(
        "export",
        source,
        "-o",
        out,
        "-m",
        tiny_models["bert"],
        "--format",
        "npz",
        "--workers",
        "0",
        "--encoding-errors",
        "replace",
        "--resume",
    )
    assert again.exit_code == 0, again.output
    records = {r["line"]: r for r in manifest(out)}
    assert len(records) == 2 and records[2]["status"] == "ok" and "\ufffd" in records[2]["text"]


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p / "missing.txt", "no such file"),
        (lambda p: p, "is a directory"),
        (lambda p: (p / "empty.txt", (p / "empty.txt").write_text("\n  \n"))[0], "has no text"),
        (lambda p: (p / "junk.bin", (p / "junk.bin").write_bytes(os.urandom(2000) + b"\x00" * 10))[0], "binary"),
    ],
)
def test_unusable_input_files_exit_2(tiny_models, tmp_path, make, message):
    source = make(tmp_path)
    out = tmp_path / "out"
    result = invoke("export", source, "-o", out, "-m", tiny_models["bert"])
    assert result.exit_code == 2, result.output
    first = result.stderr.splitlines()[0]
    assert first.startswith("error: ") and message in first
    assert not (out / "manifest.jsonl").exists()


def test_line_far_over_the_maximum(tiny_models, tmp_path):
    source = tmp_path / "long.txt"
    source.write_text("the cat\n" + "cat " * 5000 + "\n")
    out = tmp_path / "out"
    result = invoke("export", source, "-o", out, "-m", tiny_models["bert"], "--format", "npz", "--workers", "0")
    assert result.exit_code == 0
    records = {r["line"]: r for r in manifest(out)}
    assert records[2]["tokens"] == 48 and records[2]["truncated"] == 5002 - 48
    strict = invoke(
        "export",
        source,
        "-o",
        tmp_path / "strict",
        "-m",
        tiny_models["bert"],
        "--format",
        "npz",
        "--workers",
        "0",
        "--no-truncate",
    )
    assert strict.exit_code == 1
    records = {r["line"]: r for r in manifest(tmp_path / "strict")}
    assert records[1]["status"] == "ok" and records[2]["status"] == "failed"
    assert "more than the model's maximum of 48" in records[2]["error"]


@pytest.mark.parametrize(
    "text,expected",
    [
        ("../../x", "x"),
        ("CON", "con-text"),
        ("nul", "nul-text"),
        ("a/b\\c:d*e?", "a-b-c-d-e"),
        ("....", "text"),
        ("Ünïcödé façade", "unicode-facade"),
        ("x" * 500, "x" * 40),
    ],
)
def test_slugs_are_safe_file_names(text, expected):
    assert slugify(text) == expected


def test_base_names_stay_inside_the_directory():
    name = base_name(InputRecord(7, "../../../../etc/passwd"))
    assert name == "000007-etc-passwd" and "/" not in name and ".." not in name


def test_existing_export_needs_resume_or_overwrite(tiny_models, texts, tmp_path):
    out = tmp_path / "out"
    args = ("export", texts, "-o", out, "-m", tiny_models["bert"], "--format", "npz", "--workers", "0")
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 2 and "--resume" in again.stderr
    assert invoke(*args, "--overwrite").exit_code == 0
    assert len(manifest(out)) == 3
    changed = invoke(*args[:-2], "--workers", "0", "--words", "--resume")
    assert changed.exit_code == 2 and "different settings (words)" in changed.stderr


def test_unwritable_output_directory(tiny_models, texts, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = invoke("export", texts, "-o", blocker / "out", "-m", tiny_models["bert"])
    assert result.exit_code == 1
    assert result.stderr.startswith("error: cannot create directory")


def test_disk_full_stops_cleanly_and_resume_finishes(tiny_models, tmp_path, monkeypatch):
    """The third file write hits ENOSPC: a clear error, finished texts recorded, no partial
    files; after space is freed, --resume exports the rest exactly once."""
    import attnviz.io as io_module

    source = tmp_path / "in.txt"
    source.write_text("".join(f"the cat sat {i}\n" for i in range(6)))
    out = tmp_path / "out"
    real_replace = os.replace
    calls = {"n": 0}

    def failing_replace(src, dst):
        if str(dst).endswith(".png"):
            calls["n"] += 1
            if calls["n"] == 3:
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(io_module.os, "replace", failing_replace)
    args = ("export", source, "-o", out, "-m", tiny_models["bert"], "--workers", "0")
    result = invoke(*args)
    assert result.exit_code == 1
    assert "disk is full" in result.stderr.splitlines()[0]
    records = manifest(out)
    assert [r["status"] for r in records] == ["ok", "ok", "failed"]
    assert_consistent(out)
    assert len(list(out.glob("*.png"))) == 2
    monkeypatch.setattr(io_module.os, "replace", real_replace)
    resumed = invoke(*args, "--resume")
    assert resumed.exit_code == 0, resumed.output
    final = manifest(out)
    assert sorted(r["line"] for r in final) == list(range(1, 7))
    assert all(r["status"] == "ok" for r in final)
    assert len(list(out.glob("*.png"))) == 6
    assert_consistent(out)


def _worker_export(source: Path, out: Path, model: Path) -> list[str]:
    """The installed `attnviz export` of every head, with two renderer processes."""
    return [
        os.path.join(os.path.dirname(sys.executable), "attnviz"),
        "export", str(source), "-o", str(out), "-m", str(model),
        "--view", "head", "--workers", "2", "--batch-size", "8",
    ]  # fmt: skip


@pytest.mark.slow
def test_ctrl_c_then_resume_exports_each_text_exactly_once(tiny_models, tmp_path):
    source = tmp_path / "many.txt"
    source.write_text("".join(f"the cat sat on the mat {i} and the dog ran\n" for i in range(200)))
    out = tmp_path / "out"
    command = _worker_export(source, out, tiny_models["bert"])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        path = out / "manifest.jsonl"
        if path.exists() and path.read_text().count("\n") >= 5:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    interrupted = manifest(out)
    assert 5 <= len(interrupted) < 200
    assert_consistent(out)
    done = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    records = manifest(out)
    assert sorted(r["line"] for r in records) == list(range(1, 201))
    assert len(list(out.glob("*.png"))) == 200 * 12
    assert_consistent(out)


def test_export_html_pages_and_rollout_images(tiny_models, texts, tmp_path):
    out = tmp_path / "out"
    result = invoke(
        "export",
        texts,
        "-o",
        out,
        "-m",
        tiny_models["bert"],
        "--format",
        "html,png",
        "--view",
        "rollout",
        "--workers",
        "0",
    )
    assert result.exit_code == 0, result.output
    record = next(r for r in manifest(out) if r["line"] == 3)
    assert record["files"] == ["000003-a-dog-ran-fast.html", "000003-a-dog-ran-fast.rollout.png"]
    page = (out / "000003-a-dog-ran-fast.html").read_text()
    assert page.startswith("<!doctype html>") and "Content-Security-Policy" in page


def test_layer_out_of_range_fails_before_any_output(tiny_models, texts, tmp_path):
    out = tmp_path / "out"
    result = invoke("export", texts, "-o", out, "-m", tiny_models["bert"], "--layer", "5")
    assert result.exit_code == 2
    assert "this model has 3 layers (0-2)" in result.stderr
    assert not out.exists()


@pytest.mark.slow
def test_progress_bar_on_a_terminal_and_silent_otherwise(tiny_models, texts, tmp_path):
    """stderr on a pseudo-terminal gets the bar (done/total, rate); a pipe gets none."""
    import pty

    command = [
        os.path.join(os.path.dirname(sys.executable), "attnviz"),
        "export",
        str(texts),
        "-m",
        str(tiny_models["bert"]),
        "--format",
        "npz",
        "--workers",
        "0",
    ]
    leader, follower = pty.openpty()
    env = dict(os.environ, COLUMNS="100", TERM="xterm")
    process = subprocess.Popen(
        command + ["-o", str(tmp_path / "tty")], stdout=subprocess.PIPE, stderr=follower, env=env
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:
            break
        if not data:
            break
        chunks.append(data)
    process.wait(timeout=120)
    os.close(leader)
    shown = b"".join(chunks).decode("utf-8", "replace")
    assert process.returncode == 0, shown
    assert "exporting" in shown and "3/3" in shown and "texts/s" in shown
    piped = subprocess.run(command + ["-o", str(tmp_path / "pipe")], capture_output=True, text=True, timeout=120)
    assert piped.returncode == 0
    assert "exporting" not in piped.stderr and "3/3" not in piped.stderr


def test_export_norm_view_and_the_python_api(tiny_models, tmp_path):
    import numpy as np

    import attnviz
    from attnviz.result import AttentionResult

    source = tmp_path / "t.txt"
    source.write_text("the cat sat\na dog ran\n")
    out = tmp_path / "out"
    result = invoke("export", source, "-o", out, "-m", tiny_models["bert"], "--view", "norm", "--format", "png,npz")
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in out.iterdir())
    assert "000001-the-cat-sat.norm.png" in names and "000001-the-cat-sat.npz" in names
    saved = AttentionResult.load(out / "000001-the-cat-sat.npz")
    direct = attnviz.extract("the cat sat", model=str(tiny_models["bert"]), norms=True, vectors=True)
    np.testing.assert_allclose(saved.derived["norm"], direct.derived["norm"], atol=1e-5)
    assert direct.vectors["encoder"]["query"].shape[:2] == (3, 4)
    refused = invoke("export", source, "-o", tmp_path / "o2", "-m", tiny_models["bert"], "--view", "norm", "--words")
    assert refused.exit_code == 2 and "does not combine" in refused.stderr


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc").is_dir(), reason="needs /proc to find the worker processes")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGTERM"])
def test_workers_end_when_the_export_dies(tiny_models, tmp_path, how):
    """After SIGKILL or SIGTERM of export, its renderer processes exit within seconds;
    SIGTERM also stops cleanly (exit 143, a true manifest that --resume finishes)."""
    source = tmp_path / "many.txt"
    source.write_text("".join(f"the cat sat on the mat {i} and the dog ran\n" for i in range(300)))
    out = tmp_path / "out"
    command = _worker_export(source, out, tiny_models["bert"])
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    workers: list[int] = []
    while time.monotonic() < deadline:
        path = out / "manifest.jsonl"
        workers = [p for p in _children(process.pid) if _alive(p)]
        if path.exists() and path.read_text().count("\n") >= 3 and len(workers) >= 2:
            break
        time.sleep(0.05)
    assert len(workers) >= 2
    process.send_signal(signal.SIGKILL if how == "SIGKILL" else signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    gone_by = time.monotonic() + 10
    while time.monotonic() < gone_by and any(_alive(p) for p in workers):
        time.sleep(0.1)
    assert not any(_alive(p) for p in workers), "renderer processes outlived export"
    if how == "SIGTERM":
        assert process.returncode == 143 and "terminated" in stderr and "Traceback" not in stderr
        assert_consistent(out)
    # after SIGKILL a temporary .part may remain (nothing can clean up then); resume removes it
    done = subprocess.run(command + ["--resume"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert sorted(r["line"] for r in manifest(out)) == list(range(1, 301))
    assert_consistent(out)


def test_resumed_texts_do_not_speed_up_the_eta():
    """900 of 1,000 texts were done by an earlier run; this run did 20 in 10 s: 2 texts/s,
    80 left, 40 s, not the 92 texts/s that counting the resumed ones would claim."""
    from attnviz.cli._progress import rate_and_left
    from attnviz.export import ExportSummary

    summary = ExportSummary("out", total=920, resumed=900)
    assert rate_and_left(summary.total, summary.resumed, 1000, 10.0) == ("2.0 texts/s", "0:40 left")
    fresh = ExportSummary("out", total=1, resumed=0)
    assert rate_and_left(fresh.total, fresh.resumed, 1000, 1.0)[1] == ""  # no estimate from a single text
