"""Run text through a model and collect its attention: the only module that runs torch.

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

from attnviz.errors import InputError, NoAttentionError, SelectionError
from attnviz.models import LoadedModel, load_model, quiet_libraries
from attnviz.result import MEAN_HEAD, AttentionResult, TokenSequence, kind_axes
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


@dataclass(frozen=True)
class TextInput:
    """One text to extract: ``pair`` is a second segment for encoders (sentence pairs),
    ``target`` the decoder text of an encoder-decoder model."""

    text: str
    pair: str | None = None
    target: str | None = None


@dataclass
class EncodedInput:
    """Token ids of one input, before padding (what :meth:`Extractor.encode` returns and
    :meth:`Extractor.run_batch` takes)."""

    item: TextInput
    ids: list[int]
    extra: dict[str, list[int]]  # e.g. token_type_ids
    tokens: TokenSequence
    target_ids: list[int] | None
    target_tokens: TokenSequence | None
    truncated: int


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def validate_text(text: Any, what: str = "text") -> str:
    """``text`` if it is a non-empty string of valid Unicode, else :class:`InputError`."""
    if not isinstance(text, str):
        raise InputError(f"the {what} must be a string, not {type(text).__name__}")
    if not text.strip():
        raise InputError(f"the {what} is empty", hint="give some text to look at")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # lone surrogates: from bad UTF-8 argv, or \udc80 in JSON
        raise InputError(
            f"the {what} is not valid Unicode: a lone surrogate U+{ord(text[exc.start]):04X} at character {exc.start}",
            hint="the input held bytes that are not UTF-8; fix the text or re-save it as UTF-8",
        ) from exc
    return text


def _word_and_segment_ids(encoding: Any, n: int, special: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Word ids unique across both segments (-1 for specials) and segment ids 0/1."""
    try:
        raw_words = encoding.word_ids()
        raw_sequences = encoding.sequence_ids()
    except (ValueError, AttributeError):  # slow tokenizers: one word per token
        raw_words = [None if special[i] else i for i in range(n)]
        raw_sequences = [None if special[i] else 0 for i in range(n)]
    word_ids = np.full(n, -1, dtype=np.int32)
    segment_ids = np.zeros(n, dtype=np.int8)
    offset = 0
    max_in_first = -1
    current_segment = 0
    for i, (word, sequence) in enumerate(zip(raw_words, raw_sequences)):
        if sequence is not None:
            current_segment = int(sequence)
        segment_ids[i] = current_segment
        if word is None or special[i]:
            continue
        if current_segment == 0:
            max_in_first = max(max_in_first, int(word))
            word_ids[i] = int(word)
        else:
            offset = max_in_first + 1
            word_ids[i] = int(word) + offset
    return word_ids, segment_ids


def _reader_word_ids(
    encoding: Any, n: int, special: np.ndarray, segment_ids: np.ndarray, texts: Sequence[str | None]
) -> np.ndarray | None:
    """Word ids as a reader counts words: the whitespace-separated chunk of the segment's
    text in which each token starts (by the tokenizer's character offsets), unique across
    segments; -1 for special tokens. None when the tokenizer gives no offsets."""
    try:
        offsets = encoding["offset_mapping"]
    except (KeyError, TypeError):
        return None
    if offsets is None or len(offsets) != n:
        return None
    chunk_of: list[np.ndarray] = []
    first_chunk: list[int] = []
    total = 0
    for text in texts:
        text = text or ""
        space = np.array([c.isspace() for c in text], dtype=bool)
        starts = ~space & np.concatenate([[True], space[:-1]]) if len(text) else np.zeros(0, bool)
        chunk = np.cumsum(starts) - 1  # chunk index at each character (whitespace: the chunk before)
        chunk_of.append(chunk)
        first_chunk.append(total)
        total += int(starts.sum())
    word_ids = np.full(n, -1, dtype=np.int32)
    for i, span in enumerate(offsets):
        start, end = int(span[0]), int(span[1])
        segment = int(segment_ids[i]) if int(segment_ids[i]) < len(texts) else 0
        text = texts[segment] or ""
        if special[i] or end <= start or start >= len(text):
            continue
        position = start
        while position < min(end, len(text)) - 1 and text[position].isspace():
            position += 1  # byte-level BPE tokens carry their leading space
        word_ids[i] = first_chunk[segment] + max(int(chunk_of[segment][position]), 0)
    return word_ids


def _special_mask(tokenizer: Any, ids: list[int]) -> np.ndarray:
    special_ids = set(getattr(tokenizer, "all_special_ids", []) or [])
    return np.array([i in special_ids for i in ids], dtype=bool)


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


class Extractor:
    """Tokenizes, batches and runs texts through one loaded model.

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
        self.loaded = loaded
        self.max_batch_tokens = max(1, int(max_batch_tokens))
        self.vectors = vectors
        self.norms = norms
        self.truncate = truncate
        self.verbose = verbose
        self.selection = Selection.resolve(loaded, layers, heads, head_mean, kinds)
        self.chunk_bytes = chunk_bytes
        tokenizer = loaded.tokenizer
        self.pad_id = next(
            (
                v
                for v in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None), 0)
                if v is not None
            ),
            0,
        )
        self.input_names = set(getattr(tokenizer, "model_input_names", ["input_ids", "attention_mask"]))

    # -- tokenizing ------------------------------------------------------------------
    def _tokenize(self, text: str, pair: str | None, *, target: bool = False) -> tuple[Any, int]:
        tokenizer = self.loaded.tokenizer
        limit = self.loaded.max_length
        kwargs: dict[str, Any] = {"add_special_tokens": True}
        if getattr(tokenizer, "is_fast", False):
            kwargs["return_offsets_mapping"] = True
        call = (
            (lambda **kw: tokenizer(text_target=text, **kw)) if target else (lambda **kw: tokenizer(text, pair, **kw))
        )
        with quiet_libraries(self.verbose):
            try:
                full = call(**kwargs)
            except (TypeError, ValueError, RuntimeError, OverflowError) as exc:  # what the tokenizer rejects
                raise InputError(
                    f"the tokenizer cannot take this text: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                    hint="check the text for unusual characters",
                ) from exc
            length = len(full["input_ids"])
            if length <= limit:
                return full, 0
            if not self.truncate:
                what = "target text" if target else "text"
                raise InputError(
                    f"the {what} has {length} tokens, more than the model's maximum of {limit}",
                    hint="shorten it, or allow truncation",
                )
            strategy = "longest_first" if pair is not None else True
            cut = call(truncation=strategy, max_length=limit, **kwargs)
        return cut, length - len(cut["input_ids"])

    def encode(self, item: TextInput) -> EncodedInput:
        tokenizer = self.loaded.tokenizer
        text = validate_text(item.text)
        pair = validate_text(item.pair, "pair text") if item.pair is not None else None
        family = self.loaded.family
        if pair is not None and family != "encoder":
            raise InputError(
                f"a sentence pair needs an encoder model; '{self.loaded.name}' is {_article(family)} {family} model",
                hint="encoder-decoder models take a target (decoder) text instead",
            )
        if item.target is not None and family != "encoder-decoder":
            raise InputError(
                f"a target text needs an encoder-decoder model; '{self.loaded.name}' is {_article(family)} {family} model",
                hint="encoder models take a second sentence as a pair instead",
            )
        encoding, truncated = self._tokenize(text, pair)
        ids = list(encoding["input_ids"])
        if not ids:
            raise InputError("the text produced no tokens", hint="give some text to look at")
        extra = {
            name: list(encoding[name]) for name in ("token_type_ids",) if name in encoding and name in self.input_names
        }
        special = _special_mask(tokenizer, ids)
        tokenizer_words, segment_ids = _word_and_segment_ids(encoding, len(ids), special)
        reader_words = _reader_word_ids(encoding, len(ids), special, segment_ids, (text, pair))
        tokens = TokenSequence.from_tokens(
            tokenizer.convert_ids_to_tokens(ids),
            reader_words if reader_words is not None else tokenizer_words,
            special,
            segment_ids,
            tokenizer_word_ids=tokenizer_words,
        )
        target_ids = target_tokens = None
        if family == "encoder-decoder":
            target_ids, target_tokens, cut = self._encode_target(item.target)
            truncated += cut
        return EncodedInput(item, ids, extra, tokens, target_ids, target_tokens, truncated)

    def encode_ids(self, ids: Sequence[int], target_ids: Sequence[int] | None = None) -> EncodedInput:
        """An input given as token ids (no tokenizer needed; tokens are named by the
        tokenizer when there is one, else by their ids). ``target_ids``: the decoder input
        ids of an encoder-decoder model."""
        tokenizer = self.loaded.tokenizer

        def sequence(values: Sequence[int]) -> TokenSequence:
            names = tokenizer.convert_ids_to_tokens(list(values)) if tokenizer is not None else [str(i) for i in values]
            special = _special_mask(tokenizer, list(values)) if tokenizer is not None else np.zeros(len(values), bool)
            return TokenSequence.from_tokens(names, np.where(special, -1, np.arange(len(values))), special)

        text = " ".join(str(i) for i in ids[:8]) + (" …" if len(ids) > 8 else "")
        target = list(target_ids) if target_ids is not None else None
        return EncodedInput(
            TextInput(text), list(ids), {}, sequence(ids), target, sequence(target) if target is not None else None, 0
        )

    def _encode_target(self, target: str | None) -> tuple[list[int], TokenSequence, int]:
        """Decoder inputs for teacher forcing: the decoder start token followed by the
        tokenized target (its trailing end-of-sequence token dropped, as a shift-right
        would), so every target word is a decoder position."""
        tokenizer = self.loaded.tokenizer
        config = self.loaded.model.config
        start = getattr(config, "decoder_start_token_id", None)
        if start is None:
            start = self.pad_id
        ids: list[int] = [int(start)]
        words: list[int] = [-1]
        own_words: list[int] = [-1]
        cut = 0
        if target is not None:
            validate_text(target, "target text")
            encoding, cut = self._tokenize(target, None, target=True)
            target_ids = list(encoding["input_ids"])
            special = _special_mask(tokenizer, target_ids)
            target_words, target_segments = _word_and_segment_ids(encoding, len(target_ids), special)
            reader = _reader_word_ids(encoding, len(target_ids), special, target_segments, (target,))
            tokenizer_words = target_words
            target_words = reader if reader is not None else target_words
            if target_ids and target_ids[-1] == tokenizer.eos_token_id:
                target_ids, target_words, tokenizer_words = target_ids[:-1], target_words[:-1], tokenizer_words[:-1]
            if target_ids and target_ids[0] == start:
                target_ids, target_words, tokenizer_words = target_ids[1:], target_words[1:], tokenizer_words[1:]
            ids += target_ids
            words += list(target_words)
            own_words += list(tokenizer_words)
            limit = self.loaded.max_length
            if len(ids) > limit:
                cut += len(ids) - limit
                ids, words, own_words = ids[:limit], words[:limit], own_words[:limit]
        special = _special_mask(tokenizer, ids)
        special[0] = True
        tokens = TokenSequence.from_tokens(
            tokenizer.convert_ids_to_tokens(ids),
            np.where(special, -1, words),
            special,
            np.zeros(len(ids)),
            tokenizer_word_ids=np.where(special, -1, own_words),
        )
        return ids, tokens, cut

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

    def _store_sink(self) -> Any:
        from attnviz.capture import StoreHeads

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
                kind: {"scaling": v["scaling"], "softcap": v["softcap"]} for kind, v in vectors.items()
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
) -> AttentionResult:
    """Extract the attention of one text: every layer and head, or only ``layers`` and
    ``heads`` (0-based: an int, a sequence, a slice, or a string such as ``"2-4"``).
    Only what is selected is computed and stored. ``head_mean`` keeps one map per layer,
    the mean over the selected heads. ``vectors`` also keeps the query and key vectors of
    the dot product (``result.vectors``, for the neuron view); ``norms`` the norm-based
    weights of Kobayashi et al. (``result.derived["norm"]``, ``result.norm_weights()``).

    ``model`` is an alias (default ``minilm``, bundled), a hub id, a local directory or an
    already :func:`~attnviz.models.load_model`-ed model (reuse it for many texts).
    """
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


# -- what the neuron view and norm-based attention need ----------------------------------
class VectorStore:
    """A capture sink that keeps, for the selected layers and heads, the query and key
    vectors of the model's dot product (after rotary embedding; for GQA the key of each
    head's key-value group) and what else enters the logits: ``vectors[item][kind]`` holds
    ``query`` ``[layers, heads, queries, head_dim]``, ``key`` ``[layers, heads, keys,
    head_dim]``, ``scaling`` (per layer), ``softcap``, ``sinks`` ``[layers, heads]`` and T5's
    ``bias`` ``[layers, heads, queries, keys]`` where the model has them."""

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
        store = self.vectors[item].setdefault(kind, {"scaling": [None] * n_layers, "softcap": [None] * n_layers})
        store["scaling"][li] = extras["scaling"]
        store["softcap"][li] = None if extras["softcap"] is None else float(extras["softcap"])
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

    def __init__(self, raw: Any, normed: Any, model: Any) -> None:
        self.store, self.normed, self.model = raw, normed, model
        self.lengths: dict[tuple[int, str, int], np.ndarray] = {}

    def heads_for(self, kind: str, layer: int) -> tuple[int, ...]:
        return self.store.heads_for(kind, layer)  # type: ignore[no-any-return]

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
