"""docs/cli.md is generated from --help and must stay current (CI runs this test)."""

from __future__ import annotations

from pathlib import Path

from attnviz.cli._docs import cli_reference

ROOT = Path(__file__).resolve().parent.parent


def test_cli_reference_is_current():
    current = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert current == cli_reference(), "docs/cli.md is stale: run python -m attnviz.cli._docs > docs/cli.md"


def test_help_is_plain_and_flags_take_no_value():
    text = cli_reference()
    import re

    assert "<bool>" not in text
    assert re.search(r"^  --words +Merge sub-word", text, re.M)  # a flag: no value placeholder
    assert "-h, --help" in text
    for command in ("show", "export", "stats", "compare", "render", "info"):
        assert f"## attnviz {command}" in text
    stats = text.split("## attnviz stats")[1].split("## attnviz")[0]
    assert ".html" not in stats  # stats -o draws an image only
    assert "--batch-size N  " in stats and "Texts per forward pass" in stats


def test_dash_h_is_help(capsys):
    from typer.testing import CliRunner

    from attnviz.cli import app

    result = CliRunner().invoke(app, ["show", "-h"])
    assert result.exit_code == 0 and "Usage: attnviz show" in result.output
