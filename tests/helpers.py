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


def random_result(tokens: list[str], layers: int = 2, heads: int = 3, *, text: str | None = None, seed: int = 0) -> Any:
    """A result of random attention (rows summing to 1) over ``tokens``; ``[...]`` tokens
    are special."""
    import numpy as np

    from attnviz.result import AttentionResult

    n = len(tokens)
    array = np.random.default_rng(seed).random((layers, heads, n, n)).astype(np.float32)
    array /= array.sum(-1, keepdims=True)
    return AttentionResult.from_arrays(array, tokens, model="m", text=text)


def repeated_result(matrix: Any, layers: int = 1, heads: int = 1) -> Any:
    """A result whose every head holds ``matrix`` (tokens a, b, ..., none special)."""
    import numpy as np

    from attnviz.result import AttentionResult

    n = len(matrix)
    array = np.broadcast_to(np.asarray(matrix, dtype=np.float32), (layers, heads, n, n))
    return AttentionResult.from_arrays(
        array, [chr(97 + i) for i in range(n)], model="m", text="t", special_mask=[False] * n
    )
