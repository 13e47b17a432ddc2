"""The npz and JSON formats of DESIGN.md, and their round trip."""

from __future__ import annotations

import json

import numpy as np

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
