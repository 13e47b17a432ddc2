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
