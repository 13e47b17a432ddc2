"""The self-contained page, checked in headless Chromium with the network blocked."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from attnviz.extraction import extract
from attnviz.render.html import render_html

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)"),
]
SCRIPT_TEXT = 'the cat <script>window.__pwned = 1</script> "sat" &amp; <img src=x onerror="window.__pwned=2">'


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        yield browser
        browser.close()


class Opened:
    def __init__(self, page, requests, errors):
        self.page, self.requests, self.errors = page, requests, errors

    def check_clean(self):
        assert self.errors == [], self.errors
        assert [u for u in self.requests if not u.startswith(("file:", "data:", "blob:"))] == []


@pytest.fixture
def open_page(browser, tmp_path):
    contexts = []

    def opener(result, name="page.html", timeout=15000):
        path = tmp_path / name
        path.write_text(render_html(result), encoding="utf-8")
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        requests, errors = [], []
        context.route(
            "**/*", lambda route: route.continue_() if route.request.url.startswith("file:") else route.abort()
        )
        page = context.new_page()
        page.on("request", lambda request: requests.append(request.url))
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']", timeout=timeout)
        return Opened(page, requests, errors)

    yield opener
    for context in contexts:
        context.close()


def _lines_for_query(array: np.ndarray, layer: int, query: int) -> int:
    """Lines the page draws for one query in 'all heads' mode: weights >= 0.01 after the
    page's 16-bit rounding, computed here from the raw arrays."""
    rounded = np.rint(array[layer, :, query, :].astype(np.float64) * 65535) / 65535
    return int((rounded >= 0.01).sum())


def test_tokens_visible_no_network_no_errors(loaded_models, open_page):
    result = extract("the cat sat on the mat", model=loaded_models["bert"], pair="a dog ran")
    opened = open_page(result)
    page = opened.page
    assert page.locator("#left li").all_inner_texts() == list(result.tokens.display)
    assert page.locator("#right li").first.is_visible()
    assert page.locator("#left li").nth(9).is_visible()
    assert page.locator("select#layer").count() == 1 and page.locator("select#head").count() == 1
    opened.check_clean()


def test_text_is_shown_literally_and_runs_nothing(loaded_models, open_page):
    result = extract(SCRIPT_TEXT, model=loaded_models["bert"])
    opened = open_page(result)
    page = opened.page
    assert page.evaluate("window.__pwned") is None
    assert page.locator("#meta dd").nth(1).inner_text() == SCRIPT_TEXT
    assert page.locator("img").count() == 0
    assert page.locator("script").count() == 2  # the data block and the page script, nothing injected
    opened.check_clean()


def test_switching_layer_or_head_changes_the_drawing(loaded_models, open_page):
    result = extract("the cat sat on the mat", model=loaded_models["bert"])
    page = open_page(result).page
    page.select_option("#view", "matrix")
    page.select_option("#layer", "0")
    page.select_option("#head", "0")
    first = page.evaluate("document.getElementById('matrix').toDataURL()")
    page.select_option("#layer", "2")
    second = page.evaluate("document.getElementById('matrix').toDataURL()")
    page.select_option("#head", "3")
    third = page.evaluate("document.getElementById('matrix').toDataURL()")
    assert len({first, second, third}) == 3
    assert page.locator("#matrix").get_attribute("data-title") == "encoder · layer 2 · head 3"


def test_hover_shows_a_cell_weight(loaded_models, open_page):
    result = extract("the cat sat", model=loaded_models["bert"])
    page = open_page(result).page
    page.select_option("#view", "matrix")
    page.select_option("#layer", "1")
    page.select_option("#head", "2")
    matrix = page.locator("#matrix")
    box = matrix.bounding_box()
    left, top, cell = (float(matrix.get_attribute(f"data-{name}")) for name in ("left", "top", "cell"))
    assert cell == 44  # 5 tokens -> the largest cell size
    page.mouse.move(box["x"] + left + 3 * cell + 5, box["y"] + top + 2 * cell + 5)
    readout = page.locator("#readout").inner_text()
    expected = result.attentions["encoder"][1, 2, 2, 3]
    assert readout.startswith("cat (2) → sat (3): ")
    assert float(readout.rsplit(" ", 1)[-1]) == pytest.approx(expected, abs=1e-4)


def test_hovering_a_token_filters_the_lines(loaded_models, open_page):
    result = extract("the cat sat on the mat and the dog ran", model=loaded_models["bert"])
    page = open_page(result).page
    page.select_option("#layer", "0")
    page.select_option("#head", "all")
    lines = lambda: int(page.locator("#lines").get_attribute("data-lines"))  # noqa: E731
    everything = lines()
    page.hover("#left li[data-index='3']")
    filtered = lines()
    assert filtered == _lines_for_query(result.attentions["encoder"], 0, 3)
    assert 0 < filtered < everything
    page.mouse.move(1000, 10)
    assert lines() == everything


def test_grid_thumbnail_opens_that_head(loaded_models, open_page):
    result = extract("the cat sat", model=loaded_models["bert"])
    page = open_page(result).page
    page.select_option("#view", "grid")
    assert page.locator("#grid button").count() == 3 * 4
    page.click("button[aria-label='open layer 1 head 2']")
    assert page.evaluate("[document.body.dataset.view, document.body.dataset.layer, document.body.dataset.head]") == [
        "matrix",
        "1",
        "2",
    ]
    assert not page.locator("#matrix-view").is_hidden()


def test_sentence_pair_filters(loaded_models, open_page):
    result = extract("the cat sat", model=loaded_models["bert"], pair="a dog ran")
    page = open_page(result).page
    page.select_option("#head", "1")
    page.select_option("#segment", "AB")
    drawn = int(page.locator("#lines").get_attribute("data-lines"))
    a = result.attentions["encoder"][0, 1].astype(np.float64)
    segments = result.tokens.segment_ids
    rounded = np.rint(a * 65535) / 65535
    mask = (segments[:, None] == 0) & (segments[None, :] == 1)
    assert drawn == int(((rounded >= 0.01) & mask).sum())


def test_encoder_decoder_kinds(loaded_models, open_page):
    result = extract("the cat sat", model=loaded_models["t5"], target="a dog")
    page = open_page(result).page
    assert page.locator("#kind option").all_inner_texts() == ["encoder", "decoder", "cross (decoder → encoder)"]
    page.select_option("#kind", "cross")
    assert page.locator("#left li").all_inner_texts() == list(result.target_tokens.display)
    assert page.locator("#right li").all_inner_texts() == list(result.tokens.display)
    assert page.locator("#view option[value='rollout']").is_disabled()


def test_rollout_view(loaded_models, open_page):
    from attnviz.analysis.rollout import attention_rollout

    result = extract("the cat sat on the mat", model=loaded_models["bert"])
    page = open_page(result).page
    page.select_option("#view", "rollout")
    page.select_option("#layer", "2")
    maximum = float(page.locator("#matrix").get_attribute("data-max"))
    assert maximum == pytest.approx(attention_rollout(result.attentions["encoder"])[2].max(), abs=1e-4)


@pytest.mark.slow
def test_500_token_page_opens_and_responds_quickly(bundled, open_page, tmp_path):
    text = " ".join(["The quick brown fox jumps over the lazy dog near the riverbank."] * 40)
    result = extract(text, model=bundled)
    assert len(result.tokens) > 500
    opened = open_page(result, timeout=10000)  # load and response times: benchmarks/bench_timings.py
    page = opened.page
    page.select_option("#layer", "3")
    page.select_option("#view", "matrix")
    page.select_option("#view", "grid")
    assert page.locator("#grid button").count() == 72
    opened.check_clean()
    size = (tmp_path / "page.html").stat().st_size
    assert size < 4_000_000


def test_jupyter_repr_is_an_isolated_offline_page(loaded_models, browser, tmp_path):
    result = extract(SCRIPT_TEXT, model=loaded_models["bert"])
    snippet = result._repr_html_()
    assert "<iframe" in snippet and "<script>window.__pwned" not in snippet
    host = tmp_path / "notebook.html"
    host.write_text(f"<!doctype html><html><body>{snippet}</body></html>", encoding="utf-8")
    page = browser.new_page()
    try:
        page.goto(host.as_uri())
        frame = page.frames[1]
        frame.wait_for_selector("body[data-ready='1']", timeout=15000)
        assert frame.locator("#left li").count() == len(result.tokens)
        assert page.evaluate("window.__pwned") is None and frame.evaluate("window.__pwned") is None
        # the frame takes the page's height (not a fixed 760 px), and the untrusted-notebook note hides
        page.wait_for_function("document.querySelector('iframe').style.height !== '420px'", timeout=5000)
        inner = frame.evaluate("document.documentElement.scrollHeight")
        outer = page.evaluate("parseFloat(document.querySelector('iframe').style.height)")
        assert abs(outer - inner) <= 8, (outer, inner)
        assert page.locator("div[id$='-note']").is_hidden()
        # the frame's height is the page's, and the page's is not the frame's: a resize and
        # redraws later it has not grown (it once grew 4 px a report, without end)
        for _ in range(5):
            frame.evaluate("window.dispatchEvent(new Event('resize'))")
            page.wait_for_timeout(250)
        settled = page.evaluate("parseFloat(document.querySelector('iframe').style.height)")
        assert settled <= outer + 2, (outer, settled)
    finally:
        page.close()


def test_an_untrusted_notebook_says_how_to_see_the_view(loaded_models):
    """Jupyter strips iframes and scripts from untrusted output; what remains is the note,
    in the HTML and in the text/plain form."""
    import re

    from attnviz.render.html import UNTRUSTED_NOTE

    result = extract("the cat", model=loaded_models["bert"])
    bundle = result._repr_mimebundle_()
    stripped = re.sub(r"<iframe.*?</iframe>|<script>.*?</script>", "", bundle["text/html"], flags=re.S)
    assert "Trust Notebook" in stripped and "re-run this cell" in stripped
    assert UNTRUSTED_NOTE in bundle["text/plain"] and bundle["text/plain"].startswith("<AttentionResult")


def test_head_swatches_show_which_colour_is_which_head_and_toggle_them(loaded_models, open_page):
    result = extract("the cat sat on the mat", model=loaded_models["bert"])
    opened = open_page(result)
    page = opened.page
    page.select_option("#layer", "0")
    page.select_option("#head", "all")
    swatches = page.locator("#legend button")
    assert swatches.count() == 4
    assert [swatches.nth(h).inner_text() for h in range(4)] == ["head 0", "head 1", "head 2", "head 3"]
    colours = [
        swatches.nth(h).locator(".swatch").evaluate("e => getComputedStyle(e).backgroundColor") for h in range(4)
    ]
    assert len(set(colours)) == 4
    everything = int(page.locator("#lines").get_attribute("data-lines"))
    swatches.nth(0).click()
    assert swatches.nth(0).get_attribute("aria-pressed") == "false"
    without_head_0 = int(page.locator("#lines").get_attribute("data-lines"))
    array = result.attentions["encoder"]
    rounded = np.rint(array[0].astype(np.float64) * 65535) / 65535
    assert everything - without_head_0 == int((rounded[0] >= 0.01).sum())
    # double-click isolates a head, and the Head picker says which
    swatches.nth(2).dblclick()
    assert page.locator("#head").input_value() == "2"
    assert page.locator("body").get_attribute("data-head") == "2"
    assert int(page.locator("#lines").get_attribute("data-lines")) == int((rounded[2] >= 0.01).sum())
    page.select_option("#head", "all")  # the picker brings every head back
    assert int(page.locator("#lines").get_attribute("data-lines")) == int((rounded >= 0.01).sum())
    opened.check_clean()


@pytest.mark.parametrize("width", [1400, 800])
def test_layout_uses_the_width_and_labels_sit_beside_what_they_label(bundled, browser, tmp_path, width):
    result = extract("The quick brown fox jumps over the lazy dog", model=bundled)
    path = tmp_path / "page.html"
    path.write_text(render_html(result), encoding="utf-8")
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']")
        main_width = page.evaluate("document.querySelector('main').clientWidth")
        used = page.evaluate(
            "(() => { const r = [...document.querySelectorAll('#head-view .columns > *')]"
            ".map(e => e.getBoundingClientRect()); return Math.max(...r.map(b => b.right)) - Math.min(...r.map(b => b.left)); })()"
        )
        assert used >= min(0.55 * main_width, 800), (used, main_width)
        page.select_option("#view", "grid")
        assert page.locator("#layer-label").is_hidden()  # no disabled picker showing a value
        gap = page.evaluate(
            "(() => { const label = document.querySelector('#grid .rowlabel').getBoundingClientRect();"
            " const cell = document.querySelector('#grid button').getBoundingClientRect(); return cell.left - label.right; })()"
        )
        assert 0 <= gap <= 16, gap
        grid_width = page.evaluate("document.querySelector('#grid').getBoundingClientRect().width")
        assert grid_width >= 0.6 * main_width
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        page.close()


def test_page_data_is_compact_json(loaded_models):
    from attnviz.render.html import page_data

    result = extract("the cat sat", model=loaded_models["bert"])
    document = page_data(result)
    assert document["bits"] == 16
    assert set(document["kinds"]) == {"encoder"}
    json.dumps(document)


def test_neuron_view_on_the_page_breaks_down_the_clicked_query(loaded_models, open_page):
    result = extract("the cat sat on the mat", model=loaded_models["gpt2"], layers="1", heads="1", vectors=True)
    opened = open_page(result)
    page = opened.page
    assert page.evaluate("document.body.dataset.view") == "neuron"
    page.click("#neuron-queries li:nth-child(4)")
    assert page.evaluate("document.body.dataset.query") == "3"
    dots = [
        float(x) for x in page.eval_on_selector_all("#neuron-numbers tbody tr", "rows => rows.map(r => r.dataset.dot)")
    ]
    q = result.vectors["decoder"]["query"][0, 0, 3].astype(np.float64)
    k = result.vectors["decoder"]["key"][0, 0].astype(np.float64)
    np.testing.assert_allclose(dots, k @ q, rtol=1e-4, atol=1e-4)
    cells = page.eval_on_selector_all(
        "#neuron-numbers tbody tr td:nth-child(2)", "cells => cells.map(c => c.textContent)"
    )
    assert cells[4:] == ["masked"] * (len(cells) - 4)  # causal: the later keys
    opened.check_clean()


def test_neuron_view_calls_a_tiny_encoder_weight_by_its_numbers_not_masked(loaded_models, open_page):
    # an encoder masks nothing: a weight too small for the page's 16 bits is still a key the
    # query saw, so its q·k must show (a reviewer saw [CLS]/[SEP] read "masked" with q·k 29.5)
    result = extract("the cat sat on the mat", model=loaded_models["bert"], layers="1", heads="1", vectors=True)
    array = result.attentions["encoder"].copy()
    array[0, 0, 3, 0] = 1e-7  # quantises to 0 on the page
    array[0, 0, 3] /= array[0, 0, 3].sum()
    result.attentions["encoder"] = array
    page = open_page(result).page
    assert page.evaluate("document.body.dataset.view") == "neuron"
    page.click("#neuron-queries li:nth-child(4)")
    cells = page.eval_on_selector_all(
        "#neuron-numbers tbody tr td:nth-child(2)", "cells => cells.map(c => c.textContent)"
    )
    q = result.vectors["encoder"]["query"][0, 0, 3].astype(np.float64)
    k = result.vectors["encoder"]["key"][0, 0].astype(np.float64)
    assert "masked" not in cells
    np.testing.assert_allclose([float(c) for c in cells], k @ q, atol=0.006)
    assert page.eval_on_selector_all("#neuron-numbers tbody tr td:nth-child(4)", "c => c[0].textContent") == "0.000"


# -- #21: what the page opens on, its size, its colour scale, hostile labels and fields ------
def _crafted(tokens: list[str], layers: int = 2, heads: int = 3, text: str | None = None):
    """A result built from attention written here: uniform rows, except layer 1 head 2 where
    every word attends to the next word, with a [CLS] column taking 0.9 of each row of layer 0."""
    from attnviz.result import AttentionResult

    n = len(tokens)
    array = np.full((layers, heads, n, n), 1.0 / n, dtype=np.float32)
    for i in range(n):
        array[1, 2, i] = 0.02 / (n - 1)
        array[1, 2, i, min(i + 1, n - 1) if 0 < i < n - 2 else 0] = 0.98
        array[1, 2, i] /= array[1, 2, i].sum()
    array[0, :, :, 0] = 0.9
    array[0, :, :, 1:] = 0.1 / (n - 1)
    return AttentionResult.from_arrays(array, tokens, model="crafted", text=text or " ".join(tokens[1:-1]))


WORDS = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]


def test_opens_on_the_head_with_the_most_structure_outside_special_columns(open_page):
    from attnviz.render.html import page_data

    result = _crafted(WORDS)
    assert page_data(result)["kinds"]["encoder"]["opening"] == {"layer": 1, "head": 2}
    page = open_page(result).page
    assert page.locator("body").get_attribute("data-view") == "head"
    assert (page.locator("body").get_attribute("data-layer"), page.locator("#head").input_value()) == ("1", "2")
    # the lines of that head alone: each word to the next (7 rows x 1 line of weight 0.98,
    # plus [SEP] and "mat" and [CLS] to [CLS])
    assert int(page.locator("#lines").get_attribute("data-lines")) == len(WORDS)


def test_the_drawing_takes_the_window_height(open_page, browser, tmp_path):
    words = ["[CLS]", *"the cat sat on the mat while the dog ran to the".split(), "[SEP]"]
    result = _crafted(words)
    for height in (900, 600):
        page = open_page(result, name=f"page{height}.html").page
        page.set_viewport_size({"width": 1280, "height": height})
        page.evaluate("window.dispatchEvent(new Event('resize'))")
        page.wait_for_timeout(300)
        canvas = page.locator("#lines").bounding_box()
        assert canvas["y"] + canvas["height"] <= height  # the whole drawing in view...
        assert canvas["y"] + canvas["height"] >= 0.75 * height  # ...and the window not half empty
        rows = page.locator("#left li").evaluate_all("items => items.map(li => li.getBoundingClientRect().height)")
        assert len(set(rows)) == 1 and abs(rows[0] * len(words) - canvas["height"]) < 1


def test_hovered_matrix_cell_is_outlined(open_page):
    page = open_page(_crafted(WORDS)).page
    page.select_option("#view", "matrix")
    matrix = page.locator("#matrix")
    box = matrix.bounding_box()
    left, top, cell = (float(matrix.get_attribute(f"data-{name}")) for name in ("left", "top", "cell"))
    x, y = box["x"] + left + 4.5 * cell, box["y"] + top + 2.5 * cell
    page.mouse.move(x, y)
    hover = page.locator("#matrix-hover")
    assert hover.is_visible() and hover.get_attribute("data-cell") == "2,4"
    outline = hover.bounding_box()
    assert outline["x"] < x < outline["x"] + outline["width"] and outline["y"] < y < outline["y"] + outline["height"]
    assert abs(outline["width"] - cell) <= 3
    page.mouse.move(box["x"] - 20, box["y"] - 20)
    assert hover.is_hidden()


def test_colour_scale_leaves_out_special_columns_and_marks_them(open_page):
    result = _crafted(WORDS)
    page = open_page(result).page
    page.select_option("#view", "matrix")
    page.select_option("#layer", "0")
    page.select_option("#head", "0")
    matrix = page.locator("#matrix")
    words = 0.1 / (len(WORDS) - 1)  # every word column's weight in layer 0 (written above)
    assert float(matrix.get_attribute("data-max")) == pytest.approx(words, abs=2e-5)
    assert matrix.get_attribute("data-marked") == "0"  # [CLS]; [SEP] is not above the scale
    note = page.locator("#scale-note").inner_text()
    assert "[CLS]" in note and "up to 0.900" in note
    # a word column's cell is drawn with the top colour, [CLS] too (saturated)
    top_colour = page.evaluate(
        "() => { const d = JSON.parse(document.getElementById('attnviz-data').textContent); return d.colors[d.colors.length - 1]; }"
    )
    left, top, cell = (float(matrix.get_attribute(f"data-{name}")) for name in ("left", "top", "cell"))
    pixel = page.evaluate(
        "([x, y]) => { const c = document.getElementById('matrix'); const r = window.devicePixelRatio || 1;"
        " const p = c.getContext('2d').getImageData(Math.round(x * r), Math.round(y * r), 1, 1).data;"
        " return '#' + [p[0], p[1], p[2]].map(v => v.toString(16).padStart(2, '0')).join(''); }",
        [left + 3.5 * cell, top + 2.5 * cell],
    )
    assert pixel == top_colour.lower()
    page.select_option("#scale-mode", "full")
    assert float(matrix.get_attribute("data-max")) == pytest.approx(0.9, abs=2e-5)
    assert matrix.get_attribute("data-marked") == ""
    assert page.locator("#scale-note").inner_text() == ""


def test_full_scale_page_opens_on_the_full_scale(open_page, tmp_path):
    from attnviz.render.html import render_html as render

    path = tmp_path / "full.html"
    path.write_text(render(_crafted(WORDS), scale="full"), encoding="utf-8")
    document = json.loads(path.read_text(encoding="utf-8").split('id="attnviz-data">', 1)[1].split("</script>", 1)[0])
    assert document["scale"] == "full"
    assert document["kinds"]["encoder"]["scale_excluded"] == [True] + [False] * 6 + [True]


def test_a_huge_token_label_is_cut_and_the_page_stays_small(open_page):
    huge = "x" * 2_000_000
    result = _crafted(["[CLS]", "the", huge, "sat", "[SEP]"], text="the cat sat")
    from attnviz.render.html import render_html as render

    assert len(render(result)) < 200_000
    page = open_page(result).page
    labels = page.locator("#left li").all_inner_texts()
    assert labels[2] == "x" * 39 + "…"
    assert max(len(t) for t in labels) <= 40


def test_a_saved_pair_of_nan_still_gives_a_valid_page(open_page, tmp_path):
    from dataclasses import replace

    result = replace(_crafted(WORDS), pair=float("nan"))
    from attnviz.render.html import render_html as render

    text = render(result)
    data = text.split('id="attnviz-data">', 1)[1].split("</script>", 1)[0]

    def refuse(constant):
        raise AssertionError(f"{constant} in the page data")

    assert json.loads(data, parse_constant=refuse)["pair"] is None
    opened = open_page(result)
    assert opened.page.locator("#left li").count() == len(WORDS)
    opened.check_clean()


def test_show_scale_full_reaches_the_page(tiny_models, tmp_path):
    from helpers import invoke

    out = tmp_path / "full.html"
    done = invoke("show", "the cat sat", "-m", tiny_models["bert"], "-o", out, "--scale", "full")
    assert done.exit_code == 0, done.output
    text = out.read_text(encoding="utf-8")
    assert json.loads(text.split('id="attnviz-data">', 1)[1].split("</script>", 1)[0])["scale"] == "full"


# -- the neuron view's pickers and layout (a new-user review) ---------------------------------
def _head_picker(page):
    return page.eval_on_selector("#head", "s => ({value: s.value, options: [...s.options].map(o => o.value)})")


def test_neuron_view_head_picker_offers_only_heads_it_can_draw(loaded_models, open_page):
    result = extract("the cat sat on the mat", model=loaded_models["bert"], layers="1", heads="0,1", vectors=True)
    opened = open_page(result)
    page = opened.page
    page.select_option("#view", "neuron")
    picker = _head_picker(page)
    assert picker["options"] == ["0", "1"]  # one head at a time: no 'mean of heads', no 'all heads'
    page.select_option("#head", "1")
    assert "· head 1 ·" in page.text_content("#neuron-title")
    page.select_option("#view", "matrix")
    page.select_option("#head", "mean")  # the matrix does draw the mean...
    page.select_option("#view", "neuron")  # ...the neuron view cannot: the picker snaps to a head
    picker = _head_picker(page)
    assert "mean" not in picker["options"] and picker["value"] == page.evaluate("document.body.dataset.head")
    assert f"· head {picker['value']} ·" in page.text_content("#neuron-title")
    opened.check_clean()


def test_neuron_option_on_a_page_without_vectors_says_how_to_get_it(loaded_models, open_page):
    result = extract("the cat sat", model=loaded_models["bert"])
    page = open_page(result).page
    option = page.eval_on_selector(
        "#view option[value='neuron']", "o => ({disabled: o.disabled, text: o.textContent, title: o.title})"
    )
    assert option["disabled"]
    assert "--view neuron" in option["text"] and "--view neuron" in option["title"]


@pytest.mark.parametrize("width", [1400, 800])
def test_neuron_view_rows_sit_level_and_captions_over_their_columns(loaded_models, browser, tmp_path, width):
    result = extract("the cat sat on the mat", model=loaded_models["bert"], layers="1", heads="1", vectors=True)
    path = tmp_path / "page.html"
    path.write_text(render_html(result), encoding="utf-8")
    page = browser.new_page(viewport={"width": width, "height": 900})
    try:
        page.goto(path.as_uri())
        page.wait_for_selector("body[data-ready='1']")
        page.click("#neuron-queries li:nth-child(3)")
        boxes = page.evaluate(
            """(() => {
              const box = (e) => { const r = e.getBoundingClientRect(); return {top: r.top, bottom: r.bottom, left: r.left, right: r.right}; };
              const all = (s) => [...document.querySelectorAll(s)].map(box);
              const caption = document.getElementById('neuron-query-caption');
              return {keys: all('#neuron-keys li'), keyText: [...document.querySelectorAll('#neuron-keys li')].map(e => e.textContent),
                      queries: all('#neuron-queries li'), numbers: all('#neuron-numbers tbody tr'),
                      vectors: box(document.getElementById('neuron-canvas')), query: box(document.getElementById('neuron-query')),
                      products: box(document.getElementById('neuron-products')), caption: box(caption),
                      heading: box(document.querySelector('.neuron .caption.kv')),
                      captionText: caption.textContent, captionCut: caption.scrollWidth > caption.clientWidth || caption.scrollHeight > caption.clientHeight};
            })()"""
        )
        n = len(result.tokens.display)
        assert boxes["keyText"] == list(result.tokens.display)  # each key row is labelled with its token
        row = (boxes["vectors"]["bottom"] - boxes["vectors"]["top"]) / n  # the canvas holds one row per key
        for j in range(n):
            top = boxes["vectors"]["top"] + j * row
            for column in ("keys", "queries", "numbers"):  # the label, the query picker and the numbers: level
                assert abs(boxes[column][j]["top"] - top) <= 1, (column, j, boxes[column][j], top)
                assert abs(boxes[column][j]["bottom"] - (top + row)) <= 1, (column, j)
        caption, query = boxes["caption"], boxes["query"]
        dim = result.vectors["encoder"]["query"].shape[-1]
        assert boxes["captionText"] == f"query vector of 'cat' ({dim} values)"  # whole, never cut
        assert not boxes["captionCut"]
        column_right = max(query["right"], boxes["heading"]["right"])  # the query vector's (and key vectors') column
        assert abs(caption["left"] - query["left"]) <= 1 and caption["right"] <= column_right + 1
        assert caption["bottom"] <= query["top"] + 1 and caption["right"] <= boxes["products"]["left"]
        assert page.evaluate("document.documentElement.scrollWidth") <= width
    finally:
        page.close()
