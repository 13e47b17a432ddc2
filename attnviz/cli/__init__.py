"""The `attnviz` command line: a thin Typer layer over the library.

Each command lives in its own module; heavy libraries are imported inside the commands so
that `attnviz --help` stays fast.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from attnviz.cli._errors import ErrorBoundaryGroup
from attnviz.cli._ray import RayCommand
from attnviz.cli.attribute import attribute
from attnviz.cli.compare import compare
from attnviz.cli.export import export
from attnviz.cli.faithfulness import faithfulness
from attnviz.cli.info import info
from attnviz.cli.lesson import lesson
from attnviz.cli.render import render
from attnviz.cli.serve import serve
from attnviz.cli.show import show
from attnviz.cli.stats import stats

app = typer.Typer(
    name="attnviz",
    cls=ErrorBoundaryGroup,
    help="Look inside transformer attention: heatmaps, terminal views, pages and numbers. "
    "Layers and heads are 0-based everywhere.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)


def _version(value: bool) -> None:
    if value:
        from attnviz import __version__

        print(f"attnviz {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = None,
) -> None:
    """Look inside transformer attention. Layers and heads are 0-based everywhere."""


app.command()(show)
app.command(cls=RayCommand)(export)
app.command(cls=RayCommand)(stats)
app.command(cls=RayCommand)(compare)
app.command()(render)
app.command()(info)
app.command()(lesson)
app.command()(attribute)
app.command()(faithfulness)
app.command()(serve)


def main() -> None:
    """Entry point of the `attnviz` console script (closed or full stdout: one line, no traceback)."""
    from attnviz.cli._output import run_guarded

    run_guarded(app)
