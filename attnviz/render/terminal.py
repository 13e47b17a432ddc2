"""Terminal output with rich: a summary, each view drawn as itself, a colour bar, and what
the heads do.

* ``head``, ``rollout``, ``flow``: one labelled heatmap, one line per query token (two
  query rows per line when that is what fits the screen).
* ``layer``: that layer's heads as small multiples; ``mean``: one map per layer;
  ``grid``: every layer x head as mini heatmaps (the terminal form of bertviz's model
  view). Small maps use half blocks: ``▀`` with the upper row as foreground and the lower
  row as background colour, so one character line holds two query rows; where the width
  allows, cells are two characters wide and one line tall (bigger, still square).
* Colour: truecolor where the terminal has it, 256 colours otherwise (rich converts), and
  shade characters (`` ░▒▓█``) under ``NO_COLOR``, on a 16-colour terminal, or when stdout
  is not a terminal; ASCII shades (`` .:+#``) when the output encoding cannot draw blocks.
  Every map of a view shares one scale (:func:`~attnviz.render.colors.color_scale`: by
  default from the non-special key columns, which are drawn saturated and marked ``▼``),
  shown by a colour bar with its numbers.
* Everything fits ``console.width``; with ``lines`` (the CLI's default view) the whole
  output fits that many lines too: bigger cells when they fit, smaller views when not.

Every function takes a ``Console`` so tests render into a ``StringIO`` and the CLI decides
colour (``NO_COLOR``, non-tty) in one place.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.render.colors import color_scale, scale_excluded_keys
from attnviz.render.roles import head_roles, print_head_roles, top_keys_per_head
from attnviz.render.terminal_maps import (
    LABEL_LIMIT,
    Painter,
    color_mode,
    fit,
    grid_width,
    print_colorbar,
    print_heatmap,
    print_small_multiples,
)
from attnviz.result import MEAN_HEAD, AttentionResult
from attnviz.safety import printable

if TYPE_CHECKING:
    from rich.console import Console

__all__ = [
    "Painter",
    "grid_width",
    "head_roles",
    "print_colorbar",
    "print_heatmap",
    "print_small_multiples",
    "print_view",
    "top_keys_per_head",
]

#: The screen the default view fits: 60 lines (and the console's width).
SCREEN_LINES = 60


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
    table.add_row("text", Text(_cut_text(result.text)))
    if result.pair is not None:
        table.add_row("pair", Text(f"{_cut_text(result.pair)}  (segment B starts at token {result.tokens.pair_start})"))
    table.add_row("tokens", Text(" ".join(f"{i}:{fit(t, LABEL_LIMIT)}" for i, t in enumerate(result.tokens.display))))
    if result.target_tokens is not None:
        table.add_row(
            "target", Text(" ".join(f"{i}:{fit(t, LABEL_LIMIT)}" for i, t in enumerate(result.target_tokens.display)))
        )
    for kind in result.kinds:
        layers, heads, q, k = result.shape[kind]
        table.add_row(kind, Text(f"{plural(layers, 'layer')} x {plural(heads, 'head')} x {q} queries x {k} keys"))
    if result.transforms:
        table.add_row("transforms", Text(", ".join(result.transforms)))
    console.print(table)


def _cut_text(text: str, limit: int = 400) -> str:
    return printable(text if len(text) <= limit else text[: limit - 1] + "…")


def plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


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
        return "mean", f"the grid of {layers} x {heads} maps of {keys} tokens needs {needed} columns; {_MEAN_NOTE}"
    return "average", f"maps of {keys} tokens are wider than {width} columns; {_AVERAGE_NOTE}"


_HEATMAPS = ("head", "rollout", "flow", "average")
_MEAN_NOTE = "showing each layer's mean over heads"
_AVERAGE_NOTE = "showing the mean over every layer and head"


@dataclass(frozen=True)
class _Plan:
    """How to draw a view: which view, cell size, compact rows, and why (a note)."""

    view: str
    cell: int = 1
    compact: bool = False
    note: str = ""


def _plans(view: str, requested: str, array: np.ndarray, width: int, mode: str) -> list[_Plan]:
    """Ways to draw ``view``, biggest first; the caller takes the first that fits."""
    layers, heads, _, keys = array.shape
    colour = mode != "none"
    if view in ("head", "rollout", "flow"):
        return [_Plan(view, cell) for cell in (12, 6, 2)] + ([_Plan(view, compact=True)] if colour else [])
    plans = []
    if view == "grid":
        plans += [_Plan("grid", cell) for cell in (2, 1) if grid_width(heads, keys, cell) <= width or cell == 1]
        if requested == "auto" and grid_width(heads, keys) > width:
            plans = []
    elif view in ("layer", "mean"):
        room = width - 13  # the row labels
        plans += [
            _Plan(view, cell)
            for cell in (4, 2, 1)
            if min(heads if view == "layer" else layers, 3) * (keys * cell + 1) <= room or cell == 1
        ]
    if requested != "auto":
        return plans
    if view == "grid" and layers > 1:
        why = f"the grid of {layers} x {heads} maps of {keys} tokens does not fit {width} x {SCREEN_LINES}"
        plans += [_Plan("mean", cell, note=f"{why}; {_MEAN_NOTE}") for cell in (2, 1) if keys * cell + 1 <= width]
    if view in ("grid", "layer", "mean") and layers * heads > 1:
        why = f"{layers * heads} maps of {keys} tokens do not fit {width} x {SCREEN_LINES}"
        plans += [_Plan("average", cell, note=f"{why}; {_AVERAGE_NOTE}") for cell in (6, 2)]
        if colour:
            plans += [_Plan("average", compact=True, note=f"{why}; {_AVERAGE_NOTE}")]
    return plans or [_Plan(view)]


def print_view(
    result: AttentionResult,
    kind: str,
    view: str,
    console: Console,
    *,
    requested: str = "auto",
    cmap: str = "viridis",
    scale: str = "keys",
    lines: int | None = None,
    hints: dict[str, str] | None = None,
) -> None:
    """Draw ``view`` of ``kind``: the summary, the maps with their colour bar, and what the
    heads do. ``scale``: ``keys`` (the colour scale ignores special-token columns) or
    ``full``. ``lines``: fit the whole output in that many lines (bigger cells when they
    fit, a smaller view or two rows per line when not); ``None`` draws the view as asked.
    ``hints``: the caller's words for ``image`` (drawing to a file) and ``grid``."""
    from rich.text import Text

    array = result.array(kind)

    def summary_part(c: Console) -> None:
        print_summary(result, c)
        c.print()

    def roles_part(c: Console) -> None:
        c.print()
        print_head_roles(result, kind, c, fit)

    summary = _capture(console, summary_part)
    roles = ""
    if MEAN_HEAD not in result.head_ids[kind] and view not in ("rollout", "flow"):
        roles = _capture(console, roles_part)
    mode = color_mode(console)
    plans = _plans(view, requested, array, console.width, mode)
    if lines is None:
        # as asked, at the sizes of a screen of any height: small maps, heatmap cells up to 6
        plans = [p for p in plans if p.cell == (6 if p.view in _HEATMAPS else 1) and not p.compact][:1] or plans[:1]
        layers, heads = array.shape[:2]
        fallback, why = terminal_view(view, requested, layers, heads, array.shape[-1], console.width)
        if fallback != plans[0].view:
            plans = [_Plan(fallback, 6 if fallback in _HEATMAPS else 1, note=why)]
    chosen = plans[-1]
    body = ""
    for plan in plans:

        def body_part(c: Console, p: _Plan = plan) -> None:
            _draw(result, kind, p, c, cmap, scale, hints)

        body = _capture(console, body_part)
        used = summary.count("\n") + body.count("\n") + (roles.count("\n") if plan.view != "average" else 0)
        if lines is None or used <= lines:
            chosen = plan
            break
    del body
    print_summary(result, console)
    console.print()
    if chosen.note:
        console.print(Text(chosen.note, style="dim"), overflow="fold")
    _draw(result, kind, chosen, console, cmap, scale, hints)
    if roles and chosen.view not in ("rollout", "flow"):
        console.print()
        print_head_roles(result, kind, console, fit)


def _capture(console: Console, draw: Callable[[Console], Any]) -> str:
    """What ``draw`` prints on a console like ``console`` (to count its lines)."""
    from rich.console import Console as RichConsole

    probe = RichConsole(
        file=io.StringIO(),
        width=console.width,
        color_system=console.color_system,  # type: ignore[arg-type]
        force_terminal=console.is_terminal,
        no_color=console.no_color,
        highlight=False,
        legacy_windows=False,
    )
    draw(probe)
    return str(probe.file.getvalue())  # type: ignore[attr-defined]


def _draw(
    result: AttentionResult,
    kind: str,
    plan: _Plan,
    console: Console,
    cmap: str,
    scale: str,
    hints: dict[str, str] | None,
) -> None:
    from rich.text import Text

    from attnviz.render.views import build_view, describe_transforms, short_model_name

    array = result.array(kind)
    queries, keys = result.axes(kind)
    if plan.view == "average":
        matrix = array.mean(axis=(0, 1), dtype=np.float64)
        layer_ids, head_ids = result.layer_ids[kind], result.head_ids[kind]
        title = (
            f"{short_model_name(result.model)} · {kind} attention{describe_transforms(result)} · "
            f"mean over {plural(len(layer_ids), 'layer')} x {plural(len(head_ids), 'head')}"
        )
        colors = color_scale(matrix, scale_excluded_keys(keys.special_mask, sink=kind == "decoder"), scale)
        print_heatmap(
            matrix,
            queries.labels(),
            keys.labels(),
            console,
            title=title,
            painter=Painter(console, colors.vmax, cmap),
            scale=colors,
            compact=plan.compact,
            max_cell=plan.cell,
            hints=hints,
        )
        return
    data = build_view(result, plan.view, kind)
    colors = data.color_scale(scale)
    painter = Painter(console, colors.vmax, cmap)
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
            scale=colors,
            compact=plan.compact,
            max_cell=plan.cell,
            hints=hints,
        )
        return
    console.print(Text(printable(data.title), style="bold"), overflow="fold")
    labelled = plan.cell > 1 and data.view != "grid"
    print_small_multiples(
        data, console, painter, grid=data.view == "grid", cell=plan.cell, scale=colors, row_labels=labelled, hints=hints
    )
    print_colorbar(console, painter, data.value_label, colors, data.key_labels)
    if not labelled:
        _print_token_key(console, data.query_labels, data.key_labels)


def _print_token_key(console: Console, query_labels: list[str], key_labels: list[str]) -> None:
    """Which token each row and column of the small maps is."""
    from rich.text import Text

    def listing(labels: list[str]) -> str:
        return " ".join(f"{i}:{fit(label, 12)}" for i, label in enumerate(labels))

    same = [printable(k) for k in key_labels] == [printable(q) for q in query_labels]
    text = f"rows and columns, top to bottom and left to right: {listing(query_labels)}"
    if not same:
        text = f"rows (queries): {listing(query_labels)}\ncolumns (keys): {listing(key_labels)}"
    console.print(Text(text, style="dim"), overflow="fold")
