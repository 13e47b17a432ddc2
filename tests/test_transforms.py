"""Transforms against values computed independently in the test."""

from __future__ import annotations

import re

import numpy as np
import pytest

from attnviz.errors import SelectionError
from attnviz.result import AttentionResult, TokenSequence
from attnviz.transforms import drop_special, mean_heads, merge_words, parse_index_spec, select


def _random_rows(rng, shape):
    array = rng.random(shape)
    return (array / array.sum(-1, keepdims=True)).astype(np.float32)


def _result(tokens, word_ids, special, array):
    seq = TokenSequence.from_tokens(tokens, word_ids, special)
    return AttentionResult(
        model="test",
        family="encoder",
        text=" ".join(tokens),
        tokens=seq,
        attentions={"encoder": array},
        layer_ids={"encoder": tuple(range(array.shape[0]))},
        head_ids={"encoder": tuple(range(array.shape[1]))},
    )


@pytest.fixture
def pieces():
    rng = np.random.default_rng(1)
    tokens = ["[CLS]", "the", "cat", "##s", "play", "##ing", "##s", "[SEP]"]
    words = [-1, 0, 1, 1, 2, 2, 2, -1]
    special = [True, False, False, False, False, False, False, True]
    return _result(tokens, words, special, _random_rows(rng, (2, 3, 8, 8)))


def test_merge_words_sums_to_and_means_from(pieces):
    merged = merge_words(pieces)
    a = pieces.attentions["encoder"].astype(np.float64)
    groups = [[0], [1], [2, 3], [4, 5, 6], [7]]
    expected = np.zeros((2, 3, 5, 5))
    for wi, gi in enumerate(groups):
        for wj, gj in enumerate(groups):
            # FROM word wi: mean over its pieces; TO word wj: sum over its pieces
            expected[:, :, wi, wj] = a[:, :, gi][:, :, :, gj].sum(-1).mean(-1)
    np.testing.assert_allclose(merged.attentions["encoder"], expected, atol=1e-6)
    np.testing.assert_allclose(merged.attentions["encoder"].sum(-1), 1.0, atol=1e-6)
    assert merged.tokens.display == ("[CLS]", "the", "cats", "playings", "[SEP]")
    assert merged.transforms == ("merge_words",)


def test_drop_special_renormalises_rows(pieces):
    dropped = drop_special(pieces)
    a = pieces.attentions["encoder"][:, :, 1:7, 1:7].astype(np.float64)
    expected = a / a.sum(-1, keepdims=True)
    np.testing.assert_allclose(dropped.attentions["encoder"], expected, atol=1e-6)
    assert dropped.tokens.tokens == ("the", "cat", "##s", "play", "##ing", "##s")


def test_mean_heads(pieces):
    averaged = mean_heads(pieces)
    np.testing.assert_allclose(averaged.attentions["encoder"][:, 0], pieces.attentions["encoder"].mean(1), atol=1e-6)
    assert averaged.head_ids["encoder"] == (-1,)


def test_select_keeps_original_indices(pieces):
    chosen = select(pieces, layers="1", heads="0,2")
    assert chosen.layer_ids["encoder"] == (1,)
    assert chosen.head_ids["encoder"] == (0, 2)
    np.testing.assert_array_equal(chosen.attentions["encoder"][0, 1], pieces.attentions["encoder"][1, 2])


@pytest.mark.parametrize(
    "spec,expected",
    [
        ("all", (0, 1, 2, 3, 4, 5)),
        (None, (0, 1, 2, 3, 4, 5)),
        ("3", (3,)),
        (3, (3,)),
        ("2-4", (2, 3, 4)),
        ("0,5", (0, 5)),
        ("1-2,4", (1, 2, 4)),
        (" 0 - 1 ", (0, 1)),
    ],
)
def test_parse_index_spec(spec, expected):
    assert parse_index_spec(spec, 6) == expected


@pytest.mark.parametrize(
    "spec,message",
    [
        ("6", "layer 6 is out of range: this model has 6 layers (0-5)"),
        ("4-9", "layer 6 is out of range"),
        ("x", "is not an index"),
        ("-1", "is not an index"),
        ("4-2", "runs backwards"),
    ],
)
def test_parse_index_spec_errors_name_the_valid_range(spec, message):
    with pytest.raises(SelectionError, match=re.escape(message)) as caught:
        parse_index_spec(spec, 6)
    # the library names the axis; the command line words it as the flag
    assert not caught.value.message.startswith("--")
    assert caught.value.worded("--layer")[0].startswith("--layer")


def test_words_on_a_real_tokenizer(loaded_models):
    from attnviz.extraction import extract

    result = merge_words(extract("the cats playing", model=loaded_models["bert"]))
    assert result.tokens.display == ("[CLS]", "the", "cats", "playing", "[SEP]")
    np.testing.assert_allclose(result.attentions["encoder"].sum(-1), 1.0, atol=1e-5)


def test_no_special_on_encoder_decoder_keeps_every_kind_consistent(loaded_models):
    from attnviz.extraction import extract

    result = drop_special(extract("the cat sat", model=loaded_models["bart"], target="the dog"))
    assert "</s>" not in result.tokens.tokens and "<s>" not in result.target_tokens.tokens
    assert result.shape["cross"][2:] == (len(result.target_tokens), len(result.tokens))
    for array in result.attentions.values():
        np.testing.assert_allclose(array.sum(-1), 1.0, atol=1e-5)


def test_reader_words_follow_whitespace_through_the_offsets(bundled):
    """--words merges what a reader calls a word; the tokenizer's own words stay an option."""
    from attnviz.extraction import extract
    from attnviz.transforms import merge_words

    result = extract("Jane didn't email jane.doe@example.com", model=bundled, pair="Bob replied.")
    reader = merge_words(result)
    assert list(reader.tokens.display) == [
        "[CLS]", "jane", "didn't", "email", "jane.doe@example.com", "[SEP]", "bob", "replied.", "[SEP]",
    ]  # fmt: skip
    own = merge_words(result, "tokenizer")
    assert "didn" in own.tokens.display and "@" in own.tokens.display
    np.testing.assert_allclose(reader.attentions["encoder"].sum(-1), 1.0, atol=1e-5)
    assert list(reader.tokens.segment_ids) == [0] * 6 + [1] * 3


def test_reader_words_with_byte_level_bpe(loaded_models):
    """GPT-2 style tokens carry their leading space in the offsets; words still split at it."""
    from attnviz.extraction import extract
    from attnviz.transforms import merge_words

    result = extract("the cats sat", model=loaded_models["gpt2"])
    words = merge_words(result)
    assert [w.strip() for w in words.tokens.display] == ["the", "cats", "sat"]


def test_words_of_saved_files_round_trip(bundled, tmp_path):
    from attnviz.extraction import extract
    from attnviz.result import AttentionResult

    result = extract("didn't stop", model=bundled)
    result.save(tmp_path / "r.npz")
    loaded = AttentionResult.load(tmp_path / "r.npz")
    np.testing.assert_array_equal(loaded.tokens.word_ids, result.tokens.word_ids)
    np.testing.assert_array_equal(loaded.tokens.tokenizer_word_ids, result.tokens.tokenizer_word_ids)
