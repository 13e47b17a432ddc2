"""The terminal's drawing pieces: the painter (values to styled cells on one scale), one
labelled heatmap, small multiples, the colour bar and the marks over columns drawn
saturated. :mod:`attnviz.render.terminal` composes them into views."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.render.colors import ColorScale, color_scale
from attnviz.render.views import ViewData, head_name
from attnviz.safety import printable

if TYPE_CHECKING:
    from rich.console import Console

SHADES = " ░▒▓█"
ASCII_SHADES = " .:+#"
UPPER_HALF = "▀"
MARK = "▼"
#: Longest token label drawn, in characters (a 10 MB token must not cost minutes to draw).
LABEL_LIMIT = 40


def color_mode(console: Console) -> str:
    """``truecolor``, ``256`` or ``none`` (shade characters) for ``console``."""
    system = getattr(console, "color_system", None)
    if system is None or getattr(console, "no_color", False) or system in ("standard", "windows"):
        return "none"
    if not unicode_console(console):
        return "none"
    return "truecolor" if system == "truecolor" else "256"


def unicode_console(console: Console) -> bool:
    """Whether ``console``'s output encoding can draw blocks (UTF-8/16/32)."""
    return str(getattr(console, "encoding", "utf-8") or "utf-8").lower().replace("-", "").startswith("utf")


class Painter:
    """Turns attention values into styled cells on one shared scale ``[0, scale]``."""

    def __init__(self, console: Console, scale: float, cmap: str = "viridis") -> None:
        from rich.color import Color
        from rich.style import Style

        from attnviz.render.colors import colormap_lut

        self.mode = color_mode(console)
        self.shades = SHADES if unicode_console(console) else ASCII_SHADES
        self.mark = MARK if unicode_console(console) else "v"
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
        return self.shades[int(round(position * (len(self.shades) - 1)))]

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


def fit(label: str, width: int) -> str:
    """``label`` made printable and cut to ``width`` terminal cells (wide characters count
    two) with an ellipsis."""
    from rich.cells import cell_len, set_cell_size

    text = printable(str(label)[: max(width, 1) * 2 + 8].replace("\n", " "))
    if cell_len(text) <= width:
        return text
    return set_cell_size(text, max(0, width - 1)) + "…"


def pad(label: str, width: int) -> str:
    """``label`` fitted to exactly ``width`` cells (padded by display width, not ``len``)."""
    from rich.cells import set_cell_size

    return set_cell_size(fit(label, width), width)


_fit = fit


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
    scale: ColorScale | None = None,
    compact: bool = False,
    max_cell: int = 6,
    hints: dict[str, str] | None = None,
) -> None:
    """``matrix`` ``[query, key]`` as one labelled heatmap: a line per query token (index and
    label on the left), a column per key (numbered along the top, labelled when cells are
    wide enough), then the colour bar. ``compact``: two query rows per line (half blocks,
    colour terminals only). ``max_cell``: cells as wide as the width allows up to this many
    characters (a line per row up to 3, then a line per 3 characters, so cells stay square). Keys that do not fit the console width are cut, and the cut
    is stated."""
    from rich.text import Text

    n_query, n_key = matrix.shape
    if scale is None:
        scale = color_scale(matrix, None, "full")
    painter = painter or Painter(console, scale.vmax)
    compact = compact and painter.mode != "none"
    label_width = min(14, max((len(fit(s, 14)) for s in query_labels), default=1))
    if compact:
        label_width = min(14, 2 * label_width + 1)
    prefix = label_width + 5  # "NNN label "
    room = max(1, console.width - prefix)
    cell = 2 if n_key * 2 <= room else 1
    if not compact:
        cell = max(cell, min(max_cell, room // max(n_key, 1)))
    row_lines = 1 if compact else max(1, round(cell / 3))
    shown = min(n_key, room // cell)

    if title:
        console.print(Text(printable(title), style="bold"), overflow="fold")
    rulers = _ruler(shown, cell, key_labels if cell >= 5 else None)
    for ruler in rulers:
        console.print(Text(" " * prefix + ruler, style="dim"), no_wrap=True, overflow="crop")
    _print_marks(console, " " * prefix, scale.marked[:shown], cell, painter)
    if compact:
        for top in range(0, n_query, 2):
            names = " ".join(fit(q, 14) for q in query_labels[top : top + 2])
            line = Text(f"{top:>3} {pad(names, label_width)} ")
            for j in range(shown):
                lower = float(matrix[top + 1, j]) if top + 1 < n_query else None
                line.append(*painter.half(float(matrix[top, j]), lower))
            console.print(line, no_wrap=True, overflow="crop")
    else:
        for i in range(n_query):
            for part in range(row_lines):
                name = f"{i:>3} {pad(query_labels[i], label_width)} " if part == 0 else " " * prefix
                line = Text(name)
                for j in range(shown):
                    line.append(*painter.full(float(matrix[i, j]), cell - (1 if cell >= 4 else 0)))
                    if cell >= 4:
                        line.append(" ")
                console.print(line, no_wrap=True, overflow="crop")
    print_colorbar(console, painter, value_label, scale, key_labels)
    if shown < n_key:
        console.print(
            Text(
                f"keys {shown}-{n_key - 1} left out to fit {console.width} columns; "
                f"widen the terminal, or {_hint(hints, 'image', 'draw it as an image')}",
                style="yellow",
            )
        )
    if [printable(k) for k in key_labels] != [printable(q) for q in query_labels]:
        console.print(
            Text("keys: " + " ".join(f"{j}:{fit(key_labels[j], 12)}" for j in range(n_key)), style="dim"),
            overflow="fold",
        )


def _hint(hints: dict[str, str] | None, name: str, default: str) -> str:
    """How to do ``name`` in the caller's words (the CLI names its flags; the library does not)."""
    return (hints or {}).get(name, default)


def _ruler(count: int, cell: int, labels: list[str] | None = None) -> list[str]:
    """Key numbers along the top: a tens line (from 10 keys) and a units line; with cells of
    5 characters or more, the keys' labels instead."""
    if labels is not None:
        return ["".join(pad(labels[j], cell - 1) + " " for j in range(count))]
    units = "".join(f"{j % 10:<{cell}}" for j in range(count))
    if count <= 10:
        return [units]
    tens = "".join(f"{j // 10 % 10 if j % 10 == 0 and j >= 10 else ' ':<{cell}}" for j in range(count))
    return [tens, units]


def _print_marks(console: Console, prefix: str, marked: np.ndarray, cell: int, painter: Painter) -> None:
    """``▼`` over each key column drawn saturated (left out of the scale, above its top)."""
    from rich.text import Text

    if not marked.any():
        return
    line = "".join(f"{painter.mark if m else ' ':<{cell}}" for m in marked)
    console.print(Text(prefix + line, style="bold"), no_wrap=True, overflow="crop")


def print_colorbar(
    console: Console,
    painter: Painter,
    label: str,
    scale: ColorScale | None = None,
    key_labels: list[str] | None = None,
) -> None:
    """``0 ▕gradient▏ max  label`` with the numbers of the scale under it, and, when marked
    columns go above the scale, their names and true maximum."""
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
    ticks = Text(" " * (4 + width // 2 - len(middle) // 2) + middle, style="dim")
    if scale is not None and scale.saturates:
        names = [fit(key_labels[j], 12) for j in np.flatnonzero(scale.marked)] if key_labels else []
        shown = " ".join(names[:4]) + (f" +{len(names) - 4}" if len(names) > 4 else "")
        ticks.append(f"   {painter.mark} {shown} above the scale, up to {scale.marked_max:.3g}", style="bold")
    console.print(ticks, no_wrap=True, overflow="crop")


# -- small multiples -------------------------------------------------------------------------
def _mini_lines(matrix: np.ndarray, painter: Painter, keys: int, cell: int = 1) -> list[Any]:
    """One small map ``keys`` columns of ``cell`` characters: half blocks in colour with
    1-character cells (two rows per line), otherwise a line per row (two from 4 characters,
    so cells stay square)."""
    from rich.text import Text

    lines = []
    if painter.mode == "none" or cell > 1:
        for row in matrix:
            line = Text()
            for v in row[:keys]:
                line.append(*painter.full(float(v), cell))
            lines.extend([line] * (2 if cell >= 4 else 1))
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
    cell: int = 1,
    scale: ColorScale | None = None,
    row_labels: bool = False,
    hints: dict[str, str] | None = None,
) -> None:
    """The panels of ``data`` as small maps that fit ``console.width``.

    ``grid``: one line of maps per ``data.rows`` (layers), as many columns (heads) as fit;
    those that do not fit are left out and named. Otherwise the panels wrap onto as many
    lines as needed, each with its label above it. ``cell``: characters per key (2 draws
    bigger maps, a line per query row). ``row_labels``: query tokens left of each band."""
    from rich.text import Text

    n_query, n_key = data.panels[0].matrix.shape
    label_width = 4 if grid else 0
    if row_labels and not grid:
        label_width = min(12, max((len(fit(s, 12)) for s in data.query_labels), default=1)) + 1
    room = console.width - label_width
    keys = min(n_key, max(1, room // cell))
    if keys < n_key:
        console.print(
            Text(
                f"each map shows keys 0-{keys - 1} of {n_key} to fit {console.width} columns; "
                f"widen the terminal, or {_hint(hints, 'image', 'draw it as an image')}",
                style="yellow",
            )
        )
    width = keys * cell + 1  # a map and a gap
    per_line = max(1, room // width) if not grid else max(1, min(data.cols, (room + 1) // width))
    marked = scale.marked[:keys] if scale is not None else np.zeros(keys, dtype=bool)
    if grid:
        rows = [data.panels[r * data.cols : r * data.cols + data.cols][:per_line] for r in range(data.rows)]
        labels: list[str] = [
            (data.col_labels[c] if data.col_labels else str(c)).replace("head ", "H") for c in range(per_line)
        ]
        header = Text(" " * label_width)
        for label in labels:
            header.append(f"{pad(label, keys * cell)} ")
        console.print(header, no_wrap=True, overflow="crop", style="bold")
        _print_band_marks(console, marked, per_line, cell, painter, label_width)
        row_names = [(name.replace("layer ", "L")) for name in (data.row_labels or [""] * data.rows)]
        for name, panels in zip(row_names, rows):
            _print_band(console, panels, painter, keys, [f"{name:<{label_width}}"[:label_width]], cell)
        if per_line < data.cols:
            left = [head_name(p.head) for p in data.panels[per_line : data.cols] if p.head is not None]
            default = f"widen the terminal, pick fewer heads, or {_hint(hints, 'image', 'draw it as an image')}"
            console.print(
                Text(
                    f"heads {', '.join(left)} left out to fit {console.width} columns "
                    f"(the grid needs {label_width + data.cols * width - 1}); "
                    f"{leave_out_hint or _hint(hints, 'grid', default)}",
                    style="yellow",
                ),
                overflow="fold",
            )
        return
    names = [pad(q, label_width - 1) + " " for q in data.query_labels] if row_labels else [""]
    if row_labels and cell >= 4:  # two lines per row: the label on the first
        names = [line for name in names for line in (name, " " * label_width)]
    for start in range(0, len(data.panels), per_line):
        panels = data.panels[start : start + per_line]
        header = Text(" " * label_width)
        for panel in panels:
            header.append(f"{pad(_short_label(panel.label), keys * cell)} ")
        console.print(header, no_wrap=True, overflow="crop", style="bold")
        _print_band_marks(console, marked, len(panels), cell, painter, label_width)
        _print_band(console, panels, painter, keys, names, cell)


def _print_band_marks(
    console: Console, marked: np.ndarray, maps: int, cell: int, painter: Painter, indent: int
) -> None:
    from rich.text import Text

    if not marked.any():
        return
    one = "".join(f"{painter.mark if m else ' ':<{cell}}" for m in marked) + " "
    console.print(Text(" " * indent + one * maps, style="bold"), no_wrap=True, overflow="crop")


def _short_label(label: str) -> str:
    return label.replace("layer ", "L").replace("head ", "H")


def _print_band(
    console: Console, panels: list[Any], painter: Painter, keys: int, labels: list[str], cell: int = 1
) -> None:
    """One line of maps; ``labels[i]`` goes left of line ``i`` (blank past the list)."""
    from rich.text import Text

    maps = [_mini_lines(p.matrix, painter, keys, cell) for p in panels]
    indent = len(labels[0]) if labels else 0
    for line_no in range(max(len(m) for m in maps)):
        line = Text(labels[line_no] if line_no < len(labels) else " " * indent)
        for m in maps:
            line.append_text(m[line_no] if line_no < len(m) else Text(" " * keys * cell))
            line.append(" ")
        console.print(line, no_wrap=True, overflow="crop")


def grid_width(heads: int, keys: int, cell: int = 1) -> int:
    """Columns the terminal grid needs for ``heads`` maps of ``keys`` tokens."""
    return 4 + heads * (keys * cell + 1) - 1
