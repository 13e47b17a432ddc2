"""Capture sinks: what receives the attention probabilities block by block.

A :class:`~attnviz.capture.CaptureSession` (or the ``output_attentions`` fallback in
:mod:`attnviz.extraction`) hands every sink the blocks it asks for through
:meth:`Sink.heads_for`; each sink keeps or reduces them its own way:

* :class:`StoreHeads` keeps the chosen heads as float32 arrays, or each layer's mean over
  them (``mean=True``, for rollout) without holding ``[heads, T, T]``;
* :class:`VectorStore` keeps the queries and keys (the neuron view);
* :class:`NormStore` scales each block by the length of what each key sends through the
  head (norm-based attention) and passes both on to two :class:`StoreHeads`;
* :class:`StatisticsSink` adds the rows straight into :class:`~attnviz.analysis.stats.HeadStatistics`.

A sink that also wants a layer's queries, keys and values (before the probabilities)
follows :class:`VectorSink`. Only NumPy here; torch is imported where a sink touches tensors.

On a CUDA device the session hands a :class:`DeviceSink` its blocks as tensors where they
were computed (``add_device``): :class:`StoreHeads` copies them (or their head mean)
straight into its pinned result arrays, :class:`StatisticsSink` sums them on the device
(:mod:`attnviz.device_reduce`), so only the maps asked for or the per-head sums cross the
bus. On CPU every sink gets NumPy blocks through ``add``, as it always has.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from attnviz.errors import SelectionError

if TYPE_CHECKING:
    from attnviz.analysis.stats import HeadStatistics


class Sink(Protocol):
    """Receives attention probabilities block by block.

    ``heads_for(kind, layer)``: the (original, 0-based) heads this sink needs of that layer,
    empty when none. ``add(item, kind, layer, heads, row_start, block)``: ``block`` is
    float32 ``[len(heads), rows, keys]`` for batch input ``item``, query rows
    ``row_start .. row_start + rows`` of its real (unpadded) tokens, all of its keys.
    """

    def heads_for(self, kind: str, layer: int) -> tuple[int, ...]: ...

    def add(
        self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: np.ndarray
    ) -> None: ...


class DeviceSink(Sink, Protocol):
    """A sink that can take its blocks on the device: ``add_device`` receives the same
    block as ``add``, as a float32 tensor on the device, and ``copier`` (a
    :class:`~attnviz.transfer.ChunkCopier`) for whatever must reach the host.
    ``use_device(device)`` is called before the first block of a pass; ``finish_device()``
    after the last one (the copier flushed), unless the pass failed."""

    def use_device(self, device: Any) -> None: ...

    def add_device(
        self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: Any, copier: Any
    ) -> None: ...

    def finish_device(self) -> None: ...


class VectorSink(Sink, Protocol):
    """A sink that is also handed, before the probabilities of a layer, the tensors that
    make them: ``parts`` holds ``query`` ``[heads, queries, head_dim]``, ``key`` and
    ``value`` ``[heads, keys, head_dim]`` (one input, padding removed) and, where the model
    has them, ``sinks`` and ``bias``; ``extras`` holds ``scaling``, ``softcap`` and
    ``window`` (the sliding window the mask applied to this input, or None)."""

    wants_vectors: bool

    def add_vectors(
        self,
        item: int,
        kind: str,
        layer: int,
        heads: tuple[int, ...],
        module: Any,
        parts: dict[str, Any],
        extras: dict[str, Any],
    ) -> None: ...


@dataclass
class StoreHeads:
    """Keeps the chosen layers and heads of each kind: ``arrays[item][kind]`` is float32
    ``[len(layers), len(heads), query, key]`` in the order of ``layers[kind]``/``heads[kind]``.
    With ``mean``, each layer's mean over the chosen heads is accumulated instead, without
    holding the heads: ``[len(layers), query, key]``."""

    layers: dict[str, tuple[int, ...]]
    heads: dict[str, tuple[int, ...]]
    mean: bool = False
    arrays: list[dict[str, np.ndarray]] = field(default_factory=list)

    def allocate(self, shapes: Sequence[dict[str, tuple[int, int]]]) -> None:
        """One buffer per input and kind; ``shapes[item][kind]`` = (queries, keys)."""
        self.arrays = [
            {
                kind: np.zeros(
                    (len(self.layers[kind]),) + (() if self.mean else (len(self.heads[kind]),)) + (q, k),
                    dtype=np.float32,
                )
                for kind, (q, k) in item.items()
                if kind in self.layers
            }
            for item in shapes
        ]

    def heads_for(self, kind: str, layer: int) -> tuple[int, ...]:
        return self.heads.get(kind, ()) if layer in self.layers.get(kind, ()) else ()

    def add(self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: np.ndarray) -> None:
        rows = slice(row_start, row_start + block.shape[1])
        target = self.arrays[item][kind][self.layers[kind].index(layer)]
        if self.mean:
            target[rows] = block.mean(axis=0, dtype=np.float64)
        else:
            target[:, rows] = block

    def use_device(self, device: Any) -> None:
        """Result arrays in pinned memory for a CUDA ``device``, so that blocks are copied
        straight into them (called before anything has been added)."""
        from attnviz.transfer import result_array

        self.arrays = [{kind: result_array(a.shape, device) for kind, a in item.items()} for item in self.arrays]

    def add_device(
        self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: Any, copier: Any
    ) -> None:
        """``add`` for a tensor block: one direct copy per head (or of the head mean,
        reduced on the device) into the final array."""
        import torch

        from attnviz.device_reduce import head_mean

        rows = slice(row_start, row_start + block.shape[1])
        target = torch.from_numpy(self.arrays[item][kind][self.layers[kind].index(layer)])
        if self.mean:
            copier.copy_into(target[rows], head_mean(block))
            return
        for position in range(block.shape[0]):  # each head's rows are contiguous in the target
            copier.copy_into(target[position, rows], block[position])

    def finish_device(self) -> None:
        return None


class VectorStore:
    """A capture sink that keeps, for the selected layers and heads, the query and key
    vectors of the model's dot product (after rotary embedding; for GQA the key of each
    head's key-value group) and what else enters the logits: ``vectors[item][kind]`` holds
    ``query`` ``[layers, heads, queries, head_dim]``, ``key`` ``[layers, heads, keys,
    head_dim]``, ``scaling`` (per layer), ``softcap``, ``window`` (per layer: the sliding
    window the mask applied, or None; :func:`attnviz.capture.applied_window`), ``sinks``
    ``[layers, heads]`` and T5's ``bias`` ``[layers, heads, queries, keys]`` where the model
    has them."""

    wants_vectors = True

    def __init__(self, layers: dict[str, tuple[int, ...]], heads: dict[str, tuple[int, ...]]) -> None:
        self.layers, self.heads = layers, heads
        self.vectors: list[dict[str, dict[str, Any]]] = []

    def allocate(self, count: int) -> None:
        self.vectors = [{} for _ in range(count)]

    def heads_for(self, kind: str, layer: int) -> tuple[int, ...]:
        return self.heads.get(kind, ()) if layer in self.layers.get(kind, ()) else ()

    def add(self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: np.ndarray) -> None:
        pass  # the probabilities go to the other sinks

    def add_device(
        self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: Any, copier: Any
    ) -> None:
        pass  # likewise on a GPU: nothing of the chunk needs to cross to the host for this sink

    def add_vectors(
        self,
        item: int,
        kind: str,
        layer: int,
        heads: tuple[int, ...],
        module: Any,
        parts: dict[str, Any],
        extras: dict[str, Any],
    ) -> None:
        n_layers = len(self.layers[kind])
        li = self.layers[kind].index(layer)
        store = self.vectors[item].setdefault(
            kind, {"scaling": [None] * n_layers, "softcap": [None] * n_layers, "window": [None] * n_layers}
        )
        store["scaling"][li] = extras["scaling"]
        store["softcap"][li] = None if extras["softcap"] is None else float(extras["softcap"])
        store["window"][li] = None if extras.get("window") is None else int(extras["window"])
        for name in ("query", "key", "sinks", "bias"):
            tensor = parts.get(name)
            if tensor is None:
                continue
            array = tensor.float().cpu().numpy()
            if name not in store:
                store[name] = np.zeros((n_layers,) + array.shape, dtype=np.float32)
            store[name][li] = array


def output_projection(model: Any, module: Any) -> Any:
    """The weight ``[hidden, heads * head_dim]`` of the linear map that reads an attention
    module's heads back into the residual stream (``o_proj``, ``out_proj``, BERT's
    ``output.dense``, GPT-2's ``c_proj``...), or None when the family has none we know."""
    import torch

    cache = getattr(model, "_attnviz_output_projections", None)
    if cache is None:
        cache = {}
        parents = {}
        for _, parent in model.named_modules():
            for child in parent.children():
                parents[id(child)] = parent
        for _, candidate in model.named_modules():
            weight = None
            for name in ("o_proj", "out_proj", "out_lin", "o", "Wo", "dense", "c_proj"):
                layer = getattr(candidate, name, None)
                if isinstance(layer, torch.nn.Linear):
                    weight = layer.weight
                    break
                if layer is not None and type(layer).__name__ == "Conv1D":  # GPT-2: y = x W + b
                    weight = layer.weight.T
                    break
            if weight is None:
                parent = parents.get(id(candidate))
                dense = getattr(getattr(parent, "output", None), "dense", None) if parent is not None else None
                if isinstance(dense, torch.nn.Linear) and getattr(parent, "self", None) is candidate:
                    weight = dense.weight  # BERT, RoBERTa: BertAttention.output.dense
            if weight is not None:
                cache[id(candidate)] = weight
        model._attnviz_output_projections = cache
    return cache.get(id(module))


class NormStore:
    """Norm-based attention (Kobayashi et al. 2020): for each selected head,
    ``alpha_ij * || (x_j W_V^h + b_V^h) W_O^h ||``, the attention weight times the length of
    what key token j actually sends through head h (the output bias left out). The length
    comes from the Gram matrix ``W_O^h^T W_O^h``, so no ``[keys, hidden]`` array is made."""

    wants_vectors = True

    def __init__(self, raw: StoreHeads, normed: StoreHeads, model: Any) -> None:
        self.store, self.normed, self.model = raw, normed, model
        self.lengths: dict[tuple[int, str, int], Any] = {}  # NumPy on CPU, tensors on the device path
        self.on_device = False

    def heads_for(self, kind: str, layer: int) -> tuple[int, ...]:
        return self.store.heads_for(kind, layer)

    def add_vectors(
        self,
        item: int,
        kind: str,
        layer: int,
        heads: tuple[int, ...],
        module: Any,
        parts: dict[str, Any],
        extras: dict[str, Any],
    ) -> None:
        weight = output_projection(self.model, module)
        value = parts["value"]  # [heads, keys, head_dim]
        head_dim = value.shape[-1]
        if weight is None or weight.shape[1] % head_dim:
            raise SelectionError(
                f"norm-based attention needs a plain linear output projection, which '{type(module).__name__}' lacks",
                hint="use the raw attention weights for this model",
            )
        if self.on_device:
            from attnviz.device_reduce import norm_lengths

            self.lengths[(item, kind, layer)] = norm_lengths(value, weight, heads)  # stays on the device
            return
        lengths = []
        for position, head in enumerate(heads):
            w = weight[:, head * head_dim : (head + 1) * head_dim].float()
            gram = w.T @ w  # [d, d]
            v = value[position].float()
            lengths.append(((v @ gram) * v).sum(-1).clamp(min=0).sqrt())
        self.lengths[(item, kind, layer)] = np.stack([t.cpu().numpy() for t in lengths]).astype(np.float32)

    def add(self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: np.ndarray) -> None:
        lengths = self.lengths[(item, kind, layer)]  # [heads, keys]
        self.store.add(item, kind, layer, heads, row_start, block)
        self.normed.add(item, kind, layer, heads, row_start, block * lengths[:, None, :])

    def use_device(self, device: Any) -> None:
        self.on_device = True
        self.store.use_device(device)
        self.normed.use_device(device)

    def add_device(
        self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: Any, copier: Any
    ) -> None:
        from attnviz.device_reduce import norm_weighted

        lengths = self.lengths[(item, kind, layer)]
        self.store.add_device(item, kind, layer, heads, row_start, block, copier)
        self.normed.add_device(item, kind, layer, heads, row_start, norm_weighted(block, lengths), copier)

    def finish_device(self) -> None:
        return None


class StatisticsSink:
    """A capture sink (see :meth:`attnviz.extraction.Extractor.reduce_batch`) that adds each
    block of attention rows straight into ``stats``: head statistics of a long text never
    hold ``[heads, T, T]``. With ``no_special``, special tokens are dropped from both axes
    and each row renormalised, exactly as :func:`attnviz.transforms.drop_special` does."""

    def __init__(self, stats: HeadStatistics, *, no_special: bool = False) -> None:
        self.stats = stats
        self.no_special = no_special
        self.layer_index = {layer: i for i, layer in enumerate(stats.layer_ids)}
        self.head_index = {head: i for i, head in enumerate(stats.head_ids)}
        self.items: list[tuple[np.ndarray | None, np.ndarray, np.ndarray, np.ndarray]] = []
        self.device_sums: Any = None  # a DeviceStatistics on the device path
        from attnviz.analysis.stats import STATISTICS

        for name in (*STATISTICS, "_log_keys"):
            shape = (len(stats.layer_ids), len(stats.head_ids))
            stats.sums.setdefault(name, np.zeros(shape))
            stats.counts.setdefault(name, np.zeros(shape))

    def begin(self, encoded: list[Any]) -> None:
        """Per input of the coming batch: which rows and keys count, and the token masks;
        the counts of query positions are added now (the sums arrive with the blocks)."""
        from attnviz.analysis.stats import check_square, text_counts, token_masks
        from attnviz.result import kind_axes

        self.items = []
        for e in encoded:
            queries, keys = kind_axes(self.stats.kind, e.tokens, e.target_tokens)
            if queries is not keys:
                check_square(())
            keep: np.ndarray | None = None
            if self.no_special:
                keep = ~np.asarray(queries.special_mask, dtype=bool)
                if not keep.any():
                    if self.stats.kind == "decoder" and e.target_tokens is not None and e.item.target is None:
                        keep = None  # only the decoder start token: drop_special keeps it too
                    else:
                        raise SelectionError(
                            "the text has only special tokens; nothing is left without them",
                            hint="keep the special tokens (drop {no_special})",
                            option="no_special",
                        )
            tokens = queries if keep is None else queries.subset(keep)
            n = len(tokens.tokens)
            rank = np.arange(len(queries.tokens)) if keep is None else np.cumsum(keep) - 1
            separator, punctuation = token_masks(tokens)
            self.items.append((keep, rank, separator, punctuation))
            for name, count in text_counts(n).items():
                self.stats.counts[name] += count
            self.stats.sums["_log_keys"] += n * np.log(max(n, 2))
            self.stats.counts["_log_keys"] += n
            self.stats.texts += 1

    def checkpoint(self) -> Any:
        """The sums and counts so far (a retried batch restores them first)."""
        return (
            {k: v.copy() for k, v in self.stats.sums.items()},
            {k: v.copy() for k, v in self.stats.counts.items()},
            self.stats.texts,
        )

    def restore(self, saved: Any) -> None:
        self.stats.sums, self.stats.counts, self.stats.texts = saved[0], saved[1], saved[2]
        if self.device_sums is not None:
            self.device_sums.stats = self.stats
            self.device_sums.discard()  # sums of the failed pass still on the device

    def heads_for(self, kind: str, layer: int) -> tuple[int, ...]:
        if kind != self.stats.kind or layer not in self.layer_index:
            return ()
        return tuple(self.stats.head_ids)

    def add(self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: np.ndarray) -> None:
        from attnviz.analysis.stats import row_sums
        from attnviz.transforms import renormalise_rows

        keep, rank, separator, punctuation = self.items[item]
        rows = np.arange(row_start, row_start + block.shape[1])
        if keep is not None:
            chosen = keep[rows]
            block = block[:, chosen][:, :, keep]
            rows = rows[chosen]
            if not rows.size:
                return
            block = renormalise_rows(block)
        sums = row_sums(block, rank[rows], separator, punctuation)
        li = self.layer_index[layer]
        hi = [self.head_index[h] for h in heads]
        for name, values in sums.items():
            self.stats.sums[name][li, hi] += values

    def use_device(self, device: Any) -> None:
        from attnviz.device_reduce import DeviceStatistics

        if self.device_sums is None or self.device_sums.device != device:
            self.device_sums = DeviceStatistics(self.stats, device)
        self.device_sums.stats = self.stats

    def add_device(
        self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: Any, copier: Any
    ) -> None:
        """``add`` on the device: the same selection and renormalisation, the sums kept
        there until :meth:`finish_device`."""
        import torch

        from attnviz import device_reduce

        keep, rank, separator, punctuation = self.items[item]
        rows = np.arange(row_start, row_start + block.shape[1])
        if keep is not None:
            chosen = keep[rows]
            rows = rows[chosen]
            if not rows.size:
                return
            picked_rows = torch.as_tensor(np.flatnonzero(chosen), device=block.device)
            picked_keys = torch.as_tensor(np.flatnonzero(keep), device=block.device)
            block = device_reduce.renormalised_rows(block.index_select(1, picked_rows).index_select(2, picked_keys))
        sums = device_reduce.row_sums(block, rank[rows], separator, punctuation)
        if self.device_sums is None:
            self.use_device(block.device)
        self.device_sums.add(self.layer_index[layer], [self.head_index[h] for h in heads], sums)

    def finish_device(self) -> None:
        """The pass's sums, from the device into ``stats`` (a few numbers per head)."""
        if self.device_sums is not None:
            self.device_sums.flush()


class ReferenceMaps:
    """The first model's maps of a comparison (:func:`attnviz.analysis.compare.compare_models`),
    kept where they were computed: ``maps[item]`` is ``[len(layers), len(heads), queries,
    keys]`` of attention ``kind``, a float32 tensor on the device path and a NumPy array
    otherwise, for :class:`ComparisonSink` to read while the second model runs."""

    def __init__(self, kind: str, layers: Sequence[int], heads: Sequence[int]) -> None:
        self.kind, self.layers, self.heads = kind, tuple(layers), tuple(heads)
        self.shapes: list[tuple[int, int]] = []
        self.maps: list[Any] = []

    def begin(self, encoded: list[Any]) -> None:
        from attnviz.result import kind_axes

        self.shapes = []
        for e in encoded:
            queries, keys = kind_axes(self.kind, e.tokens, e.target_tokens)
            self.shapes.append((len(queries.tokens), len(keys.tokens)))
        self.maps = [None] * len(encoded)

    def heads_for(self, kind: str, layer: int) -> tuple[int, ...]:
        return self.heads if kind == self.kind and layer in self.layers else ()

    def add(self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: np.ndarray) -> None:
        if self.maps[item] is None:
            self.maps[item] = np.zeros((len(self.layers), len(self.heads), *self.shapes[item]), dtype=np.float32)
        self.maps[item][self.layers.index(layer), :, row_start : row_start + block.shape[1]] = block

    def use_device(self, device: Any) -> None:
        return None

    def add_device(
        self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: Any, copier: Any
    ) -> None:
        """Nothing crosses to the host: the block is copied into the item's device tensor."""
        import torch

        if self.maps[item] is None:
            shape = (len(self.layers), len(self.heads), *self.shapes[item])
            self.maps[item] = torch.zeros(shape, dtype=torch.float32, device=block.device)
        self.maps[item][self.layers.index(layer), :, row_start : row_start + block.shape[1]] = block

    def finish_device(self) -> None:
        return None


class ComparisonSink:
    """The second model's blocks against :class:`ReferenceMaps`: each block's per-head sums
    of the Jensen-Shannon divergence and the L1 distance of its rows go straight into
    ``comparison`` (a :class:`~attnviz.analysis.compare.Comparison`), so the second model's
    maps are never kept. On the device path the sums stay on the device until the pass
    ends (:mod:`attnviz.device_reduce`); only ``[layers, heads]`` numbers cross the bus.

    ``keep[item]`` is ``(query_keep, key_keep)``, boolean masks of the tokens that count
    (special tokens dropped, each row renormalised as :func:`attnviz.transforms.drop_special`
    does), or None for every token. The row counts are the caller's to add."""

    def __init__(self, comparison: Any, reference: ReferenceMaps) -> None:
        self.comparison, self.reference = comparison, reference
        self.layer_index = {layer: i for i, layer in enumerate(comparison.layer_ids)}
        self.keep: list[tuple[np.ndarray, np.ndarray] | None] = []
        self.device_sums: tuple[Any, Any] | None = None

    def begin(self, encoded: list[Any]) -> None:
        return None  # the masks are set by the caller with the reference's batch

    def heads_for(self, kind: str, layer: int) -> tuple[int, ...]:
        return self.reference.heads_for(kind, layer)

    def _rows(self, item: int, row_start: int, rows: int) -> tuple[np.ndarray | None, np.ndarray | None]:
        """The positions within the block of the rows that count (None: all), and the keys."""
        keep = self.keep[item]
        if keep is None:
            return None, None
        return np.flatnonzero(keep[0][row_start : row_start + rows]), np.flatnonzero(keep[1])

    def add(self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: np.ndarray) -> None:
        from attnviz.analysis.compare import js_divergence_rows
        from attnviz.transforms import renormalise_rows

        li = self.reference.layers.index(layer)
        reference = self.reference.maps[item]
        if not isinstance(reference, np.ndarray):
            reference = reference.cpu().numpy()
        a = reference[li, :, row_start : row_start + block.shape[1]]
        b = block
        rows, keys = self._rows(item, row_start, block.shape[1])
        if rows is not None and keys is not None:
            if not rows.size:
                return
            a, b = (renormalise_rows(x[:, rows][:, :, keys]) for x in (a, b))
        where = self.layer_index[layer]
        assert self.comparison.js_sum is not None and self.comparison.l1_sum is not None
        self.comparison.js_sum[where] += js_divergence_rows(a, b).sum(-1)
        self.comparison.l1_sum[where] += np.abs(a.astype(np.float64) - b.astype(np.float64)).sum(-1).sum(-1)

    def use_device(self, device: Any) -> None:
        import torch

        shape = (len(self.comparison.layer_ids), len(self.comparison.head_ids))
        self.device_sums = tuple(torch.zeros(shape, dtype=torch.float64, device=device) for _ in range(2))  # type: ignore[assignment]

    def add_device(
        self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: Any, copier: Any
    ) -> None:
        import torch

        from attnviz import device_reduce

        li = self.reference.layers.index(layer)
        a = self.reference.maps[item][li, :, row_start : row_start + block.shape[1]]
        b = block
        rows, keys = self._rows(item, row_start, block.shape[1])
        if rows is not None and keys is not None:
            if not rows.size:
                return
            picked_rows = torch.as_tensor(rows, device=block.device)
            picked_keys = torch.as_tensor(keys, device=block.device)
            a, b = (
                device_reduce.renormalised_rows(x.index_select(1, picked_rows).index_select(2, picked_keys))
                for x in (a, b)
            )
        if self.device_sums is None:
            self.use_device(block.device)
        assert self.device_sums is not None
        js, l1 = device_reduce.comparison_sums(a, b)
        where = self.layer_index[layer]
        self.device_sums[0][where] += js
        self.device_sums[1][where] += l1

    def finish_device(self) -> None:
        """The pass's sums, from the device into the comparison (``[layers, heads]`` numbers)."""
        if self.device_sums is None:
            return
        assert self.comparison.js_sum is not None and self.comparison.l1_sum is not None
        self.comparison.js_sum += self.device_sums[0].cpu().numpy()
        self.comparison.l1_sum += self.device_sums[1].cpu().numpy()
        for total in self.device_sums:
            total.zero_()
