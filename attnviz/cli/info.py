"""`attnviz info MODEL`: what a checkpoint is, from its config (no weights loaded)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from attnviz.cli._options import JsonOpt, RevisionOpt, TrustOpt, VerboseOpt


def info(
    model: Annotated[str, typer.Argument(metavar="MODEL", help="Alias, hub id or local directory.")] = "minilm",
    json_output: JsonOpt = False,
    revision: RevisionOpt = None,
    trust_remote_code: TrustOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Family, attention kinds, layers, heads and maximum length of MODEL."""
    from attnviz.cli._output import quiet_unless
    from attnviz.models import describe_model

    quiet_unless(verbose)

    described = describe_model(model, revision=revision, trust_remote_code=trust_remote_code, verbose=verbose)
    if json_output:
        print(json.dumps(described.to_dict()))
        return
    from rich.table import Table

    from attnviz.cli._output import stdout_console

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")  # a long path wraps; it is never cut
    from rich.text import Text

    from attnviz.safety import printable

    table.add_row("model", Text(printable(described.name)))
    table.add_row("source", Text(printable(described.source)))
    table.add_row("architecture", Text(printable(f"{described.architecture} ({described.model_type})")))
    table.add_row("family", described.family)
    for kind in described.kinds:
        layers, heads = described.layers[kind], described.heads[kind]
        table.add_row(
            f"{kind} attention", f"{layers} layer{'' if layers == 1 else 's'} x {heads} head{'' if heads == 1 else 's'}"
        )
    table.add_row("max length", f"{described.max_length} tokens")
    for message in described.notes:
        table.add_row("note", Text(printable(message)))
    # piped: wide enough that the source path is never cut or wrapped
    stdout_console(min_width=len(printable(described.source)) + 22).print(table)
