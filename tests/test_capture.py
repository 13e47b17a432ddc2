"""Selective capture at the attention function, checked family by family against
transformers' own eager ``output_attentions`` on the same token ids."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import families
import numpy as np
import pytest

from attnviz.extraction import Extractor, TextInput

TEXTS = ["the cat sat on the mat and the dog ran fast", "AI changes everything", "a bird sang"]
TARGET = "the dog sat on a mat"


@pytest.fixture(scope="session")
def family_models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("families")
    return {name: families.build(name, root) for name in families.ALL}


def _eager_reference(path: Path, loaded, encoded) -> list[dict[str, np.ndarray]]:
    """Every layer's attention from transformers' eager implementation with
    ``output_attentions``, one input at a time (no padding), as [layers, heads, q, k]."""
    import torch

    model = type(loaded.model).from_pretrained(str(path), attn_implementation="eager").eval()
    out = []
    for item in encoded:
        inputs = {"input_ids": torch.tensor([item.ids])}
        inputs.update({name: torch.tensor([values]) for name, values in item.extra.items()})
        if loaded.family == "encoder-decoder":
            inputs["decoder_input_ids"] = torch.tensor([item.target_ids])
        with torch.no_grad():
            result = model(**inputs, output_attentions=True, return_dict=True)
        if loaded.family == "encoder-decoder":
            fields = {
                "encoder": result.encoder_attentions,
                "decoder": result.decoder_attentions,
                "cross": result.cross_attentions,
            }
        else:
            fields = {"decoder" if loaded.family == "decoder" else "encoder": result.attentions}
        out.append({kind: torch.stack(list(layers), 1)[0].numpy() for kind, layers in fields.items()})
    return out


@pytest.mark.parametrize("name", families.ALL)
def test_capture_equals_eager_output_attentions(name, family_models):
    from attnviz.models import load_model

    loaded = load_model(str(family_models[name]), device="cpu")
    everything = Extractor(loaded)
    items = [TextInput(t, target=TARGET if loaded.family == "encoder-decoder" else None) for t in TEXTS]
    encoded = [everything.encode(item) for item in items]
    reference = _eager_reference(family_models[name], loaded, encoded)

    batched = everything.run_batch(encoded)
    one_by_one = [everything.run_batch([e])[0] for e in encoded]
    picked = Extractor(loaded, layers=1, heads=[0, 3]).run_batch(encoded)
    for ref, full, single, chosen in zip(reference, batched, one_by_one, picked):
        assert set(full.kinds) == set(ref)
        for kind, expected in ref.items():
            np.testing.assert_allclose(full.attentions[kind], expected, atol=1e-5, err_msg=f"{name} {kind} batched")
            np.testing.assert_allclose(single.attentions[kind], expected, atol=1e-5, err_msg=f"{name} {kind} single")
            np.testing.assert_allclose(
                chosen.attentions[kind], expected[1:2][:, [0, 3]], atol=1e-5, err_msg=f"{name} {kind} layer 1 heads 0,3"
            )
            assert chosen.layer_ids[kind] == (1,) and chosen.head_ids[kind] == (0, 3)
    # DeBERTa-v2 computes attention its own way: it falls back, and says so
    assert (everything.capture_note is not None) == (name == "deberta_v2")


def test_sliding_window_and_causality_are_eager_s(family_models):
    """Mistral's window of 4: a query sees at most its 4 latest keys, none in the future."""
    from attnviz.models import load_model

    result = Extractor(load_model(str(family_models["mistral"]), device="cpu")).run_batch(
        [Extractor(load_model(str(family_models["mistral"]), device="cpu")).encode(TextInput(TEXTS[0]))]
    )[0]
    array = result.attentions["decoder"]
    n = array.shape[-1]
    query, key = np.indices((n, n))
    assert np.all(array[..., key > query] == 0)
    assert np.all(array[..., query - key >= 4] == 0)
    np.testing.assert_allclose(array.sum(-1), 1.0, atol=1e-5)


def test_attention_sinks_leave_rows_below_one_and_say_so(family_models):
    from attnviz.extraction import extract
    from attnviz.models import load_model

    result = extract(TEXTS[0], model=load_model(str(family_models["gpt_oss"]), device="cpu"))
    sums = result.attentions["decoder"].sum(-1)
    assert np.all(sums < 1 - 1e-3) and np.all(sums > 0)
    assert result.meta()["attention_sinks"] is True


@pytest.mark.parametrize("name", ["llama", "t5", "bert"])
def test_small_chunks_give_the_same_numbers(name, family_models):
    """Chunking over query rows (here one row at a time) changes memory, not values."""
    from attnviz.models import load_model

    loaded = load_model(str(family_models[name]), device="cpu")
    item = TextInput(TEXTS[0], target=TARGET if loaded.family == "encoder-decoder" else None)
    whole = Extractor(loaded)
    tiny = Extractor(loaded, chunk_bytes=1)
    a = whole.run_batch([whole.encode(item)])[0]
    b = tiny.run_batch([tiny.encode(item)])[0]
    for kind in a.kinds:
        np.testing.assert_allclose(a.attentions[kind], b.attentions[kind], atol=1e-6)


def test_head_mean_is_the_mean_of_the_selected_heads(family_models):
    from attnviz.extraction import extract
    from attnviz.models import load_model

    loaded = load_model(str(family_models["qwen2"]), device="cpu")
    full = extract(TEXTS[0], model=loaded)
    mean = extract(TEXTS[0], model=loaded, layers=slice(0, 2), heads=[1, 2, 5], head_mean=True)
    expected = full.attentions["decoder"][:, [1, 2, 5]].mean(axis=1, keepdims=True)
    np.testing.assert_allclose(mean.attentions["decoder"], expected, atol=1e-6)
    assert mean.head_ids["decoder"] == (-1,)
    assert mean.transforms == ("select(layers=0:2,heads=1,2,5)", "mean_heads")


def test_python_selection_accepts_ints_sequences_slices_and_strings(family_models):
    from attnviz.extraction import extract
    from attnviz.models import load_model

    loaded = load_model(str(family_models["bert"]), device="cpu")
    for layers, heads in [(1, 2), ([1], [2]), (slice(1, 2), slice(2, 3)), ("1", "2")]:
        result = extract("the cat", model=loaded, layers=layers, heads=heads)
        assert result.layer_ids["encoder"] == (1,) and result.head_ids["encoder"] == (2,)


def test_bert2bert_loads_as_an_encoder_decoder(family_models):
    from attnviz.models import describe_model

    info = describe_model(str(family_models["bert2bert"]))
    assert info.family == "encoder-decoder"
    assert info.layers == {"encoder": 2, "decoder": 2, "cross": 2}


@pytest.mark.slow
def test_one_head_of_a_long_text_keeps_memory_bounded(tmp_path):
    """Peak RSS in a fresh process: one head of 2,048 tokens on an 8-layer x 16-head Llama
    against capturing every head. Everything is 8 x 16 x 2048^2 x 4 B = 2 GiB of output."""
    script = textwrap.dedent(
        """
        import json, resource, sys
        import torch, transformers as tf
        from attnviz.capture import CallLayout
        sys.path.insert(0, "benchmarks")
        from bench_capture import build_llama, capture_ids
        model = build_llama(layers=8, heads=16, kv_heads=4, hidden=128)
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        arrays = capture_ids(model, 2048, layers=sys.argv[1], heads=sys.argv[2])
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print(json.dumps({"before_kb": before, "after_kb": after, "shape": list(arrays.shape)}))
        """
    )
    root = Path(__file__).resolve().parents[1]
    one = json.loads(
        subprocess.run(
            [sys.executable, "-c", script, "3", "5"], cwd=root, capture_output=True, text=True, check=True
        ).stdout
    )
    assert one["shape"] == [1, 1, 2048, 2048]
    # one head: 16 MiB of output; the model and activations are small. Everything would add 2 GiB.
    assert one["after_kb"] - one["before_kb"] < 400 * 1024, one


@pytest.mark.parametrize(
    ("name", "kind"), [("bert", None), ("gpt2", None), ("llama", None), ("t5", "decoder"), ("deberta_v2", None)]
)
@pytest.mark.parametrize("no_special", [False, True])
def test_streamed_statistics_equal_statistics_of_whole_maps(name, kind, no_special, family_models):
    """stats reduces row chunks as they pass (a chunk of 2 rows here); the sums must be
    those of the whole maps, with and without special tokens. deberta_v2 takes the
    output_attentions fallback through the same sink."""
    from attnviz.analysis.stats import head_statistics, stream_statistics
    from attnviz.models import load_model
    from attnviz.transforms import apply_transforms

    loaded = load_model(str(family_models[name]), device="cpu")
    target = TARGET if loaded.family == "encoder-decoder" else None
    items = [TextInput(t, target=target) for t in TEXTS]
    whole = Extractor(loaded, layers="0,1", heads="1-2")
    expected = head_statistics(
        (apply_transforms(r, no_special=no_special) for r in whole.outcomes(items, batch_size=2)), kind
    )
    keys = max(len(e.ids) for e in map(whole.encode, items))
    streamed_extractor = Extractor(loaded, layers="0,1", heads="1-2", chunk_bytes=2 * 2 * keys * 4 * 2)
    seen = []
    streamed = stream_statistics(
        streamed_extractor,
        items,
        kind=kind,
        no_special=no_special,
        batch_size=2,
        on_input=lambda i, e: seen.append(i),
    )
    assert seen == [0, 1, 2]
    assert streamed.texts == expected.texts == 3
    assert (streamed.kind, streamed.layer_ids, streamed.head_ids) == (expected.kind, [0, 1], [1, 2])
    for statistic in expected.sums:
        np.testing.assert_allclose(streamed.sums[statistic], expected.sums[statistic], rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(streamed.counts[statistic], expected.counts[statistic])
    assert (streamed.labels() == expected.labels()).all()


def test_streamed_statistics_refuse_cross_attention(family_models):
    from attnviz.analysis.stats import stream_statistics
    from attnviz.errors import SelectionError
    from attnviz.models import load_model

    loaded = load_model(str(family_models["bart"]), device="cpu")
    with pytest.raises(SelectionError, match="square"):
        stream_statistics(Extractor(loaded), [TextInput("a b c", target="d e")], kind="cross")


@pytest.mark.parametrize(("name", "kind"), [("llama", None), ("t5", "cross"), ("bert", None)])
def test_compare_models_by_layer_groups_equals_whole_comparison(name, kind, family_models):
    """A budget of one byte forces one forward pass per layer; the sums must equal those
    of comparing the whole stored results."""
    import torch

    from attnviz.analysis.compare import compare_models, compare_results
    from attnviz.models import load_model
    from attnviz.transforms import drop_special

    a = load_model(str(family_models[name]), device="cpu")
    b = load_model(str(family_models[name]), device="cpu")
    torch.manual_seed(1)
    with torch.no_grad():
        for parameter in b.model.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
    target = TARGET if a.family == "encoder-decoder" else None
    items = [TextInput(t, target=target) for t in TEXTS]
    ea, eb = Extractor(a, heads="0,2"), Extractor(b, heads="0,2")
    expected = compare_results(
        [(drop_special(x), drop_special(y)) for x, y in zip(ea.outcomes(items), eb.outcomes(items))], kind
    )
    problems = []
    got = compare_models(
        [*items, TextInput("\udc80 bad")],
        ea,
        eb,
        kind=kind,
        transform=drop_special,
        batch_size=2,
        budget_bytes=1,
        on_problem=lambda item, message: problems.append(message),
    )
    assert len(problems) == 1
    assert got.texts == expected.texts == 3
    assert got.layer_ids == expected.layer_ids and got.head_ids == [0, 2]
    np.testing.assert_allclose(got.js, expected.js, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got.l1, expected.l1, rtol=1e-5, atol=1e-7)
    assert got.js.min() > 0


def _logits_to_attention(q, k, scaling, softcap=None, bias=None, sinks=None, zero=None):
    """softmax(q k^T * scaling (+ bias), soft-capped, masked where ``zero``) with an
    optional sink column, as the README states the reproduction."""
    logits = (q.astype(np.float64) @ k.astype(np.float64).T) * scaling
    if bias is not None:
        logits = logits + bias
    if softcap:
        logits = np.tanh(logits / softcap) * softcap
    if zero is not None:
        logits = np.where(zero, -np.inf, logits)
    if sinks is not None:
        logits = np.concatenate([logits, np.full((logits.shape[0], 1), float(sinks))], axis=1)
    logits = logits - logits.max(axis=1, keepdims=True)
    weights = np.exp(logits)
    weights /= weights.sum(axis=1, keepdims=True)
    return weights[:, : k.shape[0]]


@pytest.mark.parametrize("name", families.ALL)
def test_query_and_key_vectors_reproduce_the_attention(name, family_models):
    """The saved query and key vectors are exactly those of the model's dot product (after
    rotary, GQA keys of each head's group): softmax(query @ key.T * scaling + mask)
    reproduces the attention, with T5's position bias, Gemma 2's soft-capping and gpt-oss's
    sinks where the model has them. The mask is where the model's attention is exactly 0."""
    from attnviz.errors import SelectionError
    from attnviz.models import load_model

    loaded = load_model(str(family_models[name]), device="cpu")
    target = TARGET if loaded.family == "encoder-decoder" else None
    extractor = Extractor(loaded, vectors=True, layers="0,1", heads="0,1")
    if not extractor.layout().routed:
        with pytest.raises(SelectionError, match="computes its attention its own way"):
            extractor.run_batch([extractor.encode(TextInput(TEXTS[0], target=target))])
        return
    results = extractor.run_batch([extractor.encode(TextInput(t, target=target)) for t in TEXTS[:2]])
    for result in results:
        for kind, array in result.attentions.items():
            parts = result.vectors[kind]
            meta = result.extra_meta["vectors"][kind]
            assert parts["query"].shape[:3] == array.shape[:3] and parts["key"].shape[2] == array.shape[3]
            for li in range(array.shape[0]):
                for hi in range(array.shape[1]):
                    rebuilt = _logits_to_attention(
                        parts["query"][li, hi],
                        parts["key"][li, hi],
                        meta["scaling"][li],
                        meta["softcap"][li],
                        parts["bias"][li, hi] if "bias" in parts else None,
                        parts["sinks"][li, hi] if "sinks" in parts else None,
                        zero=array[li, hi] == 0,
                    )
                    np.testing.assert_allclose(rebuilt, array[li, hi], atol=2e-5, err_msg=f"{name} {kind} L{li} H{hi}")


def test_vectors_and_norms_survive_saving_and_selection(family_models, tmp_path):
    from attnviz.models import load_model
    from attnviz.result import AttentionResult
    from attnviz.transforms import select

    loaded = load_model(str(family_models["llama"]), device="cpu")
    extractor = Extractor(loaded, vectors=True, norms=True, layers="0,1")
    result = extractor.run_batch([extractor.encode(TextInput(TEXTS[0]))])[0]
    for suffix in (".npz", ".json"):
        result.save(tmp_path / f"r{suffix}")
        back = AttentionResult.load(tmp_path / f"r{suffix}")
        np.testing.assert_allclose(back.vectors["decoder"]["query"], result.vectors["decoder"]["query"], atol=1e-6)
        np.testing.assert_allclose(back.derived["norm"], result.derived["norm"], atol=1e-6)
    picked = select(result, layers="1", heads="2")
    np.testing.assert_array_equal(picked.vectors["decoder"]["key"][0, 0], result.vectors["decoder"]["key"][1, 2])
    np.testing.assert_array_equal(picked.derived["norm"][0, 0], result.derived["norm"][1, 2])


@pytest.mark.parametrize("name", families.ALL)
def test_norm_based_attention_for_every_family(name, family_models):
    """Every captured family has a plain linear output projection, so norm-based weights
    come out (alpha times a non-negative length: zero exactly where alpha is); a model
    whose attention bypasses the interface is refused with one clear error."""
    from attnviz.errors import SelectionError
    from attnviz.models import load_model

    loaded = load_model(str(family_models[name]), device="cpu")
    target = TARGET if loaded.family == "encoder-decoder" else None
    extractor = Extractor(loaded, norms=True, layers="0", kinds=[next(iter(loaded.info.layers))])
    item = extractor.encode(TextInput(TEXTS[0], target=target))
    if not extractor.layout().routed:
        with pytest.raises(SelectionError, match="computes its attention its own way"):
            extractor.run_batch([item])
        return
    result = extractor.run_batch([item])[0]
    kind = result.default_kind
    norm, alpha = result.derived["norm"], result.attentions[kind]
    assert norm.shape == alpha.shape and (norm >= 0).all()
    assert ((norm == 0) == (alpha == 0)).all()
    lengths = norm / np.where(alpha > 0, alpha, 1)
    # one length per key and head: the same in every query row where alpha > 0
    spread = np.where(alpha > 0, lengths, np.nan)
    assert np.nanmax(np.nanstd(spread, axis=2)) < 1e-3 * max(1.0, float(np.nanmax(spread)))


def test_device_map_auto_loads_and_captures_the_same_numbers(family_models):
    """--device-map auto (accelerate places the model; here everything fits the CPU) gives
    the same attention as a plain load."""
    pytest.importorskip("accelerate")
    from attnviz.models import load_model

    plain = load_model(str(family_models["llama"]), device="cpu")
    mapped = load_model(str(family_models["llama"]), device="cpu", device_map="auto")
    assert mapped.device == "cpu"
    item = TextInput(TEXTS[0])
    a = Extractor(plain, layers="1").run_batch([Extractor(plain).encode(item)])[0]
    b = Extractor(mapped, layers="1").run_batch([Extractor(mapped).encode(item)])[0]
    np.testing.assert_allclose(a.attentions["decoder"], b.attentions["decoder"], atol=1e-6)
