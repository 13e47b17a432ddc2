"""Helpers shared by the test modules (imported as ``from helpers import ...``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from typer.testing import CliRunner

from attnviz.cli import app


def invoke(*args: Any, **kwargs: Any) -> Any:
    """Run the CLI in-process; arguments may be paths or numbers. ``kwargs`` go to
    ``CliRunner.invoke`` (``input=``, ``env=``)."""
    return CliRunner().invoke(app, [str(a) for a in args], **kwargs)


def manifest(directory: Path) -> list[dict[str, Any]]:
    """The records of an export's manifest.jsonl."""
    return [json.loads(line) for line in (directory / "manifest.jsonl").read_text().splitlines()]
