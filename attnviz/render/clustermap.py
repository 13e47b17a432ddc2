"""The clustermap of heads (seaborn): which heads behave alike, with their pattern labels."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.analysis.stats import LABELS

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: Colours of the pattern labels in the strip beside the clustermap.
PATTERN_COLORS = {
    "vertical": "#4c72b0",
    "diagonal": "#dd8452",
    "previous": "#55a868",
    "next": "#8fd175",
    "block": "#c44e52",
    "broad": "#8172b3",
    "heterogeneous": "#cccccc",
}


def clustermap_figure(distances: Any, labels: np.ndarray, *, title: str, clusters: np.ndarray | None = None) -> Figure:
    """A seaborn clustermap of ``distances`` (a :class:`~attnviz.analysis.clusters.HeadDistances`)
    with the heads' pattern labels (``[layers, heads]`` of str) and clusters as colour
    strips; returns the matplotlib Figure (close it with ``matplotlib.pyplot.close``)."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns
    from matplotlib.patches import Patch

    names = distances.head_names
    frame = pd.DataFrame(distances.matrix, index=names, columns=names)
    tree = distances.linkage()
    clusters = distances.clusters() if clusters is None else clusters
    palette = sns.color_palette("tab10", max(10, int(clusters.max())))
    flat_labels = [str(label) for label in np.asarray(labels).ravel()]
    strips = pd.DataFrame(
        {
            "pattern": [PATTERN_COLORS.get(label, "#999999") for label in flat_labels],
            "cluster": [palette[(c - 1) % len(palette)] for c in clusters],
        },
        index=names,
    )
    side = float(np.clip(0.16 * len(names) + 4, 7, 30))
    grid = sns.clustermap(
        frame,
        row_linkage=tree,
        col_linkage=tree,
        row_colors=strips,
        cmap="magma_r",
        vmin=0,
        figsize=(side, side),
        xticklabels=True,
        yticklabels=True,
        dendrogram_ratio=0.12,
        colors_ratio=0.02,
        cbar_kws={"label": "Jensen-Shannon divergence (bits)"},
    )
    size = float(np.clip(9 - len(names) / 30, 4, 9))
    grid.ax_heatmap.tick_params(labelsize=size)
    present = [label for label in LABELS if label in flat_labels]
    grid.ax_heatmap.legend(
        handles=[Patch(color=PATTERN_COLORS[label], label=label) for label in present],
        title="pattern",
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        fontsize=8,
        title_fontsize=8,
        frameon=False,
    )
    grid.figure.suptitle(title, fontsize=11, y=1.01)
    figure = grid.figure
    plt.close(figure)  # seaborn draws through pyplot; keep no global figure around
    return figure
