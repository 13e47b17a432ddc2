"""Which heads behave alike: Jensen-Shannon distances between heads, and their clusters.

The distance between heads a and b is the Jensen-Shannon divergence (base 2, 0-1) between
their attention rows for the same query token, averaged over every query row of every text
(pooled, like the head statistics). Heads are clustered by complete linkage on those
distances; the tree is cut into ``k`` flat clusters, by default ``round(sqrt(heads / 2))``
(6 for 72 heads), or as many as asked.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnviz.errors import InputError, SelectionError
from attnviz.result import AttentionResult


def default_clusters(heads: int) -> int:
    """How many flat clusters by default: ``round(sqrt(heads / 2))``, at least 2."""
    return max(2, int(round((heads / 2) ** 0.5)))


def _entropy(x: np.ndarray) -> np.ndarray:
    """Base-2 entropy along the last axis (0 log 0 = 0)."""
    logs = np.zeros_like(x)
    np.log2(x, out=logs, where=x > 0)
    return -(x * logs).sum(-1)  # type: ignore[no-any-return]


def _js_to_all(rows: np.ndarray, a: int, entropies: np.ndarray | None = None) -> np.ndarray:
    """Sum over query rows of JS(head a, head b) for every head b: ``rows`` is
    ``[heads, queries, keys]`` (float64, rows summing to 1). JS(p, q) = H((p + q) / 2) -
    (H(p) + H(q)) / 2, with ``entropies`` ``[heads, queries]`` (each row's H) computed once:
    one logarithm per element and pair instead of three."""
    if entropies is None:
        entropies = _entropy(rows)
    mixed = _entropy(0.5 * (rows[a][None] + rows))  # [heads, queries]
    js = np.clip(mixed - 0.5 * (entropies[a][None] + entropies), 0.0, 1.0)
    return js.sum(-1)  # type: ignore[no-any-return]


@dataclass
class HeadDistances:
    """Pooled pairwise JS divergence between the selected heads of one kind."""

    model: str
    kind: str
    layer_ids: list[int]
    head_ids: list[int]
    texts: int = 0
    rows: float = 0.0
    sums: np.ndarray | None = None
    names: list[str] = field(default_factory=list)

    def add(self, result: AttentionResult) -> None:
        array = result.array(self.kind)
        if list(result.layer_ids[self.kind]) != self.layer_ids or list(result.head_ids[self.kind]) != self.head_ids:
            raise SelectionError("all texts must have the same layers and heads selected")
        if array.shape[-1] != array.shape[-2] and self.kind != "cross":
            raise SelectionError("head distances need the same tokens on both axes")
        flat = array.reshape(-1, array.shape[2], array.shape[3]).astype(np.float64)
        total = flat.sum(-1, keepdims=True)
        flat = np.where(total > 0, flat / np.where(total > 0, total, 1), 0.0)  # sinks: the mass that reached tokens
        count = flat.shape[0]
        if self.sums is None:
            self.sums = np.zeros((count, count))
        entropies = _entropy(flat)
        for a in range(count):
            self.sums[a] += _js_to_all(flat, a, entropies)
        self.rows += array.shape[2]
        self.texts += 1

    @property
    def matrix(self) -> np.ndarray:
        """``[heads, heads]`` mean JS divergence (symmetric, zero diagonal), heads in
        layer-major order (L0H0, L0H1, ...)."""
        if self.sums is None or not self.rows:
            raise InputError("no texts to compare heads over")
        matrix = self.sums / self.rows
        matrix = 0.5 * (matrix + matrix.T)
        np.fill_diagonal(matrix, 0.0)
        return matrix

    @property
    def head_names(self) -> list[str]:
        return [f"L{layer}H{head}" for layer in self.layer_ids for head in self.head_ids]

    def linkage(self) -> np.ndarray:
        from scipy.cluster.hierarchy import linkage
        from scipy.spatial.distance import squareform

        matrix = self.matrix
        if len(matrix) < 2:
            raise SelectionError(
                "clustering needs at least two heads", hint="select more ({layer}, {head})", option=("layer", "head")
            )
        return linkage(squareform(matrix, checks=False), method="complete")  # type: ignore[no-any-return]

    def clusters(self, count: int | None = None) -> np.ndarray:
        """Flat cluster number (1-based) per head, layer-major: the complete-linkage tree cut
        into ``count`` clusters (default :func:`default_clusters`)."""
        from scipy.cluster.hierarchy import fcluster

        tree = self.linkage()
        wanted = count or default_clusters(len(self.matrix))
        return fcluster(tree, t=min(wanted, len(self.matrix)), criterion="maxclust").astype(int)  # type: ignore[no-any-return]

    def to_dict(self) -> dict[str, Any]:
        return {
            "distance": "Jensen-Shannon divergence (base 2) between heads' rows, mean over query rows and texts",
            "linkage": "complete",
            "clusters": "the tree cut into k flat clusters (maxclust)",
            "heads": self.head_names,
            "matrix": np.round(self.matrix, 6).tolist(),
        }


class DistanceTap:
    """Adds every result that passes through it to head distances, so one pass over a
    corpus can feed another reduction too (``stats --cluster``: statistics and distances).
    ``distances`` is None until the first result."""

    def __init__(self, kind: str | None = None) -> None:
        self.kind = kind
        self.distances: HeadDistances | None = None

    def __call__(self, results: Iterable[AttentionResult]) -> Iterator[AttentionResult]:
        for result in results:
            chosen = self.kind or result.default_kind
            if self.distances is None:
                self.distances = HeadDistances(
                    result.model, chosen, list(result.layer_ids[chosen]), list(result.head_ids[chosen])
                )
            self.distances.add(result)
            yield result


def head_distances(results: Iterable[AttentionResult], kind: str | None = None) -> HeadDistances:
    """Jensen-Shannon distances between the heads of ``kind``, pooled over ``results``."""
    tap = DistanceTap(kind)
    for _ in tap(results):
        pass
    if tap.distances is None:
        raise InputError("no texts to compare heads over")
    return tap.distances
