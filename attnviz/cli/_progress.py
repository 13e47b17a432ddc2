"""The progress bar of the commands that run over many texts (export, stats -f, compare -f),
in one process or on Ray: ``exporting ━━━━╸━━━ 1216/3000 32.3 texts/s 0:55 left`` on stderr.

Shown only when stderr is a terminal (a pipe or a CI log gets no bar) and the run has at
least two texts; every method is a no-op otherwise, so callers need no conditions."""

from __future__ import annotations

import sys
import time
from typing import Any


def duration(seconds: float) -> str:
    """``m:ss``, or ``h:mm:ss`` from an hour."""
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def rate_and_left(done: int, resumed: int, total: int | None, elapsed: float) -> tuple[str, str]:
    """(rate, time left) for the bar. Both count only this run's texts: texts finished by an
    earlier run (``--resume``) pass in no time and would make the estimate far too short;
    no estimate from fewer than two texts."""
    done_now = done - resumed
    rate = done_now / max(elapsed, 1e-9)
    left = ""
    if total is not None and rate > 0 and done_now >= 2:
        left = f"{duration((total - done) / rate)} left"
    return f"{rate:.1f} texts/s", left


class TextsProgress:
    """A context manager: ``verb`` (``exporting``, ``stats``...), ``total`` texts (None when
    unknown). :meth:`update` sets the count, :meth:`advance` adds to it."""

    def __init__(self, verb: str, total: int | None, *, enabled: bool | None = None) -> None:
        self.verb, self.total = verb, total
        shown = sys.stderr.isatty() if enabled is None else enabled
        self.enabled = bool(shown) and (total is None or total >= 2)
        self.done = 0
        self.progress: Any = None
        self.task: Any = None
        self.started = time.monotonic()

    def __enter__(self) -> TextsProgress:
        self.started = time.monotonic()
        if not self.enabled:
            return self
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TextColumn

        from attnviz.cli._output import stderr_console

        self.progress = Progress(
            # the spinner moves while the first window of texts runs (the count moves a window
            # at a time); the bar leaves room at 80 columns for the ^C a terminal echoes
            SpinnerColumn(finished_text=" "),
            TextColumn(self.verb),
            BarColumn(bar_width=28),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[left]}"),
            console=stderr_console(),
            transient=False,
        )
        self.progress.__enter__()
        self.task = self.progress.add_task(self.verb, total=self.total, rate="", left="")
        return self

    def update(self, done: int, resumed: int = 0) -> None:
        self.done = done
        if self.progress is None:
            return
        rate, left = rate_and_left(done, resumed, self.total, time.monotonic() - self.started)
        self.progress.update(self.task, completed=done, rate=rate, left=left)

    def advance(self, count: int = 1) -> None:
        self.update(self.done + count)

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)
            self.progress = None
