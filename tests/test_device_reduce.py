"""The torch reductions equal today's NumPy ones (CPU tensors; float64 accumulation)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from attnviz import device_reduce
from attnviz.analysis.compare import js_divergence_rows
from attnviz.analysis.stats import STATISTICS, HeadStatistics, row_sums
from attnviz.extraction import TextInput


def attention(shape: tuple[int, ...], seed: int, zeros: bool = False) -> np.ndarray:
    """Rows that sum to 1, float32; with ``zeros`` some exact zeros (masked keys)."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=shape) * 3
    if zeros:
        logits[..., ::3] = -np.inf
    a = np.exp(logits - logits.max(-1, keepdims=True))
    return (a / a.sum(-1, keepdims=True)).astype(np.float32)


@pytest.mark.parametrize("zeros", [False, True])
def test_row_sums_equal_numpy(zeros: bool) -> None:
    n = 9
    block = attention((4, 5, n), seed=1, zeros=zeros)  # 4 heads, rows 3..7 of a 9x9 map
    rows = np.arange(3, 8)
    separator = np.zeros(n, bool)
    separator[[4, 8]] = True
    punctuation = np.zeros(n, bool)
    punctuation[[2, 5]] = True
    expected = row_sums(block, rows, separator, punctuation)
    got = device_reduce.row_sums(torch.from_numpy(block), rows, separator, punctuation)
    assert set(got) == set(STATISTICS)
    for name in STATISTICS:
        assert got[name].dtype == torch.float64
        np.testing.assert_allclose(got[name].numpy(), expected[name], rtol=1e-13, atol=1e-15, err_msg=name)


def test_row_sums_at_the_edges_of_the_map() -> None:
    # the first and last rows have no previous / next token
    block = attention((2, 2, 6), seed=2)
    rows = np.array([0, 5])
    masks = np.zeros(6, bool), np.zeros(6, bool)
    expected = row_sums(block, rows, *masks)
    got = device_reduce.row_sums(torch.from_numpy(block), rows, *masks)
    for name in STATISTICS:
        np.testing.assert_allclose(got[name].numpy(), expected[name], rtol=1e-13, err_msg=name)
    # hand-computed: previous is row 5's mass on key 4, next is row 0's mass on key 1
    np.testing.assert_allclose(got["previous"].numpy(), block[:, 1, 4].astype(np.float64))
    np.testing.assert_allclose(got["next"].numpy(), block[:, 0, 1].astype(np.float64))


def test_renormalised_rows_equal_the_statistics_sink() -> None:
    block = attention((3, 4, 7), seed=3)[:, :, 1:5]  # special keys dropped: rows no longer sum to 1
    block[0, 2] = 0.0  # a row with nothing left stays zero
    total = block.sum(axis=-1, keepdims=True, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        expected = np.where(total > 0, block / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)
    got = device_reduce.renormalised_rows(torch.from_numpy(block)).numpy()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, expected)


def test_head_mean_equals_the_float64_mean() -> None:
    block = attention((12, 5, 5), seed=4)
    got = device_reduce.head_mean(torch.from_numpy(block)).numpy()
    np.testing.assert_array_equal(got, block.mean(axis=0, dtype=np.float64).astype(np.float32))


@pytest.mark.parametrize("zeros", [False, True])
def test_comparison_sums_equal_numpy(zeros: bool) -> None:
    a = attention((3, 4, 6, 6), seed=5, zeros=zeros)
    b = attention((3, 4, 6, 6), seed=6)
    js, l1 = device_reduce.comparison_sums(torch.from_numpy(a), torch.from_numpy(b))
    np.testing.assert_allclose(js.numpy(), js_divergence_rows(a, b).sum(-1), rtol=1e-12, atol=1e-15)
    l1_numpy = np.abs(a.astype(np.float64) - b.astype(np.float64)).sum(-1).sum(-1)
    np.testing.assert_allclose(l1.numpy(), l1_numpy, rtol=1e-13)
    # the same maps: divergence 0
    same, distance = device_reduce.comparison_sums(torch.from_numpy(a), torch.from_numpy(a))
    assert float(same.abs().max()) < 1e-12 and float(distance.max()) == 0.0


def test_norm_lengths_and_weights_equal_the_direct_product() -> None:
    generator = torch.Generator().manual_seed(7)
    heads, keys, head_dim, hidden = [1, 3], 5, 4, 16
    weight = torch.randn(hidden, 4 * head_dim, generator=generator)
    value = torch.randn(len(heads), keys, head_dim, generator=generator)
    lengths = device_reduce.norm_lengths(value, weight, heads)
    for position, head in enumerate(heads):
        sent = value[position] @ weight[:, head * head_dim : (head + 1) * head_dim].T  # [keys, hidden]
        np.testing.assert_allclose(lengths[position].numpy(), sent.norm(dim=-1).numpy(), rtol=1e-5)
    block = torch.from_numpy(attention((2, 3, keys), seed=8))
    weighted = device_reduce.norm_weighted(block, lengths)
    np.testing.assert_array_equal(weighted.numpy(), block.numpy() * lengths.numpy()[:, None, :])


def test_device_statistics_flush_adds_to_the_host_sums() -> None:
    stats = HeadStatistics("m", "encoder", [0, 2], [0, 1, 2])
    for name in STATISTICS:
        stats.sums[name] = np.ones((2, 3))
    kept = device_reduce.DeviceStatistics(stats, "cpu")
    block = attention((2, 3, 3), seed=9)
    masks = np.zeros(3, bool), np.zeros(3, bool)
    sums = device_reduce.row_sums(torch.from_numpy(block), np.arange(3), *masks)
    kept.add(1, [0, 2], sums)
    kept.add(1, [0, 2], sums)
    assert stats.sums["entropy"][1, 0] == 1.0  # nothing on the host before the flush
    kept.flush()
    expected = row_sums(block, np.arange(3), *masks)
    for name in STATISTICS:
        np.testing.assert_allclose(stats.sums[name][1, [0, 2]], 1 + 2 * expected[name], rtol=1e-13)
        np.testing.assert_array_equal(stats.sums[name][0], np.ones(3))
        assert stats.sums[name][1, 1] == 1.0
    kept.add(0, [1], {name: values[:1] for name, values in sums.items()})
    kept.discard()
    kept.flush()
    np.testing.assert_array_equal(stats.sums["self"][0], np.ones(3))


# -- the capture's device path, run on CPU tensors with a deferred copy backend ------------
TEXTS = ["the cat sat on the mat.", "the dog", "a dog ran in the park, and the cat watched it go."]


class DeferredCopies:
    """Copies land only when waited for, as on a side stream."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        self.count = 0
        self.staged = 0

    def empty_host(self, numel: int) -> torch.Tensor:
        return torch.full((numel,), float("nan"))

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        self.count += 1
        self.queue.append((self.count, dst, src.clone()))

    def record(self) -> int:
        return self.count

    def wait(self, marker: int) -> None:
        while self.queue and self.queue[0][0] <= marker:
            _, dst, src = self.queue.pop(0)
            dst.copy_(src)


def on_device_path(run: Any) -> tuple[Any, DeferredCopies]:
    from attnviz.capture import device_reductions
    from attnviz.transfer import ChunkCopier

    backend = DeferredCopies()
    with device_reductions(ChunkCopier(backend)):
        return run(), backend


@pytest.mark.parametrize("name", ["bert", "gpt2", "t5"])
@pytest.mark.parametrize("mean", [False, True])
def test_kept_heads_through_the_device_path_equal_the_host_path(loaded_models: Any, name: str, mean: bool) -> None:
    from attnviz.extraction import Extractor

    extractor = Extractor(loaded_models[name], head_mean=mean, chunk_bytes=700)  # several chunks per layer
    encoded = [extractor.encode(TextInput(t)) for t in TEXTS]
    expected = extractor.run_batch(encoded)
    got, backend = on_device_path(lambda: extractor.run_batch(encoded))
    assert backend.count > 0 and not backend.queue  # copies were made, and all landed
    for a, b in zip(got, expected):
        assert set(a.attentions) == set(b.attentions)
        for kind in b.attentions:
            if mean:  # float64 means summed in another order: equal to float32 rounding
                np.testing.assert_allclose(a.attentions[kind], b.attentions[kind], rtol=1e-6, atol=1e-8)
            else:
                np.testing.assert_array_equal(a.attentions[kind], b.attentions[kind])


def test_norm_weights_through_the_device_path_equal_the_host_path(loaded_models: Any) -> None:
    from attnviz.extraction import Extractor

    extractor = Extractor(loaded_models["bert"], norms=True)
    encoded = [extractor.encode(TextInput(t)) for t in TEXTS]
    expected = extractor.run_batch(encoded)
    got, _ = on_device_path(lambda: extractor.run_batch(encoded))
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.attentions["encoder"], b.attentions["encoder"])
        np.testing.assert_allclose(a.derived["norm"], b.derived["norm"], rtol=1e-6)


@pytest.mark.parametrize("no_special", [False, True])
@pytest.mark.parametrize("name", ["bert", "gpt2"])
def test_statistics_summed_on_the_device_equal_numpy(
    loaded_models: Any, name: str, no_special: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attnviz.analysis.stats import stream_statistics
    from attnviz.extraction import Extractor
    from attnviz.sinks import StatisticsSink

    extractor = Extractor(loaded_models[name], chunk_bytes=500)
    expected = stream_statistics(extractor, TEXTS, no_special=no_special, batch_size=2)

    def host_add(*args: Any) -> None:
        raise AssertionError("a block reached the host")

    monkeypatch.setattr(StatisticsSink, "add", host_add)
    got, backend = on_device_path(lambda: stream_statistics(extractor, TEXTS, no_special=no_special, batch_size=2))
    assert backend.count == 0  # no probabilities copied: only the sums, once per batch
    for name_ in expected.sums:
        np.testing.assert_allclose(got.sums[name_], expected.sums[name_], rtol=1e-12, atol=1e-12, err_msg=name_)
        np.testing.assert_array_equal(got.counts[name_], expected.counts[name_])
    assert (got.labels() == expected.labels()).all()


class Recorder:
    """A host-only sink (no ``add_device``): its blocks go through the pinned ring."""

    def __init__(self, layers: int, heads: int) -> None:
        self.layers, self.heads = layers, heads
        self.blocks: dict[tuple[int, int, int], np.ndarray] = {}

    def begin(self, encoded: list[Any]) -> None:
        self.blocks = {}

    def heads_for(self, kind: str, layer: int) -> tuple[int, ...]:
        return (1, 0) if layer < self.layers else ()

    def add(self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: np.ndarray) -> None:
        assert not np.isnan(block).any()  # never read before its copy landed
        self.blocks[(item, layer, row_start)] = block.copy()


def test_host_sinks_get_their_blocks_through_the_pinned_ring(loaded_models: Any) -> None:
    from attnviz.extraction import Extractor

    extractor = Extractor(loaded_models["bert"], chunk_bytes=300)
    encoded = [extractor.encode(TextInput(t)) for t in TEXTS]
    expected, got = Recorder(2, 2), Recorder(2, 2)
    extractor.reduce_batch(encoded, expected)
    _, backend = on_device_path(lambda: extractor.reduce_batch(encoded, got))
    assert len(expected.blocks) > 3 * 2  # several chunks per layer and input
    assert got.blocks.keys() == expected.blocks.keys()
    for key, block in expected.blocks.items():
        np.testing.assert_array_equal(got.blocks[key], block)


def test_query_and_key_vectors_need_no_staged_copy(loaded_models: Any) -> None:
    from attnviz.capture import device_reductions
    from attnviz.extraction import Extractor
    from attnviz.transfer import ChunkCopier

    extractor = Extractor(loaded_models["gpt2"], vectors=True)
    encoded = [extractor.encode(TextInput(t)) for t in TEXTS]
    expected = extractor.run_batch(encoded)
    copier = ChunkCopier(DeferredCopies())
    with device_reductions(copier):
        got = extractor.run_batch(encoded)
    assert copier.allocations == 0  # the kept heads went straight to their arrays, nothing through the ring
    for a, b in zip(got, expected):
        np.testing.assert_array_equal(a.attentions["decoder"], b.attentions["decoder"])
        for name in ("query", "key"):
            np.testing.assert_array_equal(a.vectors["decoder"][name], b.vectors["decoder"][name])


# -- compare: the second model's blocks reduced against the first model's maps --------------
@pytest.fixture(scope="module")
def model_pairs(tiny_models: Any) -> dict[str, tuple[Any, Any]]:
    """Each tiny model and a copy with its weights nudged: the same tokens, other attention."""
    from attnviz.models import load_model

    pairs = {}
    for name in ("bert", "gpt2", "t5"):
        a, b = load_model(str(tiny_models[name]), device="cpu"), load_model(str(tiny_models[name]), device="cpu")
        generator = torch.Generator().manual_seed(3)
        with torch.no_grad():
            for parameter in b.model.parameters():
                parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
        pairs[name] = (a, b)
    return pairs


def compare_items(name: str) -> list[TextInput]:
    target = "a short reply." if name == "t5" else None
    return [TextInput(t, target=target) for t in [*TEXTS, "the"]]


@pytest.mark.parametrize("no_special", [False, True])
@pytest.mark.parametrize(("name", "kind"), [("bert", None), ("gpt2", None), ("t5", "cross"), ("t5", "decoder")])
def test_comparison_summed_on_the_device_equals_whole_results(
    model_pairs: Any, name: str, kind: str | None, no_special: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The streamed comparison, on the device path (blocks as tensors, a group of layers at
    a time), equals comparing the stored whole results in NumPy; no probability block is
    copied to the host, and the second model's maps are never kept."""
    from attnviz.analysis.compare import compare_models, compare_results
    from attnviz.extraction import Extractor
    from attnviz.sinks import ComparisonSink, ReferenceMaps
    from attnviz.transforms import drop_special

    a, b = model_pairs[name]
    items = compare_items(name)
    heads = "0,2" if name == "bert" else "1"
    ea, eb = Extractor(a, heads=heads, chunk_bytes=400), Extractor(b, heads=heads, chunk_bytes=400)
    transform = drop_special if no_special else (lambda result: result)
    independent = compare_results(
        [(transform(x), transform(y)) for x, y in zip(ea.outcomes(items), eb.outcomes(items))], kind
    )  # other batches: equal to float32 rounding of the probabilities
    # the same batches and layer groups, compared whole on the host: equal to float64 rounding
    expected = compare_models(items, ea, eb, kind=kind, no_special=no_special, batch_size=2, budget_bytes=1)
    np.testing.assert_allclose(expected.js_sum, independent.js_sum, rtol=1e-5, atol=1e-7)
    np.testing.assert_array_equal(expected.rows, independent.rows)

    def host(*args: Any) -> None:
        raise AssertionError("a block reached the host")

    monkeypatch.setattr(ComparisonSink, "add", host)
    monkeypatch.setattr(ReferenceMaps, "add", host)
    got, backend = on_device_path(
        lambda: compare_models(items, ea, eb, kind=kind, no_special=no_special, batch_size=2, budget_bytes=1)
    )
    assert backend.count == 0  # nothing went through the copier: only the sums, once per pass
    assert got.texts == expected.texts == len(items)
    assert (got.kind, got.layer_ids, got.head_ids) == (expected.kind, expected.layer_ids, expected.head_ids)
    np.testing.assert_array_equal(got.rows, expected.rows)
    np.testing.assert_allclose(got.js_sum, expected.js_sum, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got.l1_sum, expected.l1_sum, rtol=1e-12, atol=1e-13)
    assert got.js.min() > 0


@pytest.mark.parametrize("no_special", [False, True])
def test_streamed_comparison_on_cpu_equals_whole_results(model_pairs: Any, no_special: bool) -> None:
    """The same sinks off the device path (NumPy blocks) give the same sums as the stored
    results, and the same as the default (whole-result) way on CPU."""
    from attnviz.analysis.compare import compare_models
    from attnviz.extraction import Extractor

    a, b = model_pairs["gpt2"]
    items = compare_items("gpt2")
    ea, eb = Extractor(a, chunk_bytes=300), Extractor(b, chunk_bytes=300)
    whole = compare_models(items, ea, eb, no_special=no_special, batch_size=3)
    streamed = compare_models(items, ea, eb, no_special=no_special, batch_size=3, streamed=True, budget_bytes=1)
    assert streamed.texts == whole.texts
    np.testing.assert_array_equal(streamed.rows, whole.rows)
    np.testing.assert_allclose(streamed.js_sum, whole.js_sum, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(streamed.l1_sum, whole.l1_sum, rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("streamed", [False, True])
def test_both_ways_refuse_texts_the_models_tokenize_differently(model_pairs: Any, streamed: bool) -> None:
    from attnviz.analysis.compare import compare_models
    from attnviz.errors import InputError
    from attnviz.extraction import Extractor

    a, b = model_pairs["bert"]
    ea, eb = Extractor(a), Extractor(b)
    encode = eb.encode
    eb.encode = lambda item: encode(TextInput(item.text + " cat"))  # type: ignore[method-assign]
    with pytest.raises(InputError, match=r"tokenize 'the dog' differently \(4 vs 5 tokens\)"):
        compare_models([TextInput("the dog")], ea, eb, streamed=streamed)


def test_streamed_comparison_drops_special_tokens_as_drop_special_does(model_pairs: Any) -> None:
    """A text of special tokens only: the error drop_special gives, on both ways."""
    from attnviz.analysis.compare import compare_models
    from attnviz.errors import SelectionError
    from attnviz.extraction import Extractor

    a, b = model_pairs["bert"]
    for streamed in (False, True):
        with pytest.raises(SelectionError, match="only special tokens"):
            compare_models([TextInput("[SEP]")], Extractor(a), Extractor(b), no_special=True, streamed=streamed)


def test_compare_budget_follows_free_device_memory() -> None:
    from attnviz.analysis.compare import DEFAULT_COMPARE_BYTES, compare_budget

    assert compare_budget("cpu") == DEFAULT_COMPARE_BYTES
    free = 80 * 2**30
    assert compare_budget("cuda:0", mem_get_info=lambda device: (free, 2 * free)) == free // 4
    assert compare_budget("cuda:0", mem_get_info=lambda device: (2**20, 2**30)) == DEFAULT_COMPARE_BYTES
