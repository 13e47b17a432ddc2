"""Characters DejaVu Sans lacks (Chinese, Japanese...) are drawn with an installed font that
has them, in the Pillow export and in matplotlib's images; one that no font has is a box,
said once per process."""

from __future__ import annotations

import io
import logging
import warnings
from typing import Any

import numpy as np
import pytest

from attnviz.render import fast, fonts

CAT = "猫"


def cjk_font() -> str:
    path = fonts.font_file_for(CAT)
    if path is None or path == fonts.base_font_file():
        pytest.skip("no installed font has CJK glyphs (CI installs fonts-droid-fallback)")
    return path


def drawn(text: str, font: Any, *, runs: bool = True) -> np.ndarray:
    """``text`` drawn black on white, 120 x 30, left/top at (4, 4)."""
    from PIL import Image, ImageDraw

    image = Image.new("L", (120, 30), 255)
    draw = ImageDraw.Draw(image)
    if runs:
        fast._draw_text(draw, (4, 4), text, font, 0, "la")
    else:
        draw.text((4, 4), text, fill=0, font=font, anchor="la")
    return np.asarray(image)


def test_a_cjk_label_is_drawn_with_a_font_that_has_it() -> None:
    path = cjk_font()
    assert not fonts.has(fonts.base_font_file(), CAT) and fonts.has(path, CAT)
    dejavu, fallback = fast._font(14), fast._font(14, path)
    got = drawn(CAT, dejavu)
    from PIL import Image, ImageDraw

    expected = Image.new("L", (120, 30), 255)  # the fallback font's glyph, on DejaVu's baseline
    ImageDraw.Draw(expected).text((4, 4 + dejavu.getmetrics()[0]), CAT, fill=0, font=fallback, anchor="ls")
    np.testing.assert_array_equal(got, np.asarray(expected))
    assert (got != drawn(CAT, dejavu, runs=False)).any()  # not DejaVu's box


def test_mixed_text_is_cut_into_runs_on_one_baseline() -> None:
    path = cjk_font()
    font = fast._font(14)
    runs = fast._runs(font, f"ab {CAT}{CAT} cd")
    assert [text for text, _ in runs] == ["ab ", CAT * 2, " cd"]
    assert [getattr(f, "path", None) for _, f in runs] == [font.path, path, font.path]
    # the whole is the runs side by side: the ASCII runs are where DejaVu alone puts them
    whole = drawn(f"ab {CAT}{CAT} cd", font)
    alone = drawn("ab ", font, runs=False)
    width = int(font.getlength("ab "))
    np.testing.assert_array_equal(whole[:, : 4 + width - 1], alone[:, : 4 + width - 1])
    left, _, right, _ = fast._text_box(font, f"ab {CAT}{CAT} cd")
    assert right - left == pytest.approx(sum(f.getlength(t) for t, f in runs), abs=2)


def test_ascii_and_covered_text_draw_exactly_as_before() -> None:
    font = fast._font(12)
    for text in ("the cat", "café ▼ [CLS]"):
        assert fast._runs(font, text) == [(text, font)]
        np.testing.assert_array_equal(drawn(text, font), drawn(text, font, runs=False))


def test_without_a_font_that_has_it_a_box_is_drawn_and_said_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fonts, "fallback_font_files", lambda: ())
    fonts.font_file_for.cache_clear()
    monkeypatch.setattr(fonts, "_told", False)
    said = io.StringIO()
    handler = logging.StreamHandler(said)
    fonts._LOG.addHandler(handler)
    try:
        assert fonts.font_file_for(CAT) is None
        font = fast._font(14)
        np.testing.assert_array_equal(drawn(CAT, font), drawn(CAT, font, runs=False))  # DejaVu's box
        assert said.getvalue() == ""  # drawing says nothing: the export warns per line beforehand
        fonts.tell_undrawable("犬" + CAT + "x")  # matplotlib's images: once per process, counted
        fonts.tell_undrawable(CAT)
    finally:
        fonts._LOG.removeHandler(handler)
        fonts.font_file_for.cache_clear()
    assert said.getvalue().count("no glyph") == 1 and said.getvalue().startswith("warning: 2 characters")


def test_matplotlib_gets_the_fallback_family(tmp_path: Any) -> None:
    """The fallback family follows DejaVu Sans, whether or not matplotlib's cached font list
    knew the font; saving a figure with CJK labels warns of no missing glyph."""
    from attnviz.render import image
    from attnviz.render.views import build_view
    from attnviz.result import AttentionResult

    path = cjk_font()
    families = fonts.matplotlib_families({CAT})
    assert len(families) == 1
    from matplotlib import font_manager

    assert font_manager.findfont(font_manager.FontProperties(family=families[0]), fallback_to_default=False) == path
    result = AttentionResult.from_arrays(
        np.full((1, 1, 4, 4), 0.25, dtype=np.float32), ["[CLS]", CAT, "が", "[SEP]"], model="m", text=CAT + "が"
    )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        image.save_figure(image.figure_for_view(build_view(result, "head")), tmp_path / "cat.png")
    assert not [w for w in caught if "Glyph" in str(w.message)]


def test_export_says_per_line_how_many_characters_are_boxes(
    monkeypatch: pytest.MonkeyPatch, tiny_models: Any, tmp_path: Any
) -> None:
    """With no font for them, the export names the line and counts its distinct characters
    (three here), once per line, before drawing; a data-only export says nothing."""
    from helpers import invoke

    monkeypatch.setattr(fonts, "fallback_font_files", lambda: ())
    fonts.font_file_for.cache_clear()
    texts = tmp_path / "texts.txt"
    texts.write_text(f"the cat\n{CAT}犬{CAT}が\n", encoding="utf-8")
    try:
        images = invoke("export", texts, "-m", tiny_models["bert"], "-o", tmp_path / "png", "--workers", 0)
        data = invoke("export", texts, "-m", tiny_models["bert"], "-o", tmp_path / "npz", "--format", "npz")
    finally:
        fonts.font_file_for.cache_clear()
    assert images.exit_code == 0, images.output
    said = [line for line in images.stderr.splitlines() if "no glyph" in line]
    assert said == ["warning: line 2: 3 characters of the text have no glyph in the installed fonts (drawn as boxes)"]
    assert data.exit_code == 0 and "no glyph" not in data.stderr
