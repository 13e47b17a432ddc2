"""One matplotlib ``Figure`` per step (the folder output and the page's pictures), drawn
from each step's numbers. A step that does not apply is a figure with its one line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.safety import printable

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from attnviz.lesson.steps import Lesson, Step


def _labels(values: list[str], limit: int = 14) -> list[str]:
    out = []
    for value in values:
        value = printable(value)
        out.append(value if len(value) <= limit else value[: limit - 1] + "…")
    return out


def _matrix(
    ax: Axes, matrix: np.ndarray, rows: list[str], columns: list[str], vmin: float, vmax: float, cmap: str
) -> Any:
    image = ax.imshow(matrix, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
    if len(rows) <= 40:
        ax.set_yticks(range(len(rows)), _labels(rows), fontsize=8)
    if len(columns) <= 40:
        ax.set_xticks(range(len(columns)), _labels(columns), fontsize=8, rotation=90)
    return image


def _tokens(fig: Figure, step: Step, lesson: Lesson) -> None:
    rows = step.data["tokens"][:60]
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_xlim(0, 1)
    ax.set_ylim(len(rows) + 1, -1)
    ax.text(0.0, -0.5, "#", weight="bold", fontsize=9)
    ax.text(0.06, -0.5, "piece", weight="bold", fontsize=9)
    ax.text(0.36, -0.5, "id", weight="bold", fontsize=9)
    ax.text(0.5, -0.5, "characters of the text", weight="bold", fontsize=9)
    for i, row in enumerate(rows):
        color = "#888888" if row["special"] else "black"
        source = (
            f"[{row['chars'][0]}:{row['chars'][1]}]  {printable(row['text'])}"
            if row["chars"]
            else "(added by the model)"
        )
        ax.text(0.0, i + 0.5, str(row["index"]), fontsize=9, color=color)
        ax.text(0.06, i + 0.5, _labels([row["piece"]], 24)[0], fontsize=9, color=color, family="monospace")
        ax.text(0.36, i + 0.5, str(row["id"]), fontsize=9, color=color)
        ax.text(0.5, i + 0.5, source, fontsize=9, color=color)


def _embeddings(fig: Figure, step: Step, lesson: Lesson) -> None:
    data = step.data
    left, right = fig.subplots(1, 2, width_ratios=[1, 1.2])
    image = _matrix(left, np.asarray(data["similarity"]), data["labels"], data["labels"], -1, 1, "RdBu_r")
    left.set_title("cosine similarity of the token embeddings", fontsize=9)
    fig.colorbar(image, ax=left, shrink=0.7)
    right.set_axis_off()
    right.set_title("nearest neighbours in the embedding table", fontsize=9)
    entries = data["neighbours"][:14]
    for i, entry in enumerate(entries):
        near = ", ".join(f"{_labels([n['token']], 12)[0]} {n['cosine']:.2f}" for n in entry["neighbours"])
        right.text(
            0,
            1 - (i + 1) / (len(entries) + 1),
            f"{_labels([entry['token']])[0]}:  {near}",
            fontsize=8,
            transform=right.transAxes,
        )


def _positions(fig: Figure, step: Step, lesson: Lesson) -> None:
    data = step.data
    if "similarity" in data:
        left, right = fig.subplots(1, 2)
        image = left.imshow(np.asarray(data["similarity"]), cmap="RdBu_r", vmin=-1, vmax=1)
        left.set_title(f"cosine similarity of position vectors 0-{data['positions'] - 1}", fontsize=9)
        left.set_xlabel("position")
        left.set_ylabel("position")
        fig.colorbar(image, ax=left, shrink=0.7)
        right.plot(np.asarray(data["by_distance"]), color="#1f77b4")
        right.set_xlabel("distance between positions")
        right.set_ylabel("mean cosine")
        right.set_title("similarity by distance", fontsize=9)
        right.grid(alpha=0.3)
    elif "scores" in data:
        ax = fig.add_subplot()
        ax.plot(data["distances"], data["scores"], marker=".", color="#d62728")
        ax.axhline(0, color="#999999", lw=0.8)
        ax.set_xlabel("distance between query and key (positions)")
        ax.set_ylabel("score of the same query and key")
        ax.set_title(f"rotary: {data['head_dim']}-dim head, {len(data['frequencies'])} rotating pairs", fontsize=9)
        ax.grid(alpha=0.3)
    elif "bias" in data:
        ax = fig.add_subplot()
        bias = np.asarray(data["bias"])
        distances = np.asarray(data["distances"])
        image = ax.imshow(
            bias,
            aspect="auto",
            cmap="RdBu_r",
            vmin=-np.abs(bias).max(),
            vmax=np.abs(bias).max(),
            extent=(distances[0] - 0.5, distances[-1] + 0.5, len(bias) - 0.5, -0.5),
        )
        ax.set_xlabel("key position - query position")
        ax.set_ylabel("head")
        ax.set_title("relative position bias added to the scores", fontsize=9)
        fig.colorbar(image, ax=ax, shrink=0.7)


def _self_attention(fig: Figure, step: Step, lesson: Lesson) -> None:
    data = step.data
    keys = data["keys"]
    axes = fig.subplots(1, 3, sharey=True)
    positions = np.arange(len(keys))
    for ax, name, color in zip(axes, ("dots", "scores", "weights"), ("#7f7f7f", "#1f77b4", "#2ca02c")):
        values = np.asarray(data[name], dtype=float)
        ax.barh(positions, values, color=color)
        ax.set_title(
            {"dots": "q·k", "scores": f"score = q·k x {data['scaling']:.3g}", "weights": "softmax weight"}[name],
            fontsize=9,
        )
        ax.axvline(0, color="#999999", lw=0.8)
    axes[0].set_yticks(positions, _labels(keys), fontsize=8)
    axes[0].invert_yaxis()


def _multi_head(fig: Figure, step: Step, lesson: Lesson) -> None:
    from attnviz.lesson.terminal import ABBREVIATIONS

    labels = step.data["labels"]
    clusters = step.data.get("clusters")
    ax = fig.add_subplot()
    grid = np.asarray(clusters if clusters else np.zeros((len(labels), len(labels[0]))), dtype=float)
    ax.imshow(grid, cmap="tab10", vmin=0.5, vmax=10.5, aspect="auto")
    for layer, row in enumerate(labels):
        for head, label in enumerate(row):
            ax.text(head, layer, ABBREVIATIONS.get(label, label[:3]), ha="center", va="center", fontsize=7)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title("pattern label of each head; colour: cluster (pooled JS distance, complete linkage)", fontsize=9)


def _per_layer(step: Step) -> list[dict[str, Any]]:
    layers = step.data.get("layers", {})
    return list(layers.get(step.data.get("kind")) or next(iter(layers.values()), []))


def _feed_forward(fig: Figure, step: Step, lesson: Lesson) -> None:
    rows = _per_layer(step)
    ax = fig.add_subplot()
    layers = [r["layer"] for r in rows]
    ax.bar(layers, [r["mean_ratio"] for r in rows], color="#ff7f0e")
    for r in rows:
        text = " ".join(f"#{n['neuron']}" for n in r["top_neurons"])
        ax.text(
            r["layer"], r["mean_ratio"], text, ha="center", va="bottom", fontsize=7, rotation=90 if len(rows) > 8 else 0
        )
    ax.set_xlabel("layer")
    ax.set_ylabel("|feed-forward update| / |residual stream|")
    ax.set_title("size of each feed-forward update (labels: the step-4 token's top neurons)", fontsize=9)


def _residual(fig: Figure, step: Step, lesson: Lesson) -> None:
    rows = _per_layer(step)
    ax = fig.add_subplot()
    layers = [r["layer"] for r in rows]
    mixed = np.array([r["mean_ratio"] for r in rows])
    ax.bar(layers, 1 - mixed, color="#2ca02c", label="from the token itself (residual + own attention)")
    ax.bar(layers, mixed, bottom=1 - mixed, color="#9467bd", label="from other tokens (attention)")
    ax.set_ylim(0, 1)
    ax.set_xlabel("layer")
    ax.set_ylabel("share of the new vector")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title("mixing ratio (Kobayashi et al. 2021)", fontsize=9)


def _layer_norm(fig: Figure, step: Step, lesson: Lesson) -> None:
    rows = _per_layer(step)
    ax = fig.add_subplot()
    x = np.arange(len(rows))
    for offset, role, color in (
        (-0.3, "attn_norm_in", "#aec7e8"),
        (-0.1, "attn_norm_out", "#1f77b4"),
        (0.1, "ffn_norm_in", "#ffbb78"),
        (0.3, "ffn_norm_out", "#ff7f0e"),
    ):
        ax.bar(
            x + offset,
            [r[f"mean_{role}"] for r in rows],
            width=0.2,
            color=color,
            label=role.replace("_", " ").replace("attn", "attention").replace("ffn", "feed-forward"),
        )
    ax.set_xticks(x, [str(r["layer"]) for r in rows])
    ax.set_xlabel("layer")
    ax.set_ylabel("mean vector length")
    ax.legend(fontsize=8)
    ax.set_title(f"vector lengths before and after each norm ({step.data.get('placement')}-norm)", fontsize=9)


def _masks(fig: Figure, step: Step, lesson: Lesson) -> None:
    entries = step.data["kinds"]
    axes = fig.subplots(1, len(entries), squeeze=False)[0]
    for ax, (kind, entry) in zip(axes, entries.items()):
        if kind == "cross":
            _matrix(
                ax,
                np.asarray(entry["mean_last_layer"]),
                entry["queries"],
                entry["keys"],
                0,
                float(np.max(entry["mean_last_layer"])) or 1.0,
                "viridis",
            )
            ax.set_title("cross-attention (last layer, mean of heads)", fontsize=9)
        else:
            seen = np.asarray(entry["seen"])
            _matrix(ax, seen, entry["tokens"], entry["tokens"], -0.6, 1.6, "Blues")
            ax.set_xticks(np.arange(-0.5, len(seen)), minor=True)
            ax.set_yticks(np.arange(-0.5, len(seen)), minor=True)
            ax.grid(which="minor", color="white", linewidth=1)
            ax.tick_params(which="minor", length=0)
            ax.set_title(f"{kind}: {entry['mask']} mask (blue: may attend)", fontsize=9)


DRAW = {
    1: _tokens,
    2: _embeddings,
    3: _positions,
    4: _self_attention,
    5: _multi_head,
    6: _feed_forward,
    7: _residual,
    8: _layer_norm,
    9: _masks,
}


def step_figure(lesson: Lesson, step: Step, *, dpi: int = 100, sentences: bool = True) -> Figure:
    """The step's picture, with its title and sentences above it (``sentences=False``:
    the picture alone, for the page, which prints them as text)."""
    import textwrap

    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 5.2 if sentences else 4.2), dpi=dpi, layout="constrained")
    if sentences or not step.applies:
        text = "\n".join(textwrap.fill(printable(s), 120) for s in step.sentences)
        fig.suptitle(f"{step.number}. {step.title}\n{text}", fontsize=9, ha="left", x=0.01)
    if step.applies:
        DRAW[step.number](fig, step, lesson)
    return fig


def _saver(fig: Figure) -> Any:
    def save(handle: Any) -> None:
        fig.savefig(handle, format="png")

    return save


def write_step_images(lesson: Lesson, folder: str | os.PathLike[str]) -> list[Path]:
    """``01-tokenization.png`` ... ``09-encoder-and-decoder.png`` in ``folder``."""
    from attnviz.io import atomic_write, ensure_directory

    directory = ensure_directory(folder)
    written = []
    for step in lesson.steps:
        name = f"{step.number:02d}-{step.title.lower().replace(' ', '-')}.png"
        written.append(atomic_write(directory / name, _saver(step_figure(lesson, step))))
    return written


def step_png(lesson: Lesson, step: Step, *, sentences: bool = True) -> bytes:
    import io

    buffer = io.BytesIO()
    step_figure(lesson, step, sentences=sentences).savefig(buffer, format="png")
    return buffer.getvalue()
