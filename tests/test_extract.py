"""Extraction equals the model's own computation, for every family."""

from __future__ import annotations

import numpy as np
import pytest

from attnviz.extraction import Extractor, TextInput, extract

TEXTS = ["the cat sat on the mat", "a dog ran", "the bird was singing a slow song and the cat sat"]


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def test_bert_attention_equals_recomputation_from_weights(loaded_models):
    """Recompute every layer's attention from the weights: softmax(QK^T / sqrt(d))."""
    import torch

    loaded = loaded_models["bert"]
    model = loaded.model
    result = extract("the cat sat on the mat", model=loaded)
    ids = torch.tensor([loaded.tokenizer("the cat sat on the mat")["input_ids"]])
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    heads = model.config.num_attention_heads
    for layer_index, layer in enumerate(model.encoder.layer):
        x = hidden[layer_index][0].numpy().astype(np.float64)
        attn = layer.attention.self

        def project(linear, x=x):
            return x @ linear.weight.detach().numpy().T + linear.bias.detach().numpy()

        q, k = project(attn.query), project(attn.key)
        d = q.shape[-1] // heads
        q = q.reshape(len(x), heads, d).transpose(1, 0, 2)
        k = k.reshape(len(x), heads, d).transpose(1, 0, 2)
        expected = _softmax(q @ k.transpose(0, 2, 1) / np.sqrt(d))
        np.testing.assert_allclose(result.attentions["encoder"][layer_index], expected, atol=1e-5)


@pytest.mark.parametrize("name", ["bert", "distilbert", "roberta", "gpt2", "bart", "t5"])
def test_rows_sum_to_one_for_every_family(loaded_models, name):
    loaded = loaded_models[name]
    target = "the dog sat" if loaded.family == "encoder-decoder" else None
    result = extract("the cat sat on the mat", model=loaded, target=target)
    assert result.attentions
    for kind, array in result.attentions.items():
        assert array.dtype == np.float32
        assert array.ndim == 4
        np.testing.assert_allclose(array.sum(axis=-1), 1.0, atol=1e-5, err_msg=kind)


@pytest.mark.parametrize("name,kind", [("gpt2", "decoder"), ("bart", "decoder"), ("t5", "decoder")])
def test_causal_maps_are_zero_above_the_diagonal(loaded_models, name, kind):
    loaded = loaded_models[name]
    target = "the dog sat on a mat" if loaded.family == "encoder-decoder" else None
    array = extract("the cat sat on the mat", model=loaded, target=target).attentions[kind]
    n = array.shape[-1]
    upper = np.triu(np.ones((n, n), dtype=bool), k=1)
    assert n > 3
    assert np.all(array[..., upper] == 0.0)
    assert np.all(array[..., ~upper].sum() > 0)


def test_kinds_and_shapes_per_family(loaded_models):
    bart = extract("the cat sat", model=loaded_models["bart"], target="the dog")
    assert bart.kinds == ("encoder", "decoder", "cross")
    src, tgt = len(bart.tokens), len(bart.target_tokens)
    assert bart.shape["cross"] == (2, 2, tgt, src)
    assert bart.shape["decoder"] == (2, 2, tgt, tgt)
    assert bart.target_tokens.tokens[0] == "</s>"  # BART's decoder start token
    gpt = extract("the cat sat", model=loaded_models["gpt2"])
    assert gpt.kinds == ("decoder",)
    bert = extract("the cat sat", model=loaded_models["bert"])
    assert bert.kinds == ("encoder",)


@pytest.mark.parametrize("name", ["bert", "distilbert", "roberta", "gpt2", "bart", "t5"])
def test_batched_extraction_equals_single(loaded_models, name):
    loaded = loaded_models[name]
    seq2seq = loaded.family == "encoder-decoder"
    items = [
        TextInput(t, target=("the dog sat on " * (i + 1)).strip() if seq2seq else None) for i, t in enumerate(TEXTS)
    ]
    extractor = Extractor(loaded)
    batched = list(extractor.outcomes(items, batch_size=3))
    assert [r.text for r in batched] == TEXTS
    for item, together in zip(items, batched):
        alone = extractor.run_batch([extractor.encode(item)])[0]
        assert alone.tokens.tokens == together.tokens.tokens
        for kind in alone.kinds:
            assert alone.attentions[kind].shape == together.attentions[kind].shape
            np.testing.assert_allclose(together.attentions[kind], alone.attentions[kind], atol=2e-5, err_msg=kind)


def test_sentence_pair_knows_where_segment_b_starts(loaded_models):
    result = extract("the cat sat", model=loaded_models["bert"], pair="a dog ran fast")
    assert result.tokens.tokens == ("[CLS]", "the", "cat", "sat", "[SEP]", "a", "dog", "ran", "fast", "[SEP]")
    assert result.tokens.pair_start == 5
    assert result.tokens.segment_ids.tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    # word ids are unique across the two segments; specials are -1
    assert result.tokens.word_ids.tolist() == [-1, 0, 1, 2, -1, 3, 4, 5, 6, -1]


def test_token_type_ids_reach_the_model(loaded_models):
    """The pair's token_type_ids change BERT's attention: same tokens, different segments."""
    loaded = loaded_models["bert"]
    as_pair = extract("the cat", model=loaded, pair="sat")
    single = extract("the cat [SEP] sat", model=loaded)
    assert as_pair.tokens.tokens == single.tokens.tokens
    assert not np.allclose(as_pair.attentions["encoder"], single.attentions["encoder"])


def test_word_ids_and_display_tokens(loaded_models):
    result = extract("the cats playing", model=loaded_models["bert"])
    assert result.tokens.tokens == ("[CLS]", "the", "cat", "##s", "play", "##ing", "[SEP]")
    assert result.tokens.display == ("[CLS]", "the", "cat", "s", "play", "ing", "[SEP]")
    assert result.tokens.word_ids.tolist() == [-1, 0, 1, 1, 2, 2, -1]
    assert result.tokens.special_mask.tolist() == [True, False, False, False, False, False, True]


def test_long_text_is_truncated_and_counted(loaded_models):
    loaded = loaded_models["bert"]  # max 48 tokens
    text = " ".join(["cat"] * 100)
    result = extract(text, model=loaded)
    assert len(result.tokens) == 48
    assert result.truncated_tokens == 102 - 48
    assert result.tokens.tokens[-1] == "[SEP]"


def test_long_text_without_truncation_is_an_input_error(loaded_models):
    from attnviz.errors import InputError

    with pytest.raises(InputError, match="102 tokens, more than the model's maximum of 48"):
        extract(" ".join(["cat"] * 100), model=loaded_models["bert"], truncate=False)


@pytest.mark.parametrize("text", ["", "   \n\t "])
def test_empty_text_is_an_input_error(loaded_models, text):
    from attnviz.errors import InputError

    with pytest.raises(InputError, match="empty"):
        extract(text, model=loaded_models["bert"])


def test_one_bad_text_in_a_batch_does_not_lose_the_others(loaded_models):
    from attnviz.errors import InputError

    outcomes = list(Extractor(loaded_models["bert"]).outcomes(["the cat", "  ", "a dog"]))
    assert isinstance(outcomes[1], InputError)
    assert [o.text for o in (outcomes[0], outcomes[2])] == ["the cat", "a dog"]


def test_pair_on_a_decoder_is_refused(loaded_models):
    from attnviz.errors import InputError

    with pytest.raises(InputError, match="a sentence pair needs an encoder"):
        extract("the cat", model=loaded_models["gpt2"], pair="a dog")


def test_a_model_that_returns_no_attention_fails_clearly(loaded_models):
    """A model whose attention implementation drops the weights (as sdpa does)."""
    from dataclasses import replace

    import torch

    from attnviz.errors import NoAttentionError

    class Silent(torch.nn.Module):
        config = loaded_models["bert"].model.config

        def forward(self, **kwargs):
            from transformers.modeling_outputs import BaseModelOutput

            return BaseModelOutput(last_hidden_state=torch.zeros(1), attentions=())

    broken = replace(loaded_models["bert"], model=Silent())
    with pytest.raises(NoAttentionError, match="returned no encoder attention"):
        extract("the cat", model=broken)


@pytest.mark.slow
def test_bundled_model_matches_a_direct_eager_forward(bundled):
    import torch

    result = extract("AI changes everything", model=bundled)
    assert result.tokens.tokens == ("[CLS]", "ai", "changes", "everything", "[SEP]")
    assert result.shape == {"encoder": (6, 12, 5, 5)}
    from transformers import AutoModel

    from attnviz.models import bundled_model_path

    eager = AutoModel.from_pretrained(bundled_model_path(), attn_implementation="eager").eval()
    encoded = bundled.tokenizer("AI changes everything", return_tensors="pt")
    with torch.no_grad():
        direct = eager(**encoded, output_attentions=True).attentions
    # float32 round-off only: the capture multiplies one head's slice where eager multiplies all
    # heads at once, and the BLAS blocking (thread count) moves the last bits: 1.25e-6 was seen
    # on a loaded 2-core machine, so 1e-5 (a thousandth of the smallest weight shown) is the bound
    np.testing.assert_allclose(result.attentions["encoder"], torch.stack(direct, 1)[0].numpy(), atol=1e-5)
    # a real pretrained model: many heads put most of their weight on [CLS] or [SEP]
    special_mass = result.attentions["encoder"][..., [0, -1]].sum(-1).mean(-1)
    assert (special_mass > 0.5).sum() > 20


def _norm_reference_bert(loaded, text):
    """alpha_ij * || (x_j W_V^h + b_V^h) W_O^h || from the weights, in NumPy (Kobayashi et al. 2020)."""
    import torch

    model = loaded.model
    ids = torch.tensor([loaded.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True, output_attentions=True)
    heads = model.config.num_attention_heads
    layers = model.encoder.layer
    expected = []
    for index, layer in enumerate(layers):
        x = out.hidden_states[index][0].numpy().astype(np.float64)
        value = layer.attention.self.value
        v = x @ value.weight.detach().numpy().T + value.bias.detach().numpy()
        w_o = layer.attention.output.dense.weight.detach().numpy().astype(np.float64)  # [hidden, heads*d]
        d = v.shape[-1] // heads
        lengths = np.stack(
            [np.linalg.norm(v[:, h * d : (h + 1) * d] @ w_o[:, h * d : (h + 1) * d].T, axis=-1) for h in range(heads)]
        )  # [heads, tokens]
        expected.append(lengths)
    return np.stack(expected)  # [layers, heads, keys]


def test_norm_based_attention_equals_numpy_recomputation_bert(loaded_models):
    result = Extractor(loaded_models["bert"], norms=True).run_batch(
        [Extractor(loaded_models["bert"]).encode(TextInput("the cat sat on the mat"))]
    )[0]
    lengths = _norm_reference_bert(loaded_models["bert"], "the cat sat on the mat")
    expected = result.attentions["encoder"] * lengths[:, :, None, :]
    np.testing.assert_allclose(result.derived["norm"], expected, rtol=1e-4, atol=1e-5)
    norm = result.norm_weights()
    assert norm.transforms[-1] == "norm" and "Kobayashi" in norm.extra_meta["weights"]
    np.testing.assert_array_equal(norm.attentions["encoder"], result.derived["norm"])


def test_norm_based_attention_equals_numpy_recomputation_bundled(bundled):
    text = "The animal didn't cross the street because it was too tired."
    extractor = Extractor(bundled, norms=True)
    result = extractor.run_batch([extractor.encode(TextInput(text))])[0]
    lengths = _norm_reference_bert(bundled, text)
    np.testing.assert_allclose(
        result.derived["norm"], result.attentions["encoder"] * lengths[:, :, None, :], rtol=1e-4, atol=1e-5
    )
    # the point of the method: [CLS]/[SEP] get far less once what they send is counted
    raw_special = result.attentions["encoder"][..., [0, -1]].sum(-1).mean()
    norm = result.derived["norm"] / result.derived["norm"].sum(-1, keepdims=True)
    assert norm[..., [0, -1]].sum(-1).mean() < raw_special


def test_norm_based_attention_equals_numpy_recomputation_gpt2(loaded_models):
    import torch

    loaded = loaded_models["gpt2"]
    text = "the cat sat on the mat"
    extractor = Extractor(loaded, norms=True)
    result = extractor.run_batch([extractor.encode(TextInput(text))])[0]
    model = loaded.model
    ids = torch.tensor([loaded.tokenizer(text)["input_ids"]])
    with torch.no_grad():
        hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
    heads = model.config.n_head
    for index, block in enumerate(model.h):
        with torch.no_grad():
            x = block.ln_1(hidden[index])[0].numpy().astype(np.float64)
        w_attn = block.attn.c_attn.weight.detach().numpy()  # Conv1D: [hidden, 3*hidden]
        b_attn = block.attn.c_attn.bias.detach().numpy()
        hidden_size = x.shape[-1]
        v = x @ w_attn[:, 2 * hidden_size :] + b_attn[2 * hidden_size :]
        w_o = block.attn.c_proj.weight.detach().numpy().astype(np.float64)  # [heads*d, hidden]
        d = hidden_size // heads
        lengths = np.stack(
            [np.linalg.norm(v[:, h * d : (h + 1) * d] @ w_o[h * d : (h + 1) * d], axis=-1) for h in range(heads)]
        )
        expected = result.attentions["decoder"][index] * lengths[:, None, :]
        np.testing.assert_allclose(result.derived["norm"][index], expected, rtol=1e-4, atol=1e-5)
