"""Images and terminal output: assert what was drawn, not pixels."""

from __future__ import annotations

import io
from dataclasses import replace

import numpy as np
import pytest
from helpers import random_result, repeated_result
from rich.console import Console

from attnviz.extraction import extract
from attnviz.render.image import render_figure
from attnviz.render.terminal import print_heatmap, top_keys_per_head
from attnviz.result import AttentionResult
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
    assert "\x1b" not in console.file.getvalue()
    assert len(rows) == 3
    assert "█" in rows[0] and "█" not in rows[1]
    assert "▒" in rows[2] or "▓" in rows[2]
    assert "keys 34-59 left out to fit 40 columns" in " ".join(lines)


def test_top_keys_per_head_matches_column_means(bert_result):
    rows = top_keys_per_head(bert_result)
    assert len(rows) == 12
    received = bert_result.attentions["encoder"][0, 1].mean(0)
    best = int(np.argmax(received))
    assert rows[1]["layer"] == 0 and rows[1]["head"] == 1
    assert rows[1]["top"][0]["index"] == best
    assert rows[1]["top"][0]["weight"] == pytest.approx(received[best], abs=1e-6)


# -- terminal views ------------------------------------------------------------------------
def _console(width: int, color_system: str | None) -> Console:
    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=color_system)


def _plain(console: Console) -> list[str]:
    import re

    return [re.sub(r"\x1b\[[0-9;]*m", "", line) for line in console.file.getvalue().splitlines()]


def test_half_blocks_put_the_upper_row_in_front_and_the_lower_row_behind():
    """The first character of a 2x2 identity map: upper row value 1 (viridis' last colour
    as foreground), lower row value 0 (its first colour as background)."""
    from attnviz.render.colors import colormap_lut
    from attnviz.render.terminal import print_view

    console = _console(60, "truecolor")
    print_view(repeated_result(np.eye(2), layers=2, heads=2), "encoder", "grid", console)
    out = console.file.getvalue()
    lut = colormap_lut("viridis", 64)
    high, low = (",".join(map(str, lut[-1])), ",".join(map(str, lut[0])))
    cell = f"\x1b[38;2;{high.replace(',', ';')};48;2;{low.replace(',', ';')}m▀"
    assert cell in out
    plain = _plain(console)
    assert any(line.startswith("    H0 H1") for line in plain)
    assert [line[:4] for line in plain if line[:3] in ("L0 ", "L1 ") and "H" not in line] == ["L0  ", "L1  "]


def test_256_colour_terminals_get_256_colour_codes_and_no_colour_gets_shades():
    from attnviz.render.terminal import print_view

    result = repeated_result(np.eye(3), layers=2, heads=3)
    console = _console(80, "256")
    # another colormap than the other tests: rich caches each style's codes for the first
    # colour system that drew it, and one process normally has one terminal
    print_view(result, "encoder", "grid", console, cmap="cividis")
    assert "\x1b[38;5;" in console.file.getvalue() and "38;2;" not in console.file.getvalue()
    plain = Console(file=io.StringIO(), width=80, color_system=None)
    print_view(result, "encoder", "grid", plain)
    text = plain.file.getvalue()
    assert "\x1b" not in text
    assert "█" in text and "▀" not in text  # one line per row, shade characters


@pytest.mark.parametrize("width", [80, 160])
def test_grid_fits_the_width_and_names_what_was_left_out(bert_result, width):
    from attnviz.render.terminal import print_view

    wide = extract("the cats sat on the mat and the dogs ran off into the big dark woods", model=bert_result.model)
    console = _console(width, "truecolor")
    print_view(wide, "encoder", "grid", console, requested="grid")
    plain = _plain(console)
    assert all(len(line) <= width for line in plain)
    n = wide.tokens.display.__len__()
    fits = (width - 4 + 1) // (n + 1)
    if fits < 4:
        left = ", ".join(str(h) for h in range(fits, 4))
        assert any(f"heads {left} left out to fit {width} columns" in line for line in plain)
    else:
        assert not any("left out" in line for line in plain)


def test_auto_view_of_a_long_text_falls_back_to_layer_means_and_says_so(bert_result):
    from attnviz.render.terminal import print_view

    long = extract(" ".join(["word"] * 30), model=bert_result.model)
    console = _console(80, "truecolor")
    print_view(long, "encoder", "grid", console, requested="auto")
    plain = _plain(console)
    joined = " ".join(" ".join(plain).split())
    assert "showing each layer's mean over heads" in joined
    assert "mean over heads 0-3, per layer" in joined
    assert all(len(line) <= 80 for line in plain)


def test_colour_bar_states_the_scale_and_roles_follow_the_stats_labels(bert_result):
    from attnviz.analysis.stats import head_statistics
    from attnviz.render.terminal import head_roles, print_view

    console = _console(120, "truecolor")
    print_view(bert_result, "encoder", "grid", console)
    plain = _plain(console)
    array = bert_result.attentions["encoder"]
    words = float(array[..., 1:-1].max())  # [CLS] and [SEP] are the first and last keys
    assert any(line.strip().startswith("0 ") and f"{words:.3g}  attention weight" in line for line in plain)
    if array.max() > words * 1.01:  # a column barely above the scale is not marked
        assert any(f"above the scale, up to {float(array.max()):.3g}" in line for line in plain)
    full = _console(120, "truecolor")
    print_view(bert_result, "encoder", "grid", full, scale="full")
    top = float(array.max())
    assert any(line.strip().startswith("0 ") and f"{top:.3g}  attention weight" in line for line in _plain(full))
    roles = head_roles(bert_result, "encoder")
    labels = head_statistics([bert_result]).labels()
    assert [r["label"] for r in roles] == list(labels.ravel())
    from attnviz.render.roles import head_spans

    heads = [(layer, head) for layer in range(3) for head in range(4) if labels[layer, head] == labels[2, 3]]
    joined = " ".join(" ".join(plain).split())
    assert f"{labels[2, 3]} ({len(heads)}, " in joined and head_spans(heads) in joined


def test_untrusted_tokens_never_reach_the_terminal_raw(loaded_models):
    from attnviz.render.terminal import print_view

    result = extract("evil \x1b]0;title\x07 \u202e text", model=loaded_models["bert"])
    console = _console(100, "truecolor")
    print_view(result, "encoder", "grid", console)
    out = console.file.getvalue()
    assert "\x07" not in out and "\u202e" not in out and "\x1b]" not in out


# -- exported PNGs (the Pillow renderer) ------------------------------------------------------
WORDS = (
    "[CLS] the quick brown fox jumps over the lazy dog while the company reported strong earnings in "
    "the third quarter of the year , and analysts expected the stock price to climb further next week "
    "despite extraordinarily uncertain macroeconomic conditions everywhere [SEP]"
).split()


def _long_result(layers: int = 2, heads: int = 3):
    words = WORDS[:40]
    return random_result(words, layers, heads, text=" ".join(words[1:-1]))


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize(("view", "layers", "heads"), [("head", 1, 1), ("mean", 3, 2), ("layer", 1, 4)])
def test_png_token_labels_of_a_40_token_text_never_overlap_or_clip(view, layers, heads):
    from PIL import Image

    from attnviz.render.fast import FastRenderer
    from attnviz.render.views import build_view

    data = build_view(_long_result(layers, heads), view)
    assert len(data.query_labels) == 40
    renderer = FastRenderer()
    layout, _ = renderer._frame(data)
    boxes = layout.label_boxes
    labelled_panels = 1 if view == "head" else -(-len(data.panels) // data.cols) + min(data.cols, len(data.panels))
    assert len(boxes) == 40 * (2 if view == "head" else labelled_panels)
    for i, a in enumerate(boxes):
        assert 0 <= a[0] and 0 <= a[1] and a[2] <= layout.width and a[3] <= layout.height, a
        for b in boxes[i + 1 :]:
            assert not _overlap(a, b), (a, b)
    image = Image.open(io.BytesIO(renderer.render(data)))
    assert image.size == (layout.width, layout.height)


def test_png_title_carries_the_text_and_the_colour_bar_round_ticks():
    from attnviz.render.fast import nice_ticks
    from attnviz.render.views import build_view

    data = build_view(_long_result(1, 1), "head")
    assert data.text.startswith("“the quick brown fox") and data.text.endswith("…”")
    assert nice_ticks(0.958) == [0.0, 0.2, 0.4, 0.6, 0.8]
    assert nice_ticks(0.05) == [0.0, 0.01, 0.02, 0.03, 0.04, 0.05]
    assert nice_ticks(1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


# -- the colour scale (issue #21: the scale belonged to [CLS]) ---------------------------------
def test_the_default_scale_comes_from_word_columns_and_a_decoders_sink_is_left_out():
    from attnviz.render.colors import color_scale, scale_excluded_keys

    values = np.array([[[0.7, 0.2, 0.1], [0.6, 0.3, 0.1], [0.5, 0.25, 0.25]]], dtype=np.float32)
    special = np.array([True, False, False])
    keys = color_scale(values, scale_excluded_keys(special, sink=False))
    assert keys.vmax == pytest.approx(0.3) and keys.marked.tolist() == [True, False, False]
    assert keys.marked_max == pytest.approx(0.7) and keys.peak == pytest.approx(0.7)
    full = color_scale(values, scale_excluded_keys(special, sink=False), "full")
    assert full.vmax == pytest.approx(0.7) and not full.saturates
    # a decoder without special tokens: its first token (the sink) is left out all the same
    sink = color_scale(values, scale_excluded_keys(np.zeros(3, dtype=bool), sink=True))
    assert sink.vmax == pytest.approx(0.3) and sink.marked.tolist() == [True, False, False]
    # nothing left to scale by: the full scale
    assert color_scale(values, np.ones(3, dtype=bool)).vmax == pytest.approx(0.7)


def test_png_draws_the_word_maximum_in_the_top_colour_and_marks_the_cls_column():
    from PIL import Image

    from attnviz.render.colors import colormap_lut
    from attnviz.render.fast import FastRenderer
    from attnviz.render.views import build_view

    matrix = np.array(
        [[0.7, 0.2, 0.1, 0.0], [0.6, 0.3, 0.05, 0.05], [0.8, 0.1, 0.05, 0.05], [0.9, 0.04, 0.03, 0.03]],
        dtype=np.float32,
    )
    result = AttentionResult.from_arrays(matrix[None, None], ["[CLS]", "a", "b", "[SEP]"], model="m", text="a b")
    renderer = FastRenderer()
    data = build_view(result, "head")
    layout, _ = renderer._frame(data)
    image = np.asarray(Image.open(io.BytesIO(renderer.render(data))).convert("RGB"))
    x0, y0 = layout.origin(0)

    def cell(i: int, j: int):
        return tuple(image[y0 + i * layout.cell + layout.cell // 2, x0 + j * layout.cell + layout.cell // 2])

    top = tuple(colormap_lut("viridis")[-1])
    assert cell(1, 1) == top  # 0.3, the largest word-to-word weight
    assert cell(0, 0) == top and cell(3, 0) == top  # [CLS] above the scale: saturated
    assert cell(0, 1) != top
    above = image[y0 - 4 : y0 - 1, x0 : x0 + layout.cell]  # the mark over the [CLS] column
    assert (above.sum(axis=-1) < 200).any()
    full = np.asarray(Image.open(io.BytesIO(renderer.render(replace(data, scale="full")))).convert("RGB"))
    assert tuple(full[y0 + 3 * layout.cell + layout.cell // 2, x0 + layout.cell // 2]) == top  # 0.9
    assert tuple(full[y0 + layout.cell + layout.cell // 2, x0 + layout.cell + layout.cell // 2]) != top
