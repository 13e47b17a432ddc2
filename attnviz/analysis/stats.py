"""Per-head attention statistics (Clark et al. 2019) and pattern labels (Kovaleva et al. 2019).

For a self-attention map ``a`` ``[query, key]`` of n tokens, each statistic is a mean over
query positions i of a per-query value:

==============  =============================================================  ============
name            per-query value                                                queries
==============  =============================================================  ============
entropy         -sum_j a_ij ln a_ij (nats)                                     all
distance        sum_j a_ij |i - j|                                             all
first           a_i0: mass on the first token ([CLS], <s>, or the first word)  all
separator       mass on special tokens after position 0 ([SEP], </s>, ...)     all
punctuation     mass on tokens made only of punctuation                         all
self            a_ii                                                           all
previous        a_i,i-1                                                        i >= 1
next            a_i,i+1                                                        i <= n-2
local           sum over |i - j| <= 2 of a_ij                                  all
==============  =============================================================  ============

Statistics are kept as sums and counts of query positions, so shards of a corpus merge
exactly: the merged mean pools every query position of every text (a long text weighs
more than a short one).
"""

from __future__ import annotations

import json
import os
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from attnviz.errors import InputError, SelectionError
from attnviz.result import KINDS, AttentionResult, TokenSequence
from attnviz.sinks import StatisticsSink

STATISTICS = ("entropy", "distance", "first", "separator", "punctuation", "self", "previous", "next", "local")
STATS_SCHEMA = "attnviz-stats/1"

#: Pattern thresholds, checked in this order (the first that holds names the head).
#: vertical/previous/next values follow Clark et al.'s code; broad uses their 3.8 nats, or,
#: for short texts where ln(n) < 3.8 makes that unreachable, 80% of the maximum entropy.
THRESHOLDS: dict[str, float] = {
    "vertical": 0.6,  # first + separator mass: attention parked on special tokens
    "diagonal": 0.5,  # self mass
    "previous": 0.5,  # previous-token mass
    "next": 0.5,  # next-token mass
    "block": 0.7,  # mass within +-2 positions, no single offset above its threshold
    "broad_nats": 3.8,  # entropy
    "broad_relative": 0.8,  # entropy / ln(number of keys)
}
#: Every pattern label, in the order the thresholds are checked (the last is the fallback).
LABELS = ("vertical", "diagonal", "previous", "next", "block", "broad", "heterogeneous")


def _is_punctuation(token: str) -> bool:
    token = token.strip()
    return bool(token) and all(unicodedata.category(c).startswith("P") for c in token)


def token_masks(tokens: TokenSequence) -> tuple[np.ndarray, np.ndarray]:
    """(separator, punctuation) masks over ``tokens``: special tokens after position 0,
    tokens made only of punctuation."""
    separator = np.asarray(tokens.special_mask, dtype=bool).copy()
    if separator.size:
        separator[0] = False
    punctuation = np.array([_is_punctuation(t) for t in tokens.display], dtype=bool)
    return separator, punctuation


def row_sums(a: np.ndarray, rows: np.ndarray, separator: np.ndarray, punctuation: np.ndarray) -> dict[str, np.ndarray]:
    """Each statistic's sum over some query rows of one self-attention map.

    ``a`` is ``[..., len(rows), n]``: the rows at query positions ``rows`` of an n x n map.
    Every statistic is a sum of per-row values, so the rows may come in any chunks."""
    a = np.asarray(a, dtype=np.float64)
    n = a.shape[-1]
    rows = np.asarray(rows)
    keys = np.arange(n)
    distance = np.abs(rows[:, None] - keys[None, :])
    with np.errstate(divide="ignore", invalid="ignore"):
        plogp = np.where(a > 0, a * np.log(np.where(a > 0, a, 1.0)), 0.0)
    local = np.arange(len(rows))
    has_previous, has_next = rows >= 1, rows <= n - 2
    return {
        "entropy": -plogp.sum((-2, -1)),
        "distance": (a * distance).sum((-2, -1)),
        "first": a[..., :, 0].sum(-1),
        "separator": a[..., :, separator].sum((-2, -1)),
        "punctuation": a[..., :, punctuation].sum((-2, -1)),
        "self": a[..., local, rows].sum(-1),
        "previous": a[..., local[has_previous], rows[has_previous] - 1].sum(-1),
        "next": a[..., local[has_next], rows[has_next] + 1].sum(-1),
        "local": (a * (distance <= 2)).sum((-2, -1)),
    }


def text_counts(n: int) -> dict[str, float]:
    """Query positions each statistic of an n-token text is averaged over, and the
    ``_log_keys`` sum (n ln n) the relative entropy threshold needs."""
    counts = {name: float(n) for name in STATISTICS}
    counts["previous"] = counts["next"] = float(max(n - 1, 0))
    return counts


def check_square(shape: tuple[int, ...]) -> None:
    if len(shape) != 4 or shape[-1] != shape[-2]:
        raise SelectionError(
            "head statistics need square self-attention; cross attention has no positions to compare",
            hint="use {kind} encoder or {kind} decoder",
            option="kind",
        )


def per_query_statistics(array: np.ndarray, tokens: TokenSequence) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """``array`` ``[layers, heads, n, n]`` -> for each statistic, (sum over queries, count)
    with sums shaped ``[layers, heads]``."""
    a = np.asarray(array, dtype=np.float64)
    check_square(a.shape)
    n = a.shape[-1]
    separator, punctuation = token_masks(tokens)
    sums = row_sums(a, np.arange(n), separator, punctuation)
    counts = text_counts(n)
    out = {name: (sums[name], np.full(a.shape[:2], counts[name])) for name in STATISTICS}
    out["_log_keys"] = (np.full(a.shape[:2], n * np.log(max(n, 2))), np.full(a.shape[:2], float(n)))
    return out


@dataclass
class HeadStatistics:
    """Sums and counts per statistic, each ``[layers, heads]``; :meth:`means` divides them."""

    model: str
    kind: str
    layer_ids: list[int]
    head_ids: list[int]
    texts: int = 0
    sums: dict[str, np.ndarray] = field(default_factory=dict)
    counts: dict[str, np.ndarray] = field(default_factory=dict)

    def add(self, result: AttentionResult) -> None:
        """Accumulate one text's attention of ``self.kind``."""
        array = result.array(self.kind)
        if list(result.layer_ids[self.kind]) != self.layer_ids or list(result.head_ids[self.kind]) != self.head_ids:
            raise SelectionError("all texts must have the same layers and heads selected")
        queries, _ = result.axes(self.kind)
        for name, (total, count) in per_query_statistics(array, queries).items():
            if name in self.sums:
                self.sums[name] = self.sums[name] + total
                self.counts[name] = self.counts[name] + count
            else:
                self.sums[name], self.counts[name] = total.copy(), count.copy()
        self.texts += 1

    def merge(self, other: HeadStatistics) -> HeadStatistics:
        """Exact combination of two shards (same model, kind, layers and heads)."""
        if (self.model, self.kind, self.layer_ids, self.head_ids) != (
            other.model,
            other.kind,
            other.layer_ids,
            other.head_ids,
        ):
            raise InputError(
                f"cannot merge statistics of {other.model} ({other.kind}, {len(other.layer_ids)}x{len(other.head_ids)}) "
                f"into {self.model} ({self.kind}, {len(self.layer_ids)}x{len(self.head_ids)})",
                hint="merge shards computed with the same model, {kind}, {layer} and {head}",
                option=("kind", "layer", "head"),
            )
        merged = HeadStatistics(
            self.model, self.kind, list(self.layer_ids), list(self.head_ids), self.texts + other.texts
        )
        for name in set(self.sums) | set(other.sums):
            merged.sums[name] = np.asarray(self.sums.get(name, 0) + other.sums.get(name, 0), dtype=np.float64)
            merged.counts[name] = np.asarray(self.counts.get(name, 0) + other.counts.get(name, 0), dtype=np.float64)
        return merged

    def means(self) -> dict[str, np.ndarray]:
        """Mean of each statistic per head, ``[layers, heads]`` (NaN where nothing was counted)."""
        out = {}
        for name in STATISTICS:
            with np.errstate(invalid="ignore", divide="ignore"):
                out[name] = np.where(
                    self.counts[name] > 0,
                    self.sums[name] / np.where(self.counts[name] > 0, self.counts[name], 1),
                    np.nan,
                )
        return out

    def labels(self) -> np.ndarray:
        """Pattern label per head, ``[layers, heads]`` of str (see :data:`THRESHOLDS`)."""
        means = self.means()
        with np.errstate(invalid="ignore", divide="ignore"):
            max_entropy = self.sums["_log_keys"] / self.counts["_log_keys"]
        relative = means["entropy"] / np.where(max_entropy > 0, max_entropy, 1)
        labels = np.full(means["entropy"].shape, "heterogeneous", dtype=object)
        decided = np.zeros(labels.shape, dtype=bool)

        def assign(condition: np.ndarray, label: str) -> None:
            nonlocal decided
            take = condition & ~decided
            labels[take] = label
            decided |= take

        assign(means["first"] + means["separator"] > THRESHOLDS["vertical"], "vertical")
        assign(means["self"] > THRESHOLDS["diagonal"], "diagonal")
        assign(np.nan_to_num(means["previous"]) > THRESHOLDS["previous"], "previous")
        assign(np.nan_to_num(means["next"]) > THRESHOLDS["next"], "next")
        assign(means["local"] > THRESHOLDS["block"], "block")
        assign((means["entropy"] > THRESHOLDS["broad_nats"]) | (relative > THRESHOLDS["broad_relative"]), "broad")
        return labels

    def rows(self) -> list[dict[str, Any]]:
        """One dict per head: ``layer``, ``head`` (0-based), each statistic and ``label``."""
        means, labels = self.means(), self.labels()
        rows = []
        for li, layer in enumerate(self.layer_ids):
            for hi, head in enumerate(self.head_ids):
                row: dict[str, Any] = {"layer": int(layer), "head": int(head)}
                for name in STATISTICS:
                    value = means[name][li, hi]
                    row[name] = None if np.isnan(value) else round(float(value), 6)
                row["label"] = str(labels[li, hi])
                rows.append(row)
        return rows

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": STATS_SCHEMA,
            "model": self.model,
            "kind": self.kind,
            "texts": self.texts,
            "layers": list(self.layer_ids),
            "head_ids": list(self.head_ids),
            "thresholds": THRESHOLDS,
            "heads": self.rows(),
            "sums": {k: v.tolist() for k, v in self.sums.items()},
            "counts": {k: v.tolist() for k, v in self.counts.items()},
        }

    @classmethod
    def from_dict(cls, document: dict[str, Any], where: str = "the statistics document") -> HeadStatistics:
        """A shard read back, every field checked (a shard is untrusted input): the schema,
        the layer and head lists, and sums and counts ``[layers, heads]`` of finite numbers
        for every statistic. ``where`` names the shard in messages."""
        if document.get("schema") != STATS_SCHEMA:
            raise InputError(
                f"{where} is not an attnviz statistics document (schema {str(document.get('schema'))[:40]!r})",
                hint="write one with HeadStatistics.to_dict(), or the stats command's JSON output",
            )
        for key in ("model", "kind"):
            if not isinstance(document.get(key), str):
                raise InputError(f"{where}: '{key}' is missing or not a string")
        if document["kind"] not in KINDS:
            raise InputError(f"{where}: 'kind' must be one of {', '.join(KINDS)}")
        ids = {}
        for key in ("layers", "head_ids"):
            value = document.get(key)
            if not (
                isinstance(value, list)
                and value
                and all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value)
                and len(set(value)) == len(value)
            ):
                raise InputError(f"{where}: '{key}' must be a non-empty list of distinct 0-based integers")
            ids[key] = value
        texts = document.get("texts")
        if not isinstance(texts, int) or isinstance(texts, bool) or texts < 0:
            raise InputError(f"{where}: 'texts' must be a whole number >= 0")
        shape = (len(ids["layers"]), len(ids["head_ids"]))
        tables = {}
        for table in ("sums", "counts"):
            value = document.get(table)
            if not isinstance(value, dict):
                raise InputError(f"{where}: '{table}' must map each statistic to a [layers, heads] table")
            tables[table] = {name: _table(where, table, name, value.get(name), shape) for name in _SUMMED}
            if table == "counts" and any((t < 0).any() for t in tables[table].values()):
                raise InputError(f"{where}: 'counts' holds negative counts")
        return cls(
            model=document["model"],
            kind=document["kind"],
            layer_ids=list(ids["layers"]),
            head_ids=list(ids["head_ids"]),
            texts=texts,
            sums=tables["sums"],
            counts=tables["counts"],
        )

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> HeadStatistics:
        path = Path(path)
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise InputError(f"no such file: {path}") from exc
        except (OSError, ValueError, RecursionError) as exc:
            raise InputError(f"{path} is not a statistics JSON file: {str(exc)[:200]}") from exc
        if not isinstance(document, dict):
            raise InputError(f"{path} is not a statistics JSON file")
        return cls.from_dict(document, str(path))


#: What a shard sums, each ``[layers, heads]``: the statistics and the relative-entropy term.
_SUMMED = (*STATISTICS, "_log_keys")


def _table(where: str, table: str, name: str, value: Any, shape: tuple[int, int]) -> np.ndarray:
    """One ``[layers, heads]`` table of a shard, as float64, refused unless regular and finite."""
    if value is None:
        raise InputError(f"{where}: '{table}' has no '{name}'")
    try:
        array = np.asarray(value, dtype=np.float64)
    except (ValueError, TypeError):
        raise InputError(f"{where}: '{table}.{name}' is not a table of numbers") from None
    if array.shape != shape:
        raise InputError(
            f"{where}: '{table}.{name}' is {'x'.join(map(str, array.shape)) or 'a scalar'}, "
            f"but the shard lists {shape[0]} layers x {shape[1]} heads"
        )
    if not np.isfinite(array).all():
        raise InputError(f"{where}: '{table}.{name}' holds NaN or infinite values")
    return array


def head_statistics(results: Iterable[AttentionResult], kind: str | None = None) -> HeadStatistics:
    """Statistics of every selected head over ``results`` (one model, same selection)."""
    stats: HeadStatistics | None = None
    for result in results:
        chosen = kind or result.default_kind
        if stats is None:
            stats = HeadStatistics(result.model, chosen, list(result.layer_ids[chosen]), list(result.head_ids[chosen]))
        stats.add(result)
    if stats is None:
        raise InputError("no texts to compute statistics over")
    return stats


def merge_statistics(shards: Iterable[HeadStatistics]) -> HeadStatistics:
    merged: HeadStatistics | None = None
    for shard in shards:
        merged = shard if merged is None else merged.merge(shard)
    if merged is None:
        raise InputError("nothing to merge", hint="pass statistics JSON files written by the stats command")
    return merged


def stream_statistics(
    extractor: Any,
    items: Iterable[Any],
    *,
    kind: str | None = None,
    no_special: bool = False,
    batch_size: int = 16,
    on_input: Any = None,
) -> HeadStatistics:
    """Head statistics of ``items`` through an :class:`attnviz.extraction.Extractor`, reduced
    as the attention is computed: memory follows the chunk size, not the text length.

    ``on_input(index, encoded_or_error)`` sees every input (for progress and problems)."""
    selection = extractor.selection
    kinds = list(selection.layers)
    chosen = kind or kinds[0]
    if chosen not in selection.layers:
        raise SelectionError(
            f"this {extractor.loaded.family} model has no '{chosen}' attention",
            hint=f"choose one of: {', '.join(kinds)}",
        )
    if chosen == "cross":
        check_square(())
    stats = HeadStatistics(extractor.loaded.name, chosen, list(selection.layers[chosen]), list(selection.heads[chosen]))
    sink = StatisticsSink(stats, no_special=no_special)
    for index, outcome in enumerate(extractor.reduce(items, sink, batch_size=batch_size)):
        if on_input is not None:
            on_input(index, outcome)
    if stats.texts == 0:
        raise InputError("no texts to compute statistics over")
    return stats
