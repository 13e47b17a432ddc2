"""Selective attention capture at transformers' attention function (runs torch).

transformers 5 routes the attention of nearly every model through
``ALL_ATTENTION_FUNCTIONS[config._attn_implementation]``, calling it with the post-rotary
queries, keys and values of one layer. We register an implementation named ``attnviz``
that

* computes the layer's output with a fast kernel (torch's ``scaled_dot_product_attention``),
  or, for layers whose math sdpa cannot express (logit soft-capping, attention sinks),
  with the model's own eager function chunked over query rows;
* for the layers and heads a :class:`CaptureSession` asks for, recomputes the attention
  probabilities by calling the model's *own* ``eager_attention_forward`` on just those
  heads and a chunk of query rows at a time. The mask, sliding windows, scaling,
  soft-capping, sinks and relative position bias are therefore exactly eager's; GQA is
  handled by handing each selected head its own key-value group. Extra memory is about
  ``chunk_rows x keys`` per selected head.

Each chunk of probabilities is cut into one block per input of the batch (padding
removed) and handed to the session's sinks (:mod:`attnviz.sinks`: keep the heads, their
mean, the query and key vectors, norm-weighted maps, or head statistics).

On a CUDA device the probabilities do not go through pageable host memory: sinks that
can (:class:`~attnviz.sinks.DeviceSink`) take their blocks as tensors on the device (the
kept heads are copied straight into pinned result arrays, statistics are summed there),
and the others get theirs through a :class:`~attnviz.transfer.ChunkCopier` (reused pinned
buffers, non-blocking copies on a side stream, so the next chunk is computed while the last
one is copied). Chunks are then sized from the free device memory. On CPU (and MPS) every
sink gets NumPy blocks exactly as before.

A model whose attention does not go through the interface (DeBERTa-v2, BLOOM, Falcon
today) is detected by a probe forward pass and falls back to ``output_attentions``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import torch
import torch.nn.functional as F

# Re-exported: the sinks lived here; attnviz.sinks holds them now.
from attnviz.sinks import Sink as Sink
from attnviz.sinks import StoreHeads as StoreHeads
from attnviz.sinks import VectorSink

IMPLEMENTATION = "attnviz"
#: Bytes of float32 probabilities computed at once per layer (all selected heads, whole batch).
DEFAULT_CHUNK_BYTES = 64 * 2**20

_local = threading.local()
_registered = False


# -- registration ------------------------------------------------------------------------
def register() -> str:
    """Register the ``attnviz`` attention function and its (eager, additive float) mask
    format with transformers; returns the implementation name for ``from_pretrained``."""
    global _registered
    if not _registered:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface

        AttentionInterface.register(IMPLEMENTATION, attention_function)
        AttentionMaskInterface.register(IMPLEMENTATION, ALL_MASK_ATTENTION_FUNCTIONS["eager"])
        _registered = True
    return IMPLEMENTATION


# -- the layout of calls -------------------------------------------------------------------
@dataclass(frozen=True)
class CallLayout:
    """Which (kind, layer) each successive call of the attention function in one forward
    pass belongs to. ``routed`` is False when the model's attention bypasses the interface
    (or calls it in a way we cannot map onto its layers)."""

    calls: tuple[tuple[str, int], ...]
    routed: bool
    reason: str = ""


@dataclass
class BatchLayout:
    """Where each input's real tokens sit in the padded batch."""

    query_offsets: dict[str, list[int]]  # per kind: first real query row of each input
    query_lengths: dict[str, list[int]]
    key_offsets: dict[str, list[int]]
    key_lengths: dict[str, list[int]]


class CaptureSession:
    """Active for one forward pass: maps each attention call to its layer, computes the
    probabilities the sinks need, and cuts them per input."""

    def __init__(
        self,
        layout: CallLayout,
        sinks: Sequence[Sink],
        batch: BatchLayout | None = None,
        *,
        chunk_bytes: int = DEFAULT_CHUNK_BYTES,
        on_call: Callable[[Any, torch.Tensor, torch.Tensor, torch.Tensor, Any], None] | None = None,
    ) -> None:
        self.layout = layout
        self.sinks = list(sinks)
        self.batch = batch
        self.chunk_bytes = max(1, int(chunk_bytes))
        self.on_call = on_call
        self.calls = 0
        self.copier: Any = None  # a ChunkCopier once the device path is taken

    def __enter__(self) -> CaptureSession:
        if getattr(_local, "session", None) is not None:
            raise RuntimeError("a capture session is already active in this thread")
        _local.session = self
        return self

    def __exit__(self, *exc: object) -> None:
        _local.session = None
        if self.copier is None:
            return
        if exc and exc[0] is not None:
            self.copier.discard()  # a failed pass (out of memory): the caller restores its sinks
            return
        self.copier.flush()
        for sink in self.sinks:
            finish = getattr(sink, "finish_device", None)
            if finish is not None:
                finish()

    def _device_path(self, device: torch.device) -> bool:
        """Whether this pass keeps the probabilities on ``device`` (CUDA, or any device
        inside :func:`device_reductions`); sets up the copier and the sinks the first time."""
        if self.copier is not None:
            return True
        forced = getattr(_local, "device_copier", None)
        if device.type != "cuda" and forced is None:
            return False
        from attnviz.transfer import chunk_bytes_for

        self.copier = forced if forced is not None else _copier(device)
        if self.chunk_bytes == DEFAULT_CHUNK_BYTES:  # not chosen by the caller: from free memory
            self.chunk_bytes = chunk_bytes_for(device)
        for sink in self.sinks:
            use = getattr(sink, "use_device", None)
            if use is not None:
                use(device)
        return True

    # called by attention_function
    def observe(
        self,
        module: Any,
        query: torch.Tensor,
        key: torch.Tensor,
        value: torch.Tensor,
        mask: torch.Tensor | None,
        scaling: float | None,
        kwargs: dict[str, Any],
    ) -> None:
        index = self.calls
        self.calls += 1
        if self.on_call is not None:
            self.on_call(module, query, key, value, mask)
        if not self.layout.routed or index >= len(self.layout.calls) or self.batch is None:
            return
        kind, layer = self.layout.calls[index]
        wanted = [(sink, sink.heads_for(kind, layer)) for sink in self.sinks]
        union = sorted({h for _, heads in wanted for h in heads})
        if not union:
            return
        position = {h: i for i, h in enumerate(union)}
        on_device = self._device_path(query.device)
        batch_size, _, q_len, k_len = query.shape[0], query.shape[1], query.shape[2], key.shape[2]
        rows_per_chunk = max(1, self.chunk_bytes // max(1, batch_size * len(union) * k_len * 4))
        selected = select_heads(query, key, value, union)  # gathered once, chunked below
        self._vectors(module, kind, layer, selected, scaling, kwargs, wanted, position, query.shape[1], mask)
        for start in range(0, q_len, rows_per_chunk):
            stop = min(q_len, start + rows_per_chunk)
            probs = eager_probabilities(module, *selected, mask, scaling, kwargs, union, query.shape[1], start, stop)
            if on_device:
                self._dispatch_device(kind, layer, probs.float(), start, wanted, position)
            else:
                chunk = probs.float().cpu().numpy()  # [B, len(union), rows, keys]
                self._dispatch(kind, layer, chunk, start, wanted, position)

    def _vectors(
        self,
        module: Any,
        kind: str,
        layer: int,
        selected: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
        scaling: float | None,
        kwargs: dict[str, Any],
        wanted: list[tuple[Sink, tuple[int, ...]]],
        position: dict[int, int],
        n_heads: int,
        mask: torch.Tensor | None = None,
    ) -> None:
        """Hand sinks that ask for them (``wants_vectors``) the queries, keys and values in
        the model's dot product (post-rotary; for GQA the key and value of each head's
        group), cut per input, with what else enters the logits (scaling, soft-capping,
        sinks, T5's position bias) and the sliding window the mask applied to that input
        (``extras["window"]``, :func:`applied_window`)."""
        takers: list[tuple[VectorSink, tuple[int, ...]]] = [
            (cast("VectorSink", sink), heads)
            for sink, heads in wanted
            if heads and getattr(sink, "wants_vectors", False)
        ]
        if not takers or self.batch is None:
            return
        query, key, value = selected
        head_dim = query.shape[-1]
        effective = scaling if scaling is not None else getattr(module, "scaling", None)
        extras = {
            "scaling": float(effective) if effective is not None else float(head_dim) ** -0.5,
            "softcap": kwargs.get("softcap"),
        }
        sinks = getattr(module, "sinks", None)
        if sinks is None and isinstance(kwargs.get("s_aux"), torch.Tensor):
            sinks = kwargs["s_aux"]
        bias = kwargs.get("position_bias")
        for item in range(query.shape[0]):
            q0, qn = self.batch.query_offsets[kind][item], self.batch.query_lengths[kind][item]
            k0, kn = self.batch.key_offsets[kind][item], self.batch.key_lengths[kind][item]
            # cross attention: queries and keys are two texts, with no distance between them
            window = None if kind == "cross" else applied_window(mask, item, q0, qn, k0, kn, causal=kind == "decoder")
            for sink, heads in takers:
                index = [position[h] for h in heads]
                parts = {
                    "query": query[item, index, q0 : q0 + qn],
                    "key": key[item, index, k0 : k0 + kn],
                    "value": value[item, index, k0 : k0 + kn],
                }
                if isinstance(sinks, torch.Tensor) and sinks.ndim == 1 and sinks.shape[0] == n_heads:
                    parts["sinks"] = sinks[list(heads)]
                if isinstance(bias, torch.Tensor) and bias.ndim == 4 and bias.shape[1] == n_heads:
                    b = bias[min(item, bias.shape[0] - 1), list(heads)]
                    parts["bias"] = b[:, q0 : q0 + qn, k0 : k0 + kn] if b.shape[-2] > 1 else b[:, :, k0 : k0 + kn]
                sink.add_vectors(item, kind, layer, heads, module, parts, {**extras, "window": window})

    def _dispatch(
        self,
        kind: str,
        layer: int,
        chunk: np.ndarray,
        start: int,
        wanted: list[tuple[Sink, tuple[int, ...]]],
        position: dict[int, int],
    ) -> None:
        assert self.batch is not None
        rows = chunk.shape[2]
        for item in range(chunk.shape[0]):
            q0 = self.batch.query_offsets[kind][item]
            qn = self.batch.query_lengths[kind][item]
            k0 = self.batch.key_offsets[kind][item]
            kn = self.batch.key_lengths[kind][item]
            lo, hi = max(start, q0), min(start + rows, q0 + qn)
            if lo >= hi:
                continue
            block = chunk[item, :, lo - start : hi - start, k0 : k0 + kn]
            for sink, heads in wanted:
                if heads:
                    picked = block if len(heads) == len(position) else block[[position[h] for h in heads]]
                    sink.add(item, kind, layer, heads, lo - q0, np.ascontiguousarray(picked))

    def _dispatch_device(
        self,
        kind: str,
        layer: int,
        chunk: torch.Tensor,
        start: int,
        wanted: list[tuple[Sink, tuple[int, ...]]],
        position: dict[int, int],
    ) -> None:
        """The device path: each input's block, as a tensor, to the sinks that take it there;
        the chunk through the pinned ring to the others (``_dispatch`` once it has landed)."""
        assert self.batch is not None
        on_device = [(sink, heads) for sink, heads in wanted if heads and hasattr(sink, "add_device")]
        on_host = [(sink, heads) for sink, heads in wanted if heads and not hasattr(sink, "add_device")]
        rows = chunk.shape[2]
        for item in range(chunk.shape[0]) if on_device else ():
            q0 = self.batch.query_offsets[kind][item]
            qn = self.batch.query_lengths[kind][item]
            k0 = self.batch.key_offsets[kind][item]
            kn = self.batch.key_lengths[kind][item]
            lo, hi = max(start, q0), min(start + rows, q0 + qn)
            if lo >= hi:
                continue
            block = chunk[item, :, lo - start : hi - start, k0 : k0 + kn]
            for sink, heads in on_device:
                picked = block if len(heads) == len(position) else block[[position[h] for h in heads]]
                sink.add_device(item, kind, layer, heads, lo - q0, picked, self.copier)  # type: ignore[attr-defined]
        if on_host:

            def consume(array: np.ndarray, kind: str = kind, layer: int = layer, start: int = start) -> None:
                self._dispatch(kind, layer, array, start, on_host, position)

            self.copier.stage(chunk, consume)


def active_session() -> CaptureSession | None:
    return getattr(_local, "session", None)


def _copier(device: torch.device) -> Any:
    """This thread's copier for ``device``: its pinned buffers are reused by every pass."""
    from attnviz.transfer import ChunkCopier

    copiers = getattr(_local, "copiers", None)
    if copiers is None:
        copiers = _local.copiers = {}
    if device not in copiers:
        copiers[device] = ChunkCopier(device=device)
    return copiers[device]


def takes_device_path(device: Any) -> bool:
    """Whether a capture on ``device`` keeps the probabilities there and hands sinks their
    blocks as tensors (CUDA, or any device inside :func:`device_reductions`)."""
    return torch.device(device).type == "cuda" or getattr(_local, "device_copier", None) is not None


@contextmanager
def device_reductions(copier: Any) -> Iterator[None]:
    """Take the device path on this thread whatever the device, with ``copier`` (a
    :class:`~attnviz.transfer.ChunkCopier`): how the tests run the CUDA code on CPU tensors
    with an injected copy backend."""
    _local.device_copier = copier
    try:
        yield
    finally:
        _local.device_copier = None


# -- the attention function ----------------------------------------------------------------
class _HeadSlice:
    """The attention module as its eager function sees it when only some heads are passed:
    every query head comes with its own key-value head (no GQA repeat), and per-head
    parameters (attention sinks) are sliced to the same heads."""

    def __init__(self, module: Any, heads: Sequence[int]) -> None:
        self._module = module
        self.num_key_value_groups = 1
        sinks = getattr(module, "sinks", None)
        if isinstance(sinks, torch.Tensor) and sinks.ndim == 1:
            self.sinks = sinks[list(heads)]
        self.training = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def applied_window(
    mask: torch.Tensor | None, item: int, q0: int, qn: int, k0: int, kn: int, *, causal: bool
) -> int | None:
    """The sliding window that ``mask`` (the additive float mask, or a boolean one, of one
    attention call) applied to input ``item``'s real tokens (query rows ``q0:q0+qn``, key
    columns ``k0:k0+kn``), in masking_utils' convention: key ``j`` is visible to query ``i``
    only while ``|p - j| < window``, where ``p = i + kn - qn`` is the query's key position.
    That is ``1 +`` the largest distance of a key the mask shows (so no visible key is ever
    called hidden). None where the window hides nothing that is not hidden anyway: no
    mask, a full-attention layer, or a text shorter than the window (for a ``causal`` kind
    only keys up to the query count).

    Read from the mask itself, not the module or its ``sliding_window`` argument: Mistral
    keeps the window on its config, ModernBERT passes flash-attention's ``window + 1``."""
    if mask is None or qn == 0 or kn == 0:
        return None
    rows = mask[min(item, mask.shape[0] - 1)]
    while rows.dim() > 2:  # [heads or 1, Tq, Tk]: one mask for every head
        rows = rows[0]
    rows = rows[q0 : q0 + qn, k0 : k0 + kn] if rows.shape[0] > 1 else rows[:, k0 : k0 + kn].expand(qn, kn)
    visible = rows if rows.dtype == torch.bool else rows > torch.finfo(rows.dtype).min / 2
    seeing = visible.any(dim=1)
    if not bool(seeing.any()):
        return None
    # per row only the first and last visible key (no [queries, keys] distance matrix: 8k
    # tokens would make that half a GiB); the farthest visible key is one of the two
    flags = visible.to(torch.uint8)
    first = flags.argmax(dim=1)
    last = kn - 1 - flags.flip(1).argmax(dim=1)
    position = torch.arange(qn, device=rows.device) + (kn - qn)
    farthest = torch.maximum((position - first).abs(), (last - position).abs())[seeing]
    window = int(farthest.max()) + 1
    # the farthest key any query could have (a causal query looks back only)
    reach = kn - 1 if causal else max(kn - 1, qn - 1)
    return window if reach >= window else None


def _eager_function(module: Any) -> Callable[..., Any]:
    """The eager attention of the module's own modeling file (so its extras apply)."""
    modeling = sys.modules.get(type(module).__module__)
    function = getattr(modeling, "eager_attention_forward", None)
    if function is None:
        from transformers.models.llama.modeling_llama import eager_attention_forward

        function = eager_attention_forward
    return function  # type: ignore[no-any-return]


def _head_kwargs(
    kwargs: dict[str, Any], heads: Sequence[int] | None, start: int, stop: int, n_heads: int
) -> dict[str, Any]:
    """The family's extras cut to the query rows and, unless ``heads`` is None (all of
    them), to the selected heads."""
    out = dict(kwargs)
    bias = out.get("position_bias")
    if isinstance(bias, torch.Tensor) and bias.ndim == 4:
        if heads is not None and bias.shape[1] == n_heads:
            bias = bias[:, list(heads)]
        out["position_bias"] = bias[:, :, start:stop] if bias.shape[2] > 1 else bias
    sinks = out.get("s_aux")
    if heads is not None and isinstance(sinks, torch.Tensor) and sinks.ndim == 1 and sinks.shape[0] == n_heads:
        out["s_aux"] = sinks[list(heads)]
    return out


def _rows(mask: torch.Tensor | None, start: int, stop: int, keys: int) -> torch.Tensor | None:
    if mask is None or mask.ndim != 4:
        return mask
    cut = mask[:, :, start:stop] if mask.shape[2] > 1 else mask
    return cut[..., :keys]


def select_heads(
    query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, heads: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The queries of ``heads`` and, for each, the keys and values of its key-value group
    (GQA): ``[batch, len(heads), tokens, head_dim]`` each."""
    groups = query.shape[1] // key.shape[1]
    head_index = torch.tensor(list(heads), device=query.device)
    kv_index = torch.tensor([h // groups for h in heads], device=key.device)
    return query.index_select(1, head_index), key.index_select(1, kv_index), value.index_select(1, kv_index)


def eager_probabilities(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float | None,
    kwargs: dict[str, Any],
    heads: Sequence[int],
    n_heads: int,
    start: int,
    stop: int,
) -> torch.Tensor:
    """Eager's attention probabilities ``[batch, len(heads), stop - start, keys]`` of query
    rows ``start:stop``, computed by the module's own eager function. ``query``, ``key``
    and ``value`` are already cut to ``heads`` (see :func:`select_heads`); ``n_heads`` is
    the layer's number of query heads."""
    extras = _head_kwargs(kwargs, heads, start, stop, n_heads)
    _, probs = _eager_function(module)(
        _HeadSlice(module, heads),
        query[:, :, start:stop],
        key,
        value,
        _rows(mask, start, stop, key.shape[2]),
        scaling=scaling,
        dropout=0.0,
        **extras,
    )
    return probs  # type: ignore[no-any-return]


def _needs_eager_output(module: Any, kwargs: dict[str, Any]) -> bool:
    """sdpa cannot soft-cap logits or add attention sinks."""
    return (
        kwargs.get("softcap") is not None
        or kwargs.get("s_aux") is not None
        or isinstance(getattr(module, "sinks", None), torch.Tensor)
    )


def fast_output(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    mask: torch.Tensor | None,
    scaling: float | None,
    dropout: float,
    kwargs: dict[str, Any],
    chunk_bytes: int = DEFAULT_CHUNK_BYTES,
) -> torch.Tensor:
    """The layer's attention output ``[batch, query, heads, head_dim]``."""
    q_len, k_len = query.shape[2], key.shape[2]
    if _needs_eager_output(module, kwargs):
        eager = _eager_function(module)
        rows = max(1, chunk_bytes // max(1, query.shape[0] * query.shape[1] * k_len * 4))
        pieces = []
        for start in range(0, q_len, rows):
            stop = min(q_len, start + rows)
            extras = _head_kwargs(kwargs, None, start, stop, query.shape[1])
            out, _ = eager(
                module,
                query[:, :, start:stop],
                key,
                value,
                _rows(mask, start, stop, k_len),
                scaling=scaling,
                dropout=dropout,
                **extras,
            )
            pieces.append(out)
        return torch.cat(pieces, dim=1) if len(pieces) > 1 else pieces[0]
    groups = query.shape[1] // key.shape[1]
    if groups > 1:
        key = key.repeat_interleave(groups, dim=1)
        value = value.repeat_interleave(groups, dim=1)
    attn_mask = _rows(mask, 0, q_len, k_len)
    bias = kwargs.get("position_bias")
    if isinstance(bias, torch.Tensor):
        attn_mask = bias if attn_mask is None else attn_mask + bias
    if attn_mask is not None and attn_mask.dtype != torch.bool and attn_mask.dtype != query.dtype:
        attn_mask = attn_mask.to(query.dtype)
    out = F.scaled_dot_product_attention(query, key, value, attn_mask=attn_mask, dropout_p=dropout, scale=scaling)
    return out.transpose(1, 2).contiguous()


def attention_function(
    module: Any,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """The ``attnviz`` attention implementation (see the module docstring)."""
    session = active_session()
    dropout = dropout if module.training else 0.0
    if session is not None:
        with torch.no_grad():
            session.observe(module, query, key, value, attention_mask, scaling, kwargs)
    chunk = session.chunk_bytes if session is not None else DEFAULT_CHUNK_BYTES
    return fast_output(module, query, key, value, attention_mask, scaling, dropout, kwargs, chunk), None


# -- probing a model's call order ----------------------------------------------------------
def probe_layout(
    model: Any, family: str, layers: dict[str, int], device: str, pad_id: int = 0, start_id: int = 0
) -> CallLayout:
    """Run a 3-token (and, for encoder-decoders, 2-token target) forward pass and record
    which attention calls belong to which kind and layer. Source and target lengths
    differ, so the query and key lengths of each call tell encoder, decoder and cross
    apart; layers count up in call order within a kind."""
    if getattr(model.config, "_attn_implementation", None) != IMPLEMENTATION:
        return CallLayout((), False, "the model was loaded with eager attention")
    seen: list[tuple[int, int]] = []

    def record(module: Any, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: Any) -> None:
        seen.append((int(query.shape[2]), int(key.shape[2])))

    source, target = 3, 2
    ids = torch.full((1, source), int(pad_id), dtype=torch.long, device=device)
    inputs: dict[str, Any] = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
    if family == "encoder-decoder":
        dec = torch.full((1, target), int(start_id), dtype=torch.long, device=device)
        inputs["decoder_input_ids"] = dec
        inputs["decoder_attention_mask"] = torch.ones_like(dec)
    with CaptureSession(CallLayout((), False), [], on_call=record), torch.inference_mode():
        model(**inputs, return_dict=True)
    calls: list[tuple[str, int]] = []
    counts: dict[str, int] = {}
    for q_len, k_len in seen:
        if family != "encoder-decoder":
            kind = "decoder" if family == "decoder" else "encoder"
        elif (q_len, k_len) == (source, source):
            kind = "encoder"
        elif (q_len, k_len) == (target, target):
            kind = "decoder"
        elif (q_len, k_len) == (target, source):
            kind = "cross"
        else:
            return CallLayout((), False, f"an attention call of shape {q_len}x{k_len} matches no attention kind")
        calls.append((kind, counts.get(kind, 0)))
        counts[kind] = counts.get(kind, 0) + 1
    if not calls:
        return CallLayout((), False, "its attention does not go through transformers' attention interface")
    if counts != layers:
        return CallLayout((), False, f"its attention calls ({counts}) do not match its layers ({layers})")
    return CallLayout(tuple(calls), True)
