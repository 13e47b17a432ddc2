"""A layer x head heatmap of one number per head (a statistic, a divergence)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def head_matrix_figure(
    values: np.ndarray,
    layer_ids: list[int],
    head_ids: list[int],
    *,
    title: str,
    colorbar_label: str,
    cmap: str = "viridis",
    min_range: float = 0.0,
) -> Figure:
    """``values`` ``[layers, heads]`` drawn with each cell's value written in it."""
    from matplotlib.figure import Figure

    layers, heads = values.shape
    fig = Figure(figsize=(max(5.0, 0.7 * heads + 2.5), max(3.0, 0.5 * layers + 1.8)), layout="constrained")
    ax = fig.subplots()
    finite = values[np.isfinite(values)]
    vmax = float(finite.max()) if finite.size else 1.0
    vmin = float(min(0.0, finite.min())) if finite.size else 0.0
    vmax = max(vmax, vmin + min_range)  # identical inputs: a sane scale, not one of 1e-9
    image = ax.imshow(values, cmap=cmap, vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1e-9, aspect="auto")
    ax.set_xticks(range(heads), [str(h) for h in head_ids])
    ax.set_yticks(range(layers), [str(layer) for layer in layer_ids])
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    if layers * heads <= 400:  # each cell's value written in it, while they fit
        middle = (vmin + vmax) / 2
        for i in range(layers):
            for j in range(heads):
                value = values[i, j]
                if np.isfinite(value):
                    ax.text(
                        j,
                        i,
                        f"{value:.2f}",
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="black" if value > middle else "white",
                    )
    fig.colorbar(image, ax=ax).set_label(colorbar_label)
    ax.set_title(title, fontsize=10)
    return fig
