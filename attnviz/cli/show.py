"""`attnviz show TEXT`: one text, in the terminal or to a file."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from typing import Annotated, Any, Optional

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
    TokenizerWordsOpt,
    TrustOpt,
    VerboseOpt,
    WordsOpt,
    word_rule,
)
from attnviz.cli._output import note, stderr_console, stdout_console, warn

ViewOpt = Annotated[
    str,
    typer.Option(
        "--view", metavar="VIEW", help="auto, head, layer, grid, mean, rollout or flow (auto: by the selection)."
    ),
]


def read_text_argument(text: str) -> str:
    """``-`` reads the text from stdin."""
    if text == "-":
        from attnviz.errors import InputError

        try:
            return sys.stdin.buffer.read().decode("utf-8").rstrip("\n")
        except UnicodeDecodeError as exc:
            raise InputError(
                f"standard input is not valid UTF-8 (byte {exc.start})", hint="re-save the text as UTF-8"
            ) from exc
    return text


def show(
    text: Annotated[str, typer.Argument(help="The text to look at ('-' reads stdin).")],
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
    check_output_path(out, view)
    from attnviz.cli._common import refuse_early
    from attnviz.cli._options import check_cmap

    check_cmap(cmap)

    refuse_early(model, revision, layer, head, (view or "auto").lower())

    from attnviz.extraction import Extractor, TextInput
    from attnviz.models import load_model

    spinner = stderr_console().status(f"loading {model}…") if sys.stderr.isatty() and not verbose else nullcontext()
    with spinner:
        from attnviz.cli._output import quiet_unless

        quiet_unless(verbose)
        loaded = load_model(
            model,
            device=device,
            dtype=dtype,
            device_map=device_map,
            revision=revision,
            trust_remote_code=trust_remote_code,
            verbose=verbose,
        )
    # Only what is shown is computed: the selected layers and heads, and for views that
    # average heads (without --no-special, which renormalises each head first) only the mean.
    # Data files and pages keep every selected head (they carry the raw attention).
    from attnviz.outputs import output_kind

    drawn = out is None or output_kind(out) == "image"
    view_name = (view or "auto").lower()
    head_mean = drawn and view_name in ("mean", "rollout", "flow") and not no_special
    extractor = Extractor(
        loaded,
        truncate=not no_truncate,
        verbose=verbose,
        layers=layer,
        heads=head,
        head_mean=head_mean,
        vectors=view_name == "neuron",
        norms=norm or view_name == "norm",
        kinds=[kind] if kind and (norm or view_name in ("norm", "neuron")) else None,
    )
    for message in extractor.notes:
        note(f"note: {message}")
    raw = extractor.run_batch([extractor.encode(TextInput(text, pair, target))])[0]
    if raw.truncated_tokens:
        warn(
            f"the input was cut to the model's maximum of {loaded.max_length} tokens "
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
        query=query,
        norm=norm,
    )


def check_output_path(out: Any, view: str) -> None:
    """Reject an unknown view, output type or unwritable path before any model is loaded."""
    from attnviz.io import check_writable
    from attnviz.outputs import output_kind
    from attnviz.render.views import resolve_view

    resolve_view(view, 2, 2)
    if out is not None:
        output_kind(out)
        check_writable(out)


def present(
    raw: Any,
    *,
    kind: str | None,
    layer: str,
    head: str,
    words: bool | str,
    no_special: bool,
    view: str,
    out: Any,
    json_output: bool,
    cmap: str,
    query: int | None = None,
    norm: bool = False,
) -> None:
    """Transform a result as asked, then write -o, print --json, or draw in the terminal
    (shared by `show` and `render`). ``view="norm"`` (or ``norm``) draws norm-based weights;
    ``view="neuron"`` the breakdown of one head for query token ``query``."""
    from attnviz.render.views import resolve_view
    from attnviz.transforms import apply_transforms

    if kind is not None:
        raw.array(kind)
    if (view or "auto").lower() == "neuron":
        present_neuron(raw, kind=kind, layer=layer, head=head, out=out, json_output=json_output, query=query)
        return
    if norm or (view or "auto").lower() == "norm":
        if out is not None and _is_data(out) and (view or "auto").lower() == "norm":
            data = apply_transforms(raw, layers=layer, heads=head, words=words, no_special=no_special)
            if "norm" in data.derived:  # raw attention plus the array `norm`, as extracted
                data.save(out)
                note(f"wrote {out}")
                return
        raw = raw.norm_weights()
        view = "auto" if (view or "auto").lower() == "norm" else view
    result = apply_transforms(raw, layers=layer, heads=head, words=words, no_special=no_special)
    chosen_kind = kind or result.default_kind
    array = result.array(chosen_kind)
    resolved = resolve_view(view, array.shape[0], array.shape[1])
    if no_special and resolved in ("rollout", "flow") and chosen_kind != "cross":
        # rollout and flow follow the raw attention ([CLS]/[SEP] included); only the display hides them
        from attnviz.outputs import raw_derived_without_special

        base = apply_transforms(raw, layers=layer, heads=head, words=words)
        result = raw_derived_without_special(base, result, resolved, chosen_kind)
    written = None
    if out is not None:
        from attnviz.outputs import write_output

        written = write_output(result, out, view=resolved, kind=chosen_kind, cmap=cmap)
        note(f"wrote {written}")
    if json_output:
        print(json.dumps(summary_document(result, chosen_kind, resolved, written), ensure_ascii=False))
    elif out is None:
        print_terminal(result, chosen_kind, resolved, requested=view, cmap=cmap)


def _is_data(out: Any) -> bool:
    from attnviz.outputs import output_kind

    return bool(output_kind(out) == "data")


def present_neuron(
    raw: Any, *, kind: str | None, layer: str, head: str, out: Any, json_output: bool, query: int | None
) -> None:
    """The neuron view of one head: terminal, image, data (with the query and key arrays)
    or --json."""
    from attnviz.render.neuron import neuron_data, neuron_figure, print_neuron
    from attnviz.transforms import apply_transforms

    result = apply_transforms(raw, layers=layer, heads=head)
    data = neuron_data(result, kind, query)
    if out is not None:
        from attnviz.outputs import output_kind

        what = output_kind(out)
        if what == "image":
            from attnviz.render.image import save_figure

            save_figure(neuron_figure(data), out)
        elif what == "data":
            result.save(out)
        else:
            from attnviz.io import atomic_write
            from attnviz.render.html import render_html

            page = render_html(result)
            atomic_write(out, lambda handle: handle.write(page), binary=False)
        note(f"wrote {out}")
    if json_output:
        document = {
            "view": "neuron",
            "title": data.title,
            "query_index": data.query_index,
            "query_token": data.query_label,
            "keys": data.key_labels,
            "scaling": data.scaling,
            "query": data.query.round(6).tolist(),
            "dot": data.dots.round(6).tolist(),
            "score": data.scores.round(6).tolist(),
            "weight": data.weights.round(6).tolist(),
        }
        print(json.dumps(document, ensure_ascii=False))
    elif out is None:
        print_neuron(data, stdout_console())


def summary_document(result: Any, kind: str, view: str, written: Any) -> dict[str, Any]:
    from attnviz.render.terminal import top_keys_per_head

    return {
        "model": result.model,
        "family": result.family,
        "text": result.text,
        "pair": result.pair,
        "target": result.target,
        "tokens": list(result.tokens.display),
        "raw_tokens": list(result.tokens.tokens),
        "target_tokens": list(result.target_tokens.display) if result.target_tokens is not None else None,
        "pair_start": result.tokens.pair_start,
        "kinds": list(result.kinds),
        "shape": {k: list(v) for k, v in result.shape.items()},
        "kind": kind,
        "view": view,
        "layers": list(result.layer_ids[kind]),
        "heads": list(result.head_ids[kind]),
        "transforms": list(result.transforms),
        "truncated_tokens": result.truncated_tokens,
        "top_keys": top_keys_per_head(result, kind),
        "output": str(written) if written is not None else None,
    }


def print_terminal(result: Any, kind: str, view: str, *, requested: str = "auto", cmap: str = "viridis") -> None:
    from attnviz.render.terminal import print_view

    print_view(result, kind, view, stdout_console(), requested=(requested or "auto").lower(), cmap=cmap)
