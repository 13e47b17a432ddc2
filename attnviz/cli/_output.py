"""Consoles: data to stdout, progress, warnings and errors to stderr."""

from __future__ import annotations

import sys
from functools import cache
from typing import Any


@cache
def stderr_console() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def stdout_console() -> Any:
    from rich.console import Console

    return Console(highlight=False)


def warn(message: str) -> None:
    print(f"warning: {message}" if not message.startswith("wrote ") else message, file=sys.stderr)
