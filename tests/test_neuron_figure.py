"""The neuron image (neuron.png): nothing drawn over the score and weight bars."""

from __future__ import annotations

import numpy as np

from attnviz.extraction import extract
from attnviz.render.neuron import neuron_data, neuron_figure


def test_the_legend_covers_no_bar(loaded_models):
    # a reviewer saw the legend (then in the bar axes' lower right) hide the [SEP] score bar
    result = extract("the cat sat on the mat", model=loaded_models["bert"], layers="1", heads="1", vectors=True)
    data = neuron_data(result, "encoder", 1)
    figure = neuron_figure(data)
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    legends = [legend for ax in figure.axes if (legend := ax.get_legend()) is not None]
    assert len(legends) == 1
    texts = [t.get_text() for t in legends[0].get_texts()]
    assert texts[1] == "weight (softmax)" and texts[0].startswith("score")
    box = legends[0].get_window_extent(renderer)
    bars = [patch for ax in figure.axes for patch in ax.patches]
    assert len(bars) == 2 * len(data.key_labels)  # a score and a weight bar per key
    for bar in bars:
        extent = bar.get_window_extent(renderer)
        if extent.width > 0:
            assert not box.overlaps(extent), (bar, extent, box)
    assert np.isfinite([b.get_width() for b in bars]).all()  # an encoder masks nothing: every bar is drawn
