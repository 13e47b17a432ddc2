"""The npz and JSON formats of DESIGN.md, and their round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnviz.extraction import extract
from attnviz.result import SCHEMA, AttentionResult


def test_npz_holds_the_documented_fields(loaded_models, tmp_path):
    result = extract("the cats playing", model=loaded_models["bert"], pair="a dog")
    path = tmp_path / "out.npz"
    result.to_npz(path)
    with np.load(path, allow_pickle=False) as data:
        assert {"encoder", "tokens", "word_ids", "meta"} <= set(data.files)
        assert data["encoder"].dtype == np.float32
        np.testing.assert_array_equal(data["encoder"], result.attentions["encoder"])
        assert data["tokens"].tolist()[:3] == ["[CLS]", "the", "cat"]
        meta = json.loads(str(data["meta"]))
    assert meta["schema"] == SCHEMA
    assert meta["model"] == result.model and meta["text"] == "the cats playing" and meta["pair"] == "a dog"
    assert meta["attnviz"] and meta["transformers"]
    assert meta["transforms"] == []


def test_encoder_decoder_npz_has_source_and_target_tokens(loaded_models, tmp_path):
    result = extract("the cat", model=loaded_models["t5"], target="a dog")
    result.to_npz(tmp_path / "t5.npz")
    with np.load(tmp_path / "t5.npz") as data:
        assert {"encoder", "decoder", "cross", "source_tokens", "target_tokens"} <= set(data.files)
        assert "tokens" not in data.files
    loaded = AttentionResult.load(tmp_path / "t5.npz")
    assert loaded.target_tokens.tokens == result.target_tokens.tokens
    np.testing.assert_array_equal(loaded.attentions["cross"], result.attentions["cross"])


def test_json_round_trip(loaded_models, tmp_path):
    result = extract("the cat sat", model=loaded_models["gpt2"])
    result.to_json(tmp_path / "r.json")
    document = json.loads((tmp_path / "r.json").read_text())
    assert document["meta"]["schema"] == SCHEMA
    assert np.asarray(document["decoder"]).shape == result.attentions["decoder"].shape
    back = AttentionResult.load(tmp_path / "r.json")
    np.testing.assert_allclose(back.attentions["decoder"], result.attentions["decoder"])
    assert back.tokens.display == result.tokens.display


def test_from_arrays_makes_a_result_every_renderer_takes(tmp_path):
    from attnviz.render.image import render_figure
    from attnviz.render.views import build_view
    from attnviz.result import AttentionResult

    rng = np.random.default_rng(0)
    raw = rng.random((2, 3, 4, 4))
    raw /= raw.sum(-1, keepdims=True)
    result = AttentionResult.from_arrays(raw, ["[CLS]", "the", "cat", "[SEP]"], model="mine")
    assert result.family == "encoder" and list(result.tokens.special_mask) == [True, False, False, True]
    np.testing.assert_allclose(result.attentions["encoder"], raw, atol=1e-7)
    assert len(build_view(result, "grid").panels) == 6
    render_figure(result, "mean")
    result.save(tmp_path / "mine.npz")
    assert AttentionResult.load(tmp_path / "mine.npz").model == "mine"
    one_head = AttentionResult.from_arrays(raw[0, 0], ["a", "b", "c", "d"], kind="decoder")
    assert one_head.shape == {"decoder": (1, 1, 4, 4)} and one_head.family == "decoder"


@pytest.mark.parametrize(
    ("attention", "tokens", "message"),
    [
        (np.ones((2, 2, 3, 3)) / 3, ["a", "b"], "the tokens give 2 x 2"),
        (np.full((1, 1, 2, 2), np.nan), ["a", "b"], "finite"),
        (np.ones((1, 1, 1, 2, 2)), ["a", "b"], "not 5-d"),
        ({"sideways": np.ones((1, 1, 2, 2))}, ["a", "b"], "unknown attention kind"),
    ],
)
def test_from_arrays_checks_what_it_is_given(attention, tokens, message):
    from attnviz.errors import InputError
    from attnviz.result import AttentionResult

    with pytest.raises(InputError, match=message):
        AttentionResult.from_arrays(attention, tokens)


def test_to_bertviz_gives_what_head_view_takes(loaded_models):
    import torch

    from attnviz.extraction import extract

    result = extract("the cat sat", model=loaded_models["bert"], pair="a dog", layers="1-2")
    attention, tokens, sentence_b_start = result.to_bertviz()
    assert isinstance(attention, tuple) and len(attention) == 2
    assert all(
        isinstance(layer, torch.Tensor) and layer.shape == (1, 4, len(tokens), len(tokens)) for layer in attention
    )
    np.testing.assert_array_equal(attention[1][0].numpy(), result.attentions["encoder"][1])
    assert tokens == list(result.tokens.tokens) and sentence_b_start == result.tokens.pair_start
    t5 = extract("the cat", model=loaded_models["t5"], target="a dog")
    kwargs = t5.to_bertviz()
    assert set(kwargs) == {
        "encoder_attention",
        "decoder_attention",
        "cross_attention",
        "encoder_tokens",
        "decoder_tokens",
    }
    assert kwargs["cross_attention"][0].shape[-2:] == (len(kwargs["decoder_tokens"]), len(kwargs["encoder_tokens"]))
