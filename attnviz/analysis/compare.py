"""Compare the attention of two models on the same texts, per layer and head.

* ``js``: Jensen-Shannon divergence, base 2 (0 = identical rows, 1 = disjoint support), of
  each query row, averaged over query rows;
* ``l1``: sum_j |a_ij - b_ij| of each query row (0-2), averaged over query rows.

Both are kept as sums and counts of query rows, so several texts pool every row.

:func:`compare_models` runs the two models over the texts a few at a time and, where the
maps of a batch would be large, a group of layers at a time, so memory stays within a
budget however many or long the texts are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnviz.errors import InputError
from attnviz.result import AttentionResult


def js_divergence_rows(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Base-2 Jensen-Shannon divergence along the last axis (rows must sum to 1)."""
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    m = 0.5 * (p + q)

    def kl(x: np.ndarray) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            terms = np.where(x > 0, x * (np.log2(np.where(x > 0, x, 1)) - np.log2(np.where(m > 0, m, 1))), 0.0)
        return terms.sum(-1)

    return np.clip(0.5 * kl(p) + 0.5 * kl(q), 0.0, 1.0)


@dataclass
class Comparison:
    """Per-head divergence between model A and model B, ``[layers, heads]`` sums and row counts."""

    model_a: str
    model_b: str
    kind: str
    layer_ids: list[int]
    head_ids: list[int]
    texts: int = 0
    js_sum: np.ndarray | None = None
    l1_sum: np.ndarray | None = None
    rows: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    def add(self, a: AttentionResult, b: AttentionResult, *, new_text: bool = True) -> None:
        """Add one text's pair of results. They may hold a subset of the layers (a layer
        group of :func:`compare_models`); ``new_text`` False adds rows to a text already
        counted."""
        x, y = a.array(self.kind), b.array(self.kind)
        if x.shape[:2] != y.shape[:2]:
            raise InputError(
                f"the models differ in shape: {x.shape[0]}x{x.shape[1]} vs {y.shape[0]}x{y.shape[1]} layers x heads",
                hint="compare checkpoints of the same architecture",
            )
        if x.shape[2:] != y.shape[2:] or _labels(a, self.kind) != _labels(b, self.kind):
            raise _mismatch(a.text, x.shape[-1], y.shape[-1])
        shape = (len(self.layer_ids), len(self.head_ids))
        if self.js_sum is None or self.l1_sum is None or self.rows is None:
            self.js_sum, self.l1_sum, self.rows = np.zeros(shape), np.zeros(shape), np.zeros(shape)
        where = [self.layer_ids.index(layer) for layer in a.layer_ids[self.kind]]
        self.js_sum[where] += js_divergence_rows(x, y).sum(-1)
        self.l1_sum[where] += np.abs(x.astype(np.float64) - y.astype(np.float64)).sum(-1).sum(-1)
        self.rows[where] += float(x.shape[2])
        if new_text:
            self.texts += 1

    @property
    def js(self) -> np.ndarray:
        assert self.js_sum is not None and self.rows is not None
        return self.js_sum / self.rows

    @property
    def l1(self) -> np.ndarray:
        assert self.l1_sum is not None and self.rows is not None
        return self.l1_sum / self.rows

    #: Below this Jensen-Shannon divergence (bits) every head counts as unchanged.
    IDENTICAL = 1e-6

    @property
    def identical(self) -> bool:
        """True when no head's divergence reaches :attr:`IDENTICAL` (the same model twice,
        or checkpoints whose attention did not change)."""
        return float(self.js.max()) < self.IDENTICAL

    def heads(self) -> list[dict[str, Any]]:
        js, l1 = self.js, self.l1
        return [
            {
                "layer": int(layer),
                "head": int(head),
                "js": round(float(js[li, hi]), 8),
                "l1": round(float(l1[li, hi]), 8),
            }
            for li, layer in enumerate(self.layer_ids)
            for hi, head in enumerate(self.head_ids)
        ]

    def most_changed(self, count: int = 10) -> list[dict[str, Any]]:
        return sorted(self.heads(), key=lambda h: (-h["js"], h["layer"], h["head"]))[:count]

    def over(self, threshold: float) -> list[dict[str, Any]]:
        return [h for h in self.most_changed(len(self.heads())) if h["js"] > threshold]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_a": self.model_a,
            "model_b": self.model_b,
            "kind": self.kind,
            "texts": self.texts,
            "max_js": float(self.js.max()),
            "mean_js": float(self.js.mean()),
            "identical": self.identical,
            "heads": self.heads(),
            "notes": self.notes,
        }


def _labels(result: AttentionResult, kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return _axis_labels(*result.axes(kind))


def _axis_labels(queries: Any, keys: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Token labels of a map's two axes (:class:`~attnviz.result.TokenSequence`), compared
    case-insensitively; any special token matches any other ([CLS] in one model may be
    <s> in the other)."""

    def normal(sequence) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
        return tuple("<special>" if sequence.special_mask[i] else t.lower() for i, t in enumerate(sequence.display))

    return normal(queries), normal(keys)


def _mismatch(text: str, count_a: int, count_b: int) -> InputError:
    return InputError(
        f"the models tokenize '{_short(text)}' differently ({count_a} vs {count_b} tokens)",
        hint="compare models with the same tokenizer, or compare word by word ({words})",
        option="words",
    )


def _short(text: str) -> str:
    return text if len(text) <= 40 else text[:39] + "…"


def compare_results(pairs: list[tuple[AttentionResult, AttentionResult]], kind: str | None = None) -> Comparison:
    """Compare results of the same texts through two models, pairwise."""
    if not pairs:
        raise InputError("no texts to compare")
    first_a, first_b = pairs[0]
    kind = kind or first_a.default_kind
    comparison = Comparison(
        first_a.model, first_b.model, kind, list(first_a.layer_ids[kind]), list(first_a.head_ids[kind])
    )
    for a, b in pairs:
        comparison.add(a, b)
    return comparison


#: Bytes of attention (both models, one batch of texts, one group of layers) held at once
#: off CUDA; on CUDA the budget comes from free memory (:func:`compare_budget`).
DEFAULT_COMPARE_BYTES = 1 << 30

#: On CUDA, the share of free device memory the first model's maps of a group may take
#: (the second model's forward pass and capture chunks need the rest).
DEVICE_BUDGET_FRACTION = 1 / 4


def compare_budget(device: Any, *, mem_get_info: Callable[[Any], tuple[int, int]] | None = None) -> int:
    """Bytes of maps :func:`compare_models` holds at once on ``device``: a fixed
    :data:`DEFAULT_COMPARE_BYTES` off CUDA, on CUDA :data:`DEVICE_BUDGET_FRACTION` of the
    free memory (at least the default). ``mem_get_info`` as :func:`torch.cuda.mem_get_info`."""
    import torch

    device = torch.device(device)
    if device.type != "cuda":
        return DEFAULT_COMPARE_BYTES
    free, _ = (mem_get_info or torch.cuda.mem_get_info)(device)
    return max(DEFAULT_COMPARE_BYTES, int(free * DEVICE_BUDGET_FRACTION))


def layer_groups(layers: Sequence[int], bytes_per_layer: int, budget: int) -> list[list[int]]:
    """``layers`` cut into consecutive groups whose maps fit ``budget`` bytes (at least one
    layer per group)."""
    size = max(1, budget // max(1, bytes_per_layer))
    return [list(layers[i : i + size]) for i in range(0, len(layers), size)]


def compare_models(
    items: Iterable[Any],
    extractor_a: Any,
    extractor_b: Any,
    *,
    kind: str | None = None,
    no_special: bool = False,
    transform: Callable[[AttentionResult], AttentionResult] | None = None,
    batch_size: int = 16,
    budget_bytes: int | None = None,
    streamed: bool | None = None,
    on_problem: Callable[[Any, str], None] | None = None,
) -> Comparison:
    """Compare the attention of two models (two :class:`attnviz.extraction.Extractor` over the
    same layers and heads) on ``items``, ``batch_size`` texts at a time.

    Only ``kind`` is captured. When a batch's maps of every selected layer would pass
    ``budget_bytes`` (default :func:`compare_budget`), the layers are taken a group at a
    time (one forward pass per group and model), so peak memory follows the budget, not
    the text length or count. ``no_special`` drops special tokens and renormalises the rows
    (:func:`attnviz.transforms.drop_special`); ``transform`` (merge words...) runs on each
    result after that. A text that fails to encode in either model is passed to
    ``on_problem(item, message)`` and skipped; a tokenization mismatch between the models
    stops the comparison.

    Two ways, the same sums (to float64 rounding):

    * ``streamed``: the first model's maps of a group stay where they were computed
      (:class:`~attnviz.sinks.ReferenceMaps`) and the second model's blocks are reduced
      against them as they come (:class:`~attnviz.sinks.ComparisonSink`): on a GPU only
      the per-head sums reach the host, and the second model's maps are never kept.
    * otherwise both models' results are stored on the host and compared whole (needed
      for ``transform``; the numbers of earlier versions on CPU).

    ``streamed=None`` streams where the capture keeps the probabilities on the device
    (CUDA) and ``transform`` is None.
    """
    from attnviz.capture import takes_device_path
    from attnviz.errors import SelectionError
    from attnviz.extraction import Extractor, TextInput
    from attnviz.transforms import drop_special

    selection = extractor_a.selection
    kinds = list(selection.layers)
    chosen = kind or kinds[0]
    if chosen not in kinds:
        raise SelectionError(
            f"this {extractor_a.loaded.family} model has no '{chosen}' attention",
            hint=f"choose one of: {', '.join(kinds)}",
        )
    layers, heads = list(selection.layers[chosen]), list(selection.heads[chosen])
    other = extractor_b.selection
    if (other.layers.get(chosen), other.heads.get(chosen)) != (tuple(layers), tuple(heads)):
        shape_b = f"{len(other.layers.get(chosen, ()))}x{len(other.heads.get(chosen, ()))}"
        raise InputError(
            f"the models differ in shape: {len(layers)}x{len(heads)} vs {shape_b} layers x heads",
            hint="compare checkpoints of the same architecture",
        )
    device = extractor_a.loaded.device
    if streamed is None:
        streamed = transform is None and takes_device_path(device)
    elif streamed and transform is not None:
        raise ValueError("a transform needs whole results: compare with streamed=False")
    budget = compare_budget(device) if budget_bytes is None else budget_bytes
    comparison: Comparison | None = None

    def narrowed(extractor: Any, group: list[int]) -> Any:
        return Extractor(
            extractor.loaded,
            truncate=extractor.truncate,
            verbose=extractor.verbose,
            layers=group,
            heads=heads,
            chunk_bytes=extractor.chunk_bytes,
            kinds=[chosen],
        )

    def whole(group: list[int], number: int, encoded_a: list[Any], encoded_b: list[Any]) -> None:
        nonlocal comparison
        results_a = narrowed(extractor_a, group).run_batch(encoded_a)
        results_b = narrowed(extractor_b, group).run_batch(encoded_b)
        for a, b in zip(results_a, results_b):
            if no_special:
                a, b = drop_special(a), drop_special(b)
            if transform is not None:
                a, b = transform(a), transform(b)
            if comparison is None:
                comparison = Comparison(a.model, b.model, chosen, layers, heads)
            comparison.add(a, b, new_text=number == 0)

    def streaming(group: list[int], number: int, encoded_a: list[Any], encoded_b: list[Any], kept: list[Any]) -> None:
        nonlocal comparison
        from attnviz.sinks import ComparisonSink, ReferenceMaps

        if comparison is None:
            shape = (len(layers), len(heads))
            comparison = Comparison(
                extractor_a.loaded.name, extractor_b.loaded.name, chosen, layers, heads,
                js_sum=np.zeros(shape), l1_sum=np.zeros(shape), rows=np.zeros(shape),
            )  # fmt: skip
        reference = ReferenceMaps(chosen, group, heads)
        narrowed(extractor_a, group).reduce_batch(encoded_a, reference)
        sink = ComparisonSink(comparison, reference)
        sink.keep = [masks for masks, _ in kept]
        narrowed(extractor_b, group).reduce_batch(encoded_b, sink)
        reference.maps = []  # the group's maps freed before the next group's pass
        assert comparison.rows is not None
        where = [layers.index(layer) for layer in group]
        for _, rows in kept:
            comparison.rows[where] += float(rows)
        if number == 0:
            comparison.texts += len(encoded_a)

    def run(batch: list[TextInput]) -> None:
        encoded_a, encoded_b = [], []
        for item in batch:
            try:
                pair = extractor_a.encode(item), extractor_b.encode(item)
            except InputError as exc:
                if on_problem is not None:
                    on_problem(item, exc.message)
                continue
            encoded_a.append(pair[0])
            encoded_b.append(pair[1])
        if not encoded_a:
            return
        kept = [_kept(a, b, chosen, no_special) for a, b in zip(encoded_a, encoded_b)] if streamed else []
        per_layer = 0
        for e in encoded_a:
            source, target = len(e.ids), len(e.target_ids or [])
            q = source if chosen == "encoder" or e.target_ids is None else target
            k = target if chosen == "decoder" and e.target_ids is not None else source
            per_layer += (1 if streamed else 2) * len(heads) * q * k * 4  # streamed: only model A's maps are held
        for number, group in enumerate(layer_groups(layers, per_layer, budget)):
            if streamed:
                streaming(group, number, encoded_a, encoded_b, kept)
            else:
                whole(group, number, encoded_a, encoded_b)

    batch: list[TextInput] = []
    for item in items:
        batch.append(item if isinstance(item, TextInput) else TextInput(item))
        if len(batch) >= batch_size:
            run(batch)
            batch = []
    if batch:
        run(batch)
    if comparison is None:
        raise InputError("no texts to compare")
    return comparison


def _kept(a: Any, b: Any, kind: str, no_special: bool) -> tuple[tuple[np.ndarray, np.ndarray] | None, int]:
    """For one text's two encodings (:class:`~attnviz.extraction.EncodedInput`): the
    (query, key) masks of the tokens compared (None: all of them) and the number of query
    rows; checks, as :meth:`Comparison.add` does on whole results, that both models see
    the same tokens. With ``no_special`` the special tokens are dropped as
    :func:`attnviz.transforms.drop_special` drops them, with its error when none is left."""
    from attnviz.result import kind_axes
    from attnviz.transforms import special_keep

    masks: list[tuple[Any, Any, Any]] = []
    for e in (a, b):
        queries, keys = kind_axes(kind, e.tokens, e.target_tokens)
        if not no_special:
            masks.append((None, queries, keys))
            continue
        keep_source, keep_target = special_keep(e.tokens, e.target_tokens, e.item.target is not None)
        query_keep, key_keep = kind_axes(kind, keep_source, keep_target)
        masks.append(((query_keep, key_keep), queries.subset(query_keep), keys.subset(key_keep)))
    (keep, queries_a, keys_a), (_, queries_b, keys_b) = masks
    if _axis_labels(queries_a, keys_a) != _axis_labels(queries_b, keys_b):
        raise _mismatch(a.item.text, len(keys_a.tokens), len(keys_b.tokens))
    return keep, len(queries_a.tokens)
