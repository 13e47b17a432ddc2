"""Consoles: data to stdout, progress, warnings and errors to stderr."""

from __future__ import annotations

import sys
from functools import cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console


@cache
def stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False)


def stdout_console(min_width: int = 0) -> Console:
    """A console on stdout; when stdout is not a terminal (a pipe, a file) wide tables get
    ``min_width`` columns instead of rich's default of 80, so they are not squeezed.

    A reader that closes the pipe early (``| head``) is not an error: rich's console would
    exit 1, this one raises :class:`BrokenPipeError`, which the CLI ends with exit 0."""
    from rich.console import Console

    class PipeConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    console = PipeConsole(highlight=False)
    if min_width and not console.is_terminal and console.width < min_width:
        console = PipeConsole(highlight=False, width=min_width)
    return console


def warn(message: str) -> None:
    """A warning on stderr: the run goes on."""
    from attnviz.safety import printable

    print(f"warning: {printable(message)}", file=sys.stderr)


def note(message: str) -> None:
    """A progress note on stderr (what was written), never mixed into stdout data."""
    from attnviz.safety import printable

    print(printable(message), file=sys.stderr)


def quiet_unless(verbose: bool) -> None:
    """Keep the libraries' chatter off stderr for this process, unless ``--verbose``."""
    if not verbose:
        from attnviz.models import silence_libraries

        silence_libraries()
