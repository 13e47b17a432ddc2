"""Images and terminal output: assert what was drawn, not pixels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from rich.console import Console

from attnviz.extract import extract
from attnviz.render.image import render_figure
from attnviz.render.terminal import print_heatmap, top_keys_per_head
from attnviz.transforms import select


@pytest.fixture(scope="module")
def bert_result(loaded_models):
    return extract("the cats sat on the mat", model=loaded_models["bert"])


def test_head_view_draws_the_head_with_token_labels(bert_result):
    chosen = select(bert_result, layers="1", heads="2")
    fig = render_figure(chosen, "auto")
    heat = fig.axes[0]
    np.testing.assert_array_equal(heat.images[0].get_array(), bert_result.attentions["encoder"][1, 2])
    assert [t.get_text() for t in heat.get_xticklabels()] == list(bert_result.tokens.display)
    assert [t.get_text() for t in heat.get_yticklabels()] == list(bert_result.tokens.display)
    assert "layer 1 · head 2" in fig._suptitle.get_text()
    assert any(ax.get_ylabel() == "attention weight" for ax in fig.axes)  # colorbar


def test_grid_view_draws_every_layer_and_head(bert_result):
    fig = render_figure(bert_result, "grid")
    images = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(images) == 3 * 4
    np.testing.assert_array_equal(images[4 * 2 + 3], bert_result.attentions["encoder"][2, 3])
    row_labels = [ax.get_ylabel() for ax in fig.axes if ax.images and ax.get_ylabel()]
    assert row_labels == ["layer 0", "layer 1", "layer 2"]


def test_layer_view_and_mean_view(bert_result):
    fig = render_figure(select(bert_result, layers="2"), "layer")
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles == ["head 0", "head 1", "head 2", "head 3"]
    fig = render_figure(bert_result, "mean")
    means = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(means) == 3
    np.testing.assert_allclose(means[1], bert_result.attentions["encoder"][1].mean(0), atol=1e-6)


def test_head_view_with_many_heads_selected_is_a_selection_error(bert_result):
    from attnviz.errors import SelectionError

    with pytest.raises(SelectionError, match="one head"):
        render_figure(bert_result, "head")


def test_terminal_heatmap_fits_the_width_and_shades_without_colour():
    console = Console(file=io.StringIO(), width=40, force_terminal=True, color_system=None)
    matrix = np.zeros((3, 60))
    matrix[0, 0] = 1.0
    matrix[2, 1] = 0.5
    print_heatmap(matrix, ["a", "b", "c"], [str(i) for i in range(60)], console, title="t")
    lines = console.file.getvalue().splitlines()
    assert all(len(line) <= 40 for line in lines)
    rows = [line for line in lines if line.strip().startswith(("0 a", "1 b", "2 c"))]
    assert len(rows) == 3
    assert "█" in rows[0] and "█" not in rows[1]
    assert "▒" in rows[2] or "▓" in rows[2]
    assert any("cut to fit" in line for line in lines)


def test_top_keys_per_head_matches_column_means(bert_result):
    rows = top_keys_per_head(bert_result)
    assert len(rows) == 12
    received = bert_result.attentions["encoder"][0, 1].mean(0)
    best = int(np.argmax(received))
    assert rows[1]["layer"] == 0 and rows[1]["head"] == 1
    assert rows[1]["top"][0]["index"] == best
    assert rows[1]["top"][0]["weight"] == pytest.approx(received[best], abs=1e-6)
