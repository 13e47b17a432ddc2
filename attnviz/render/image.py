"""Heatmap images with matplotlib: ``Figure()`` objects, never global pyplot state."""

from __future__ import annotations

import contextlib
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.errors import OutputFormatError
from attnviz.render import IMAGE_SUFFIXES
from attnviz.render.views import ViewData, build_view, label_points, shorten, wrap_words
from attnviz.result import AttentionResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DEFAULT_CMAP = "viridis"


@contextlib.contextmanager
def _glyphs(texts: list[str]) -> Iterator[None]:
    """Draw ``texts`` with installed fonts that have the glyphs DejaVu Sans lacks, after it
    (:mod:`attnviz.render.fonts`); matplotlib's per-glyph warnings (one per character, raw
    control bytes included) are silenced, and a glyph no font has is said once per process."""
    import matplotlib

    from attnviz.render import fonts

    missing = fonts.missing_glyphs(texts)
    families = fonts.matplotlib_families(missing) if missing else []
    settings: Any = {"font.family": ["DejaVu Sans", *families]} if families else {}
    fonts.tell_undrawable(missing)
    with matplotlib.rc_context(settings), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"(?s).*Glyph .* missing from")
        yield


def _tick_step(count: int, room: int) -> int:
    return max(1, -(-count // room))


def _label_axis(ax: Any, labels: list[str], axis: str, fontsize: float, room: int = 60) -> None:
    step = _tick_step(len(labels), room)
    positions = np.arange(0, len(labels), step)
    shown = [labels[i] for i in positions]
    if axis == "x":
        ax.set_xticks(positions)
        ax.set_xticklabels(shown, rotation=90, fontsize=fontsize)
    else:
        ax.set_yticks(positions)
        ax.set_yticklabels(shown, fontsize=fontsize)


def _label_points(figsize: tuple[float, float], data: ViewData) -> float:
    """Token label size: a line fits one cell, the rule the export's PNGs use
    (:func:`~attnviz.render.views.label_points`); cells estimated from the figure size."""
    n = max(len(data.query_labels), len(data.key_labels), 1)
    panel_inches = (figsize[1] - 1.8) / data.rows if len(data.panels) == 1 else (figsize[1] - 1.2) / data.rows * 0.75
    largest = 11.0 if len(data.panels) == 1 else 9.0
    return label_points(max(panel_inches, 0.5) * 72 / n, largest=largest)


def figure_for_view(data: ViewData, *, cmap: str = DEFAULT_CMAP, dpi: int = 100) -> Figure:
    """Draw ``data`` (see :func:`~attnviz.render.views.build_view`) into a new Figure."""
    texts = [*data.query_labels, *data.key_labels, data.title, data.text]
    with _glyphs(texts):
        figure = _figure_for_view(data, cmap=cmap, dpi=dpi)
    figure._attnviz_texts = texts  # type: ignore[attr-defined]  # save_figure draws them again
    return figure


def _figure_for_view(data: ViewData, *, cmap: str, dpi: int) -> Figure:
    from matplotlib.figure import Figure

    n_query, n_key = len(data.query_labels), len(data.key_labels)
    colors = data.color_scale()
    vmax = max(colors.vmax, 1e-6)
    query_labels = [shorten(label, 18) for label in data.query_labels]
    key_labels = [shorten(label, 18) for label in data.key_labels]
    single = len(data.panels) == 1
    grid = data.view == "grid"
    if single:
        side = float(np.clip(0.28 * max(n_query, n_key) + 2.5, 5, 22))
        figsize = (side * max(n_key, 1) / max(n_query, n_key, 1) + 1.8, side)
        figsize = (max(figsize[0], 5.5), figsize[1])
    elif grid:
        cell = 1.25 if max(n_query, n_key) <= 40 else 1.6
        figsize = (data.cols * cell + 2.2, data.rows * cell + 1.4)
    else:
        cell = float(np.clip(0.12 * max(n_query, n_key) + 1.6, 2.4, 6))
        figsize = (data.cols * cell + 1.8, data.rows * cell + 1.2)
    fig = Figure(figsize=figsize, dpi=dpi, layout="constrained")
    axes = fig.subplots(data.rows, data.cols, squeeze=False)
    image = None
    font = _label_points(figsize, data)
    for index, ax in enumerate(axes.flat):
        if index >= len(data.panels):
            ax.set_axis_off()
            continue
        panel = data.panels[index]
        image = ax.imshow(panel.matrix, cmap=cmap, vmin=0.0, vmax=vmax, aspect="auto", interpolation="nearest")
        row, col = divmod(index, data.cols)
        if single:
            _label_axis(ax, key_labels, "x", font, room=80)
            _label_axis(ax, query_labels, "y", font, room=80)
            ax.set_xlabel("key (attended to)")
            ax.set_ylabel("query (attending)")
        elif grid:
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0 and data.row_labels:
                ax.set_ylabel(data.row_labels[row], fontsize=9)
            if row == 0 and data.col_labels:
                ax.set_title(data.col_labels[col], fontsize=9)
        else:
            small = font
            if row == data.rows - 1 or index + data.cols >= len(data.panels):
                _label_axis(ax, key_labels, "x", small, room=40)
            else:
                ax.set_xticks([])
            if col == 0:
                _label_axis(ax, query_labels, "y", small, room=40)
            else:
                ax.set_yticks([])
            ax.set_title(panel.label, fontsize=9)
        if colors.saturates and (row == 0 or single):
            marked = np.flatnonzero(colors.marked)
            ax.plot(marked, np.full(len(marked), -0.5), "v", color="black", markersize=4, clip_on=False)
    if image is not None:
        extend = "max" if colors.saturates else "neither"
        colorbar = fig.colorbar(image, ax=axes.ravel().tolist(), shrink=0.8 if single else 0.6, extend=extend)
        label = data.value_label
        if colors.saturates:
            names = ", ".join(key_labels[j] for j in np.flatnonzero(colors.marked)[:4])
            label += f"\n▼ {names}: up to {colors.marked_max:.3g}"
        colorbar.set_label(label)
    size = 11 if single else 12
    chars = int(figsize[0] * 72 / (size * 0.6))  # characters of a title line across the figure
    title = wrap_words(data.title, chars)
    if data.text:
        title += "\n" + wrap_words(data.text, chars, lines=1)
    fig.suptitle(title, fontsize=size)
    return fig


def render_figure(
    result: AttentionResult,
    view: str = "auto",
    kind: str | None = None,
    *,
    cmap: str = DEFAULT_CMAP,
    dpi: int = 100,
) -> Any:
    """A matplotlib ``Figure`` of ``view`` (head, layer, grid, mean, rollout, flow)."""
    return figure_for_view(build_view(result, view, kind), cmap=cmap, dpi=dpi)


def save_figure(fig: Figure, path: str | os.PathLike[str], *, dpi: int | None = None, tight: bool = False) -> Path:
    """Write ``fig`` as PNG, SVG or PDF (by extension), atomically."""
    from attnviz.io import atomic_write

    suffix = Path(path).suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise OutputFormatError(f"cannot draw an image as '{suffix}'", hint="use .png, .svg or .pdf")
    fmt = suffix[1:]
    bbox = "tight" if tight else None
    with _glyphs(getattr(fig, "_attnviz_texts", [])):
        return atomic_write(
            path, lambda handle: fig.savefig(handle, format=fmt, dpi=dpi or fig.dpi, bbox_inches=bbox), binary=True
        )
