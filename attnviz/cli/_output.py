"""Consoles: data to stdout, progress, warnings and errors to stderr."""

from __future__ import annotations

import io
import sys
from functools import cache
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

#: Drawing characters for an output encoding that cannot carry them (ASCII, latin-1...).
_ASCII = str.maketrans(
    {
        "█": "#",
        "▓": "+",
        "▒": ":",
        "░": ".",
        "▀": "#",
        "▼": "v",
        "·": "-",
        "→": "->",
        "…": "...",
        "“": '"',
        "”": '"',
        "×": "x",
        "▕": "|",
        "▏": "|",
    }
)


def unicode_output(stream: Any) -> bool:
    """Whether ``stream`` encodes to a UTF (the drawing characters are safe on it)."""
    encoding = str(getattr(stream, "encoding", None) or "utf-8").lower().replace("-", "").replace("_", "")
    return encoding.startswith("utf")


class PlainWriter(io.TextIOBase):
    """A text stream for an output encoding that is not UTF-8 (``PYTHONIOENCODING=ascii``,
    ``LC_ALL=C``, latin-1): drawing characters become ASCII ones and any other character
    the encoding lacks a backslash escape, so no view fails with UnicodeEncodeError."""

    def __init__(self, stream: IO[str]) -> None:
        super().__init__()
        self._stream = stream
        self._encoding = getattr(stream, "encoding", None) or "ascii"

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def write(self, text: str) -> int:
        safe = text.translate(_ASCII).encode(self._encoding, "backslashreplace").decode(self._encoding)
        self._stream.write(safe)
        return len(text)

    def flush(self) -> None:
        self._stream.flush()

    def isatty(self) -> bool:
        return self._stream.isatty()

    def fileno(self) -> int:
        return self._stream.fileno()


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

    stream: Any = sys.stdout
    if stream is not None and not unicode_output(stream):
        stream = PlainWriter(stream)
    console = PipeConsole(highlight=False, file=stream)
    if min_width and not console.is_terminal and console.width < min_width:
        console = PipeConsole(highlight=False, width=min_width, file=stream)
    return console


def print_json(document: Any) -> None:
    """One JSON document on stdout, bidi and C1 controls escaped (``\\u202e``); all of
    non-ASCII escaped when stdout's encoding is not UTF-8."""
    from attnviz.safety import json_text

    print(json_text(document, ascii_only=not unicode_output(sys.stdout)))


def open_closed_streams() -> None:
    """Point a closed stdin, stdout or stderr (``>&-``) at the null device before anything
    opens a file: otherwise the next file opened would take descriptor 1, and output meant
    for the terminal would land in it. A closed stdout is then like a closed pipe: what is
    written is dropped."""
    import os

    for fd, name, mode in ((0, "stdin", "r"), (1, "stdout", "w"), (2, "stderr", "w")):
        try:
            os.fstat(fd)
        except OSError:
            try:
                null = os.open(os.devnull, os.O_RDONLY if mode == "r" else os.O_WRONLY)
                if null != fd:
                    os.dup2(null, fd)
                    os.close(null)
                setattr(sys, name, open(fd, mode, closefd=False))  # noqa: SIM115 - the process's stream
            except OSError:
                pass


def run_guarded(app: Any) -> None:
    """Run the command line with closed streams reopened, and end with one line on stderr
    (exit 1) when stdout cannot be written (``> /dev/full``: the disk is full) instead of a
    traceback."""
    import errno

    open_closed_streams()
    try:
        app()
        sys.stdout.flush()
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EBADF, errno.EIO, errno.EPIPE):
            raise
        _drop_stdout()
        if exc.errno == errno.EPIPE:
            raise SystemExit(0) from None
        reason = "the disk is full" if exc.errno == errno.ENOSPC else exc.strerror or str(exc)
        print(f"error: cannot write to standard output: {reason}", file=sys.stderr)
        raise SystemExit(1) from None


def _drop_stdout() -> None:
    """Point stdout at the null device so the interpreter's final flush cannot fail again."""
    import os

    try:
        null = os.open(os.devnull, os.O_WRONLY)
        os.dup2(null, sys.stdout.fileno())
        os.close(null)
    except (OSError, ValueError, AttributeError):
        pass


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
