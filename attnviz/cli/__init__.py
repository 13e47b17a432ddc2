"""The `attnviz` command line: a thin Typer layer over the library.

Each command lives in its own module; heavy libraries are imported inside the commands so
that `attnviz --help` stays fast.
"""

from __future__ import annotations

import typer

from attnviz.cli.compare import compare
from attnviz.cli.export import export
from attnviz.cli.info import info
from attnviz.cli.render import render
from attnviz.cli.show import show
from attnviz.cli.stats import stats

app = typer.Typer(
    name="attnviz",
    help="Look inside transformer attention: heatmaps, terminal views, pages and numbers. "
    "Layers and heads are 0-based everywhere.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.command()(show)
app.command()(export)
app.command()(stats)
app.command()(compare)
app.command()(render)
app.command()(info)


def main() -> None:
    """Entry point of the `attnviz` console script."""
    app()
