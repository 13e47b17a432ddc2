"""The colour maps, in one place: the Pillow images, the HTML page and the terminal all
take their colours from :func:`colormap_lut` (matplotlib's colormaps, sampled once)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

#: Colour levels of a sampled colormap (the PNG palette keeps the rest of its 256 for greys).
LEVELS = 216


@lru_cache(maxsize=8)
def colormap_lut(name: str, levels: int = LEVELS) -> np.ndarray:
    """``[levels, 3]`` uint8 colours of the matplotlib colormap ``name``, evenly sampled."""
    import matplotlib

    cmap = matplotlib.colormaps[name]
    return (cmap(np.linspace(0.0, 1.0, levels))[:, :3] * 255).round().astype(np.uint8)


def hex_colors(name: str, levels: int = LEVELS) -> list[str]:
    """The same colours as ``#rrggbb`` strings (for the page)."""
    return ["#{:02x}{:02x}{:02x}".format(*(int(c) for c in rgb)) for rgb in colormap_lut(name, levels)]


#: ``--scale`` choices: ``keys`` (the scale ignores special-token columns) or ``full``.
SCALES = ("keys", "full")


@dataclass(frozen=True)
class ColorScale:
    """Where the top colour of a view's shared scale sits, and why.

    ``vmax``: the value drawn with the top colour (cells above it are drawn saturated);
    ``peak``: the largest value of any cell; ``marked``: bool ``[keys]``, the columns left out
    of the scale whose cells go above ``vmax`` (drawn saturated, with a mark);
    ``marked_max``: their true maximum (0 when none)."""

    vmax: float
    peak: float
    marked: np.ndarray
    marked_max: float

    @property
    def saturates(self) -> bool:
        return bool(self.marked.any())


def scale_excluded_keys(special_mask: np.ndarray, *, sink: bool) -> np.ndarray:
    """The key columns a ``keys`` scale ignores: special tokens ([CLS], [SEP], <s>...) and,
    when ``sink`` (causal decoders), the first token, which collects the attention of queries
    with nowhere better to go (the attention sink, Xiao et al. 2023). bool ``[keys]``."""
    excluded = np.asarray(special_mask, dtype=bool).copy()
    if sink and excluded.size:
        excluded[0] = True
    return excluded


def color_scale(values: np.ndarray, excluded: np.ndarray | None, scale: str = "keys") -> ColorScale:
    """The shared colour scale of ``values`` (``[..., query, key]``, every map of a view).

    ``scale="keys"``: the top colour is the largest cell outside the ``excluded`` key columns
    (:func:`scale_excluded_keys`), so the word-to-word structure is not crushed by one bright
    [CLS] column; ``"full"``: the largest cell anywhere. Falls back to the full scale when no
    column is left, or the kept columns are all zero."""
    if scale not in SCALES:
        from attnviz.errors import SelectionError

        raise SelectionError(f"unknown colour scale '{scale}'", hint=f"choose one of: {', '.join(SCALES)}")
    array = np.asarray(values, dtype=np.float32)
    keys = array.shape[-1] if array.ndim else 0
    none = np.zeros(keys, dtype=bool)
    if array.size == 0:
        return ColorScale(1.0, 0.0, none, 0.0)
    peak = float(np.nanmax(array))
    mask = none if excluded is None else np.asarray(excluded, dtype=bool)
    if scale == "full" or not mask.any() or mask.all():
        return ColorScale(_positive(peak), peak, none, 0.0)
    kept = float(np.nanmax(array[..., ~mask]))
    if kept <= 0:
        return ColorScale(_positive(peak), peak, none, 0.0)
    column_max = np.nanmax(array.reshape(-1, keys), axis=0)
    marked = mask & (column_max > kept * 1.01)  # a column barely above looks the same: no mark
    return ColorScale(kept, peak, marked, float(column_max[marked].max()) if marked.any() else 0.0)


def _positive(value: float) -> float:
    return value if value > 0 else 1.0
