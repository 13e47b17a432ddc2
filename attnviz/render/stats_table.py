"""The per-head statistics table for the terminal (``attnviz stats``), fitted to the width.

A number is never cut: the table shows as many statistics as fit beside the layer, head
and pattern columns (all nine from about 100 columns, six at 80), in the order of
:data:`PRIORITY`, unless ``columns`` chooses them; headers are abbreviated and a legend
under the table spells out the ones shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from attnviz.analysis.stats import STATISTICS
from attnviz.errors import SelectionError

#: Short header of each statistic, and what it means (the legend).
ABBREVIATIONS: dict[str, tuple[str, str]] = {
    "entropy": ("ent", "entropy (nats)"),
    "distance": ("dist", "mean distance to the attended tokens"),
    "first": ("1st", "mass on the first token"),
    "separator": ("sep", "mass on separators"),
    "punctuation": ("punc", "mass on punctuation"),
    "self": ("self", "mass on itself"),
    "previous": ("prev", "mass on the previous token"),
    "next": ("next", "mass on the next token"),
    "local": ("loc", "mass within 2 tokens"),
}
#: The order in which statistics give way when the width is short: the first ones stay.
PRIORITY = ("entropy", "distance", "first", "separator", "self", "previous", "next", "local", "punctuation")
_GAP = 3  # between two columns: a space of padding each side and the box's divider


def parse_columns(spec: str | None) -> tuple[str, ...] | None:
    """``"entropy,dist,self"`` (names or abbreviations, comma-separated) or ``all`` -> the
    statistics in table order; None (or empty) for "as many as fit"."""
    if spec is None or not spec.strip():
        return None
    if spec.strip().lower() == "all":
        return STATISTICS
    by_name = {name: name for name in STATISTICS} | {short: name for name, (short, _) in ABBREVIATIONS.items()}
    chosen = []
    for part in spec.split(","):
        key = part.strip().lower()
        if not key:
            continue
        if key not in by_name:
            shown = part.strip()[:30].replace("{", "{{").replace("}", "}}")
            raise SelectionError(
                "{columns} '" + shown + "' is not a statistic",
                hint="choose from " + ", ".join(STATISTICS) + " (or their short names), or all",
                option="columns",
            )
        chosen.append(by_name[key])
    return tuple(name for name in STATISTICS if name in chosen)


def _cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def fit_columns(rows: Sequence[dict[str, Any]], width: int, fixed: int) -> tuple[str, ...]:
    """The statistics (in table order) that fit in ``width`` characters beside ``fixed``
    characters of other columns, taken in :data:`PRIORITY` order; at least one."""
    kept: list[str] = []
    used = fixed
    for name in PRIORITY:
        need = max(len(ABBREVIATIONS[name][0]), *(len(_cell(row[name])) for row in rows)) + _GAP
        if kept and used + need > width:
            break
        kept.append(name)
        used += need
    return tuple(name for name in STATISTICS if name in kept)


def stats_table(
    stats: Any,
    *,
    width: int,
    columns: Sequence[str] | None = None,
    clusters: Any = None,
    hidden_note: str = "",
) -> Any:
    """A rich renderable: the title, the table of ``stats`` (a
    :class:`~attnviz.analysis.stats.HeadStatistics`) and the legend of the abbreviations.
    ``columns``: the statistics to show (default: as many as fit ``width``); ``clusters``:
    each head's cluster number, in the order of ``stats.rows()``; ``hidden_note``
    says in the legend how to see the statistics left out."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from attnviz.safety import printable

    rows = stats.rows()
    layer_width = max(1, *(len(str(row["layer"])) for row in rows))
    head_width = max(1, *(len(str(row["head"])) for row in rows))
    label_width = max(len("pattern"), *(len(row["label"]) for row in rows))
    fixed = layer_width + head_width + label_width + 2 * _GAP + (len("cluster") + _GAP if clusters is not None else 0)
    shown = tuple(columns) if columns else fit_columns(rows, width, fixed)
    texts = f"{stats.texts} text{'s' if stats.texts != 1 else ''}"
    title = Text(printable(f"{stats.model} · {stats.kind} attention · {texts} · means over query positions"))
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False)
    table.add_column("L", justify="right", no_wrap=True, min_width=layer_width)
    table.add_column("H", justify="right", no_wrap=True, min_width=head_width)
    for name in shown:
        table.add_column(ABBREVIATIONS[name][0], justify="right", no_wrap=True)
    table.add_column("pattern", no_wrap=True, min_width=label_width)
    if clusters is not None:
        table.add_column("cluster", justify="right", no_wrap=True)
    for index, row in enumerate(rows):
        table.add_row(
            str(row["layer"]),
            str(row["head"]),
            *(_cell(row[name]) for name in shown),
            row["label"],
            *([str(int(clusters[index]))] if clusters is not None else []),
        )
    legend = "L layer, H head (0-based); " + "; ".join(
        f"{ABBREVIATIONS[name][0]} {ABBREVIATIONS[name][1]}" for name in shown
    )
    hidden = [ABBREVIATIONS[name][0] for name in STATISTICS if name not in shown]
    if hidden:
        legend += f". Left out: {', '.join(hidden)}" + (f" ({hidden_note})" if hidden_note else "")
    return Group(title, table, Text(legend + ".", style="dim"))


def print_stats_table(
    console: Any,
    stats: Any,
    *,
    columns: Sequence[str] | None = None,
    clusters: Any = None,
    hidden_note: str = "",
) -> None:
    """Print :func:`stats_table` on ``console``, fitted to its width. Chosen ``columns``
    wider than the console widen it, so that no number is cut (the terminal wraps)."""
    renderable = stats_table(stats, width=console.width, columns=columns, clusters=clusters, hidden_note=hidden_note)
    if columns:
        from rich.measure import Measurement

        needed = Measurement.get(console, console.options, renderable.renderables[1]).minimum
        if needed > console.width:
            console.width = needed
    console.print(renderable)
