"""How a result reaches the user, shared by `show` and `render`: transforms, then a file
(-o), a JSON document (--json) or the terminal views."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from attnviz.cli._output import note, print_json, stdout_console

if TYPE_CHECKING:
    from attnviz.result import AttentionResult


def check_output_path(out: Any, view: str) -> None:
    """Reject an unknown view, output type or unwritable path before any model is loaded."""
    from attnviz.io import check_writable
    from attnviz.outputs import output_kind
    from attnviz.plan import normalise_view

    normalise_view(view)
    if out is not None:
        output_kind(out)
        check_writable(out)


def present(
    raw: AttentionResult,
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
    scale: str = "keys",
) -> None:
    """Transform a result as asked (:func:`attnviz.plan.prepare_view`), then write -o, print
    --json, or draw in the terminal (shared by `show` and `render`). ``view`` is normalised
    (:func:`attnviz.plan.normalise_view`); ``"neuron"`` draws the breakdown of one head for
    query token ``query``."""
    from attnviz.plan import prepare_view

    if kind is not None:
        raw.array(kind)
    if view == "neuron":
        present_neuron(raw, kind=kind, layer=layer, head=head, out=out, json_output=json_output, query=query)
        return
    if view == "norm" and out is not None and _is_data(out):
        from attnviz.transforms import apply_transforms

        data = apply_transforms(raw, layers=layer, heads=head, words=words, no_special=no_special)
        if "norm" in data.derived:  # raw attention plus the array `norm`, as extracted
            data.save(out)
            note(f"wrote {out}")
            return
    prepared = prepare_view(
        raw, view, kind=kind, layers=layer, heads=head, words=words, no_special=no_special, norm=norm
    )
    result, chosen_kind, resolved = prepared.result, prepared.kind, prepared.view
    written = None
    if out is not None:
        from attnviz.outputs import write_output

        written = write_output(result, out, view=resolved, kind=chosen_kind, cmap=cmap, scale=scale)
        note(f"wrote {written}")
    if json_output:
        print_json(summary_document(result, chosen_kind, resolved, written))
    elif out is None:
        # the norm view is laid out as auto would be, so it may fall back as auto does
        requested = "auto" if view == "norm" else view
        print_terminal(result, chosen_kind, resolved, requested=requested, cmap=cmap, scale=scale)


def _is_data(out: Any) -> bool:
    from attnviz.outputs import output_kind

    return bool(output_kind(out) == "data")


def present_neuron(
    raw: AttentionResult, *, kind: str | None, layer: str, head: str, out: Any, json_output: bool, query: int | None
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
            # keys the model's mask hides from this query (later keys, a sliding window)
            "masked": [bool(m) for m in data.masked],
            "window": data.window,
        }
        print_json(document)
    elif out is None:
        print_neuron(data, stdout_console())


def summary_document(result: AttentionResult, kind: str, view: str, written: Any) -> dict[str, Any]:
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


#: The command line's words for what the terminal views suggest (the library names no flags).
TERMINAL_HINTS = {
    "image": "draw it with -o map.png",
    "grid": "widen the terminal, pick heads with --head, or use -o grid.png",
}


def print_terminal(
    result: AttentionResult,
    kind: str,
    view: str,
    *,
    requested: str = "auto",
    cmap: str = "viridis",
    scale: str = "keys",
) -> None:
    from attnviz.render.terminal import SCREEN_LINES, print_view

    print_view(
        result,
        kind,
        view,
        stdout_console(),
        requested=requested,
        cmap=cmap,
        scale=scale,
        lines=SCREEN_LINES,
        hints=TERMINAL_HINTS,
    )
