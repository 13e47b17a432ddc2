"""`attnviz render SAVED`: re-render saved data in any view and format, with no model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from attnviz.cli._errors import error_boundary
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
    with error_boundary():
        from attnviz.render.views import resolve_view
        from attnviz.result import AttentionResult
        from attnviz.transforms import apply_transforms

        resolve_view(view, 2, 2)
        if out is not None:
            from attnviz.io import check_writable
            from attnviz.outputs import output_kind

            output_kind(out)
            check_writable(out)
        loaded = AttentionResult.load(saved)
        if kind is not None:
            loaded.array(kind)
        result = apply_transforms(loaded, layers=layer, heads=head, words=words, no_special=no_special)
        chosen = kind or result.default_kind
        array = result.array(chosen)
        resolved = resolve_view(view, array.shape[0], array.shape[1])
        written = None
        if out is not None:
            from attnviz.outputs import write_output

            written = write_output(result, out, view=resolved, kind=chosen, cmap=cmap)
            print(f"wrote {written}", file=__import__("sys").stderr)
        if json_output:
            from attnviz.cli.show import summary_document

            print(json.dumps(summary_document(result, chosen, resolved, written), ensure_ascii=False))
        elif out is None:
            from attnviz.cli.show import print_terminal

            print_terminal(result, chosen, resolved)
