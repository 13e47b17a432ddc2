"""Pure-NumPy transforms of an :class:`AttentionResult`.

Every transform returns a new result and records itself in ``result.transforms`` so that
saved data says what was done to the raw attention.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Union

import numpy as np

from attnviz.errors import IndexSpecError, SelectionError
from attnviz.result import MEAN_HEAD, AttentionResult, TokenSequence, kind_axes

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")
#: Longer indices are refused as not an index (no model has 10**18 layers, and Python's int()
#: refuses strings past 4,300 digits with a ValueError).
_MAX_DIGITS = 18

#: A layer or head selection: ``None``/``"all"``, an int, a sequence of ints, a slice, or a
#: string ``"3"``, ``"2-4"`` (inclusive), ``"0,3"``. Always 0-based.
IndexSpec = Union[str, int, Sequence[int], slice, None]


def parse_index_spec(spec: IndexSpec, count: int, what: str = "layer") -> tuple[int, ...]:
    """Parse ``all``, ``3``, ``2-4`` (inclusive) or a comma list of those, 0-based; from
    Python also an int, a sequence of ints or a slice.

    Raises :class:`SelectionError` naming the valid range when an index is out of range.
    """
    valid = f"0-{count - 1}" if count > 1 else "0"
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in {"", "all"}):
        return tuple(range(count))
    if isinstance(spec, slice):
        return tuple(range(count))[spec]
    if isinstance(spec, bool) or not isinstance(spec, (str, int, Sequence)):
        raise IndexSpecError(what, "{name} must be an index, a range or 'all', not " + type(spec).__name__)
    if isinstance(spec, int):
        parts = [str(spec)]
    elif isinstance(spec, str):
        parts = [p for p in spec.split(",") if p.strip()]
    else:
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in spec):
            raise IndexSpecError(what, "{name} " + _literal(repr(list(spec))) + " must hold 0-based integer indices")
        parts = [str(i) for i in spec]
    chosen: list[int] = []
    for part in parts:
        match = _RANGE.match(part)
        if match and any(len(group) > _MAX_DIGITS for group in match.groups() if group):
            match = None  # past any model's size, and past what int() converts safely
        if not match:
            raise IndexSpecError(
                what,
                "{name} '" + _literal(str(spec)) + "' is not an index, a range or 'all'",
                hint=f"use e.g. 0, 2-4, 0,3 or all ({what}s are 0-based: {valid})",
            )
        start = int(match.group(1))
        stop = int(match.group(2)) if match.group(2) is not None else start
        if stop < start:
            raise IndexSpecError(
                what,
                "{name} range '" + _literal(part.strip()) + "' runs backwards",
                hint=f"write it low-high, e.g. {stop}-{start}",
            )
        if stop >= count:  # checked before enumerating: a range may be as long as its digits allow
            index = start if start >= count else count
            raise IndexSpecError(
                what,
                f"{{name}} {index} is out of range: this model has {count} {what}{'' if count == 1 else 's'} ({valid})",
                hint=f"{what}s are 0-based; choose from {valid}",
            )
        seen = set(chosen)
        chosen.extend(index for index in range(start, stop + 1) if index not in seen)
    return tuple(chosen)


def count_index_spec(spec: IndexSpec, count: int, what: str = "layer") -> int:
    """How many indices :func:`parse_index_spec` would choose, with the same checks, without
    enumerating ``all`` or a slice: ``count`` comes from an untrusted config and may be 10**9."""
    if spec is None or (isinstance(spec, str) and spec.strip().lower() in {"", "all"}):
        return count
    if isinstance(spec, slice):
        return len(range(count)[spec])
    return len(parse_index_spec(spec, count, what))


def _literal(text: str) -> str:
    """``text`` safe inside an :class:`IndexSpecError` template, cut to a readable length."""
    if len(text) > 40:
        text = text[:30] + f"... ({len(text)} characters)"
    return text.replace("{", "{{").replace("}", "}}")


def describe_index_spec(spec: IndexSpec) -> str:
    """How a selection is recorded in ``transforms`` (``all``, ``2-4``, ``0,3``, ``1:3``)."""
    if spec is None:
        return "all"
    if isinstance(spec, slice):
        return f"{spec.start or 0}:{'' if spec.stop is None else spec.stop}"
    if isinstance(spec, (str, int)):
        return str(spec)
    return ",".join(str(i) for i in spec)


def select(result: AttentionResult, layers: IndexSpec = None, heads: IndexSpec = None) -> AttentionResult:
    """Keep only the chosen layers and heads (0-based specs, see :func:`parse_index_spec`),
    for every attention kind. Indices refer to the current arrays' positions."""
    if layers in (None, "all") and heads in (None, "all"):
        return result
    positions = {}
    for kind in result.kinds:
        array = result.attentions[kind]
        positions[kind] = (
            parse_index_spec(layers, array.shape[0], "layer"),
            parse_index_spec(heads, array.shape[1], "head"),
        )
    step = f"select(layers={describe_index_spec(layers)},heads={describe_index_spec(heads)})"
    return _take(result, positions, step)


def _take(
    result: AttentionResult, positions: dict[str, tuple[tuple[int, ...], tuple[int, ...]]], step: str
) -> AttentionResult:
    """Keep the layer and head positions of each kind, in attention, vectors and norms."""
    attentions, layer_ids, head_ids, vectors = {}, {}, {}, {}
    for kind, (layer_index, head_index) in positions.items():
        grid = np.ix_(layer_index, head_index)
        attentions[kind] = np.ascontiguousarray(result.attentions[kind][grid])
        layer_ids[kind] = tuple(result.layer_ids[kind][i] for i in layer_index)
        head_ids[kind] = tuple(result.head_ids[kind][i] for i in head_index)
        if kind in result.vectors:
            vectors[kind] = {name: np.ascontiguousarray(v[grid]) for name, v in result.vectors[kind].items()}
    derived = dict(result.derived)
    extra_meta = _take_vector_meta(result, positions)
    norm_kind = result.extra_meta.get("norm_kind", result.default_kind)
    if "norm" in derived and norm_kind in positions:
        derived["norm"] = np.ascontiguousarray(derived["norm"][np.ix_(*positions[norm_kind])])
    return replace(
        result,
        attentions=attentions,
        layer_ids=layer_ids,
        head_ids=head_ids,
        vectors=vectors,
        derived=derived,
        extra_meta=extra_meta,
        transforms=result.transforms + (step,),
    )


def _take_vector_meta(
    result: AttentionResult, positions: dict[str, tuple[tuple[int, ...], tuple[int, ...]]]
) -> dict[str, Any]:
    """``extra_meta`` with the per-layer lists of ``meta["vectors"]`` (scaling, softcap,
    window) cut to the kept layer positions, so entry ``n`` stays layer ``n``'s; a list of
    another length (a file written before the lists were cut) is left as it was."""
    vectors = result.extra_meta.get("vectors")
    if not isinstance(vectors, dict):
        return result.extra_meta
    cut: dict[str, Any] = {}
    for kind, parts in vectors.items():
        if kind not in positions or not isinstance(parts, dict):
            cut[kind] = parts
            continue
        layer_index = positions[kind][0]
        count = len(result.layer_ids[kind])
        cut[kind] = {
            name: [values[i] for i in layer_index] if isinstance(values, list) and len(values) == count else values
            for name, values in parts.items()
        }
    return {**result.extra_meta, "vectors": cut}


def select_ids(result: AttentionResult, layers: IndexSpec = None, heads: IndexSpec = None) -> AttentionResult:
    """Like :func:`select`, but the indices are the model's own layer and head numbers as
    recorded in the result (a file saved with ``--layer 2`` holds layer 2, at position 0)."""
    if layers in (None, "all") and heads in (None, "all"):
        return result
    positions: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
    for kind in result.kinds:
        chosen = []
        for spec, ids, what in ((layers, result.layer_ids[kind], "layer"), (heads, result.head_ids[kind], "head")):
            ids = tuple(int(i) for i in ids)
            if spec in (None, "all"):
                chosen.append(tuple(range(len(ids))))
                continue
            if MEAN_HEAD in ids and what == "head":
                raise SelectionError("the saved heads were averaged; there is no single head to pick")
            wanted = parse_index_spec(spec, max(ids) + 1, what) if ids else ()
            missing = [i for i in wanted if i not in ids]
            if missing:
                held = ", ".join(map(str, ids))
                raise IndexSpecError(
                    what,
                    f"{{name}} {', '.join(map(str, missing))} is not in this file: it holds {what}s {held}",
                    hint=f"pick from {held} (the model's own {what} numbers)",
                )
            chosen.append(tuple(ids.index(i) for i in wanted))
        positions[kind] = (chosen[0], chosen[1])
    step = f"select(layers={describe_index_spec(layers)},heads={describe_index_spec(heads)})"
    return _take(result, positions, step)


def mean_heads(result: AttentionResult) -> AttentionResult:
    """Average over heads: each array becomes ``[layers, 1, query, key]`` with head id -1."""
    attentions = {
        k: a.mean(axis=1, keepdims=True, dtype=np.float64).astype(np.float32) for k, a in result.attentions.items()
    }
    head_ids: dict[str, tuple[int, ...]] = {k: (MEAN_HEAD,) for k in result.kinds}
    return replace(result, attentions=attentions, head_ids=head_ids, transforms=result.transforms + ("mean_heads",))


def renormalise_rows(array: np.ndarray) -> np.ndarray:
    """Rows rescaled to sum to 1 (float64 totals, float32 result; a row of zeros stays zero)."""
    sums = array.sum(axis=-1, keepdims=True, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(sums > 0, array / np.where(sums > 0, sums, 1.0), 0.0)
    return out.astype(np.float32)


def special_keep(
    tokens: TokenSequence, target_tokens: TokenSequence | None, has_target: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """(source, target) masks of the tokens :func:`drop_special` keeps: the non-special
    ones; a decoder holding only its start token (no target text given) keeps it, so every
    kind has a map. :class:`SelectionError` when a side given by the user has none left."""
    keep_source = ~np.asarray(tokens.special_mask, dtype=bool)
    keep_target = ~np.asarray(target_tokens.special_mask, dtype=bool) if target_tokens is not None else None
    if not keep_source.any() or (keep_target is not None and has_target and not keep_target.any()):
        raise SelectionError(
            "the text has only special tokens; nothing is left without them", hint="keep the special tokens"
        )
    if keep_target is not None and not keep_target.any():
        keep_target = np.ones_like(keep_target)
    return keep_source, keep_target


def drop_special(result: AttentionResult) -> AttentionResult:
    """Remove special tokens ([CLS], [SEP], <s>, </s>, ...) from both axes and renormalise
    each row to sum to 1 (a row that attended only to special tokens becomes all zeros)."""
    keep_source, keep_target = special_keep(result.tokens, result.target_tokens, result.target is not None)
    attentions, vectors = {}, {}
    for kind, array in result.attentions.items():
        query_keep, key_keep = kind_axes(kind, keep_source, keep_target)
        sliced = array[:, :, query_keep][:, :, :, key_keep]
        attentions[kind] = renormalise_rows(sliced)
        if kind in result.vectors:
            parts = dict(result.vectors[kind])
            for name, keep in (("query", query_keep), ("key", key_keep)):
                if name in parts:
                    parts[name] = parts[name][:, :, keep]
            if "bias" in parts:
                parts["bias"] = parts["bias"][:, :, query_keep][:, :, :, key_keep]
            vectors[kind] = parts
    return replace(
        result,
        attentions=attentions,
        vectors=vectors,
        derived={k: v for k, v in result.derived.items() if k != "norm"},
        tokens=result.tokens.subset(keep_source),
        target_tokens=result.target_tokens.subset(keep_target)
        if result.target_tokens is not None and keep_target is not None
        else None,
        transforms=result.transforms + ("drop_special",),
    )


WORD_RULES = ("reader", "tokenizer")


def _word_groups(sequence: TokenSequence, rule: str = "reader") -> list[list[int]]:
    """Positions of each word in order of first appearance; special tokens stand alone.
    ``rule``: ``reader`` (whitespace-separated words) or ``tokenizer`` (its pre-tokenizer's)."""
    groups: list[list[int]] = []
    by_word: dict[int, list[int]] = {}
    ids = (
        sequence.tokenizer_word_ids
        if rule == "tokenizer" and sequence.tokenizer_word_ids is not None
        else sequence.word_ids
    )
    for position, word in enumerate(ids.tolist()):
        if word < 0 or sequence.special_mask[position]:
            groups.append([position])
        elif word in by_word:
            by_word[word].append(position)
        else:
            by_word[word] = [position]
            groups.append(by_word[word])
    return groups


def _merge_display(sequence: TokenSequence, group: list[int]) -> str:
    pieces = []
    for position in group:
        raw = sequence.tokens[position]
        pieces.append(raw[2:] if raw.startswith("##") and len(raw) > 2 else raw)
    from attnviz.result import clean_token

    return clean_token("".join(pieces))


def _sum_groups(array: np.ndarray, groups: list[list[int]], axis: int) -> np.ndarray:
    """Sum ``array`` over each group of positions along ``axis``: one gather and one
    ``np.add.reduceat``, so the cost is linear in the array's size."""
    order = np.fromiter((p for g in groups for p in g), dtype=np.intp)
    starts = np.cumsum([0] + [len(g) for g in groups[:-1]], dtype=np.intp)
    return np.add.reduceat(np.take(array, order, axis=axis), starts, axis=axis)


def merge_words(result: AttentionResult, rule: str = "reader") -> AttentionResult:
    """Merge sub-word tokens into words (Clark et al. 2019): attention TO a word is the sum
    over its pieces, attention FROM a word is the mean over its pieces. Rows still sum to 1.

    ``rule="reader"`` (default): a word is what a reader calls one, whitespace-separated
    ("didn't", "jane.doe@example.com"); ``rule="tokenizer"``: the tokenizer's own
    pre-tokenizer words (didn / ' / t)."""
    if rule not in WORD_RULES:
        raise SelectionError(f"unknown word rule '{rule}'", hint="use reader or tokenizer")
    source_groups = _word_groups(result.tokens, rule)
    target_groups = _word_groups(result.target_tokens, rule) if result.target_tokens is not None else None

    def merged_sequence(sequence: TokenSequence, groups: list[list[int]]) -> TokenSequence:
        return TokenSequence(
            tokens=tuple(_merge_display(sequence, g) for g in groups),
            display=tuple(_merge_display(sequence, g) for g in groups),
            word_ids=np.array([sequence.word_ids[g[0]] for g in groups], dtype=np.int32),
            special_mask=np.array([bool(sequence.special_mask[g[0]]) for g in groups], dtype=bool),
            segment_ids=np.array([sequence.segment_ids[g[0]] for g in groups], dtype=np.int8),
        )  # merged: each group is one word under either rule

    attentions = {}
    for kind, array in result.attentions.items():
        query_groups, key_groups = kind_axes(kind, source_groups, target_groups)
        to_words = _sum_groups(array.astype(np.float64), key_groups, axis=-1)  # TO a word: sum over its pieces
        from_words = _sum_groups(to_words, query_groups, axis=-2)
        sizes = np.array([len(g) for g in query_groups], dtype=np.float64)
        attentions[kind] = (from_words / sizes[:, None]).astype(np.float32)  # FROM a word: mean over its pieces
    return replace(
        result,
        attentions=attentions,
        vectors={},  # a word has no single query or key vector
        derived={k: v for k, v in result.derived.items() if k != "norm"},
        tokens=merged_sequence(result.tokens, source_groups),
        target_tokens=merged_sequence(result.target_tokens, target_groups)
        if result.target_tokens is not None and target_groups is not None
        else None,
        transforms=result.transforms + ("merge_words" if rule == "reader" else "merge_words(tokenizer)",),
    )


def apply_transforms(
    result: AttentionResult,
    *,
    layers: IndexSpec = None,
    heads: IndexSpec = None,
    words: bool | str = False,
    no_special: bool = False,
) -> AttentionResult:
    """The transforms of the command line, in their fixed order: drop special tokens,
    merge words, then select layers and heads."""
    if no_special:
        result = drop_special(result)
    if words:
        result = merge_words(result, "tokenizer" if words == "tokenizer" else "reader")
    return select(result, layers, heads)
