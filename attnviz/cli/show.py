"""`attnviz show TEXT`: one text, in the terminal or to a file."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Annotated, Optional

import typer

from attnviz.cli._options import (
    CmapOpt,
    DeviceMapOpt,
    DeviceOpt,
    DtypeOpt,
    HeadOpt,
    JsonOpt,
    KindOpt,
    LayerOpt,
    ModelOpt,
    NoSpecialOpt,
    NoTruncateOpt,
    OutOpt,
    RevisionOpt,
    ScaleOpt,
    TokenizerWordsOpt,
    TrustOpt,
    VerboseOpt,
    ViewOpt,
    WordsOpt,
    word_rule,
)
from attnviz.cli._output import note, stderr_console, warn
from attnviz.cli._present import check_output_path, present


def read_text_argument(text: str) -> str:
    """``-`` reads the text from stdin."""
    if text == "-":
        from attnviz.inputs import read_stdin_text

        return read_stdin_text()  # bounded: 1 GB of NULs is refused, not tokenized
    return text


def show(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The text to look at ('-' reads stdin).")],
    model: ModelOpt = "minilm",
    pair: Annotated[Optional[str], typer.Option("--pair", metavar="TEXT", help="Second sentence (encoders).")] = None,
    target: Annotated[
        Optional[str], typer.Option("--target", metavar="TEXT", help="Decoder text (encoder-decoders).")
    ] = None,
    layer: LayerOpt = "all",
    head: HeadOpt = "all",
    view: ViewOpt = "auto",
    query: Annotated[
        Optional[int],
        typer.Option(
            "--query", metavar="N", min=0, help="Neuron view: the 0-based query token (default: the first word)."
        ),
    ] = None,
    norm: Annotated[
        bool, typer.Option("--norm", help="Norm-based weights (Kobayashi et al. 2020) in any view, rollout included.")
    ] = False,
    kind: KindOpt = None,
    words: WordsOpt = False,
    tokenizer_words: TokenizerWordsOpt = False,
    no_special: NoSpecialOpt = False,
    out: OutOpt = None,
    json_output: JsonOpt = False,
    no_truncate: NoTruncateOpt = False,
    cmap: CmapOpt = "viridis",
    scale: ScaleOpt = "keys",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    device_map: DeviceMapOpt = None,
    revision: RevisionOpt = None,
    trust_remote_code: TrustOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Extract every layer's and head's attention for TEXT and show it.

    Layers and heads are 0-based. Without -o, in the terminal: a summary, the view in colour
    (by default every layer x head as small maps, or each layer's mean when they do not fit)
    with its colour bar, and what each head does. With -o: the file type follows the
    extension.
    """
    from attnviz.errors import InputError

    text = read_text_argument(text)
    if not text.strip():
        raise InputError("the text is empty", hint='give some text, e.g. attnviz show "AI changes everything"')
    from attnviz.cli._options import check_cmap, check_query, check_scale
    from attnviz.outputs import output_kind
    from attnviz.plan import normalise_view, open_extractor, plan_views

    view = normalise_view(view)
    check_output_path(out, view)
    check_cmap(cmap)
    check_scale(scale)
    check_query(query, view)
    # Only what is shown is computed (data files and pages keep every selected head).
    plan = plan_views(
        view, norm=norm, no_special=no_special, kind=kind, drawn=out is None or output_kind(out) == "image"
    )
    spinner = stderr_console().status(f"loading {model}…") if sys.stderr.isatty() and not verbose else nullcontext()
    with spinner:
        extractor = open_extractor(
            model,
            revision=revision,
            layers=layer,
            heads=head,
            plan=plan,
            truncate=not no_truncate,
            verbose=verbose,
            quiet=not verbose,
            device=device,
            dtype=dtype,
            device_map=device_map,
            trust_remote_code=trust_remote_code,
        )
    for message in extractor.notes:
        note(f"note: {message}")
    from attnviz.encoding import TextInput

    raw = extractor.run_batch([extractor.encode(TextInput(text, pair, target))])[0]
    from attnviz.cli._common import warn_unknown_tokens

    warn_unknown_tokens(extractor.loaded.tokenizer, raw.tokens)
    if raw.truncated_tokens:
        warn(
            f"the input was cut to the model's maximum of {extractor.loaded.max_length} tokens "
            f"({raw.truncated_tokens} tokens dropped); use --no-truncate to fail instead"
        )
    present(
        raw,
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
