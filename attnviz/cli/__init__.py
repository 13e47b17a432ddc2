"""The `attnviz` command line: a thin Typer layer over the library.

Each command lives in its own module; heavy libraries are imported inside the commands so
that `attnviz --help` stays fast.
"""

from __future__ import annotations

import typer

from attnviz.cli.info import info
from attnviz.cli.show import show

app = typer.Typer(
    name="attnviz",
    help="Look inside transformer attention: heatmaps, terminal views, pages and numbers.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    add_completion=False,
)
app.command()(show)
app.command()(info)


def main() -> None:
    """Entry point of the `attnviz` console script."""
    app()
