"""The lesson in the terminal (rich): per step a heading, the sentences, and a small
picture that fits ``console.width`` (80 columns and up). Colour where the console has it,
shade characters (`` ░▒▓█``) without; every untrusted string goes through ``printable``."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.safety import printable

if TYPE_CHECKING:
    from rich.console import Console

    from attnviz.lesson.steps import Lesson, Step

SHADES = " ░▒▓█"
LABEL = 12  # widest token label


def _label(text: str, width: int = LABEL) -> str:
    text = printable(text)
    return text if len(text) <= width else text[: width - 1] + "…"


class Heat:
    """One value in ``[lo, hi]`` -> two styled characters (viridis, or shades)."""

    def __init__(self, console: Console, lo: float, hi: float, cmap: str = "viridis") -> None:
        from attnviz.render.colors import colormap_lut

        self.plain = console.color_system in (None, "standard", "windows") or bool(getattr(console, "no_color", False))
        self.lo, self.hi = float(lo), float(hi) if hi > lo else float(lo) + 1.0
        self.lut = colormap_lut(cmap, 64)

    def level(self, value: float) -> float:
        return float(np.clip((value - self.lo) / (self.hi - self.lo), 0.0, 1.0))

    def cell(self, value: float, width: int = 2) -> tuple[str, str]:
        level = self.level(value)
        if self.plain:
            return SHADES[int(round(level * (len(SHADES) - 1)))] * width, ""
        r, g, b = (int(c) for c in self.lut[int(round(level * (len(self.lut) - 1)))])
        return " " * width, f"on #{r:02x}{g:02x}{b:02x}"

    def half(self, top: float, bottom: float | None) -> tuple[str, str]:
        """One character cell for two rows: upper half ``top``, lower half ``bottom``."""
        if self.plain:
            return SHADES[int(round(self.level(top) * (len(SHADES) - 1)))], ""
        fg = "#{:02x}{:02x}{:02x}".format(*(int(c) for c in self.lut[int(round(self.level(top) * 63))]))
        if bottom is None:
            return "▀", fg
        bg = "#{:02x}{:02x}{:02x}".format(*(int(c) for c in self.lut[int(round(self.level(bottom) * 63))]))
        return "▀", f"{fg} on {bg}"


def _cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _bar(fraction: float, width: int) -> str:
    filled = int(round(float(np.clip(fraction, 0, 1)) * width))
    return "█" * filled + "·" * (width - filled)


def _heatmap(
    console: Console, matrix: np.ndarray, labels: list[str], heat: Heat, columns: list[str] | None = None
) -> None:
    """A labelled matrix, two characters per cell, rows cut to what fits."""
    from rich.text import Text

    width = min(LABEL, max((len(_label(x)) for x in labels), default=1))
    fit = max(1, (console.width - width - 6) // 2)
    shown = min(matrix.shape[1], fit)
    for i, row in enumerate(matrix[:40]):
        line = Text(f"{i:>3} {_label(labels[i], width):<{width}} ")
        for value in row[:shown]:
            text, style = heat.cell(float(value))
            line.append(text, style=style)
        console.print(line, no_wrap=True, overflow="crop")
    if matrix.shape[1] > shown or matrix.shape[0] > 40:
        console.print(
            Text(f"(cut to {min(40, matrix.shape[0])} x {shown} to fit; -o lesson.html shows all)", style="dim")
        )
    keys = columns if columns is not None else labels
    console.print(
        Text("columns: " + " ".join(f"{j}:{_label(k, 8)}" for j, k in enumerate(keys[:shown])), style="dim"),
        overflow="fold",
    )


def _half_map(console: Console, matrix: np.ndarray, heat: Heat, indent: int = 4) -> None:
    """A square-ish map, two rows per character line (``▀``)."""
    from rich.text import Text

    for top in range(0, matrix.shape[0], 2):
        line = Text(" " * indent)
        for j in range(matrix.shape[1]):
            bottom = float(matrix[top + 1, j]) if top + 1 < matrix.shape[0] else None
            char, style = heat.half(float(matrix[top, j]), bottom)
            line.append(char, style=style)
        console.print(line, no_wrap=True, overflow="crop")


def _table(*columns: str) -> Any:
    from rich.table import Table

    table = Table(box=None, padding=(0, 1), show_edge=False, header_style="bold")
    for name in columns:
        table.add_column(name, overflow="fold")
    return table


# -- the pictures --------------------------------------------------------------------------
def _tokens(step: Step, console: Console) -> None:
    from rich.text import Text

    rows = step.data["tokens"]
    table = _table("#", "piece", "id", "from the text")
    for row in rows[:48]:
        source = f"[{row['chars'][0]}:{row['chars'][1]}] {printable(row['text'])!s}" if row["chars"] else "(added)"
        table.add_row(str(row["index"]), Text(_label(row["piece"], 20)), str(row["id"]), Text(source))
    console.print(table)
    if len(rows) > 48:
        console.print(Text(f"… {len(rows) - 48} more tokens (--json lists all)", style="dim"))


def _embeddings(step: Step, console: Console) -> None:
    from rich.text import Text

    data = step.data
    matrix = np.asarray(data["similarity"])
    console.print(Text("cosine similarity of the sentence's token embeddings (dark -1 .. bright 1):", style="dim"))
    _heatmap(console, matrix, data["labels"], Heat(console, -1.0, 1.0))
    table = _table("token", "nearest in the embedding table (cosine)")
    for entry in data["neighbours"][:24]:
        near = ", ".join(f"{_label(n['token'], 14)} {n['cosine']:.2f}" for n in entry["neighbours"])
        table.add_row(Text(_label(entry["token"])), Text(near))
    console.print(table)


def _positions(step: Step, console: Console) -> None:
    from rich.text import Text

    data = step.data
    if "similarity" in data:
        matrix = np.asarray(data["similarity"])
        size = min(len(matrix), 32, max(8, console.width - 8))
        if len(matrix) > size:  # every other position, so the map stays square and small
            picked = np.linspace(0, len(matrix) - 1, size).round().astype(int)
            matrix = matrix[np.ix_(picked, picked)]
        console.print(
            Text(f"cosine similarity of position vectors 0-{data['positions'] - 1} (dark -1 .. bright 1):", style="dim")
        )
        _half_map(console, matrix, Heat(console, -1.0, 1.0))
        by = data["by_distance"]
        marks = [d for d in (1, 2, 4, 8, 16, 32, 63) if d < len(by)]
        console.print(Text("mean cosine by distance: " + ", ".join(f"{d}: {by[d]:.2f}" for d in marks)))
    elif "scores" in data:
        scores = np.asarray(data["scores"])
        width = min(len(scores), console.width - 20)
        line = Text("score by distance ")
        heat = Heat(console, -1.0, 1.0)
        for value in scores[:width]:
            level = heat.level(float(value))
            line.append("▁▂▃▄▅▆▇█"[int(round(level * 7))])
        console.print(line, no_wrap=True, overflow="crop")
        console.print(Text(f"distance 0 .. {width - 1}; the bar height is the score, -1 .. 1", style="dim"))
    elif "bias" in data:
        bias = np.asarray(data["bias"])
        distances = np.asarray(data["distances"])
        keep = np.flatnonzero(np.abs(distances) <= 8)
        table = _table("head", *[f"{d:+d}" if d else "0" for d in distances[keep]])
        heat = Heat(console, float(bias.min()), float(bias.max()))
        for h, row in enumerate(bias):
            cells = []
            for value in row[keep]:
                text, style = heat.cell(float(value), 3)
                cells.append(Text(text, style=style))
            table.add_row(str(h), *cells)
        console.print(Text("bias by distance (key - query), dark low .. bright high:", style="dim"))
        console.print(table)


def _self_attention(step: Step, console: Console, lesson: Lesson) -> None:
    from attnviz.render.neuron import print_neuron

    if lesson.capture.neuron is not None:
        print_neuron(lesson.capture.neuron, console)


ABBREVIATIONS = {
    "vertical": "ver",
    "diagonal": "dia",
    "previous": "prv",
    "next": "nxt",
    "block": "blk",
    "broad": "brd",
    "heterogeneous": "het",
}
CLUSTER_COLORS = ("cyan", "magenta", "yellow", "green", "blue", "red", "bright_cyan", "bright_magenta")


def _multi_head(step: Step, console: Console) -> None:
    from rich.text import Text

    labels = step.data["labels"]
    clusters = step.data.get("clusters")
    heads = len(labels[0])
    cell = 4 if 6 + heads * 4 <= console.width else 2
    header = Text("layer ")
    for h in range(heads):
        header.append(f"{h:>{cell - 1}} "[-cell:])
    console.print(header, style="dim", no_wrap=True, overflow="crop")
    for layer, row in enumerate(labels):
        line = Text(f"{layer:>5} ")
        for h, label in enumerate(row):
            short = ABBREVIATIONS.get(label, label[:3])[: cell - 1]
            style = CLUSTER_COLORS[(clusters[layer][h] - 1) % len(CLUSTER_COLORS)] if clusters else ""
            line.append(f"{short:<{cell - 1}} ", style=style)
        console.print(line, no_wrap=True, overflow="crop")
    legend = ", ".join(f"{v} {k}" for k, v in ABBREVIATIONS.items())
    console.print(
        Text(f"{legend}; colour: cluster" + ("" if clusters else "s need 2+ heads"), style="dim"), overflow="fold"
    )


def _rows(step: Step) -> list[dict[str, Any]]:
    layers = step.data.get("layers", {})
    kind = step.data.get("kind")
    return list(layers.get(kind) or next(iter(layers.values()), []))


def _feed_forward(step: Step, console: Console) -> None:
    from rich.text import Text

    rows = _rows(step)
    top = max((r["mean_ratio"] for r in rows), default=1.0) or 1.0
    table = _table("layer", "update / residual (mean over tokens)", "", "top neurons, step-4 token")
    for r in rows:
        neurons = " ".join(f"#{n['neuron']}" for n in r["top_neurons"])
        table.add_row(str(r["layer"]), _bar(r["mean_ratio"] / top, 20), f"{r['mean_ratio']:.2f}", Text(neurons))
    console.print(table)


def _residual(step: Step, console: Console) -> None:
    from rich.text import Text

    rows = _rows(step)
    table = _table("layer", "from itself ▓ | from other tokens █", "itself", "others")
    for r in rows:
        share = 1 - r["mean_ratio"]
        kept = int(round(share * 30))
        bar = Text("▓" * kept, style="green")
        bar.append("█" * (30 - kept), style="magenta")
        table.add_row(str(r["layer"]), bar, f"{share:.0%}", f"{r['mean_ratio']:.0%}")
    console.print(table)


def _layer_norm(step: Step, console: Console) -> None:
    rows = _rows(step)
    placement = step.data.get("placement")
    first, second = (
        ("after attention + residual", "after feed-forward + residual")
        if placement == "post"
        else (
            "before attention",
            "before feed-forward",
        )
    )
    table = _table("layer", f"norm {first}", f"norm {second}")
    for r in rows:
        table.add_row(
            str(r["layer"]),
            f"{r['mean_attn_norm_in']:8.2f} → {r['mean_attn_norm_out']:6.2f}",
            f"{r['mean_ffn_norm_in']:8.2f} → {r['mean_ffn_norm_out']:6.2f}",
        )
    console.print(table)
    console.print("mean vector length over tokens, before → after the norm", style="dim")


def _masks(step: Step, console: Console) -> None:
    from rich.text import Text

    for kind, entry in step.data["kinds"].items():
        if kind == "cross":
            matrix = np.asarray(entry["mean_last_layer"])
            console.print(
                Text("cross-attention, last layer, mean over heads (rows: decoder, columns: encoder):", style="dim")
            )
            _heatmap(console, matrix, entry["queries"], Heat(console, 0.0, float(matrix.max()) or 1.0), entry["keys"])
            continue
        seen = np.asarray(entry["seen"])
        count = min(len(seen), 24, (console.width - LABEL - 6) // 2)
        console.print(Text(f"{kind} self-attention: {entry['mask']} mask (■ may attend, · masked)", style="dim"))
        for i in range(count):
            line = Text(f"{i:>3} {_label(entry['tokens'][i]):<{LABEL}} ")
            line.append(" ".join("■" if seen[i, j] else "·" for j in range(count)))
            console.print(line, no_wrap=True, overflow="crop")
        if len(seen) > count:
            console.print(Text(f"(first {count} of {len(seen)} tokens)", style="dim"))


PICTURES: dict[int, Callable[..., None]] = {
    1: _tokens,
    2: _embeddings,
    3: _positions,
    5: _multi_head,
    6: _feed_forward,
    7: _residual,
    8: _layer_norm,
    9: _masks,
}


def print_step(lesson: Lesson, step: Step, console: Console) -> None:
    from rich.rule import Rule
    from rich.text import Text

    console.print(Rule(Text(f"{step.number}/9  {step.title}", style="bold"), align="left"))
    for sentence in step.sentences:
        console.print(Text(printable(sentence)), overflow="fold")
    if not step.applies:
        return
    console.print()
    if step.number == 4:
        _self_attention(step, console, lesson)
    else:
        PICTURES[step.number](step, console)


_TAIL = re.compile(r"(?: |\x1b\[[0-9;]*m)+$")


def _untrailed(draw: Callable[[], None], console: Console) -> None:
    """Run ``draw`` (which prints to ``console``) and write its output with no line ending in
    spaces: rich pads table cells and wrapped sentences to the width, which leaves trailing
    blanks when the output is copied or piped. Style codes at a line's end are kept."""
    with console.capture() as captured:
        draw()
    lines = captured.get().split("\n")
    console.file.write("\n".join(_TAIL.sub(lambda m: m.group(0).replace(" ", ""), line) for line in lines))
    console.file.flush()


def print_lesson(lesson: Lesson, console: Console, steps: list[int] | None = None) -> None:
    """The lesson's header and the chosen steps (default all nine)."""
    _untrailed(lambda: _print_lesson(lesson, console, steps), console)


def print_overview(lesson: Lesson, console: Console) -> None:
    """Every step's title and sentences, no pictures, and how to see them."""
    _untrailed(lambda: _print_overview(lesson, console), console)


def _print_lesson(lesson: Lesson, console: Console, steps: list[int] | None = None) -> None:
    from rich.text import Text

    console.print(
        Text(printable(f"attnviz lesson · {lesson.model} ({lesson.model_type}, {lesson.family})"), style="bold"),
        overflow="fold",
    )
    console.print(Text(printable(f"text: {_cut(lesson.text)}")), overflow="fold")
    if lesson.target is not None:
        console.print(Text(printable(f"target (decoder): {_cut(lesson.target)}")), overflow="fold")
    for step in lesson.steps:
        if steps is None or step.number in steps:
            console.print()
            print_step(lesson, step, console)


def _print_overview(lesson: Lesson, console: Console) -> None:
    from rich.text import Text

    console.print(
        Text(printable(f"attnviz lesson · {lesson.model} ({lesson.model_type}, {lesson.family})"), style="bold"),
        overflow="fold",
    )
    console.print(Text(printable(f"text: {_cut(lesson.text)}")), overflow="fold")
    for step in lesson.steps:
        console.print()
        console.print(Text(f"{step.number}. {step.title}", style="bold"))
        console.print(Text(printable(" ".join(step.sentences))), overflow="fold")
    console.print()
    console.print(
        Text("A step with its picture: --step N (1-9); all of them: --all; as a page: -o lesson.html", style="dim"),
        overflow="fold",
    )
