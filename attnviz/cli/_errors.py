"""Map expected failures to one line on stderr and an exit code; bugs still raise."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import typer

from attnviz.errors import AttnvizError

DEBUG_VARIABLE = "ATTNVIZ_DEBUG"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "").strip() not in {"", "0", "false", "no"}


def report(error: AttnvizError) -> None:
    """Print ``error: ...`` and ``hint: ...`` on stderr."""
    from attnviz.safety import printable

    print(f"error: {printable(error.message)}", file=sys.stderr)
    if error.hint:
        print(f"hint: {printable(error.hint)}", file=sys.stderr)


@contextlib.contextmanager
def error_boundary() -> Iterator[None]:
    """Turn :class:`AttnvizError` into its exit code and Ctrl-C into 130.

    With ``ATTNVIZ_DEBUG=1`` the traceback is shown as well.
    """
    try:
        yield
    except AttnvizError as error:
        if debug_enabled():
            import traceback

            traceback.print_exc()
        report(error)
        raise typer.Exit(code=error.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise typer.Exit(code=130) from None
