"""The neuron view marks "masked" exactly the keys the model's mask hides: a decoder's later
keys and, on sliding-window layers, the keys further back than the window. Checked against
the configs' layer types and the model's own eager probabilities, in the terminal, image
and page data, in Chromium, and for files written before windows were recorded."""

from __future__ import annotations

import io
import json
import shutil
import zipfile
from dataclasses import replace
from pathlib import Path

import families
import numpy as np
import pytest

from attnviz.extraction import Extractor, TextInput
from attnviz.render.neuron import hidden_keys, neuron_data, print_neuron
from attnviz.result import AttentionResult
from attnviz.transforms import select

TEXTS = ["the cat sat on the mat", "AI"]  # 11 and 2 tokens: the second one is left-padded
WINDOW = 3
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    """A two-layer Mistral with a window of 3 on every layer, gpt-oss (a sliding layer,
    then a full one, window 4) and ModernBERT (an encoder: full, local, full layers)."""
    import torch
    import transformers as tf

    root = tmp_path_factory.mktemp("windows")
    torch.manual_seed(3)
    mistral = tf.MistralForCausalLM(tf.MistralConfig(**families._ROPE, sliding_window=WINDOW))
    mistral.save_pretrained(root / "mistral")
    families._decoder_tokenizer().save_pretrained(root / "mistral")
    return {
        "mistral": root / "mistral",
        "gpt_oss": families.build("gpt_oss", root),
        "modernbert": families.build("modernbert", root),
    }


@pytest.fixture(scope="module")
def captured(models) -> dict[str, tuple[list[AttentionResult], list[np.ndarray], object]]:
    """Per model: the results of the two texts batched together (every layer and head,
    with vectors), the model's own eager probabilities of each text run alone, and its config."""
    import torch

    from attnviz.models import load_model

    out = {}
    for name, path in models.items():
        loaded = load_model(str(path), device="cpu")
        extractor = Extractor(loaded, vectors=True)
        encoded = [extractor.encode(TextInput(t)) for t in TEXTS]
        results = extractor.run_batch(encoded)
        eager = type(loaded.model).from_pretrained(str(path), attn_implementation="eager").eval()
        reference = []
        for item in encoded:
            with torch.no_grad():
                output = eager(input_ids=torch.tensor([item.ids]), output_attentions=True, return_dict=True)
            reference.append(torch.stack(list(output.attentions), 1)[0].double().numpy())
        out[name] = (results, reference, loaded.model.config)
    return out


def _config_windows(config) -> list[int | None]:
    """A layer's window from its config: every layer of a Mistral with ``sliding_window``;
    the ``sliding_attention`` layers of a model with ``layer_types``."""
    types = getattr(config, "layer_types", None) or ["sliding_attention"] * config.num_hidden_layers
    return [config.sliding_window if t == "sliding_attention" else None for t in types]


@pytest.mark.parametrize("name", ["mistral", "gpt_oss"])
def test_recorded_window_per_layer_follows_the_config(name, captured):
    results, _, config = captured[name]
    long, short = results
    expected = _config_windows(config)
    assert expected.count(None) < len(expected)  # the model does slide somewhere
    assert long.extra_meta["vectors"]["decoder"]["window"] == expected
    # 2 tokens: no key is as far back as a window of 3 or 4, so nothing slides there
    assert short.extra_meta["vectors"]["decoder"]["window"] == [None] * len(expected)
    # a selection keeps each layer's own window (and scaling) at its new position
    last = select(long, layers=[len(expected) - 1], heads=[0])
    assert last.extra_meta["vectors"]["decoder"]["window"] == expected[-1:]
    assert neuron_data(last, "decoder", 8).window == expected[-1]


@pytest.mark.parametrize("name", ["mistral", "gpt_oss"])
def test_masked_keys_are_exactly_where_the_model_gives_zero(name, captured):
    """Every layer, head and query of both texts (one of them left-padded in the batch):
    the keys marked masked are the model's own exact zeros, eager and unbatched."""
    results, reference, _ = captured[name]
    for result, probabilities in zip(results, reference):
        layers, heads, queries, _ = result.attentions["decoder"].shape
        assert probabilities.shape == result.attentions["decoder"].shape
        for layer in range(layers):
            for head in range(heads):
                one = select(result, layers=[layer], heads=[head])
                for query in range(queries):
                    masked = neuron_data(one, "decoder", query).masked
                    zero = probabilities[layer, head, query] == 0
                    np.testing.assert_array_equal(masked, zero, err_msg=f"L{layer} H{head} q{query}")


def test_an_encoder_window_hides_keys_on_both_sides(captured):
    """ModernBERT's local layers let a token see local_attention / 2 tokens either way."""
    results, reference, config = captured["modernbert"]
    result, probabilities = results[0], reference[0]
    half = config.local_attention // 2
    expected = [half + 1 if t == "sliding_attention" else None for t in config.layer_types]
    assert None in expected and result.extra_meta["vectors"]["encoder"]["window"] == expected
    layers, heads, queries, _ = result.attentions["encoder"].shape
    for layer in range(layers):
        one = select(result, layers=[layer], heads=[0])
        for query in range(queries):
            masked = neuron_data(one, "encoder", query).masked
            np.testing.assert_array_equal(masked, probabilities[layer, 0, query] == 0, err_msg=f"L{layer} q{query}")
            if expected[layer] is not None:
                assert np.flatnonzero(~masked).tolist() == [j for j in range(queries) if abs(j - query) <= half]


def test_window_hides_keys_further_back_than_the_window(captured):
    """The rule written out independently: query i sees keys i - 2, i - 1 and i."""
    results, _, _ = captured["mistral"]
    one = select(results[0], layers=[1], heads=[2])
    for query in range(11):
        seen = [j for j in range(11) if not neuron_data(one, "decoder", query).masked[j]]
        assert seen == list(range(max(0, query - WINDOW + 1), query + 1))


def _with_underflow(result: AttentionResult, query: int) -> tuple[AttentionResult, int, int]:
    """One visible key's weight set to exactly 0 (as underflow makes it) and another's to
    1e-30: both are keys the query saw."""
    array = result.attentions["decoder"].copy()
    zero, tiny = query - 1, query
    array[0, 0, query, zero] = 0.0
    array[0, 0, query, tiny] = 1e-30
    return replace(result, attentions={"decoder": array}), zero, tiny


def test_a_weight_that_underflowed_is_not_masked(captured):
    results, _, _ = captured["mistral"]
    one, zero, tiny = _with_underflow(select(results[0], layers=[1], heads=[0]), 6)
    data = neuron_data(one, "decoder", 6)
    assert data.weights[zero] == 0 and not data.masked[zero] and not data.masked[tiny]
    assert data.masked.tolist() == [True] * 4 + [False] * 3 + [True] * 4
    console = _console(80)
    print_neuron(data, console)
    rows = [line for line in console.file.getvalue().splitlines() if line[:3].strip().isdigit()]
    assert [("masked" in row) for row in rows] == data.masked.tolist()
    assert f"{data.dots[zero]:7.2f}" in rows[zero]  # its q·k still shows
    assert "sliding window of 3" in " ".join(console.file.getvalue().split())


def test_image_and_page_data_agree_with_the_terminal(captured):
    from attnviz.render.html import page_data
    from attnviz.render.neuron import neuron_figure

    results, _, _ = captured["gpt_oss"]
    result = results[0]
    document = page_data(result)
    assert document["kinds"]["decoder"]["vectors"]["window"] == [4, None]
    assert document["kinds"]["decoder"]["causal"] is True
    one = select(result, layers=[0], heads=[1])
    data = neuron_data(one, "decoder", 7)
    assert data.masked.tolist() == hidden_keys(11, 11, causal=True, window=4)[7].tolist()
    figure = neuron_figure(data)
    scores = next(ax for ax in figure.axes if ax.get_xlabel() == "score")
    widths = [bar.get_width() for bar in scores.patches]
    assert np.isnan(widths).tolist() == data.masked.tolist()  # no score bar for a hidden key
    rows = sorted(round(t.get_position()[1]) for t in scores.texts if t.get_text() == "masked")
    assert rows == np.flatnonzero(data.masked).tolist()


def test_a_file_without_windows_still_loads_and_a_bad_one_is_refused(captured, tmp_path):
    from attnviz.errors import InputError

    results, _, _ = captured["mistral"]
    one = select(results[0], layers=[1], heads=[0])
    path = tmp_path / "new.npz"
    one.save(path)
    with zipfile.ZipFile(path) as archive:
        fields = {n[:-4]: np.load(io.BytesIO(archive.read(n)), allow_pickle=False) for n in archive.namelist()}
    meta = json.loads(str(fields.pop("meta")))

    def write(name: str, window: object) -> Path:
        vectors = meta["vectors"]["decoder"]
        changed = {**meta, "vectors": {"decoder": {k: v for k, v in vectors.items() if k != "window"}}}
        if window != "absent":
            changed["vectors"]["decoder"]["window"] = window
        target = tmp_path / name
        np.savez(target, meta=np.array(json.dumps(changed)), **fields)
        return target

    old = AttentionResult.load(write("old.npz", "absent"))
    data = neuron_data(old, "decoder", 6)
    assert data.window is None and data.masked.tolist() == [False] * 7 + [True] * 4  # causal only
    assert AttentionResult.load(path).extra_meta["vectors"]["decoder"]["window"] == [WINDOW]
    for bad, words in (
        (["3"], "whole numbers"),
        ([0], "whole numbers"),
        ([True], "whole numbers"),
        ([3, 3], "1 layers"),
    ):
        with pytest.raises(InputError, match=words):
            AttentionResult.load(write("bad.npz", bad))


def _console(width: int):
    from rich.console import Console

    return Console(file=io.StringIO(), width=width, force_terminal=True, color_system=None)


@pytest.mark.browser
@pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (.ci/run installs it)")
def test_the_page_marks_the_window_hidden_keys_masked(captured, tmp_path):
    from playwright.sync_api import sync_playwright

    from attnviz.render.html import render_html

    results, _, _ = captured["mistral"]
    one, zero, _ = _with_underflow(select(results[0], layers=[1], heads=[0]), 6)
    expected = neuron_data(one, "decoder", 6)
    path = tmp_path / "page.html"
    path.write_text(render_html(one), encoding="utf-8")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(path.as_uri())
            page.wait_for_selector("body[data-ready='1']", timeout=15000)
            assert page.evaluate("document.body.dataset.view") == "neuron"
            page.click("#neuron-queries li:nth-child(7)")
            assert page.evaluate("document.body.dataset.query") == "6"
            cells = page.eval_on_selector_all(
                "#neuron-numbers tbody tr td:nth-child(2)", "cells => cells.map(c => c.textContent)"
            )
            title = page.text_content("#neuron-title")
        finally:
            browser.close()
    assert [c == "masked" for c in cells] == expected.masked.tolist()
    assert float(cells[zero]) == pytest.approx(expected.dots[zero], abs=0.006)  # underflowed, still shown
    assert "sliding window 3" in title
    assert errors == []
