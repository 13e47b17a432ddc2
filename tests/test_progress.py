"""The progress bar's numbers and when it is shown."""

from __future__ import annotations

import io
from typing import Any

import pytest

from attnviz.cli._progress import TextsProgress, duration, rate_and_left


def test_rate_and_time_left_count_only_this_runs_texts() -> None:
    assert rate_and_left(120, 100, 1000, 10.0) == ("2.0 texts/s", "7:20 left")  # 20 new texts in 10 s
    assert rate_and_left(1, 0, 1000, 1.0)[1] == ""  # no estimate from one text
    assert rate_and_left(50, 0, None, 5.0) == ("10.0 texts/s", "")  # total unknown
    assert duration(59.6) == "1:00" and duration(3725) == "1:02:05" and duration(-3) == "0:00"


def test_off_where_stderr_is_no_terminal_or_there_is_one_text(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("sys.stderr", io.StringIO())
    with TextsProgress("stats", 500) as progress:
        progress.advance(3)
        assert progress.progress is None and progress.done == 3
    assert not TextsProgress("stats", 1, enabled=True).enabled
    assert TextsProgress("stats", None, enabled=True).enabled


def test_the_bar_counts_and_estimates(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=100)
    monkeypatch.setattr("attnviz.cli._output.stderr_console", lambda: console)
    clock = iter([0.0, 0.0, 4.0, 8.0])
    monkeypatch.setattr("attnviz.cli._progress.time.monotonic", lambda: next(clock))
    with TextsProgress("stats", 10, enabled=True) as progress:
        progress.advance(2)  # 2 texts in 4 s
        progress.advance(2)  # 4 texts in 8 s: 0.5 texts/s, 6 left = 12 s
        task: Any = progress.progress.tasks[0]
        assert (task.completed, task.total) == (4, 10)
        assert task.fields == {"rate": "0.5 texts/s", "left": "0:12 left"}
    assert "4/10" in out.getvalue() and "0:12 left" in out.getvalue()
