"""The attention result: tokens plus float32 attention arrays (saved by :mod:`attnviz.saved`).

Shapes: every attention array is ``[layers, heads, query, key]``, float32.

* ``encoder`` - self-attention of an encoder (BERT, the encoder of T5/BART):
  query and key are the source tokens.
* ``decoder`` - causal self-attention of a decoder (GPT-2, the decoder of T5/BART):
  query and key are the decoder tokens (``tokens`` for decoder-only models,
  ``target_tokens`` for encoder-decoders).
* ``cross`` - decoder queries over encoder keys: ``[layers, heads, target, source]``.

Layer and head indices are 0-based everywhere (arrays, JSON, command line).
This module is pure NumPy: loading a saved result never imports torch.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any, Literal

import numpy as np

from attnviz.errors import InputError, SelectionError

SCHEMA = "attnviz/1"
KINDS = ("encoder", "decoder", "cross")
Kind = Literal["encoder", "decoder", "cross"]
MEAN_HEAD = -1  # head index that stands for "mean over heads"


def clean_token(token: str) -> str:
    """A readable form of a sub-word token: WordPiece ``##``, byte-level ``Ġ``/``Ċ`` and
    SentencePiece ``▁`` markers removed; an empty result shows as ``␣``."""
    text = token
    if text.startswith("##") and len(text) > 2:
        text = text[2:]
    text = text.replace("Ġ", " ").replace("▁", " ").replace("Ċ", "\\n").replace("ĉ", "\\t")
    text = text.strip()
    return text if text else "␣"


def kind_axes(kind: Kind | str, source: Any, target: Any) -> tuple[Any, Any]:
    """(query axis, key axis) of attention ``kind``, given what runs along the source side
    (the text: ``tokens``) and the target side (an encoder-decoder's decoder text:
    ``target_tokens``, None otherwise). The one place this rule is written: encoder
    attention and a decoder-only model's attention are source x source, an
    encoder-decoder's decoder attention target x target, cross attention target x source."""
    if kind == "encoder" or target is None:
        return source, source
    if kind == "decoder":
        return target, target
    return target, source


@dataclass(frozen=True, eq=False)
class TokenSequence:
    """The tokens along one axis of an attention map.

    ``tokens``: as the tokenizer produced them; ``display``: cleaned for labels;
    ``word_ids``: int32 ``[n]``, the word each token belongs to, as a reader counts words:
    whitespace-separated, found through the tokenizer's character offsets (``-1`` for
    special tokens, unique across the two segments of a pair); ``tokenizer_word_ids``: the
    same by the tokenizer's own pre-tokenizer ("didn't" is three words there), None when
    unknown; ``special_mask``: bool ``[n]``; ``segment_ids``: int8 ``[n]``, 0 for the
    first text and 1 for the pair text.
    """

    tokens: tuple[str, ...]
    display: tuple[str, ...]
    word_ids: np.ndarray
    special_mask: np.ndarray
    segment_ids: np.ndarray
    tokenizer_word_ids: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.tokens)
        names = ("display", "word_ids", "special_mask", "segment_ids")
        for name in names + (("tokenizer_word_ids",) if self.tokenizer_word_ids is not None else ()):
            if len(getattr(self, name)) != n:
                raise ValueError(f"TokenSequence.{name} has {len(getattr(self, name))} entries, tokens {n}")

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def pair_start(self) -> int | None:
        """Index of the first token of the second segment, or None without a pair."""
        positions = np.flatnonzero((self.segment_ids == 1) & ~self.special_mask)
        return int(positions[0]) if positions.size else None

    def labels(self) -> list[str]:
        return list(self.display)

    def subset(self, keep: np.ndarray) -> TokenSequence:
        index = np.flatnonzero(keep)
        return TokenSequence(
            tokens=tuple(self.tokens[i] for i in index),
            display=tuple(self.display[i] for i in index),
            word_ids=self.word_ids[index],
            special_mask=self.special_mask[index],
            segment_ids=self.segment_ids[index],
            tokenizer_word_ids=self.tokenizer_word_ids[index] if self.tokenizer_word_ids is not None else None,
        )

    @classmethod
    def from_tokens(
        cls,
        tokens: list[str],
        word_ids: list[int] | np.ndarray | None = None,
        special_mask: list[bool] | np.ndarray | None = None,
        segment_ids: list[int] | np.ndarray | None = None,
        display: list[str] | None = None,
        tokenizer_word_ids: list[int] | np.ndarray | None = None,
    ) -> TokenSequence:
        n = len(tokens)
        return cls(
            tokenizer_word_ids=np.asarray(tokenizer_word_ids, dtype=np.int32)
            if tokenizer_word_ids is not None
            else None,
            tokens=tuple(tokens),
            display=tuple(display) if display is not None else tuple(clean_token(t) for t in tokens),
            word_ids=np.asarray(word_ids if word_ids is not None else np.arange(n), dtype=np.int32),
            special_mask=np.asarray(special_mask if special_mask is not None else np.zeros(n), dtype=bool),
            segment_ids=np.asarray(segment_ids if segment_ids is not None else np.zeros(n), dtype=np.int8),
        )


@dataclass(frozen=True, eq=False)
class AttentionResult:
    """Attention of one text through one model.

    ``attentions`` maps each kind (``encoder``, ``decoder``, ``cross``) to a float32 array
    ``[layers, heads, query, key]``. ``layer_ids[kind]`` and ``head_ids[kind]`` give the
    original 0-based index of each layer and head along those axes (a head id of ``-1``
    is the mean over heads). ``tokens`` is the sequence of the only stack, or the source
    (encoder) side of an encoder-decoder; ``target_tokens`` is the decoder side.
    """

    model: str
    family: str
    text: str
    tokens: TokenSequence
    attentions: dict[str, np.ndarray]
    layer_ids: dict[str, tuple[int, ...]]
    head_ids: dict[str, tuple[int, ...]]
    pair: str | None = None
    target: str | None = None
    target_tokens: TokenSequence | None = None
    transforms: tuple[str, ...] = ()
    truncated_tokens: int = 0
    extra_meta: dict[str, Any] = field(default_factory=dict)
    derived: dict[str, np.ndarray] = field(default_factory=dict)
    #: per kind, the vectors of the dot product (``query``, ``key`` ``[layers, heads, tokens,
    #: head_dim]``; ``sinks``, ``bias`` where the model has them), when extracted with
    #: ``vectors=True``; ``meta["vectors"][kind]`` holds ``scaling`` and ``softcap`` per layer
    vectors: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)

    # -- structure -------------------------------------------------------------------
    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k in KINDS if k in self.attentions)

    @property
    def default_kind(self) -> str:
        return self.kinds[0]

    def array(self, kind: str | None = None) -> np.ndarray:
        """The ``[layers, heads, query, key]`` array of ``kind`` (default: the first kind)."""
        kind = kind or self.default_kind
        if kind not in self.attentions:
            raise SelectionError(
                f"this {self.family} model has no '{kind}' attention",
                hint=f"choose one of: {', '.join(self.kinds)}",
            )
        return self.attentions[kind]

    def axes(self, kind: str | None = None) -> tuple[TokenSequence, TokenSequence]:
        """(query tokens, key tokens) of ``kind``."""
        kind = kind or self.default_kind
        self.array(kind)
        return kind_axes(kind, self.tokens, self.target_tokens)

    @property
    def shape(self) -> dict[str, tuple[int, ...]]:
        return {k: tuple(int(d) for d in self.attentions[k].shape) for k in self.kinds}

    def with_changes(self, **changes: Any) -> AttentionResult:
        return replace(self, **changes)

    # -- the saved format (attnviz.saved writes and reads it) ---------------------------
    VECTOR_NAMES = ("query", "key", "sinks", "bias")

    def meta(self) -> dict[str, Any]:
        """The ``meta`` document of the saved format (:func:`attnviz.saved.metadata`)."""
        from attnviz.saved import metadata

        return metadata(self)

    def _token_fields(self) -> dict[str, np.ndarray]:
        from attnviz.saved import token_fields

        return token_fields(self)

    def norm_weights(self) -> AttentionResult:
        """This result with norm-based weights (``derived["norm"]``, Kobayashi et al. 2020)
        in place of the attention of their kind, so every view, transform and rollout works
        on them; ``meta["weights"]`` says so."""
        norm = self.derived.get("norm")
        if norm is None:
            raise SelectionError(
                "this result has no norm-based weights", hint="extract with norms=True (the norm view does)"
            )
        kind = str(self.extra_meta.get("norm_kind") or self.default_kind)
        attentions = {kind: np.asarray(norm, dtype=np.float32)}
        derived = {k: v for k, v in self.derived.items() if k != "norm"}
        return replace(
            self,
            attentions=attentions,
            layer_ids={kind: self.layer_ids[kind]},
            head_ids={kind: self.head_ids[kind]},
            derived=derived,
            vectors={},
            extra_meta=dict(self.extra_meta, weights="norm: alpha * ||f(x)|| (Kobayashi et al. 2020)"),
            transforms=self.transforms + ("norm",),
        )

    def to_npz(self, path: str | os.PathLike[str]) -> None:
        """Write the result as ``.npz`` (:func:`attnviz.saved.write_npz`)."""
        from attnviz.saved import write_npz

        write_npz(self, path)

    def to_dict(self) -> dict[str, Any]:
        """Everything in the npz as plain JSON types (:func:`attnviz.saved.to_document`)."""
        from attnviz.saved import to_document

        return to_document(self)

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write the result as ``.json`` (:func:`attnviz.saved.write_json`)."""
        from attnviz.saved import write_json

        write_json(self, path)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``.npz`` or ``.json`` by the extension of ``path``."""
        from attnviz.saved import save

        save(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, max_bytes: int | None = None) -> AttentionResult:
        """Read a result saved with :meth:`to_npz` or :meth:`to_json`, checked as untrusted
        input (sizes before inflating, schema, shapes, finite values; see
        :mod:`attnviz.saved`). Rows that do not sum to 1 give a Python warning."""
        import warnings

        from attnviz.saved import DEFAULT_MAX_BYTES, load_checked

        result, problems = load_checked(path, max_bytes or DEFAULT_MAX_BYTES)
        for problem in problems:
            warnings.warn(problem, stacklevel=2)
        return result

    # -- interop ---------------------------------------------------------------------
    @classmethod
    def from_arrays(
        cls,
        attention: Any,
        tokens: list[str],
        *,
        target_tokens: list[str] | None = None,
        model: str = "custom",
        text: str | None = None,
        kind: str = "encoder",
        layer_ids: list[int] | None = None,
        head_ids: list[int] | None = None,
        special_mask: list[bool] | None = None,
    ) -> AttentionResult:
        """A result from attention you computed yourself, so every renderer and analysis of
        attnviz works on it.

        ``attention``: ``[layers, heads, query, key]`` (also ``[heads, q, k]`` or ``[q, k]``,
        NumPy or CPU torch tensors) of ``kind``, or a dict ``{kind: array}`` for several
        kinds (``encoder``, ``decoder``, ``cross``; an encoder-decoder needs
        ``target_tokens``). Special tokens are ``[...]`` and ``<...>`` unless
        ``special_mask`` says otherwise. Shapes and values are checked."""
        arrays = attention if isinstance(attention, dict) else {kind: attention}
        attentions: dict[str, np.ndarray] = {}
        for name, value in arrays.items():
            if name not in KINDS:
                raise InputError(f"unknown attention kind '{name}'", hint=f"use one of: {', '.join(KINDS)}")
            array = np.asarray(value.detach().cpu().numpy() if hasattr(value, "detach") else value, dtype=np.float32)
            while array.ndim < 4:
                array = array[None]
            if array.ndim != 4:
                raise InputError(f"'{name}' attention must be [layers, heads, query, key], not {array.ndim}-d")
            if not np.isfinite(array).all() or (array < 0).any():
                raise InputError(f"'{name}' attention must hold finite, non-negative weights")
            attentions[name] = array

        def sequence(names: list[str], mask: list[bool] | None) -> TokenSequence:
            special = mask if mask is not None else [bool(re.fullmatch(r"\[[^\]]+\]|<[^>]+>", t)) for t in names]
            return TokenSequence.from_tokens(
                list(names), np.where(special, -1, np.arange(len(names))), special, display=list(names)
            )

        source = sequence(tokens, special_mask)
        target = sequence(target_tokens, None) if target_tokens is not None else None
        for name, array in attentions.items():
            queries, keys = kind_axes(name, source, target)
            if array.shape[2:] != (len(queries), len(keys)):
                raise InputError(
                    f"'{name}' attention is {array.shape[2]} x {array.shape[3]}, "
                    f"but the tokens give {len(queries)} x {len(keys)}"
                )
        family = "encoder-decoder" if "cross" in attentions else "decoder" if "decoder" in attentions else "encoder"
        if family == "encoder-decoder" and target is None:
            raise InputError("an encoder-decoder result needs target_tokens")
        return cls(
            model=model,
            family=family,
            text=text if text is not None else " ".join(tokens),
            tokens=source,
            target_tokens=target,
            attentions=attentions,
            layer_ids={k: tuple(layer_ids or range(a.shape[0])) for k, a in attentions.items()},
            head_ids={k: tuple(head_ids or range(a.shape[1])) for k, a in attentions.items()},
        )

    def to_bertviz(self, kind: str | None = None) -> Any:
        """What bertviz's ``head_view`` and ``model_view`` take: ``(attention, tokens,
        sentence_b_start)``, attention a tuple of torch tensors ``[1, heads, T, T]``, one per
        kept layer (bertviz numbers them from 0: its layer i is ``self.layer_ids[kind][i]``).
        For an encoder-decoder, a dict of bertviz's keyword arguments instead
        (``encoder_attention``, ``decoder_attention``, ``cross_attention``,
        ``encoder_tokens``, ``decoder_tokens``): ``head_view(**result.to_bertviz())``."""
        import torch

        def layers(name: str) -> tuple[Any, ...]:
            return tuple(torch.from_numpy(np.ascontiguousarray(layer))[None] for layer in self.attentions[name])

        if self.family == "encoder-decoder" and kind is None and self.target_tokens is not None:
            return {
                "encoder_attention": layers("encoder"),
                "decoder_attention": layers("decoder"),
                "cross_attention": layers("cross"),
                "encoder_tokens": list(self.tokens.tokens),
                "decoder_tokens": list(self.target_tokens.tokens),
            }
        kind = kind or self.default_kind
        self.array(kind)
        queries, keys = self.axes(kind)
        if queries is not keys:
            raise SelectionError("bertviz draws self-attention; pass kind='encoder' or 'decoder'")
        return layers(kind), list(queries.tokens), queries.pair_start

    # -- notebooks -------------------------------------------------------------------
    def _repr_html_(self) -> str:
        """The interactive page, inline in Jupyter (self-contained: works offline)."""
        from attnviz.render.html import render_html

        return render_html(self, inline=True)

    # Upward edges from result.py are lazy imports inside methods only: the saved format
    # (attnviz.saved) and the notebook page (attnviz.render.html) both import result.py.
    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        """Jupyter: the page (HTML) and, for where HTML is not shown, a text form that says
        how to get the view."""
        from attnviz.render.html import UNTRUSTED_NOTE, render_html

        return {"text/html": render_html(self, inline=True), "text/plain": f"{self!r}\n{UNTRUSTED_NOTE}"}

    def __repr__(self) -> str:
        shapes = ", ".join(f"{k}={list(s)}" for k, s in self.shape.items())
        return f"<AttentionResult model={self.model!r} tokens={len(self.tokens)} {shapes}>"


@lru_cache(maxsize=1)
def _transformers_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("transformers")
    except Exception:  # pragma: no cover - metadata missing
        return None
