"""Choose what a view shows: pure NumPy, shared by the image, terminal and page renderers."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from attnviz.errors import SelectionError
from attnviz.render import VIEWS
from attnviz.render.colors import ColorScale, color_scale, scale_excluded_keys
from attnviz.result import MEAN_HEAD, AttentionResult


@dataclass(frozen=True)
class Panel:
    """One heatmap: ``matrix`` ``[query, key]`` with its axis labels and a short label."""

    matrix: np.ndarray
    label: str
    layer: int | None
    head: int | None


@dataclass(frozen=True)
class ViewData:
    """Panels laid out as ``rows`` x ``cols`` (row-major), plus labels shared by all."""

    view: str
    kind: str
    panels: list[Panel]
    rows: int
    cols: int
    query_labels: list[str]
    key_labels: list[str]
    title: str
    row_labels: list[str] | None = None
    col_labels: list[str] | None = None
    value_label: str = "attention weight"
    text: str = ""  # the input, shortened, for image titles
    #: bool ``[keys]``: columns the default colour scale ignores (special tokens; the
    #: first token of a decoder, its attention sink); see :func:`color_scale`
    scale_excluded: np.ndarray | None = None
    #: ``keys`` (the scale ignores ``scale_excluded`` columns) or ``full``
    scale: str = "keys"

    def color_scale(self, scale: str | None = None) -> ColorScale:
        """The one colour scale every panel of this view shares (``keys`` or ``full``;
        by default the view's own ``scale``)."""
        return color_scale(np.stack([p.matrix for p in self.panels]), self.scale_excluded, scale or self.scale)


def resolve_view(view: str, layers: int, heads: int) -> str:
    """``auto`` becomes ``head`` for one layer and head, ``layer`` for one layer, else ``grid``."""
    view = (view or "auto").lower()
    if view not in VIEWS:
        raise SelectionError(f"unknown view '{view}'", hint=f"choose one of: {', '.join(VIEWS)}")
    if view == "norm":  # norm-based weights, laid out as auto would
        view = "auto"
    if view != "auto":
        return view
    if layers == 1 and heads == 1:
        return "head"
    if layers == 1:
        return "layer"
    return "grid"


def check_view_shape(view: str, layers: int, heads: int) -> None:
    """Refuse a view that cannot show ``layers`` x ``heads`` (the head view shows one head,
    the layer view one layer)."""
    if view in ("head", "neuron") and (layers != 1 or heads != 1):
        raise SelectionError(
            f"the {view} view shows one head, but {layers} {'layer' if layers == 1 else 'layers'} x "
            f"{heads} {'head' if heads == 1 else 'heads'} are selected",
            hint="choose one, e.g. {layer} 0 {head} 0"
            + ("" if view == "neuron" else ", or use the layer or grid view"),
            option=("layer", "head"),
        )
    if view == "layer" and layers != 1:
        raise SelectionError(
            f"the layer view shows one layer, but {layers} layers are selected",
            hint="select one layer, or use the grid view",
        )


#: Longest token label any renderer draws, in characters (a 10 MB token must not cost
#: minutes and gigabytes to draw); longer ones end in an ellipsis.
LABEL_LIMIT = 40


def shorten(text: str, limit: int) -> str:
    """``text`` on one line, cut to ``limit`` characters with an ellipsis."""
    text = text[: limit + 1].replace("\n", " ")
    return text if len(text) <= limit else text[: max(1, limit - 1)] + "…"


def drawn_label(token: str) -> str:
    """A token as drawn: control characters escaped (visible, never acted on), cut to
    :data:`LABEL_LIMIT` characters."""
    from attnviz.safety import printable

    return shorten(printable(token[: LABEL_LIMIT + 1]), LABEL_LIMIT)


def shorten_words(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` characters at a word boundary, with an ellipsis
    (mid-word only when the first word alone is longer than ``limit``)."""
    if len(text) <= limit:
        return text
    cut = text[: max(1, limit - 1)]
    space = cut.rstrip().rfind(" ")
    if space > limit // 3:
        cut = cut[:space]
    return cut.rstrip(" ,;:") + "…"


def wrap_words(text: str, width: int, lines: int = 2) -> str:
    """``text`` wrapped at word boundaries to at most ``lines`` lines of ``width``
    characters, the last one cut with an ellipsis if needed."""
    import textwrap

    wrapped = textwrap.wrap(text, max(8, width), break_long_words=True, break_on_hyphens=False)
    if len(wrapped) > lines:
        rest = " ".join(wrapped[lines - 1 :])
        wrapped = [*wrapped[: lines - 1], shorten_words(rest, max(8, width))]
    return "\n".join(wrapped)


def label_points(cell_points: float, largest: float = 12.0, smallest: float = 5.0) -> float:
    """The font size (points) of token labels in cells ``cell_points`` tall: a line of
    text (about 1.25 x the size) fits one cell, as the export's PNGs size them."""
    return float(np.clip(cell_points / 1.25, smallest, largest))


def head_name(head: int) -> str:
    return "mean" if head == MEAN_HEAD else str(head)


def short_model_name(model: str) -> str:
    """A model name short enough for a title: a long local path becomes its last part."""
    if len(model) > 30 and ("/" in model or "\\" in model):
        return model.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]
    return model


def describe_transforms(result: AttentionResult) -> str:
    notes = []
    if "merge_words" in result.transforms:
        notes.append("words")
    if "drop_special" in result.transforms:
        notes.append("no special tokens")
    if "norm" in result.transforms:
        notes.append("norm-based weights")
    return f" ({', '.join(notes)})" if notes else ""


def build_view(result: AttentionResult, view: str = "auto", kind: str | None = None) -> ViewData:
    """Lay out the panels of ``view`` for the (already selected) layers and heads of ``kind``."""
    from dataclasses import replace

    kind = kind or result.default_kind
    excluded = scale_excluded_keys(result.axes(kind)[1].special_mask, sink=kind == "decoder")
    data = replace(_build_view(result, view, kind), text=short_text(result), scale_excluded=excluded)
    if "norm" in result.transforms and data.value_label == "attention weight":
        data = replace(data, value_label="norm-based weight (alpha x ||f(x)||)")
    return data


def short_text(result: AttentionResult, limit: int = 90) -> str:
    """The input as one quoted line for a title: text, ``/ pair``, ``-> target``, shortened."""
    from attnviz.safety import printable

    text = result.text
    if result.pair is not None:
        text += f" / {result.pair}"
    if result.target is not None:
        text += f" → {result.target}"
    text = " ".join(printable(text[: limit * 4]).split())
    return f"“{shorten_words(text, limit)}”"


def _build_view(result: AttentionResult, view: str, kind: str | None) -> ViewData:
    kind = kind or result.default_kind
    array = result.array(kind)
    layer_ids = result.layer_ids[kind]
    head_ids = result.head_ids[kind]
    queries, keys = result.axes(kind)
    q_labels = [drawn_label(label) for label in queries.labels()]
    k_labels = [drawn_label(label) for label in keys.labels()]
    resolved = resolve_view(view, array.shape[0], array.shape[1])
    base = f"{short_model_name(result.model)} · {kind} attention{describe_transforms(result)}"

    if resolved in ("rollout", "flow"):
        from attnviz.analysis.rollout import attention_flow, attention_rollout

        if kind == "cross":
            raise SelectionError(
                f"{resolved} follows the residual stream through one stack of self-attention; "
                "cross attention maps decoder tokens onto encoder tokens and has no such path",
                hint="use the encoder kind (the source stack) or the decoder kind (the target stack)",
            )

        if resolved == "rollout":
            rollout = result.derived.get("rollout")
            if rollout is None:
                rollout = attention_rollout(array)
            panel = Panel(rollout[-1], f"rollout to layer {layer_ids[-1]}", layer_ids[-1], None)
            title = f"{base} · rollout through layers {_span(layer_ids)}"
        else:
            flow = result.derived.get("flow")
            if flow is None:
                flow = attention_flow(array)
            panel = Panel(flow, "flow", layer_ids[-1], None)
            title = f"{base} · attention flow through layers {_span(layer_ids)}"
        value_label = "share of input token (rollout)" if resolved == "rollout" else "share of flow (max-flow)"
        return ViewData(resolved, kind, [panel], 1, 1, q_labels, k_labels, title, value_label=value_label)

    check_view_shape(resolved, array.shape[0], array.shape[1])
    if resolved == "head":
        layer, head = layer_ids[0], head_ids[0]
        name = "mean of heads" if head == MEAN_HEAD else f"head {head}"
        panel = Panel(array[0, 0], f"layer {layer} · {name}", layer, head)
        return ViewData(resolved, kind, [panel], 1, 1, q_labels, k_labels, f"{base} · layer {layer} · {name}")

    if resolved == "layer":
        layer = layer_ids[0]
        count = array.shape[1]
        cols = min(4, count) if count != 6 else 3
        rows = -(-count // cols)
        panels = [Panel(array[0, h], f"head {head_name(head_ids[h])}", layer, head_ids[h]) for h in range(count)]
        return ViewData(
            resolved, kind, panels, rows, cols, q_labels, k_labels, f"{base} · layer {layer}, heads {_span(head_ids)}"
        )

    if resolved == "mean":
        means = array.mean(axis=1, dtype=np.float64).astype(np.float32)
        panels = [Panel(means[i], f"layer {layer_ids[i]}", layer_ids[i], MEAN_HEAD) for i in range(means.shape[0])]
        count = len(panels)
        cols = min(count, 3 if count <= 9 else 4)
        rows = -(-count // cols)
        averaged = result.extra_meta.get("averaged_heads", {}).get(kind)
        if tuple(head_ids) == (MEAN_HEAD,) and averaged is not None:  # averaged during extraction
            heads_note = f"heads {_span(averaged)}"
        else:
            heads_note = f"heads {_span(head_ids)}" if len(head_ids) > 1 else f"head {head_name(head_ids[0])}"
        return ViewData(
            resolved, kind, panels, rows, cols, q_labels, k_labels, f"{base} · mean over {heads_note}, per layer"
        )

    # grid: one row per layer, one column per head
    panels = [
        Panel(array[i, h], f"L{layer_ids[i]} H{head_name(head_ids[h])}", layer_ids[i], head_ids[h])
        for i in range(array.shape[0])
        for h in range(array.shape[1])
    ]
    return ViewData(
        resolved,
        kind,
        panels,
        array.shape[0],
        array.shape[1],
        q_labels,
        k_labels,
        f"{base} · layers {_span(layer_ids)} x heads {_span(head_ids)}",
        row_labels=[f"layer {layer}" for layer in layer_ids],
        col_labels=[f"head {head_name(h)}" for h in head_ids],
    )


def _span(ids: tuple[int, ...] | list[int]) -> str:
    ids = list(ids)
    if len(ids) == 1:
        return head_name(ids[0])
    if ids == list(range(ids[0], ids[0] + len(ids))):
        return f"{ids[0]}-{ids[-1]}"
    return ",".join(head_name(i) for i in ids)
