"""Compare the attention of two models on the same texts, per layer and head.

* ``js``: Jensen-Shannon divergence, base 2 (0 = identical rows, 1 = disjoint support), of
  each query row, averaged over query rows;
* ``l1``: sum_j |a_ij - b_ij| of each query row (0-2), averaged over query rows.

Both are kept as sums and counts of query rows, so several texts pool every row.
"""

from __future__ import annotations

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

    def add(self, a: AttentionResult, b: AttentionResult) -> None:
        x, y = a.array(self.kind), b.array(self.kind)
        if x.shape[:2] != y.shape[:2]:
            raise InputError(
                f"the models differ in shape: {x.shape[0]}x{x.shape[1]} vs {y.shape[0]}x{y.shape[1]} layers x heads",
                hint="compare checkpoints of the same architecture",
            )
        if x.shape[2:] != y.shape[2:] or _labels(a, self.kind) != _labels(b, self.kind):
            raise InputError(
                f"the models tokenize '{_short(a.text)}' differently ({x.shape[-1]} vs {y.shape[-1]} tokens)",
                hint="compare models with the same tokenizer, or pass --words to compare word by word",
            )
        js = js_divergence_rows(x, y).sum(-1)
        l1 = np.abs(x.astype(np.float64) - y.astype(np.float64)).sum(-1).sum(-1)
        rows = np.full(js.shape, float(x.shape[2]))
        self.js_sum = js if self.js_sum is None else self.js_sum + js
        self.l1_sum = l1 if self.l1_sum is None else self.l1_sum + l1
        self.rows = rows if self.rows is None else self.rows + rows
        self.texts += 1

    @property
    def js(self) -> np.ndarray:
        assert self.js_sum is not None and self.rows is not None
        return self.js_sum / self.rows

    @property
    def l1(self) -> np.ndarray:
        assert self.l1_sum is not None and self.rows is not None
        return self.l1_sum / self.rows

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
            "heads": self.heads(),
            "notes": self.notes,
        }


def _labels(result: AttentionResult, kind: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Token labels compared case-insensitively; any special token matches any other
    ([CLS] in one model may be <s> in the other)."""
    queries, keys = result.axes(kind)

    def normal(sequence) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
        return tuple("<special>" if sequence.special_mask[i] else t.lower() for i, t in enumerate(sequence.display))

    return normal(queries), normal(keys)


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
