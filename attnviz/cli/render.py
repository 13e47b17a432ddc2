"""`attnviz render SAVED`: re-render saved data in any view and format, with no model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from attnviz.cli._options import CmapOpt, HeadOpt, JsonOpt, KindOpt, LayerOpt, NoSpecialOpt, OutOpt, WordsOpt
from attnviz.cli.show import ViewOpt


def render(
    saved: Annotated[Path, typer.Argument(help="An .npz or .json written by attnviz.")],
    layer: LayerOpt = "all",
    head: HeadOpt = "all",
    view: ViewOpt = "auto",
    kind: KindOpt = None,
    words: WordsOpt = False,
    no_special: NoSpecialOpt = False,
    out: OutOpt = None,
    json_output: JsonOpt = False,
    cmap: CmapOpt = "viridis",
) -> None:
    """Draw saved attention without loading a model (torch is never imported).

    --layer/--head index the saved arrays (0-based positions within what was saved)."""
    from attnviz.cli.show import check_output_path, present
    from attnviz.result import AttentionResult

    check_output_path(out, view)
    loaded = AttentionResult.load(saved)
    present(
        loaded,
        kind=kind,
        layer=layer,
        head=head,
        words=words,
        no_special=no_special,
        view=view,
        out=out,
        json_output=json_output,
        cmap=cmap,
    )
