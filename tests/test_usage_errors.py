"""The parser's own usage errors (an unknown option, a value out of range, a missing argument)
are one ``error:`` line and an optional ``hint:`` line on stderr with exit 2, like every other
bad input: never Click's ``Usage:`` block, never a traceback."""

from __future__ import annotations

import enum
import subprocess
import sys
from typing import Annotated, Literal

import pytest
import typer
from helpers import invoke
from typer.testing import CliRunner

from attnviz.cli._errors import ErrorBoundaryGroup

# (arguments, the error line, the hint line or None). The range wording is the option's own
# bounds as declared in the commands (--batch-size min=1, --step 1-9, --port 0-65535 ...).
CASES = [
    (
        ["stats", "hi", "--batch-size", "0"],
        "--batch-size must be at least 1 (got 0)",
        "attnviz stats -h lists the options",
    ),
    (["lesson", "hi", "--step", "12"], "--step must be from 1 to 9 (got 12)", "attnviz lesson -h lists the options"),
    (["lesson", "hi", "-s", "0"], "--step must be from 1 to 9 (got 0)", "attnviz lesson -h lists the options"),
    (["serve", "--port", "70000"], "--port must be from 0 to 65535 (got 70000)", "attnviz serve -h lists the options"),
    (["faithfulness", "x.txt", "--limit", "0"], "--limit must be at least 1 (got 0)", None),
    (["attribute", "hi", "--steps", "1"], "--steps must be from 2 to 1024 (got 1)", None),
    (["stats", "hi", "--batch-size", "x"], "--batch-size must be a whole number (got 'x')", None),
    (["stats", "hi", "--batch-size", "1.5"], "--batch-size must be a whole number (got 1.5)", None),
    (["stats", "hi", "--batch-size"], "--batch-size needs a value", "attnviz stats -h lists the options"),
    (["show", "hi", "--json=yes"], "--json is a switch: it takes no value", "attnviz show -h lists the options"),
    (
        ["show", "hi", "--batch-size", "3"],
        "attnviz show has no option --batch-size",
        "attnviz show -h lists the options",
    ),
    (
        ["stats", "hi", "--batch-siz", "3"],
        "attnviz stats has no option --batch-siz",
        "did you mean --batch-size? attnviz stats -h lists the options",
    ),
    (["show"], "attnviz show needs TEXT", "attnviz show -h shows the usage"),
    (["export", "in.txt"], "attnviz export needs --out", "attnviz export -h shows the usage"),
    (
        ["show", "AI", "changes", "everything"],
        "attnviz show got more arguments than it takes: changes everything",
        'put a text with spaces in quotes: attnviz show "AI changes everything"',
    ),
    (["shwo"], "unknown command 'shwo'", "did you mean show? attnviz -h lists the commands"),
    (["zzz"], "unknown command 'zzz'", "attnviz -h lists the commands"),
    (["--bogus"], "attnviz has no option --bogus", "attnviz -h lists the commands and options"),
    (["show\x1b[31m"], "unknown command 'show\\x1b[31m'", None),
    (
        ["stats", "hi", "--batch-size", "x" * 5000],
        f"--batch-size must be a whole number (got '{'x' * 30}... (5000 characters)')",
        None,
    ),
    (["show", "hi", "--" + "y" * 4998], f"attnviz show has no option --{'y' * 28}... (5000 characters)", None),
]


def assert_one_error(stderr: str, error: str, hint: str | None) -> None:
    lines = stderr.splitlines()
    assert not any(line.startswith(("Usage:", "Traceback", "Error:")) for line in lines), stderr
    assert lines[0] == f"error: {error}", stderr
    assert len(lines) <= 2 and all(line.startswith("hint: ") for line in lines[1:]), stderr
    if hint is not None:
        assert lines[1:] == [f"hint: {hint}"], stderr


@pytest.mark.parametrize(("args", "error", "hint"), CASES, ids=[" ".join(case[0])[:40] for case in CASES])
def test_a_usage_error_is_one_line_and_exit_2(args, error, hint):
    result = invoke(*args)
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    assert_one_error(result.stderr, error, hint)


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [CASES[0], CASES[11], CASES[15]],  # a value, an unknown option, an unknown command
    ids=["range", "option", "command"],
)
def test_the_console_entry_words_usage_errors_the_same(args, error, hint):
    # a real process: the program name is "python -m attnviz" here, as Click detects it
    done = subprocess.run([sys.executable, "-m", "attnviz", *args], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    python_m = "python -m attnviz"
    assert_one_error(
        done.stderr, error.replace("attnviz", python_m), hint.replace("attnviz", python_m) if hint else None
    )


def test_help_is_still_help():
    bare = invoke()  # no arguments: the help, as before (Click's exit 2)
    assert bare.exit_code == 2 and "Commands:" in bare.output and "error:" not in bare.output
    for args in (["-h"], ["stats", "-h"]):
        shown = invoke(*args)
        assert shown.exit_code == 0 and shown.output.startswith("Usage: attnviz")


class Colour(str, enum.Enum):
    red = "red"
    blue = "blue"


def check_coats(value: int) -> int:
    """Click's own range wording, as a callback raises it."""
    if value < 1:
        raise typer.BadParameter(f"{value} is not in the range x>=1.")
    if value > 9:
        raise typer.BadParameter(f"{value} is not in the range 1<=x<=9.")
    return value


def _paint_app() -> typer.Typer:
    """A tiny app on the same group: the parameter kinds attnviz's commands do not use."""

    app = typer.Typer(name="paint", cls=ErrorBoundaryGroup)

    @app.command()
    def brush(
        colour: Annotated[Colour, typer.Option()] = Colour.red,
        shade: Annotated[Literal["light", "dark"], typer.Option()] = "light",
        ratio: Annotated[float, typer.Option(min=0, max=1)] = 0.5,
        coats: Annotated[int, typer.Option(callback=check_coats)] = 1,
    ) -> None:
        print("painted")

    @app.command()
    def wash() -> None:
        print("washed")

    return app


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["--colour", "green"], "--colour must be one of 'red', 'blue' (got 'green')"),
        (["--shade", "mid"], "--shade must be one of 'light', 'dark' (got 'mid')"),
        (["--ratio", "x"], "--ratio must be a number (got 'x')"),
        (["--ratio", "1.5"], "--ratio must be from 0 to 1 (got 1.5)"),
        (["--coats", "0"], "--coats must be at least 1 (got 0)"),
        (["--coats", "12"], "--coats must be from 1 to 9 (got 12)"),
    ],
)
def test_choices_numbers_and_clicks_range_wording(args, error):
    result = CliRunner().invoke(_paint_app(), ["brush", *args])
    assert result.exit_code == 2
    assert_one_error(result.stderr, error, "paint brush -h lists the options")
    good = CliRunner().invoke(_paint_app(), ["brush", "--colour", "blue", "--coats", "3"])
    assert good.exit_code == 0 and good.stdout == "painted\n"
