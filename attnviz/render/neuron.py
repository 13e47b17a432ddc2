"""The neuron view: how one head's weights for one query token come about (pure NumPy,
rich for the terminal, matplotlib for images).

For query token i of head h: the query vector q_i, each key vector k_j, their elementwise
product q_i * k_j (its sum is the dot product), the dot products, the scaled scores
``q_i . k_j * scaling`` (plus T5's position bias, soft-capped where the model does), and the
softmax weights the model produced. Vectors are exactly those of the model's dot product:
after rotary embedding, and for GQA the key of the head's key-value group.

Keys the model's mask hides from the query are marked ``masked`` (no q·k or score shown):
a decoder's later keys, and keys a sliding window leaves out (``meta["vectors"][kind]
["window"]``, recorded from the mask at capture). Never by a weight of 0: a weight can
underflow to 0 for a key the query did see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.errors import IndexSpecError, SelectionError
from attnviz.render.terminal_maps import pad
from attnviz.render.views import drawn_label
from attnviz.result import AttentionResult
from attnviz.safety import printable

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Console

    from attnviz.render.terminal import Painter


@dataclass(frozen=True)
class NeuronData:
    title: str
    query_index: int
    query_label: str
    key_labels: list[str]
    query: np.ndarray  # [d]
    keys: np.ndarray  # [keys, d]
    products: np.ndarray  # [keys, d]
    dots: np.ndarray  # [keys]
    scores: np.ndarray  # [keys]: scaled (+ bias, soft-capped)
    weights: np.ndarray  # [keys]: the model's attention
    scaling: float
    masked: np.ndarray  # [keys] bool: keys the query cannot see (causal, window)
    window: int | None = None  # the layer's sliding window (keys at distance >= window are masked)


def hidden_keys(n_queries: int, n_keys: int, *, causal: bool, window: int | None) -> np.ndarray:
    """bool ``[queries, keys]``: True where the model's mask hides key ``j`` from query
    ``i``. Query ``i`` sits at key position ``p = i + n_keys - n_queries`` (the real tokens'
    positions; the page computes the same). Hidden: ``j > p`` when ``causal``, and
    ``|p - j| >= window`` under a sliding window (masking_utils keeps ``p - window < j``)."""
    position = np.arange(n_queries)[:, None] + (n_keys - n_queries)
    offset = position - np.arange(n_keys)[None, :]
    hidden = offset < 0 if causal else np.zeros((n_queries, n_keys), dtype=bool)
    if window is not None:
        hidden = hidden | (np.abs(offset) >= window)
    return hidden


def layer_window(result: AttentionResult, kind: str, position: int) -> int | None:
    """The sliding window the mask applied to the layer at ``position`` of ``kind`` (None:
    no window, or a file written before windows were recorded)."""
    windows = result.extra_meta.get("vectors", {}).get(kind, {}).get("window")
    if not isinstance(windows, list) or len(windows) != len(result.layer_ids[kind]):
        return None
    value = windows[position]
    return int(value) if value is not None else None


def default_query(result: AttentionResult, kind: str) -> int:
    """The first non-special query token (else 0)."""
    queries, _ = result.axes(kind)
    positions = np.flatnonzero(~np.asarray(queries.special_mask, dtype=bool))
    return int(positions[0]) if positions.size else 0


def neuron_data(result: AttentionResult, kind: str | None = None, query: int | None = None) -> NeuronData:
    """The breakdown of one head (the result must hold one layer and one head, extracted
    with ``vectors=True``) for query token ``query`` (default: the first non-special one)."""
    from attnviz.render.views import head_name, short_model_name

    kind = kind or result.default_kind
    array = result.array(kind)
    if array.shape[0] != 1 or array.shape[1] != 1:
        raise SelectionError(
            f"the neuron view shows one head, but {array.shape[0]} layers x {array.shape[1]} heads are selected",
            hint="choose one, e.g. {layer} 0 {head} 0",
            option=("layer", "head"),
        )
    parts = result.vectors.get(kind)
    if not parts or "query" not in parts or "key" not in parts:
        raise SelectionError(
            "this result has no query and key vectors",
            hint="extract with vectors=True (the neuron view does); saved files need them too",
        )
    queries, keys = result.axes(kind)
    n_queries = array.shape[2]
    index = default_query(result, kind) if query is None else int(query)
    if not 0 <= index < n_queries:
        raise IndexSpecError(
            "query",
            f"{{name}} {index} is out of range: there are {n_queries} query tokens (0-{n_queries - 1})",
            hint="{name} is a 0-based token position (see the tokens line)",
        )
    meta = result.extra_meta.get("vectors", {}).get(kind, {})
    scaling = float((meta.get("scaling") or [None])[0] or parts["query"].shape[-1] ** -0.5)
    softcap = (meta.get("softcap") or [None])[0]
    q = parts["query"][0, 0, index].astype(np.float64)
    k = parts["key"][0, 0].astype(np.float64)
    products = k * q[None, :]
    dots = products.sum(-1)
    scores = dots * scaling
    if "bias" in parts:
        bias = parts["bias"][0, 0]
        scores = scores + bias[index if bias.shape[0] > 1 else 0]
    if softcap:
        scores = np.tanh(scores / softcap) * softcap
    weights = array[0, 0, index].astype(np.float64)
    window = layer_window(result, kind, 0)
    masked = hidden_keys(n_queries, array.shape[3], causal=kind == "decoder", window=window)
    layer, head = result.layer_ids[kind][0], result.head_ids[kind][0]
    title = (
        f"{short_model_name(result.model)} · {kind} · layer {layer} · head {head_name(head)} · "
        f"query {index} '{queries.display[index]}'"
    )
    return NeuronData(
        title=title,
        query_index=index,
        query_label=drawn_label(queries.display[index]),
        key_labels=[drawn_label(k) for k in keys.display],
        query=q,
        keys=k,
        products=products,
        dots=dots,
        scores=scores,
        weights=weights,
        scaling=scaling,
        masked=masked[index],
        window=window,
    )


# -- terminal -------------------------------------------------------------------------------
_NEGATIVE, _POSITIVE = "−", "+"


def _cells(values: np.ndarray, scale: float, painter: Painter) -> Any:
    """One character per value: a diverging colour (blue negative, red positive) in colour
    terminals; without colour, the sign and size as ``·``, ``+``/``−``, ``⊕``/``⊖``."""
    from rich.text import Text

    line = Text()
    for value in values:
        level = float(np.clip(value / scale, -1, 1)) if scale > 0 else 0.0
        if painter.mode == "none":
            size = abs(level)
            line.append(
                "·"
                if size < 0.25
                else (_POSITIVE if level > 0 else _NEGATIVE)
                if size < 0.6
                else ("⊕" if level > 0 else "⊖")
            )
        else:
            line.append("█", style=painter.diverging(level))
    return line


def print_neuron(data: NeuronData, console: Console) -> None:
    """The breakdown as rich text that fits ``console.width``."""
    from rich.text import Text

    from attnviz.render.terminal import Painter

    painter = Painter(console, 1.0, "RdBu_r")
    d = len(data.query)
    label_width = min(12, max(len(printable(k)) for k in data.key_labels))
    numbers = 30  # " q.k  score  weight bar"
    prefix = 4 + label_width + 1
    show_keys = prefix + 2 * d + 2 + numbers <= console.width
    width = max(8, console.width - prefix - numbers - 1)
    shown = min(d, width if not show_keys else d)
    console.print(Text(printable(data.title), style="bold"), overflow="fold")
    q_scale = float(np.abs(data.query).max()) or 1.0
    k_scale = float(np.abs(data.keys).max()) or 1.0
    p_scale = float(np.abs(data.products).max()) or 1.0
    line = Text(f"{'query':>{prefix - 1}} ")
    line.append_text(_cells(data.query[:shown], q_scale, painter))
    console.print(line, no_wrap=True, overflow="crop")
    header = Text(" " * prefix)
    if show_keys:
        header.append(f"{'key vector':<{d + 1}}")
    header.append(f"{'query x key (elementwise)':<{shown + 1}}")
    header.append("   q.k   score  weight")
    console.print(header, style="dim", no_wrap=True, overflow="crop")
    top = float(data.weights.max()) or 1.0
    for j, label in enumerate(data.key_labels):
        row = Text(f"{j:>3} {pad(label, label_width)} ")
        if show_keys:
            row.append_text(_cells(data.keys[j], k_scale, painter))
            row.append(" ")
        row.append_text(_cells(data.products[j, :shown], p_scale, painter))
        if data.masked[j]:
            row.append(f" {'masked':>7} {'':>7} {0:7.3f}", style="dim")
        else:
            row.append(f" {data.dots[j]:7.2f} {data.scores[j]:7.2f} {data.weights[j]:7.3f} ")
            row.append("█" * int(round(6 * data.weights[j] / top)), style="bold")
        console.print(row, no_wrap=True, overflow="crop")
    notes = [f"score = q.k x {data.scaling:.4g}", "weight = softmax over the scores (the model's own)"]
    if data.window is not None:
        notes.append(f"sliding window of {data.window}: keys {data.window} or more positions away are masked")
    if shown < d:
        notes.append(f"vectors cut to {shown} of {d} values to fit {console.width} columns (an image shows all)")
    if not show_keys:
        notes.append("key vectors left out to fit the width")
    if painter.mode != "none":
        notes.append("blue negative, red positive; each vector scaled to its largest |value|")
    console.print(Text("; ".join(notes), style="dim"), overflow="fold")


# -- image ------------------------------------------------------------------------------------
def neuron_figure(data: NeuronData, *, dpi: int = 100) -> Figure:
    """Query vector, key vectors, their elementwise products and the scores and weights."""
    from matplotlib.figure import Figure

    n, d = data.keys.shape
    height = max(4.0, 0.28 * n + 2.2)
    fig = Figure(figsize=(max(9.0, 0.09 * d * 2 + 5), height), dpi=dpi, layout="constrained")
    grid = fig.add_gridspec(2, 3, height_ratios=[1, max(4, n)], width_ratios=[d, d, max(12, d // 2)])
    labels = [printable(k)[:16] for k in data.key_labels]

    def heat(ax: Any, values: np.ndarray, title: str) -> Any:
        limit = float(np.abs(values).max()) or 1.0
        image = ax.imshow(values, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto", interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        return image

    ax_q = fig.add_subplot(grid[0, 0:2])
    heat(ax_q, data.query[None, :], f"query vector of '{printable(data.query_label)}' ({d} values)")
    ax_q.set_yticks([])
    ax_k = fig.add_subplot(grid[1, 0])
    heat(ax_k, data.keys, "key vectors")
    ax_k.set_yticks(range(n), labels, fontsize=8)
    ax_p = fig.add_subplot(grid[1, 1])
    image = heat(ax_p, data.products, "query x key (elementwise; rows sum to q.k)")
    ax_p.set_yticks([])
    fig.colorbar(image, ax=[ax_k, ax_p], shrink=0.6).set_label("value")
    ax_s = fig.add_subplot(grid[1, 2])
    y = np.arange(n)
    scores = np.where(data.masked, np.nan, data.scores)
    ax_s.barh(y - 0.2, scores, height=0.4, color="#888", label=f"score (q.k x {data.scaling:.3g})")
    ax_w = ax_s.twiny()
    ax_w.barh(y + 0.2, data.weights, height=0.4, color="#3b5bdb", label="weight (softmax)")
    ax_s.set_ylim(n - 0.5, -0.5)
    ax_s.set_yticks(range(n), labels, fontsize=8)
    for j in np.flatnonzero(data.masked):  # no bars there: say why
        ax_s.text(0.01, float(j), "masked", transform=ax_s.get_yaxis_transform(), va="center", fontsize=7, color="#888")
    ax_s.set_xlabel("score", fontsize=8)
    if data.window is not None:
        ax_s.set_title(f"sliding window of {data.window}: keys {data.window}+ away masked", fontsize=8)
    ax_w.set_xlabel("weight", fontsize=8, color="#3b5bdb")
    ax_s.axvline(0, color="#444", linewidth=0.5)
    # the legend gets the grid's empty top-right cell: inside the bar axes it covered a bar
    # (the last key's, often [SEP]) whatever corner it took
    handles = [*ax_s.get_legend_handles_labels()[0], *ax_w.get_legend_handles_labels()[0]]
    ax_key = fig.add_subplot(grid[0, 2])
    ax_key.axis("off")
    ax_key.legend(handles=handles, fontsize=7, loc="center", frameon=False)
    fig.suptitle(printable(data.title), fontsize=11)
    return fig
