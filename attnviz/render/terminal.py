"""Terminal output with rich: a summary, a heatmap that fits the width, top tokens per head.

Every function takes a ``Console`` so tests render into a ``StringIO`` and the CLI decides
colour (``NO_COLOR``, non-tty) in one place.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from attnviz.render.views import head_name
from attnviz.result import AttentionResult
from attnviz.safety import printable

SHADES = " ░▒▓█"
# viridis at 9 stops: readable on dark and light terminals
_RAMP = [
    (68, 1, 84),
    (72, 40, 120),
    (62, 74, 137),
    (49, 104, 142),
    (38, 130, 142),
    (31, 158, 137),
    (53, 183, 121),
    (109, 205, 89),
    (180, 222, 44),
    (253, 231, 37),
]


def _color(value: float) -> str:
    position = float(np.clip(value, 0.0, 1.0)) * (len(_RAMP) - 1)
    low = int(np.floor(position))
    high = min(low + 1, len(_RAMP) - 1)
    t = position - low
    r, g, b = (int(round(_RAMP[low][i] + (_RAMP[high][i] - _RAMP[low][i]) * t)) for i in range(3))
    return f"#{r:02x}{g:02x}{b:02x}"


def _fit(label: str, width: int) -> str:
    label = label.replace("\n", " ")
    return label if len(label) <= width else label[: max(1, width - 1)] + "…"


def print_summary(result: AttentionResult, console: Any) -> None:
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
        table.add_row(kind, f"{layers} layers x {heads} heads x {q} queries x {k} keys")
    if result.transforms:
        table.add_row("transforms", ", ".join(result.transforms))
    console.print(table)


def print_heatmap(
    matrix: np.ndarray,
    query_labels: list[str],
    key_labels: list[str],
    console: Any,
    *,
    title: str = "",
) -> None:
    """Draw ``matrix`` ``[query, key]`` as coloured blocks (shaded blocks without colour),
    keys numbered along the top, scaled to the matrix maximum. Keys that do not fit the
    console width are cut, and the cut is stated."""
    from rich.text import Text

    n_query, n_key = matrix.shape
    query_labels = [printable(label) for label in query_labels]
    key_labels = [printable(label) for label in key_labels]
    title = printable(title)
    label_width = min(14, max((len(s) for s in query_labels), default=1))
    prefix = label_width + 5  # "NNN label "
    room = max(1, console.width - prefix)
    cell = 3 if n_key * 3 <= room else 2 if n_key * 2 <= room else 1
    shown = min(n_key, room // cell)
    scale = float(matrix.max()) or 1.0
    colour = console.color_system is not None and not console.no_color

    if title:
        console.print(Text(title, style="bold"))
    header = Text(" " * prefix)
    if cell >= 2:
        for j in range(shown):
            header.append(f"{j:>{cell}}"[-cell:] if cell == 3 else f"{j % 100:>2}")
    else:
        header.append("keys 0-" + str(shown - 1))
    console.print(header, no_wrap=True, overflow="crop")
    for i in range(n_query):
        line = Text(f"{i:>3} {_fit(query_labels[i], label_width):<{label_width}} ")
        for j in range(shown):
            level = float(np.clip(matrix[i, j] / scale, 0.0, 1.0))
            glyph = "█" if colour else SHADES[int(round(level * (len(SHADES) - 1)))]
            # 3-wide cells keep a space so the numbered columns stay readable
            text = " " * (cell - 1) + glyph if cell == 3 else glyph * cell
            line.append(text, style=_color(level) if colour else None)
        console.print(line, no_wrap=True, overflow="crop")
    legend = f"rows: queries, columns: keys (0-{n_key - 1}); darkest = 0, brightest = {scale:.3f}"
    if not colour:
        legend = f"rows: queries, columns: keys (0-{n_key - 1}); '{SHADES[1]}' low … '{SHADES[-1]}' = {scale:.3f}"
    console.print(Text(legend, style="dim"))
    if shown < n_key:
        console.print(
            Text(
                f"keys {shown}-{n_key - 1} cut to fit {console.width} columns; widen the terminal or use -o",
                style="yellow",
            )
        )
    keys_line = " ".join(f"{j}:{_fit(key_labels[j], 12)}" for j in range(n_key))
    if key_labels != query_labels:
        console.print(Text("keys: " + keys_line, style="dim"))


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


def print_top_keys(result: AttentionResult, console: Any, kind: str | None = None, *, limit: int = 24) -> None:
    """A table of the most-attended keys per head (at most ``limit`` rows, the cut stated)."""
    from rich.table import Table
    from rich.text import Text

    rows = top_keys_per_head(result, kind)
    table = Table(title="most-attended tokens per head (mean weight over queries)", title_justify="left")
    table.add_column("layer", justify="right")
    table.add_column("head", justify="right")
    table.add_column("top keys")
    for row in rows[:limit]:
        table.add_row(
            str(row["layer"]),
            head_name(row["head"]),
            Text("   ".join(f"{printable(t['token'])} {t['weight']:.2f}" for t in row["top"])),
        )
    console.print(table)
    if len(rows) > limit:
        console.print(f"[dim]… {len(rows) - limit} more heads; choose with --layer/--head, or use --json[/dim]")
