"""Text to token ids: validating the text, tokenizing (pairs, encoder-decoder targets,
truncation) and the word and segment ids that word-level views merge by.

:class:`Encoder` is what :class:`attnviz.extraction.Extractor` tokenizes with; it needs the
loaded model's tokenizer and configuration but never runs the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from attnviz.errors import InputError, TooLongError
from attnviz.models import LoadedModel, quiet_libraries
from attnviz.result import TokenSequence


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


class Encoder:
    """Tokenizes texts for one loaded model (see :class:`EncodedInput`).

    ``truncate``: cut texts longer than the model's maximum (the cut is counted in
    ``EncodedInput.truncated``); when False such a text raises :class:`InputError`.
    """

    def __init__(self, loaded: LoadedModel, *, truncate: bool = True, verbose: bool = False) -> None:
        self.loaded = loaded
        self.truncate = truncate
        self.verbose = verbose
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
                raise TooLongError(
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
