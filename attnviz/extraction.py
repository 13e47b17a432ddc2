"""Run text through a model and collect its attention: what to keep (:class:`Selection`),
batching, running (captured or through ``output_attentions``) and out-of-memory retry.
Tokenizing is :mod:`attnviz.encoding`'s; what receives the probabilities, :mod:`attnviz.sinks`'.

Batching follows DESIGN.md: encoders and encoder-decoders are right-padded and both the
query and key axes are sliced back to the real tokens (padded query rows are garbage that
still sums to 1); decoders are left-padded with ``position_ids = cumsum(mask) - 1`` so
that a batched run equals the unbatched one.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnviz.encoding import EncodedInput, Encoder, TextInput
from attnviz.encoding import validate_text as validate_text  # re-exported
from attnviz.errors import InputError, NoAttentionError, SelectionError
from attnviz.models import LoadedModel, load_model, quiet_libraries
from attnviz.result import MEAN_HEAD, AttentionResult, kind_axes
from attnviz.sinks import NormStore, StoreHeads, VectorStore
from attnviz.sinks import output_projection as output_projection  # re-exported
from attnviz.transforms import IndexSpec, describe_index_spec, parse_index_spec


@dataclass(frozen=True)
class Selection:
    """What an extraction computes and keeps, per attention kind: original 0-based layer
    and head indices, and whether heads are averaged (``head_mean``: one map per layer,
    the mean over the selected heads, accumulated without holding every head)."""

    layers: dict[str, tuple[int, ...]]
    heads: dict[str, tuple[int, ...]]
    head_mean: bool = False
    transforms: tuple[str, ...] = ()

    @classmethod
    def resolve(
        cls,
        loaded: LoadedModel,
        layers: IndexSpec,
        heads: IndexSpec,
        head_mean: bool,
        kinds: Sequence[str] | None = None,
    ) -> Selection:
        info = loaded.info
        wanted = [k for k in info.layers if kinds is None or k in kinds]
        if not wanted:
            raise SelectionError(
                f"this {info.family} model has no {' or '.join(kinds or [])} attention",
                hint=f"choose one of: {', '.join(info.layers)}",
            )
        chosen_layers = {k: parse_index_spec(layers, info.layers[k], "layer") for k in wanted}
        chosen_heads = {k: parse_index_spec(heads, info.heads[k], "head") for k in wanted}
        everything = all(
            chosen_layers[k] == tuple(range(info.layers[k])) and chosen_heads[k] == tuple(range(info.heads[k]))
            for k in wanted
        )
        steps: tuple[str, ...] = ()
        if not everything:
            steps += (f"select(layers={describe_index_spec(layers)},heads={describe_index_spec(heads)})",)
        if head_mean:
            steps += ("mean_heads",)
        return cls(chosen_layers, chosen_heads, head_mean, steps)


#: Padded tokens (width x inputs) in one forward pass at most: about 1 GB of activations for
#: a BERT-base-sized model on the CPU, whatever --batch-size says.
DEFAULT_BATCH_TOKENS = 8192


@dataclass
class _Batch:
    """Padded model inputs of one batch, and where each input's real tokens sit."""

    inputs: dict[str, Any]
    lengths: list[int]
    target_lengths: list[int]
    width: int
    left: bool
    shapes: list[dict[str, tuple[int, int]]]


class Extractor(Encoder):
    """Tokenizes (as its :class:`~attnviz.encoding.Encoder`), batches and runs texts through
    one loaded model.

    ``truncate``: cut texts longer than the model's maximum (the cut is counted in
    ``AttentionResult.truncated_tokens``); when False such a text raises :class:`InputError`.
    """

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        truncate: bool = True,
        verbose: bool = False,
        layers: IndexSpec = None,
        heads: IndexSpec = None,
        head_mean: bool = False,
        chunk_bytes: int | None = None,
        kinds: Sequence[str] | None = None,
        vectors: bool = False,
        norms: bool = False,
        max_batch_tokens: int = DEFAULT_BATCH_TOKENS,
    ) -> None:
        self.max_batch_tokens = max(1, int(max_batch_tokens))
        self.vectors = vectors
        self.norms = norms
        super().__init__(loaded, truncate=truncate, verbose=verbose)
        self.selection = Selection.resolve(loaded, layers, heads, head_mean, kinds)
        self.chunk_bytes = chunk_bytes

    # -- running ---------------------------------------------------------------------
    def run_batch(self, encoded: Sequence[EncodedInput]) -> list[AttentionResult]:
        """One forward pass over ``encoded`` (padded together); one result per input."""
        batch = self._batch(encoded)
        layout = self.layout()
        vectors: list[dict[str, Any]] = [{} for _ in encoded]
        norms: list[dict[str, np.ndarray]] = [{} for _ in encoded]
        if layout.routed:
            sink = self._store_sink()
            sink.allocate(batch.shapes)
            sinks: list[Any] = [sink]
            if self.norms:
                normed = self._store_sink()
                normed.allocate(batch.shapes)
                sinks = [NormStore(sink, normed, self.loaded.model)]
            if self.vectors:
                store = VectorStore(dict(self.selection.layers), dict(self.selection.heads))
                store.allocate(len(encoded))
                sinks.append(store)
            self._run_captured(batch, layout, sinks)
            per_item = sink.arrays
            if self.vectors:
                vectors = store.vectors
            if self.norms:
                norms = normed.arrays
        else:
            if self.vectors or self.norms:
                raise SelectionError(
                    f"'{self.loaded.name}' computes its attention its own way, so its queries, keys and values "
                    "cannot be reached (neuron view, norm-based attention)",
                    hint="these work for models whose attention goes through transformers' attention interface",
                )
            per_item = self._run_output_attentions(batch)
        return [
            self._result(item, attentions, vectors[i], norms[i])
            for i, (item, attentions) in enumerate(zip(encoded, per_item))
        ]

    def reduce_batch(self, encoded: Sequence[EncodedInput], sink: Any) -> None:
        """One forward pass over ``encoded`` whose probabilities go only to ``sink`` (a
        :class:`~attnviz.capture.Sink`), block by block: nothing ``[heads, T, T]`` is kept
        when the model is captured selectively. ``sink.begin(encoded)`` is called first."""
        batch = self._batch(encoded)
        sink.begin(list(encoded))
        layout = self.layout()
        if layout.routed:
            self._run_captured(batch, layout, [sink])
            return
        for item, attentions in enumerate(self._run_output_attentions(batch, sink_heads=sink)):
            for kind, array in attentions.items():
                for position, layer in enumerate(self.selection.layers[kind]):
                    heads = sink.heads_for(kind, layer)
                    if heads:
                        picked = [self.selection.heads[kind].index(h) for h in heads]
                        sink.add(item, kind, layer, heads, 0, np.ascontiguousarray(array[position, picked]))

    def _batch(self, encoded: Sequence[EncodedInput]) -> _Batch:
        import torch

        family = self.loaded.family
        device = self.loaded.device
        lengths = [len(e.ids) for e in encoded]
        width = max(lengths)
        left = family == "decoder"

        def pad(rows: list[list[int]], value: int, size: int, left_side: bool) -> torch.Tensor:
            out = []
            for row in rows:
                filler = [value] * (size - len(row))
                out.append(filler + row if left_side else row + filler)
            return torch.tensor(out, dtype=torch.long, device=device)

        inputs: dict[str, Any] = {
            "input_ids": pad([e.ids for e in encoded], self.pad_id, width, left),
            "attention_mask": pad([[1] * n for n in lengths], 0, width, left),
        }
        for name in encoded[0].extra:
            inputs[name] = pad([e.extra[name] for e in encoded], 0, width, left)
        if left:
            mask = inputs["attention_mask"]
            inputs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
        target_lengths: list[int] = []
        if family == "encoder-decoder":
            target_lengths = [len(e.target_ids or []) for e in encoded]
            target_width = max(target_lengths)
            inputs["decoder_input_ids"] = pad([e.target_ids or [] for e in encoded], self.pad_id, target_width, False)
            inputs["decoder_attention_mask"] = pad([[1] * n for n in target_lengths], 0, target_width, False)

        shapes = []
        for b, n in enumerate(lengths):
            shape = {"decoder" if family == "decoder" else "encoder": (n, n)}
            if family == "encoder-decoder":
                t = target_lengths[b]
                shape.update({"decoder": (t, t), "cross": (t, n)})
            shapes.append(shape)
        return _Batch(inputs, lengths, target_lengths, width, left, shapes)

    def _store_sink(self) -> StoreHeads:
        return StoreHeads(
            layers=dict(self.selection.layers), heads=dict(self.selection.heads), mean=self.selection.head_mean
        )

    # -- capture -----------------------------------------------------------------------
    def layout(self) -> Any:
        """Which attention call is which kind and layer (probed once per loaded model)."""
        if self.loaded.layout is None:
            from attnviz.capture import probe_layout

            config = self.loaded.model.config
            start = getattr(config, "decoder_start_token_id", None)
            with quiet_libraries(self.verbose):
                layout = probe_layout(
                    self.loaded.model,
                    self.loaded.family,
                    dict(self.loaded.info.layers),
                    self.loaded.device,
                    pad_id=self.pad_id,
                    start_id=start if start is not None else self.pad_id,
                )
                if not layout.routed and getattr(config, "_attn_implementation", None) != "eager":
                    set_implementation = getattr(self.loaded.model, "set_attn_implementation", None)
                    if set_implementation is not None:
                        try:
                            set_implementation("eager")
                        except (ValueError, NotImplementedError):
                            pass  # models that compute attention their own way ignore the setting
            self.loaded.layout = layout
        return self.loaded.layout

    @property
    def notes(self) -> list[str]:
        """One-line notes for the user: how the model was loaded, and whether its attention
        is captured selectively."""
        capture = self.capture_note
        return [*self.loaded.notes, *([capture] if capture else [])]

    @property
    def capture_note(self) -> str | None:
        """A one-line note when the model's attention cannot be captured selectively."""
        layout = self.layout()
        if layout.routed:
            return None
        return (
            f"'{self.loaded.name}' cannot be captured selectively ({layout.reason}); "
            "every layer's attention is computed with output_attentions"
        )

    def _run_captured(self, batch: _Batch, layout: Any, sinks: list[Any]) -> None:
        import torch

        from attnviz.capture import DEFAULT_CHUNK_BYTES, BatchLayout, CaptureSession

        family = self.loaded.family
        lengths, target_lengths = batch.lengths, batch.target_lengths
        source_offsets = [batch.width - n if batch.left else 0 for n in lengths]
        zeros = [0] * len(lengths)
        offsets = BatchLayout({}, {}, {}, {})
        source = (source_offsets, lengths)
        target = (zeros, target_lengths) if family == "encoder-decoder" else None  # targets are right-padded
        for kind in self.selection.layers:
            (q_off, q_len), (k_off, k_len) = kind_axes(kind, source, target)
            offsets.query_offsets[kind], offsets.query_lengths[kind] = q_off, q_len
            offsets.key_offsets[kind], offsets.key_lengths[kind] = k_off, k_len
        session = CaptureSession(layout, sinks, offsets, chunk_bytes=self.chunk_bytes or DEFAULT_CHUNK_BYTES)
        with quiet_libraries(self.verbose), torch.inference_mode(), session:
            self.loaded.model(**batch.inputs, return_dict=True)
        if session.calls != len(layout.calls):
            missing = ", ".join(dict.fromkeys(kind for kind, _ in layout.calls[session.calls :])) or "expected"
            raise NoAttentionError(
                f"'{self.loaded.name}' returned no {missing} attention weights: its attention function ran "
                f"{session.calls} times in a forward pass, where {len(layout.calls)} were expected",
                hint="the model's forward pass changed after it was loaded; load it again",
            )

    def _run_output_attentions(self, batch: _Batch, sink_heads: Any = None) -> list[dict[str, np.ndarray]]:
        """The fallback for models whose attention bypasses the interface: every layer's
        attention from ``output_attentions``, then cut to the selection (per head, also
        when ``head_mean`` is set, if ``sink_heads`` is given)."""
        import torch

        family = self.loaded.family
        lengths, target_lengths, width, left = batch.lengths, batch.target_lengths, batch.width, batch.left
        with quiet_libraries(self.verbose), torch.inference_mode():
            outputs = self.loaded.model(**batch.inputs, output_attentions=True, return_dict=True)

        if family == "encoder-decoder":
            fields = {
                "encoder": getattr(outputs, "encoder_attentions", None),
                "decoder": getattr(outputs, "decoder_attentions", None),
                "cross": getattr(outputs, "cross_attentions", None),
            }
        else:
            fields = {"decoder" if family == "decoder" else "encoder": getattr(outputs, "attentions", None)}
        stacked: dict[str, np.ndarray] = {}
        for kind, layers in fields.items():
            if kind not in self.selection.layers:
                continue
            if not layers or any(layer is None for layer in layers):
                raise NoAttentionError(
                    f"'{self.loaded.name}' returned no {kind} attention weights",
                    hint="the model's attention implementation does not expose weights; "
                    "attnviz loads with eager attention, which this architecture may not support",
                )
            chosen = [layers[i] for i in self.selection.layers[kind]]
            # [batch, layers, heads, query, key]
            array = torch.stack(chosen, dim=1)[:, :, list(self.selection.heads[kind])].float().cpu().numpy()
            if self.selection.head_mean and sink_heads is None:
                array = array.mean(axis=2, dtype=np.float64).astype(np.float32)
            stacked[kind] = array

        per_item = []
        for b in range(len(lengths)):
            n = lengths[b]
            src = slice(width - n, width) if left else slice(0, n)
            attentions: dict[str, np.ndarray] = {}
            target = slice(0, target_lengths[b]) if family == "encoder-decoder" else None
            for kind, array in stacked.items():
                rows, columns = kind_axes(kind, src, target)
                attentions[kind] = np.ascontiguousarray(array[b, ..., rows, columns])
            per_item.append(attentions)
        return per_item

    def _result(
        self,
        encoded: EncodedInput,
        attentions: dict[str, np.ndarray],
        vectors: dict[str, Any] | None = None,
        norms: dict[str, np.ndarray] | None = None,
    ) -> AttentionResult:
        selection = self.selection
        if selection.head_mean:  # [layers, q, k] -> [layers, 1, q, k]
            attentions = {k: a[:, None] for k, a in attentions.items()}
            norms = {k: a[:, None] for k, a in (norms or {}).items()}
        head_ids = {k: (MEAN_HEAD,) if selection.head_mean else selection.heads[k] for k in attentions}
        extra_meta: dict[str, Any] = {}
        if selection.head_mean:
            extra_meta["averaged_heads"] = {k: list(selection.heads[k]) for k in attentions}
        if self.loaded.attention_sinks:
            extra_meta["attention_sinks"] = True
        derived: dict[str, np.ndarray] = {}
        if norms:
            kind = next(iter(attentions))
            derived["norm"] = norms[kind]
            extra_meta["norm_kind"] = kind
        if vectors:
            extra_meta["vectors"] = {
                kind: {"scaling": v["scaling"], "softcap": v["softcap"], "window": v["window"]}
                for kind, v in vectors.items()
            }
        return AttentionResult(
            model=self.loaded.name,
            family=self.loaded.family,
            text=encoded.item.text,
            pair=encoded.item.pair,
            target=encoded.item.target,
            tokens=encoded.tokens,
            target_tokens=encoded.target_tokens,
            attentions=attentions,
            layer_ids={k: selection.layers[k] for k in attentions},
            head_ids=head_ids,
            truncated_tokens=encoded.truncated,
            transforms=selection.transforms,
            extra_meta=extra_meta,
            derived=derived,
            vectors={
                kind: {name: v[name] for name in ("query", "key", "sinks", "bias") if name in v}
                for kind, v in (vectors or {}).items()
            },
        )

    def outcomes(
        self, items: Iterable[TextInput | str], *, batch_size: int = 16, window: int = 256
    ) -> Iterator[AttentionResult | InputError]:
        """Yield one outcome per input, in input order: its result, or its
        :class:`InputError` (the function :func:`extract_many` raises instead).

        Inputs are read in windows of ``window``; inside a window they are sorted by length
        so that each batch pads little (length bucketing). An input that cannot be encoded
        yields its :class:`InputError` instead of a result, so one bad text never loses the
        others' work. Memory stays bounded by the window, however long ``items`` is.
        """
        for buffer in _windows(items, window):
            yield from self._run_window(buffer, batch_size, None)

    def reduce(
        self, items: Iterable[TextInput | str], sink: Any, *, batch_size: int = 16, window: int = 256
    ) -> Iterator[EncodedInput | InputError]:
        """Like :meth:`outcomes`, but the probabilities go only to ``sink`` (see
        :meth:`reduce_batch`); yields each input's encoding (or its error) in input order."""
        for buffer in _windows(items, window):
            yield from self._run_window(buffer, batch_size, sink)

    def _run_window(self, window: list[TextInput], batch_size: int, sink: Any) -> list[Any]:
        out: list[Any] = [None] * len(window)
        encoded: list[tuple[int, EncodedInput]] = []
        for index, item in enumerate(window):
            try:
                encoded.append((index, self.encode(item)))
            except InputError as exc:
                out[index] = exc
        encoded.sort(key=lambda pair: (len(pair[1].ids), len(pair[1].target_ids or [])))
        for chunk in self._batches(encoded, batch_size):
            self._run_chunk(chunk, sink, out)
        return [r for r in out if r is not None]

    def _batches(self, encoded: list[tuple[int, EncodedInput]], batch_size: int) -> Iterator[list[Any]]:
        """Consecutive batches (inputs sorted by length) of at most ``batch_size`` inputs
        and at most ``max_batch_tokens`` padded tokens (width x inputs), so that any
        ``--batch-size`` stays within a memory budget; an input longer than the budget
        goes alone."""
        chunk: list[tuple[int, EncodedInput]] = []
        width = 0
        for pair in encoded:
            length = max(len(pair[1].ids), len(pair[1].target_ids or []))
            grown = max(width, length)
            if chunk and (len(chunk) >= max(1, batch_size) or grown * (len(chunk) + 1) > self.max_batch_tokens):
                yield chunk
                chunk, grown = [], length
            chunk.append(pair)
            width = grown
        if chunk:
            yield chunk

    def _run_chunk(self, chunk: list[tuple[int, EncodedInput]], sink: Any, out: list[Any]) -> None:
        """Run one batch; when it runs out of memory, split it in halves and retry, down to
        one input, which then fails alone (an :class:`InputError` in its place)."""
        saved = sink.checkpoint() if sink is not None and hasattr(sink, "checkpoint") else None
        try:
            if sink is None:
                for (index, _), result in zip(chunk, self.run_batch([e for _, e in chunk])):
                    out[index] = result
            else:
                self.reduce_batch([e for _, e in chunk], sink)
                for index, e in chunk:
                    out[index] = e
        except Exception as exc:  # noqa: BLE001 - only out-of-memory errors are handled, the rest re-raised
            if not _out_of_memory(exc):
                raise
            _free_memory()
            if saved is not None:
                sink.restore(saved)  # the partial sums of the failed pass are dropped
            if len(chunk) == 1:
                index, item = chunk[0]
                out[index] = InputError(
                    f"ran out of memory on this text ({len(item.ids)} tokens), even on its own",
                    hint="select fewer layers or heads, use a smaller dtype, or a shorter text",
                )
                return
            half = len(chunk) // 2
            self._run_chunk(chunk[:half], sink, out)
            self._run_chunk(chunk[half:], sink, out)


def _out_of_memory(exc: BaseException) -> bool:
    """torch's CUDA/MPS out-of-memory errors, a CPU allocator failure, MemoryError."""
    if isinstance(exc, MemoryError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    return name == "OutOfMemoryError" or (
        isinstance(exc, RuntimeError) and ("out of memory" in text or "can't allocate memory" in text)
    )


def _free_memory() -> None:
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


def _windows(items: Iterable[TextInput | str], size: int) -> Iterator[list[TextInput]]:
    buffer: list[TextInput] = []
    for item in items:
        buffer.append(item if isinstance(item, TextInput) else TextInput(item))
        if len(buffer) >= size:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


def _extractor(
    model: str | os.PathLike[str] | LoadedModel | None, device: str, verbose: bool, **options: Any
) -> Extractor:
    """An :class:`Extractor` over an already loaded model, or over the one named."""
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device=device, verbose=verbose)
    return Extractor(loaded, verbose=verbose, **options)


def extract(
    text: str,
    *,
    model: str | os.PathLike[str] | LoadedModel | None = None,
    pair: str | None = None,
    target: str | None = None,
    truncate: bool = True,
    device: str = "auto",
    verbose: bool = False,
    layers: IndexSpec = None,
    heads: IndexSpec = None,
    head_mean: bool = False,
    vectors: bool = False,
    norms: bool = False,
    view: str | None = None,
) -> AttentionResult:
    """Extract the attention of one text: every layer and head, or only ``layers`` and
    ``heads`` (0-based: an int, a sequence, a slice, or a string such as ``"2-4"``).
    Only what is selected is computed and stored. ``head_mean`` keeps one map per layer,
    the mean over the selected heads. ``vectors`` also keeps the query and key vectors of
    the dot product (``result.vectors``, for the neuron view); ``norms`` the norm-based
    weights of Kobayashi et al. (``result.derived["norm"]``, ``result.norm_weights()``).

    ``view``: also compute what that view needs (:func:`attnviz.plan.plan_views`: the
    neuron view's vectors, the norm view's weights, only the head mean for mean, rollout and
    flow).

    ``model`` is an alias (default ``minilm``, bundled), a hub id, a local directory or an
    already :func:`~attnviz.models.load_model`-ed model (reuse it for many texts).
    """
    if view is not None:
        from attnviz.plan import normalise_view, plan_views

        needs = plan_views(normalise_view(view))
        head_mean, vectors, norms = head_mean or needs.head_mean, vectors or needs.vectors, norms or needs.norms
    extractor = _extractor(
        model,
        device,
        verbose,
        truncate=truncate,
        layers=layers,
        heads=heads,
        head_mean=head_mean,
        vectors=vectors,
        norms=norms,
    )
    return extractor.run_batch([extractor.encode(TextInput(text, pair, target))])[0]


def extract_many(
    texts: Iterable[TextInput | str],
    *,
    model: str | os.PathLike[str] | LoadedModel | None = None,
    batch_size: int = 16,
    truncate: bool = True,
    device: str = "auto",
    verbose: bool = False,
    layers: IndexSpec = None,
    heads: IndexSpec = None,
    head_mean: bool = False,
) -> list[AttentionResult]:
    """Extract many texts with batched forward passes; raises on the first bad input.
    ``layers``, ``heads`` and ``head_mean`` as for :func:`extract`."""
    results = []
    extractor = _extractor(model, device, verbose, truncate=truncate, layers=layers, heads=heads, head_mean=head_mean)
    for outcome in extractor.outcomes(texts, batch_size=batch_size):
        if isinstance(outcome, InputError):
            raise outcome
        results.append(outcome)
    return results
