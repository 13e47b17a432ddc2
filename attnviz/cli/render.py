"""`attnviz render SAVED`: re-render saved data in any view and format, with no model."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from attnviz.cli._options import (
    CmapOpt,
    HeadOpt,
    JsonOpt,
    KindOpt,
    LayerOpt,
    MaxBytesOpt,
    NoSpecialOpt,
    OutOpt,
    ScaleOpt,
    TokenizerWordsOpt,
    ViewOpt,
    WordsOpt,
    check_cmap,
    check_query,
    check_scale,
    word_rule,
)


def render(
    saved: Annotated[Path, typer.Argument(metavar="SAVED", help="An .npz or .json written by attnviz.")],
    layer: LayerOpt = "all",
    head: HeadOpt = "all",
    view: ViewOpt = "auto",
    kind: KindOpt = None,
    words: WordsOpt = False,
    tokenizer_words: TokenizerWordsOpt = False,
    no_special: NoSpecialOpt = False,
    out: OutOpt = None,
    json_output: JsonOpt = False,
    cmap: CmapOpt = "viridis",
    scale: ScaleOpt = "keys",
    max_bytes: MaxBytesOpt = "2G",
    query: Annotated[
        Optional[int], typer.Option("--query", metavar="N", min=0, help="Neuron view: the 0-based query token.")
    ] = None,
    norm: Annotated[bool, typer.Option("--norm", help="Draw the saved norm-based weights (array 'norm').")] = False,
) -> None:
    """Draw saved attention without loading a model (torch is never imported).

    --layer/--head are the model's own layer and head numbers, as recorded in the file (a
    file saved with --layer 2 holds layer 2). The file is checked before it is drawn: sizes
    before inflating (--max-bytes), schema, shapes and finite values."""
    from attnviz.cli._output import warn
    from attnviz.cli._present import check_output_path, present
    from attnviz.plan import normalise_view
    from attnviz.saved import load_checked, parse_size
    from attnviz.transforms import select_ids

    view = normalise_view(view)
    check_output_path(out, view)
    check_cmap(cmap)
    check_scale(scale)
    check_query(query, view)
    loaded, problems = load_checked(saved, parse_size(max_bytes))
    for problem in problems:
        warn(problem)
    from attnviz.cli._common import warn_unknown_tokens

    warn_unknown_tokens(None, loaded.tokens)  # no tokenizer here: [UNK] and <unk> count
    present(
        select_ids(loaded, layer, head),
        kind=kind,
        layer="all",
        head="all",
        words=word_rule(words, tokenizer_words),
        no_special=no_special,
        view=view,
        out=out,
        json_output=json_output,
        cmap=cmap,
        scale=scale,
        query=query,
        norm=norm,
    )
