"""Attribution methods and output kinds on tiny models, each against an independent
computation made here with transformers and torch directly (not attnviz's code paths)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import bert_vocab

TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def heads(tmp_path_factory, tiny_models):
    """Checkpoints of every output kind: embedding (BertModel), classifier, masked LM,
    decoder (GPT-2 LM head), encoder-decoder (T5)."""
    import torch
    import transformers as tf

    torch.manual_seed(1)
    root = tmp_path_factory.mktemp("heads")
    tokenizer = tf.BertTokenizer(vocab=bert_vocab())
    config = tf.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=32,
        max_position_embeddings=48,
        num_labels=3,
    )
    out = {"embedding": tiny_models["bert"], "next-token": tiny_models["gpt2"], "target-token": tiny_models["t5"]}
    for kind, cls in (("class", tf.BertForSequenceClassification), ("mask", tf.BertForMaskedLM)):
        cls(config).save_pretrained(root / kind)
        tokenizer.save_pretrained(root / kind)
        out[kind] = root / kind
    return out


@pytest.fixture(scope="module")
def attributors(heads):
    from attnviz.attribution import Attributor

    return {kind: Attributor.load(str(path), device="cpu", steps=64) for kind, path in heads.items()}


def reference_model(path, kind):
    import transformers as tf

    loader = {
        "embedding": tf.AutoModel,
        "class": tf.AutoModelForSequenceClassification,
        "mask": tf.AutoModelForMaskedLM,
        "next-token": tf.AutoModelForCausalLM,
        "target-token": tf.AutoModelForSeq2SeqLM,
    }[kind]
    return loader.from_pretrained(str(path), attn_implementation="eager").eval()


def encode(attributor, text, target=None):
    return attributor.encode(text, target)


def independent_scores(model, kind, ids_batch, output, decoder_ids=None, reference=None):
    """The score of each row of ``ids_batch`` computed from the raw model outputs."""
    import torch

    ids = torch.as_tensor(np.asarray(ids_batch))
    with torch.no_grad():
        if kind == "target-token":
            logits = model(input_ids=ids, decoder_input_ids=torch.as_tensor([decoder_ids] * len(ids))).logits
            return logits[:, -1, output["token_id"]].numpy()
        outputs = model(input_ids=ids)
        if kind == "embedding":
            pooled = outputs.last_hidden_state.mean(dim=1)
            pooled = pooled / pooled.norm(dim=-1, keepdim=True)
            return (pooled @ reference).numpy()
        if kind == "class":
            return outputs.logits[:, output["class_index"]].numpy()
        return outputs.logits[:, output["position"], output["token_id"]].numpy()


CASES = {
    "embedding": (TEXT, None),
    "class": (TEXT, None),
    "mask": ("the cat [MASK] on the mat", None),
    "next-token": (TEXT, None),
    "target-token": (TEXT, "the dog"),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_ablation_matches_single_forward_passes_for_every_output_kind(kind, heads, attributors):
    """Each token replaced by the mask/unk token in its own forward pass, scored here."""
    import torch

    attributor = attributors[kind]
    assert attributor.kind == kind
    text, target = CASES[kind]
    result = attributor.attribute(text, target=target, methods=["ablation"])
    encoded = encode(attributor, text, target)
    model = reference_model(heads[kind], kind)
    ids = list(encoded.ids)
    tokenizer = attributor.loaded.tokenizer
    stand_in = next(
        t for t in (tokenizer.mask_token_id, tokenizer.unk_token_id, tokenizer.pad_token_id) if t is not None
    )
    decoder = list(encoded.target_ids)[:-1] if target else None
    reference = None
    if kind == "embedding":
        with torch.no_grad():
            pooled = model(input_ids=torch.as_tensor([ids])).last_hidden_state.mean(dim=1)[0]
        reference = pooled / pooled.norm()
    full = independent_scores(model, kind, [ids], result.output, decoder, reference)[0]
    assert result.output["score"] == pytest.approx(float(full), abs=1e-4)
    if kind == "embedding":
        assert full == pytest.approx(1.0, abs=1e-5)
    if kind in ("class", "next-token", "mask"):  # the predicted class / token by default
        with torch.no_grad():
            logits = model(input_ids=torch.as_tensor([ids])).logits[0]
        row = logits if kind == "class" else logits[result.output["position"]]
        chosen = result.output["class_index"] if kind == "class" else result.output["token_id"]
        assert chosen == int(row.argmax())
    expected = np.full(len(ids), np.nan)
    for i, special in enumerate(encoded.tokens.special_mask):
        if special:
            continue
        variant = list(ids)
        variant[i] = stand_in
        expected[i] = full - independent_scores(model, kind, [variant], result.output, decoder, reference)[0]
    np.testing.assert_allclose(result.row("ablation"), expected, atol=1e-4, equal_nan=True)
    assert np.isnan(result.row("ablation")[np.asarray(encoded.tokens.special_mask)]).all()


def _embedding_gradient_setup(heads, attributor, text):
    import torch

    model = reference_model(heads["embedding"], "embedding")
    ids = torch.as_tensor([list(encode(attributor, text).ids)])
    embeds = model.get_input_embeddings()(ids).detach()
    with torch.no_grad():
        pooled = model(input_ids=ids).last_hidden_state.mean(dim=1)[0]
    unit = pooled / pooled.norm()

    def score(e):
        return model(inputs_embeds=e).last_hidden_state.mean(dim=1) @ unit

    return model, ids, embeds, score


def test_grad_x_input_is_the_gradient_of_the_projected_embedding_times_the_input(heads, attributors):
    attributor = attributors["embedding"]
    result = attributor.attribute(TEXT, methods=["grad-x-input"])
    _, ids, embeds, score = _embedding_gradient_setup(heads, attributor, TEXT)
    leaf = embeds.clone().requires_grad_(True)
    score(leaf).sum().backward()
    expected = (leaf.grad * embeds).sum(-1)[0].numpy().astype(np.float64)
    special = np.asarray(encode(attributor, TEXT).tokens.special_mask)
    expected[special] = np.nan
    np.testing.assert_allclose(result.row("grad-x-input"), expected, rtol=1e-4, atol=1e-6, equal_nan=True)


def test_integrated_gradients_are_complete_and_match_a_riemann_sum(heads, attributors):
    """Sum over tokens = score(x) - score(baseline) (completeness), and each token's value
    agrees with a 400-step midpoint rule computed here."""
    import torch

    attributor = attributors["embedding"]
    result = attributor.attribute(TEXT, methods=["integrated-gradients"])
    model, ids, embeds, score = _embedding_gradient_setup(heads, attributor, TEXT)
    special = np.asarray(encode(attributor, TEXT).tokens.special_mask)
    base_ids = ids.clone()
    base_ids[0, torch.as_tensor(~special)] = attributor.loaded.tokenizer.mask_token_id
    baseline = model.get_input_embeddings()(base_ids).detach()
    steps = 400
    alphas = ((torch.arange(steps, dtype=torch.float32) + 0.5) / steps)[:, None, None]
    points = (baseline + alphas * (embeds - baseline)).requires_grad_(True)  # one batch of all steps
    score(points).sum().backward()
    mean_gradient = points.grad.mean(dim=0, keepdim=True)
    expected = ((embeds - baseline) * mean_gradient).sum(-1)[0].numpy().astype(np.float64)
    with torch.no_grad():
        gap = float(score(embeds)[0] - score(baseline)[0])
    row = result.row("integrated-gradients")
    assert np.nansum(row) == pytest.approx(gap, rel=2e-3, abs=1e-4)
    expected[special] = np.nan
    np.testing.assert_allclose(row, expected, rtol=5e-3, atol=5e-4, equal_nan=True)


def _eager_attentions(heads, kind, ids):
    import torch

    model = reference_model(heads[kind], kind)
    with torch.no_grad():
        outputs = model(input_ids=torch.as_tensor([ids]), output_attentions=True, output_hidden_states=True)
    return model, outputs, np.stack([a[0].numpy() for a in outputs.attentions]).astype(np.float64)


def _rollout(attention):
    """Abnar & Zuidema, written out: A_hat = rownorm(mean_heads + I); R = A_hat_L ... A_hat_1."""
    result = None
    for layer in attention:
        a_hat = layer.mean(axis=0) + np.eye(layer.shape[-1])
        a_hat /= a_hat.sum(axis=-1, keepdims=True)
        result = a_hat if result is None else a_hat @ result
    return result


@pytest.mark.parametrize("kind", ["embedding", "next-token"])
def test_attention_and_rollout_follow_the_eager_weights_on_the_output_rows(kind, heads, attributors):
    attributor = attributors[kind]
    result = attributor.attribute(TEXT, methods=["attention", "rollout"])
    encoded = encode(attributor, TEXT)
    special = np.asarray(encoded.tokens.special_mask)
    _, _, attention = _eager_attentions(heads, kind, list(encoded.ids))
    rows = slice(None) if kind == "embedding" else slice(-1, None)  # mean pooling reads every row
    expected = {
        "attention": attention[-1].mean(axis=0)[rows].mean(axis=0),
        "rollout": _rollout(attention)[rows].mean(axis=0),
    }
    for method, values in expected.items():
        values = values.copy()
        values[special] = np.nan
        np.testing.assert_allclose(result.row(method), values, atol=1e-5, equal_nan=True)


def test_flow_is_the_max_flow_through_the_layered_graph(heads, attributors):
    """Flow from each output row to each input token, by networkx on the residual graph."""
    import networkx as nx

    attributor = attributors["embedding"]
    result = attributor.attribute(TEXT, methods=["flow"])
    encoded = encode(attributor, TEXT)
    _, _, attention = _eager_attentions(heads, "embedding", list(encoded.ids))
    layers, _, tokens, _ = attention.shape
    graph = nx.DiGraph()
    for layer in range(layers):
        a_hat = attention[layer].mean(axis=0) + np.eye(tokens)
        a_hat /= a_hat.sum(axis=-1, keepdims=True)
        for i in range(tokens):
            for j in range(tokens):
                graph.add_edge((layer + 1, i), (layer, j), capacity=float(a_hat[i, j]))
    flow = np.array([[nx.maximum_flow_value(graph, (layers, i), (0, j)) for j in range(tokens)] for i in range(tokens)])
    flow /= flow.sum(axis=1, keepdims=True)
    expected = flow.mean(axis=0)
    expected[np.asarray(encoded.tokens.special_mask)] = np.nan
    np.testing.assert_allclose(result.row("flow"), expected, atol=1e-4, equal_nan=True)


def test_norm_weights_are_alpha_times_the_length_of_what_each_key_sends(heads, attributors):
    """Kobayashi et al. 2020 on the last BERT layer: alpha_hij * ||(x_j W_V^h + b_V^h) W_O^h||."""
    import torch

    attributor = attributors["embedding"]
    result = attributor.attribute(TEXT, methods=["norm", "norm-rollout"])
    encoded = encode(attributor, TEXT)
    model, outputs, attention = _eager_attentions(heads, "embedding", list(encoded.ids))
    weights = []
    for layer_index, layer in enumerate(model.encoder.layer):
        hidden = outputs.hidden_states[layer_index][0]
        heads_n = attention.shape[1]
        with torch.no_grad():
            value = layer.attention.self.value(hidden)  # [T, hidden]
        size = value.shape[-1] // heads_n
        dense = layer.attention.output.dense.weight  # [hidden, hidden]
        per_head = []
        for h in range(heads_n):
            with torch.no_grad():
                sent = value[:, h * size : (h + 1) * size] @ dense[:, h * size : (h + 1) * size].T
            per_head.append(attention[layer_index, h] * sent.norm(dim=-1).numpy()[None, :])
        weights.append(np.stack(per_head))
    weights = np.stack(weights)
    special = np.asarray(encoded.tokens.special_mask)
    norm = weights[-1].mean(axis=0).mean(axis=0)
    norm_rollout = _rollout(weights).mean(axis=0)
    for method, values in (("norm", norm), ("norm-rollout", norm_rollout)):
        values = values.copy()
        values[special] = np.nan
        np.testing.assert_allclose(result.row(method), values, rtol=1e-4, atol=1e-5, equal_nan=True)


@pytest.mark.parametrize("kind", ["class", "next-token"])
def test_grad_rollout_follows_chefer_with_retained_gradients(kind, heads, attributors):
    """R = I; R += mean_heads((dS/dA * A)^+) R per layer, with dS/dA from retain_grad on
    eager output_attentions."""
    import torch

    attributor = attributors[kind]
    result = attributor.attribute(TEXT, methods=["grad-rollout"])
    encoded = encode(attributor, TEXT)
    model = reference_model(heads[kind], kind)
    ids = torch.as_tensor([list(encoded.ids)])
    embeds = model.get_input_embeddings()(ids).detach().requires_grad_(True)
    outputs = model(inputs_embeds=embeds, output_attentions=True)
    for attention in outputs.attentions:
        attention.retain_grad()
    if kind == "class":
        score = outputs.logits[0, result.output["class_index"]]
        row = 0
    else:
        score = outputs.logits[0, -1, result.output["token_id"]]
        row = len(encoded.ids) - 1
    score.backward()
    relevance = torch.eye(ids.shape[1], dtype=torch.float64)
    for attention in outputs.attentions:
        cam = (attention.grad[0].double() * attention[0].detach().double()).clamp(min=0).mean(dim=0)
        relevance = relevance + cam @ relevance
    expected = relevance[row].numpy()
    expected[np.asarray(encoded.tokens.special_mask)] = np.nan
    np.testing.assert_allclose(result.row("grad-rollout"), expected, rtol=1e-4, atol=1e-6, equal_nan=True)


def test_encoder_decoder_attention_is_the_cross_attention_of_the_scored_position(heads, attributors):
    import torch

    attributor = attributors["target-token"]
    result = attributor.attribute(TEXT, target="the dog", methods=["attention"])
    encoded = encode(attributor, TEXT, "the dog")
    model = reference_model(heads["target-token"], "target-token")
    decoder = list(encoded.target_ids)[:-1]
    with torch.no_grad():
        outputs = model(
            input_ids=torch.as_tensor([list(encoded.ids)]),
            decoder_input_ids=torch.as_tensor([decoder]),
            output_attentions=True,
        )
    expected = outputs.cross_attentions[-1][0].mean(dim=0)[-1].numpy().astype(np.float64)
    expected[np.asarray(encoded.tokens.special_mask)] = np.nan
    np.testing.assert_allclose(result.row("attention"), expected, atol=1e-5, equal_nan=True)
    assert result.output["token"] == "▁dog"


def test_default_methods_are_those_that_apply_and_attnlrp_says_why_only_when_asked(attributors):
    from attnviz.errors import SelectionError

    embedding = attributors["embedding"]
    chosen, notes = embedding.choose_methods(None, 8)
    assert chosen[0] == "ablation" and "grad-rollout" in chosen and "attnlrp" not in chosen
    assert not any("attnlrp" in n for n in notes)  # only asked for explicitly does it say why not
    seq2seq, notes = attributors["target-token"].choose_methods(None, 8)
    assert set(seq2seq) == {"ablation", "grad-x-input", "integrated-gradients", "attention"}
    with pytest.raises(SelectionError, match="lxt"):
        embedding.choose_methods(["attnlrp"], 8)
    with pytest.raises(SelectionError, match="unknown method"):
        embedding.choose_methods(["saliency"], 8)


def test_lxt_problem_is_the_import_error_under_transformers_5():
    pytest.importorskip("lxt", reason="lxt (the optional AttnLRP backend) is not installed")
    from attnviz.attribution.methods import lxt_problem

    assert "modeling_attn_mask_utils" in lxt_problem() or "validated" in lxt_problem()
