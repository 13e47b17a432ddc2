"""Terminal output with rich: a summary, each view drawn as itself, a colour bar, and what
each head does.

* ``head``, ``rollout``, ``flow``: one labelled heatmap, one line per query token.
* ``layer``: that layer's heads as small multiples; ``mean``: one map per layer;
  ``grid``: every layer x head as mini heatmaps (the terminal form of bertviz's model
  view). Small maps use half blocks: ``▀`` with the upper row as foreground and the lower
  row as background colour, so one character line holds two query rows.
* Colour: truecolor where the terminal has it, 256 colours otherwise (rich converts), and
  shade characters (`` ░▒▓█``) under ``NO_COLOR``, on a 16-colour terminal, or when stdout
  is not a terminal. Every map of a view shares one scale, shown by a colour bar with its
  numbers.
* Everything fits ``console.width``; what does not fit is left out and said, with how to
  see it.

Every function takes a ``Console`` so tests render into a ``StringIO`` and the CLI decides
colour (``NO_COLOR``, non-tty) in one place.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.render.views import ViewData, head_name, shorten
from attnviz.result import MEAN_HEAD, AttentionResult
from attnviz.safety import printable

if TYPE_CHECKING:
    from rich.console import Console

SHADES = " ░▒▓█"
UPPER_HALF = "▀"


def color_mode(console: Console) -> str:
    """``truecolor``, ``256`` or ``none`` (shade characters) for ``console``."""
    system = getattr(console, "color_system", None)
    if system is None or getattr(console, "no_color", False) or system in ("standard", "windows"):
        return "none"
    return "truecolor" if system == "truecolor" else "256"


class Painter:
    """Turns attention values into styled cells on one shared scale ``[0, scale]``."""

    def __init__(self, console: Console, scale: float, cmap: str = "viridis") -> None:
        from rich.color import Color
        from rich.style import Style

        from attnviz.render.colors import colormap_lut

        self.mode = color_mode(console)
        self.scale = float(scale) if scale > 0 else 1.0
        self._lut = colormap_lut(cmap, 64)
        self._styles: dict[tuple[int, int], Any] = {}
        self._color = Color
        self._style = Style

    def level(self, value: float) -> int:
        return int(round(float(np.clip(value / self.scale, 0.0, 1.0)) * (len(self._lut) - 1)))

    def rgb(self, level: int) -> Any:
        r, g, b = (int(c) for c in self._lut[level])
        return self._color.from_rgb(r, g, b)

    def half(self, top: float, bottom: float | None) -> tuple[str, Any]:
        """One character for two rows (colour modes only)."""
        key = (self.level(top), -1 if bottom is None else self.level(bottom))
        style = self._styles.get(key)
        if style is None:
            style = self._style(color=self.rgb(key[0]), bgcolor=None if key[1] < 0 else self.rgb(key[1]))
            self._styles[key] = style
        return UPPER_HALF, style

    def diverging(self, level: float) -> Any:
        """The style of ``level`` in [-1, 1] on a diverging map (the painter's cmap)."""
        index = int(round((float(np.clip(level, -1, 1)) + 1) / 2 * (len(self._lut) - 1)))
        key = (index, -3)
        style = self._styles.get(key)
        if style is None:
            style = self._styles[key] = self._style(color=self.rgb(index))
        return style

    def shade(self, value: float) -> str:
        position = float(np.clip(value / self.scale, 0.0, 1.0))
        return SHADES[int(round(position * (len(SHADES) - 1)))]

    def full(self, value: float, width: int) -> tuple[str, Any]:
        """A whole cell ``width`` characters wide for one value."""
        if self.mode == "none":
            return self.shade(value) * width, None
        key = (self.level(value), -2)
        style = self._styles.get(key)
        if style is None:
            style = self._style(color=self.rgb(key[0]))
            self._styles[key] = style
        return "█" * width, style


def _fit(label: str, width: int) -> str:
    return shorten(printable(label), width)


# -- summary ---------------------------------------------------------------------------------
def print_summary(result: AttentionResult, console: Console) -> None:
    """Model, text, tokens and array shapes."""
    from rich.table import Table
    from rich.text import Text

    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    # Text objects, not str: rich would read "[red]" in a text as markup
    table.add_row("model", Text(printable(f"{result.model} ({result.family})")))
    table.add_row("text", Text(printable(result.text)))
    if result.pair is not None:
        table.add_row("pair", Text(printable(f"{result.pair}  (segment B starts at token {result.tokens.pair_start})")))
    table.add_row("tokens", Text(" ".join(f"{i}:{printable(t)}" for i, t in enumerate(result.tokens.display))))
    if result.target_tokens is not None:
        table.add_row(
            "target", Text(" ".join(f"{i}:{printable(t)}" for i, t in enumerate(result.target_tokens.display)))
        )
    for kind in result.kinds:
        layers, heads, q, k = result.shape[kind]
        table.add_row(kind, Text(f"{plural(layers, 'layer')} x {plural(heads, 'head')} x {q} queries x {k} keys"))
    if result.transforms:
        table.add_row("transforms", Text(", ".join(result.transforms)))
    console.print(table)


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


# -- one labelled heatmap ------------------------------------------------------------------
def print_heatmap(
    matrix: np.ndarray,
    query_labels: list[str],
    key_labels: list[str],
    console: Console,
    *,
    title: str = "",
    painter: Painter | None = None,
    value_label: str = "attention weight",
) -> None:
    """``matrix`` ``[query, key]`` as one labelled heatmap: a line per query token (index and
    label on the left), a column per key (numbered along the top), then the colour bar.
    Keys that do not fit the console width are cut, and the cut is stated."""
    from rich.text import Text

    n_query, n_key = matrix.shape
    painter = painter or Painter(console, float(matrix.max()))
    label_width = min(14, max((len(printable(s)) for s in query_labels), default=1))
    prefix = label_width + 5  # "NNN label "
    room = max(1, console.width - prefix)
    cell = 2 if n_key * 2 <= room else 1
    shown = min(n_key, room // cell)

    if title:
        console.print(Text(printable(title), style="bold"), overflow="fold")
    for ruler in _ruler(shown, cell):
        console.print(Text(" " * prefix + ruler, style="dim"), no_wrap=True, overflow="crop")
    for i in range(n_query):
        line = Text(f"{i:>3} {_fit(query_labels[i], label_width):<{label_width}} ")
        for j in range(shown):
            line.append(*painter.full(float(matrix[i, j]), cell))
        console.print(line, no_wrap=True, overflow="crop")
    print_colorbar(console, painter, value_label)
    if shown < n_key:
        console.print(
            Text(
                f"keys {shown}-{n_key - 1} left out to fit {console.width} columns; "
                "widen the terminal, or draw it with -o map.png",
                style="yellow",
            )
        )
    if [printable(k) for k in key_labels] != [printable(q) for q in query_labels]:
        console.print(
            Text("keys: " + " ".join(f"{j}:{_fit(key_labels[j], 12)}" for j in range(n_key)), style="dim"),
            overflow="fold",
        )


def _ruler(count: int, cell: int) -> list[str]:
    """Key numbers along the top: a tens line (from 10 keys) and a units line."""
    units = "".join(f"{j % 10:<{cell}}" for j in range(count))
    if count <= 10:
        return [units]
    tens = "".join(f"{j // 10 % 10 if j % 10 == 0 and j >= 10 else ' ':<{cell}}" for j in range(count))
    return [tens, units]


def print_colorbar(console: Console, painter: Painter, label: str) -> None:
    """``0 ▕gradient▏ max  label`` with the numbers of the scale under it."""
    from rich.text import Text

    width = 24
    line = Text("  0 ")
    for i in range(width):
        value = painter.scale * i / (width - 1)
        if painter.mode == "none":
            line.append(painter.shade(value))
        else:
            line.append(*painter.full(value, 1))
    line.append(f" {painter.scale:.3g}  ")
    line.append(label, style="dim")
    console.print(line, no_wrap=True, overflow="crop")
    middle = f"{painter.scale / 2:.3g}"
    ticks = " " * (4 + width // 2 - len(middle) // 2) + middle
    console.print(Text(ticks, style="dim"), no_wrap=True, overflow="crop")


# -- small multiples -------------------------------------------------------------------------
def _mini_lines(matrix: np.ndarray, painter: Painter, keys: int) -> list[Any]:
    """One small map ``keys`` columns wide: half blocks in colour (two rows per line),
    a line per row of shade characters without colour."""
    from rich.text import Text

    lines = []
    if painter.mode == "none":
        for row in matrix:
            lines.append(Text("".join(painter.shade(float(v)) for v in row[:keys])))
        return lines
    for top in range(0, matrix.shape[0], 2):
        line = Text()
        for j in range(keys):
            lower = float(matrix[top + 1, j]) if top + 1 < matrix.shape[0] else None
            line.append(*painter.half(float(matrix[top, j]), lower))
        lines.append(line)
    return lines


def print_small_multiples(
    data: ViewData,
    console: Console,
    painter: Painter,
    *,
    grid: bool,
    leave_out_hint: str = "",
) -> None:
    """The panels of ``data`` as small maps that fit ``console.width``.

    ``grid``: one line of maps per ``data.rows`` (layers), as many columns (heads) as fit;
    those that do not fit are left out and named. Otherwise the panels wrap onto as many
    lines as needed, each with its label above it."""
    from rich.text import Text

    n_query, n_key = data.panels[0].matrix.shape
    label_width = 4 if grid else 0
    room = console.width - label_width
    keys = min(n_key, max(1, room))
    if keys < n_key:
        console.print(
            Text(
                f"each map shows keys 0-{keys - 1} of {n_key} to fit {console.width} columns; "
                "widen the terminal, or draw it with -o map.png",
                style="yellow",
            )
        )
    width = keys + 1  # a map and a gap
    per_line = max(1, room // width) if not grid else max(1, min(data.cols, (room + 1) // width))
    if grid:
        rows = [data.panels[r * data.cols : r * data.cols + data.cols][:per_line] for r in range(data.rows)]
        labels: list[str] = [
            (data.col_labels[c] if data.col_labels else str(c)).replace("head ", "H") for c in range(per_line)
        ]
        header = Text(" " * label_width)
        for label in labels:
            header.append(f"{_fit(label, keys):<{keys}} ")
        console.print(header, no_wrap=True, overflow="crop", style="bold")
        row_names = [(name.replace("layer ", "L")) for name in (data.row_labels or [""] * data.rows)]
        for name, panels in zip(row_names, rows):
            _print_band(console, panels, painter, keys, f"{name:<{label_width}}"[:label_width])
        if per_line < data.cols:
            left = [head_name(p.head) for p in data.panels[per_line : data.cols] if p.head is not None]
            console.print(
                Text(
                    f"heads {', '.join(left)} left out to fit {console.width} columns "
                    f"(the grid needs {label_width + data.cols * width - 1}); "
                    f"{leave_out_hint or 'widen the terminal, pick heads with --head, or use -o grid.png'}",
                    style="yellow",
                ),
                overflow="fold",
            )
        return
    for start in range(0, len(data.panels), per_line):
        panels = data.panels[start : start + per_line]
        header = Text()
        for panel in panels:
            header.append(f"{_fit(_short_label(panel.label), keys):<{keys}} ")
        console.print(header, no_wrap=True, overflow="crop", style="bold")
        _print_band(console, panels, painter, keys, "")


def _short_label(label: str) -> str:
    return label.replace("layer ", "L").replace("head ", "H")


def _print_band(console: Console, panels: list[Any], painter: Painter, keys: int, label: str) -> None:
    from rich.text import Text

    maps = [_mini_lines(p.matrix, painter, keys) for p in panels]
    for line_no in range(max(len(m) for m in maps)):
        line = Text(label if line_no == 0 else " " * len(label))
        for m in maps:
            line.append_text(m[line_no] if line_no < len(m) else Text(" " * keys))
            line.append(" ")
        console.print(line, no_wrap=True, overflow="crop")


def grid_width(heads: int, keys: int) -> int:
    """Columns the terminal grid needs for ``heads`` maps of ``keys`` tokens."""
    return 4 + heads * (keys + 1) - 1


# -- what each head does ---------------------------------------------------------------------
def head_roles(result: AttentionResult, kind: str) -> list[dict[str, Any]]:
    """Per selected head: its pattern label (as ``stats`` computes it; ``None`` for cross
    attention and averaged heads) and the key it attends to most on average."""
    from attnviz.analysis.stats import head_statistics

    labels = None
    array = result.array(kind)
    if array.shape[-1] == array.shape[-2] and kind != "cross":
        labels = head_statistics([result], kind).labels()
    out = []
    for row, entry in enumerate(top_keys_per_head(result, kind, top=1)):
        li, hi = divmod(row, array.shape[1])
        out.append(
            {
                "layer": entry["layer"],
                "head": entry["head"],
                "label": None if labels is None else str(labels[li, hi]),
                "top": entry["top"][0],
            }
        )
    return out


def print_head_roles(result: AttentionResult, kind: str, console: Console) -> None:
    """One entry per head: ``L2 H5  previous  → sat .41`` in as many columns as fit."""
    from rich.text import Text

    roles = head_roles(result, kind)
    if not roles:
        return
    console.print(
        Text(
            "each head: pattern (as attnviz stats labels it) and the key it attends to most",
            style="bold",
        )
    )
    entries = []
    for role in roles:
        top = role["top"]
        name = f"L{role['layer']} H{head_name(role['head'])}"
        label = role["label"] or ""
        entries.append((f"{name:<8}", f"{label:<14}", f"→ {_fit(top['token'], 10)} {top['weight']:.2f}"))
    width = max(len(a) + len(b) + len(c) for a, b, c in entries) + 3
    columns = max(1, console.width // width)
    per_column = -(-len(entries) // columns)
    for line_no in range(per_column):
        line = Text()
        for column in range(columns):
            index = column * per_column + line_no
            if index >= len(entries):
                break
            a, b, c = entries[index]
            line.append(a, style="bold")
            line.append(b, style=_LABEL_STYLES.get(b.strip(), ""))
            line.append(f"{c:<{width - len(a) - len(b)}}")
        console.print(line, no_wrap=True, overflow="crop")


_LABEL_STYLES = {
    "vertical": "cyan",
    "diagonal": "magenta",
    "previous": "green",
    "next": "green",
    "block": "yellow",
    "broad": "blue",
}


def top_keys_per_head(result: AttentionResult, kind: str | None = None, top: int = 3) -> list[dict[str, Any]]:
    """For each selected head, the keys that receive the most attention on average over
    queries: ``[{"layer", "head", "top": [{"index", "token", "weight"}, ...]}, ...]``."""
    kind = kind or result.default_kind
    array = result.array(kind)
    _, keys = result.axes(kind)
    received = array.mean(axis=2, dtype=np.float64)  # [layers, heads, key]
    out = []
    for li, layer in enumerate(result.layer_ids[kind]):
        for hi, head in enumerate(result.head_ids[kind]):
            order = np.argsort(-received[li, hi], kind="stable")[:top]
            out.append(
                {
                    "layer": int(layer),
                    "head": int(head),
                    "top": [
                        {"index": int(j), "token": keys.display[j], "weight": round(float(received[li, hi, j]), 6)}
                        for j in order
                    ],
                }
            )
    return out


# -- a whole view ------------------------------------------------------------------------------
def terminal_view(view: str, requested: str, layers: int, heads: int, keys: int, width: int) -> tuple[str, str]:
    """The view to draw in a terminal ``width`` columns wide, and a note when ``auto`` had to
    choose something smaller than the grid: a grid whose maps do not fit becomes one map per
    layer (``mean``), and that, when even one layer's map is too wide, one labelled map."""
    if requested != "auto" or view != "grid":
        return view, ""
    needed = grid_width(heads, keys)
    if needed <= width:
        return "grid", ""
    if keys + 1 <= width:
        return "mean", (
            f"the grid of {layers} x {heads} maps of {keys} tokens needs {needed} columns; "
            "showing each layer's mean over heads (--view grid shows what fits, -o grid.png shows all)"
        )
    return "average", (
        f"maps of {keys} tokens are wider than {width} columns; showing the mean over every layer and head "
        "(--view grid or -o grid.png for the heads)"
    )


def print_view(
    result: AttentionResult, kind: str, view: str, console: Console, *, requested: str = "auto", cmap: str = "viridis"
) -> None:
    """Draw ``view`` of ``kind``: the summary, the maps with their colour bar, and what each
    head does."""
    from rich.text import Text

    from attnviz.render.views import build_view, describe_transforms, short_model_name

    array = result.array(kind)
    queries, keys = result.axes(kind)
    chosen, why = terminal_view(view, requested, array.shape[0], array.shape[1], array.shape[-1], console.width)
    print_summary(result, console)
    console.print()
    if why:
        console.print(Text(why, style="dim"), overflow="fold")
    if chosen == "average":
        matrix = array.mean(axis=(0, 1), dtype=np.float64)
        layer_ids, head_ids = result.layer_ids[kind], result.head_ids[kind]
        title = (
            f"{short_model_name(result.model)} · {kind} attention{describe_transforms(result)} · "
            f"mean over {plural(len(layer_ids), 'layer')} x {plural(len(head_ids), 'head')}"
        )
        print_heatmap(
            matrix, queries.labels(), keys.labels(), console, title=title, painter=_painter(console, matrix, cmap)
        )
    else:
        data = build_view(result, chosen, kind)
        painter = _painter(console, np.stack([p.matrix for p in data.panels]), cmap)
        if data.view in ("head", "rollout", "flow"):
            panel = data.panels[0]
            print_heatmap(
                panel.matrix,
                data.query_labels,
                data.key_labels,
                console,
                title=data.title,
                painter=painter,
                value_label=data.value_label,
            )
        else:
            console.print(Text(printable(data.title), style="bold"), overflow="fold")
            print_small_multiples(data, console, painter, grid=data.view == "grid")
            print_colorbar(console, painter, data.value_label)
            _print_token_key(console, queries.labels(), keys.labels())
    if chosen not in ("rollout", "flow") and MEAN_HEAD not in result.head_ids[kind]:
        console.print()
        print_head_roles(result, kind, console)


def _painter(console: Console, values: np.ndarray, cmap: str) -> Painter:
    return Painter(console, float(values.max()) if values.size else 1.0, cmap)


def _print_token_key(console: Console, query_labels: list[str], key_labels: list[str]) -> None:
    """Which token each row and column of the small maps is."""
    from rich.text import Text

    def listing(labels: list[str]) -> str:
        return " ".join(f"{i}:{_fit(label, 12)}" for i, label in enumerate(labels))

    same = [printable(k) for k in key_labels] == [printable(q) for q in query_labels]
    text = f"rows and columns, top to bottom and left to right: {listing(query_labels)}"
    if not same:
        text = f"rows (queries): {listing(query_labels)}\ncolumns (keys): {listing(key_labels)}"
    console.print(Text(text, style="dim"), overflow="fold")
