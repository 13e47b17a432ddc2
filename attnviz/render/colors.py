"""The colour maps, in one place: the Pillow images, the HTML page and the terminal all
take their colours from :func:`colormap_lut` (matplotlib's colormaps, sampled once)."""

from __future__ import annotations

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
