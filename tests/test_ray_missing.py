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
