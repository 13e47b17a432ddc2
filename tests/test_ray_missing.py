"""Without Ray installed, --ray is one line naming the install command, before any model
is loaded (no Ray instance is started here)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from helpers import invoke


@pytest.mark.parametrize("command", ["stats", "export"])
def test_ray_missing_is_one_line_with_the_install_command(
    command: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray raises ImportError
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat sat on the mat.\n")
    args = ["stats", "-f", texts] if command == "stats" else ["export", texts, "-o", tmp_path / "out"]
    result = invoke(*args, "-m", tiny_models["bert"], "--ray", "local")
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and "Ray" in lines[0]
    assert 'pip install "attnviz[ray]"' in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()


def test_ray_refuses_options_that_need_whole_maps(tiny_models: dict[str, Path]) -> None:
    result = invoke("stats", "the cat sat.", "-m", tiny_models["bert"], "--ray", "local", "--cluster")
    assert result.exit_code == 2
    assert "--cluster" in result.stderr and "--ray" in result.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["stats", "-f", "x.txt", "--ray"], ["stats", "-f", "x.txt", "--ray=local"]),
        (["stats", "--ray", "-f", "x.txt"], ["stats", "--ray=local", "-f", "x.txt"]),
        (["stats", "--ray", "auto", "-f", "x.txt"], ["stats", "--ray", "auto", "-f", "x.txt"]),
        (["stats", "--ray", "10.0.0.1:6379"], ["stats", "--ray", "10.0.0.1:6379"]),
        (["stats", "--", "--ray"], ["stats", "--", "--ray"]),  # after --, a text
    ],
)
def test_a_bare_ray_flag_means_local(args: list[str], expected: list[str]) -> None:
    from attnviz.cli._ray import ray_alone_is_local

    assert ray_alone_is_local(args) == expected


def test_a_bare_ray_flag_reaches_the_engine_as_local(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_models: dict[str, Path]
) -> None:
    """``--ray`` last, with no value: read as a local instance (here: Ray is missing, so the
    install line), not as Click's 'requires an argument'."""
    monkeypatch.setitem(sys.modules, "ray", None)
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat sat on the mat.\n")
    result = invoke("stats", "-f", texts, "-m", tiny_models["bert"], "--ray")
    assert result.exit_code == 1
    assert 'pip install "attnviz[ray]"' in result.stderr


@pytest.mark.parametrize("value", ["the cat sat", "a;b", "host:99999999", "ray:/x"])
def test_what_cannot_be_a_ray_address_is_one_line(value: str, tiny_models: dict[str, Path]) -> None:
    result = invoke("stats", "the cat sat.", "-m", tiny_models["bert"], "--ray", value)
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0] == f"error: --ray '{value}' is not a Ray address"
    assert lines[1].startswith("hint: give local, auto, HOST:PORT")
    assert len(lines) == 2


@pytest.mark.parametrize("value", ["local", "LOCAL", "auto", "Auto", "10.0.0.1:6379", "head-node", "ray://head:10001"])
def test_ray_addresses_are_taken(value: str) -> None:
    from attnviz.cli._ray import checked_address

    assert checked_address(value) == (value.lower() if value.lower() in {"local", "auto"} else value)


def test_rays_known_noise_is_filtered_from_stderr_and_the_rest_kept() -> None:
    """Ray's core worker writes a warning on every Ray Data run with actors straight to
    descriptor 2 (ray-project/ray#57733); it is dropped, other lines written there and
    Python's own stderr get through, in order, and descriptor 2 is restored."""
    import subprocess

    script = """
import os, sys
from attnviz.distributed.engine import _without_known_noise
with _without_known_noise(False):
    os.write(2, b"[2026 E 1 1] core_worker.cc:2465: Actor with class name: 'MapWorker(x)' has constructor "
                b"arguments in the object store and max_restarts > 0. If the ...\\n")
    os.write(2, b"a real problem\\n")
    print("from python", file=sys.stderr)
    before = sys.stderr
print("after", file=sys.stderr, flush=True)
os.write(2, b"restored\\n")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "constructor arguments" not in result.stderr
    lines = result.stderr.splitlines()
    assert set(lines) == {"a real problem", "from python", "after", "restored"}
    assert lines.index("after") < lines.index("restored")


def test_the_noise_filter_stays_out_of_a_captured_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    from attnviz.distributed.engine import _without_known_noise

    with _without_known_noise(False):
        print("kept", file=sys.stderr)
    assert capsys.readouterr().err == "kept\n"


def test_rays_reports_from_the_cluster_are_dropped_from_stdout_unless_verbose() -> None:
    import io

    from attnviz.distributed.engine import RayChatter

    lines = [
        "\x1b[33m(raylet)\x1b[0m A worker died or was killed while executing a task by an unexpected system error.",
        "(MapWorker(MapBatches(StatisticsJob)) pid=123) a worker's log line",
        "[repeated 3x across cluster] (Ray deduplicates logs by default. Set RAY_DEDUP_LOGS=0 to disable)",
        "(the cat) a line of ours that starts with a parenthesis",
        '{"texts": 3}',
    ]
    quiet, verbose = io.StringIO(), io.StringIO()
    for keep, target in ((False, quiet), (True, verbose)):
        chatter = RayChatter(target, keep=keep)
        for line in lines:
            chatter.write(line[:10])  # written in pieces, as print() may
            chatter.write(line[10:] + "\n")
        chatter.write("no newline")
        chatter.flush()
    assert quiet.getvalue() == "(the cat) a line of ours that starts with a parenthesis\n" + '{"texts": 3}\nno newline'
    assert verbose.getvalue() == "\n".join(lines) + "\nno newline"


@pytest.mark.parametrize(
    ("address", "needle"),
    [("127.0.0.1:1", "at 127.0.0.1:1: connection refused"), ("nosuchhost.invalid", "at nosuchhost.invalid:6379: ")],
)
def test_an_address_where_nothing_answers_is_one_line_at_once(address: str, needle: str) -> None:
    """ray.init would retry for many minutes (and ignore one Ctrl-C): a TCP check first."""
    from attnviz.distributed.engine import DistributedError, check_reachable

    with pytest.raises(DistributedError, match=needle) as caught:
        check_reachable(address, timeout=2.0)
    assert caught.value.message.startswith("cannot reach the Ray cluster at ")
    check_reachable("auto")  # left to Ray: this machine's address file
    check_reachable("ray://127.0.0.1:1")  # Ray Client fails fast on its own
