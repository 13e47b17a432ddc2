"""Map expected failures to one line on stderr and an exit code; bugs still raise."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator

import typer
from typer.core import TyperGroup

from attnviz.errors import AttnvizError

DEBUG_VARIABLE = "ATTNVIZ_DEBUG"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "").strip() not in {"", "0", "false", "no"}


#: Library parameters whose flag is not ``--`` + the name with dashes.
FLAGS: dict[str, str] = {"output": "-o", "out_dir": "-o", "views": "--view", "formats": "--format"}


def flag(option: str) -> str:
    """The command line's name for a library parameter: ``max_bytes`` -> ``--max-bytes``."""
    return FLAGS.get(option, "--" + option.replace("_", "-"))


def report(error: AttnvizError) -> None:
    """Print ``error: ...`` and ``hint: ...`` on stderr. An error that carries the option it
    concerns gets the command line's wording here (``--layer`` for the layer axis): the
    library does not name flags."""
    from attnviz.safety import printable

    message, hint = error.worded(flag)
    print(f"error: {printable(message)}", file=sys.stderr)
    if hint:
        print(f"hint: {printable(hint)}", file=sys.stderr)


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


class ErrorBoundaryGroup(TyperGroup):
    """The command group of `attnviz`: every command runs inside :func:`error_boundary`
    (errors are caught once, here, not in each command), and a closed stdout (``attnviz
    show ... | head -1``) ends the run quietly with exit 0."""

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            with error_boundary():
                result = super().invoke(ctx)
                sys.stdout.flush()
                return result
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(code=0) from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass
