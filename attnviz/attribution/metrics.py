"""Faithfulness metrics, pure NumPy/SciPy. ``s(x)`` is the score of an input (see
:mod:`attnviz.attribution.targets`); "removing" a token replaces it with the ablation token
(mask, else unk, else pad), so positions and length stay as they were.

Definitions (DeYoung et al. 2020, "ERASER"; for one text with ``n`` non-special tokens,
ranked by a method's scores, highest first, ties broken by position):

* ``k(f) = ceil(f * n)`` tokens for a fraction ``f`` (at least 1);
* comprehensiveness at ``f``: ``s(x) - s(x without its top k(f) tokens)`` (higher: the
  method found what the output needs);
* sufficiency at ``f``: ``s(x) - s(x with only its top k(f) tokens)``, every other
  non-special token removed (lower: the top tokens alone keep the output);
* AOPC: the mean comprehensiveness over the deletion curve ``f = 0.1, 0.2, ..., 1.0``
  (the area over the perturbation curve, Samek et al. 2017, as ERASER uses it);
* agreement: Spearman's rho between a method's scores and ablation's over the text's
  non-special tokens (average ranks for ties; undefined, NaN, when either is constant);
  over texts, the mean and a 95% percentile bootstrap interval (texts resampled).

Compared with ferret-xai (``ferret/evaluators/faithfulness_measures.py``): ferret's AOPC
comprehensiveness and sufficiency average over every ``k = 1..n`` and by default delete
the tokens (decode, re-tokenize) and score class probabilities, skipping repeated
rationales; its leave-one-out check is Kendall's tau against deletion. We replace tokens
with the ablation token instead of deleting them (the same perturbation as the ablation
reference, no re-tokenization, one batched pass), score logits or the embedding cosine,
report ERASER's fixed 10/20/50% points plus AOPC over ten deletion fractions, and use
Spearman (the issue's number) with an interval.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

FRACTIONS = (0.1, 0.2, 0.5)
CURVE = tuple(round(0.1 * i, 1) for i in range(1, 11))


def token_count(fraction: float, n: int) -> int:
    """``ceil(fraction * n)``, at least 1 and at most ``n`` (round-off guarded)."""
    return int(min(n, max(1, math.ceil(fraction * n - 1e-9))))


def ranking(scores: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Positions of ``candidates`` (bool ``[tokens]``) by descending score; equal scores
    keep position order (a stable sort)."""
    positions = np.flatnonzero(candidates)
    values = np.asarray(scores, dtype=np.float64)[positions]
    return positions[np.argsort(-values, kind="stable")]


def removal_variants(
    ids: Sequence[int], special: np.ndarray, order: np.ndarray, ablation_id: int
) -> tuple[np.ndarray, np.ndarray]:
    """Token-id variants ``([len(CURVE), T], [len(FRACTIONS), T])``: the deletion curve
    (top ``k(f)`` removed, for ``f`` in :data:`CURVE`) and the sufficiency inputs (only the
    top ``k(f)`` kept, for ``f`` in :data:`FRACTIONS`). Special tokens are never removed."""
    base = np.asarray(ids)
    n = len(order)
    curve = np.repeat(base[None], len(CURVE), axis=0)
    for row, fraction in enumerate(CURVE):
        curve[row, order[: token_count(fraction, n)]] = ablation_id
    keep = np.repeat(base[None], len(FRACTIONS), axis=0)
    for row, fraction in enumerate(FRACTIONS):
        keep[row, order[token_count(fraction, n) :]] = ablation_id
    del special  # documented: order only holds non-special positions
    return curve, keep


def comprehensiveness(full: float, removed: np.ndarray) -> np.ndarray:
    """``s(x) - s(x without the top tokens)`` for each removed variant."""
    return float(full) - np.asarray(removed, dtype=np.float64)


def sufficiency(full: float, kept: np.ndarray) -> np.ndarray:
    """``s(x) - s(only the top tokens)`` for each kept variant."""
    return float(full) - np.asarray(kept, dtype=np.float64)


def aopc(full: float, curve: np.ndarray) -> float:
    """Mean of ``s(x) - s(x without top k(f))`` over the deletion curve."""
    return float(np.mean(comprehensiveness(full, curve)))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho of two score vectors (NaN entries in either are dropped); NaN when
    fewer than 2 pairs remain or either side is constant."""
    from scipy.stats import rankdata

    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 2:
        return float("nan")
    ra, rb = rankdata(a[keep]), rankdata(b[keep])
    if np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def bootstrap_interval(
    values: Sequence[float], *, level: float = 0.95, resamples: int = 2000, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (NaNs dropped): resample the
    values with replacement ``resamples`` times; the ``(1-level)/2`` and ``(1+level)/2``
    quantiles of the resampled means. A single value gives ``(v, v)``; none gives NaNs."""
    data = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if data.size == 0:
        return float("nan"), float("nan")
    if data.size == 1:
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    low, high = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
