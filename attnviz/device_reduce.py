"""The capture reductions in torch, on the device where the attention is (runs torch).

Each function here equals a NumPy reduction the project already has, with the same
accumulation dtype, so a sink can sum blocks of probabilities where they were computed and
send only the sums to the host:

=================================  ======================================================
torch here                         NumPy today
=================================  ======================================================
:func:`row_sums`                   :func:`attnviz.analysis.stats.row_sums` (float64)
:func:`renormalised_rows`          the ``no_special`` renormalisation of
                                   :class:`attnviz.analysis.stats.StatisticsSink`
:func:`head_mean`                  ``StoreHeads(mean=True)``: ``block.mean(0, float64)``
:func:`js_divergence_rows`         :func:`attnviz.analysis.compare.js_divergence_rows`
:func:`comparison_sums`            ``Comparison.add``'s per-head JS and L1 sums
:func:`norm_lengths`               ``NormStore.add_vectors``' per-key output lengths
:func:`norm_weighted`              ``block * lengths[:, None, :]`` (norm-based weights)
=================================  ======================================================

They take and return torch tensors on any device (the tests run them on CPU against the
NumPy code). :class:`DeviceStatistics` keeps a :class:`HeadStatistics`' sums on the device
between blocks; :meth:`DeviceStatistics.flush` adds them to the host sums (a few hundred
float64 numbers per flush, not the probabilities).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from attnviz.analysis.stats import HeadStatistics

_F64 = torch.float64


def _index(values: Any, device: torch.device) -> torch.Tensor:
    return torch.as_tensor(np.asarray(values), device=device)


def row_sums(
    a: torch.Tensor, rows: Sequence[int] | np.ndarray, separator: np.ndarray, punctuation: np.ndarray
) -> dict[str, torch.Tensor]:
    """Each statistic's float64 sum over some query rows of one self-attention map.

    ``a`` is ``[..., len(rows), n]`` (any float dtype, any device): the rows at query
    positions ``rows`` of an n x n map; ``separator`` and ``punctuation`` are boolean masks
    over the n keys. Returns ``a.shape[:-2]`` float64 tensors on ``a``'s device, equal to
    :func:`attnviz.analysis.stats.row_sums` up to float64 summation order."""
    device = a.device
    a = a.to(_F64)
    n = a.shape[-1]
    row_index = _index(rows, device).long()
    keys = torch.arange(n, device=device)
    distance = (row_index[:, None] - keys[None, :]).abs()
    local = torch.arange(row_index.shape[0], device=device)
    has_previous, has_next = row_index >= 1, row_index <= n - 2
    # the statistics that weigh each (row, key) are one matrix product that reads ``a`` once
    # (on a GPU the float64 passes over the block are the cost, not the arithmetic)
    weights = torch.stack(
        [
            distance.to(_F64),
            (distance <= 2).to(_F64),
            _index(separator, device).to(_F64).expand(len(row_index), n),
            _index(punctuation, device).to(_F64).expand(len(row_index), n),
        ]
    ).reshape(4, -1)
    flat = a.reshape(*a.shape[:-2], -1)
    weighed = flat @ weights.T  # [..., 4]
    return {
        "entropy": -torch.special.xlogy(a, a).sum((-2, -1)),  # 0 log 0 = 0
        "distance": weighed[..., 0],
        "first": a[..., :, 0].sum(-1),
        "separator": weighed[..., 2],
        "punctuation": weighed[..., 3],
        "self": a[..., local, row_index].sum(-1),
        "previous": a[..., local[has_previous], row_index[has_previous] - 1].sum(-1),
        "next": a[..., local[has_next], row_index[has_next] + 1].sum(-1),
        "local": weighed[..., 1],
    }


def renormalised_rows(block: torch.Tensor) -> torch.Tensor:
    """Rows rescaled to sum to 1 (float64 totals, float32 result; a row of zeros stays
    zero), as ``StatisticsSink`` does after dropping special tokens. ``block`` is
    ``[..., rows, keys]``."""
    total = block.to(_F64).sum(-1, keepdim=True)
    safe = torch.where(total > 0, total, torch.ones_like(total))
    return torch.where(total > 0, block.to(_F64) / safe, torch.zeros_like(total)).to(torch.float32)


def head_mean(block: torch.Tensor) -> torch.Tensor:
    """``[heads, rows, keys]`` -> float32 ``[rows, keys]``: the mean over heads accumulated
    in float64, as ``StoreHeads(mean=True)`` does."""
    return block.to(_F64).mean(0).to(torch.float32)


def js_divergence_rows(p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    """Base-2 Jensen-Shannon divergence along the last axis, float64, clipped to [0, 1]
    (equals :func:`attnviz.analysis.compare.js_divergence_rows`)."""
    p, q = p.to(_F64), q.to(_F64)
    m = 0.5 * (p + q)
    log_m = torch.log2(torch.where(m > 0, m, torch.ones_like(m)))

    def kl(x: torch.Tensor) -> torch.Tensor:
        positive = x > 0
        log_x = torch.log2(torch.where(positive, x, torch.ones_like(x)))
        return torch.where(positive, x * (log_x - log_m), torch.zeros_like(x)).sum(-1)

    return (0.5 * kl(p) + 0.5 * kl(q)).clamp(0.0, 1.0)


def comparison_sums(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-head sums over query rows of the JS divergence and the L1 distance of two maps
    ``[..., rows, keys]``: two float64 tensors shaped ``a.shape[:-2]`` (what
    ``Comparison.add`` adds to ``js_sum`` and ``l1_sum``)."""
    js = js_divergence_rows(a, b).sum(-1)
    l1 = (a.to(_F64) - b.to(_F64)).abs().sum(-1).sum(-1)
    return js, l1


def norm_lengths(value: torch.Tensor, weight: torch.Tensor, heads: Sequence[int]) -> torch.Tensor:
    """Float32 ``[len(heads), keys]``: ``|| v_j W_O^h ||`` for each selected head h, from the
    value vectors ``value`` ``[len(heads), keys, head_dim]`` and the output projection
    ``weight`` ``[hidden, heads * head_dim]`` through the Gram matrix (no ``[keys, hidden]``
    array), as ``NormStore.add_vectors`` computes them, kept on the device."""
    head_dim = value.shape[-1]
    lengths = []
    for position, head in enumerate(heads):
        w = weight[:, head * head_dim : (head + 1) * head_dim].float()
        gram = w.T @ w
        v = value[position].float()
        lengths.append(((v @ gram) * v).sum(-1).clamp(min=0).sqrt())
    return torch.stack(lengths).to(torch.float32)


def norm_weighted(block: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Norm-based weights ``[heads, rows, keys]``: each key's weight times the length of
    what it sends through the head (``lengths`` ``[heads, keys]``), in float32."""
    return block.to(torch.float32) * lengths.to(torch.float32)[:, None, :]


class DeviceStatistics:
    """Per-head statistic sums kept on ``device`` between blocks.

    ``add(layer_position, head_positions, sums)`` adds :func:`row_sums`' output to the
    ``[layers, heads]`` float64 accumulators; :meth:`flush` adds them to ``stats.sums`` on
    the host and zeroes them (one small transfer per batch instead of one per block)."""

    def __init__(self, stats: HeadStatistics, device: torch.device | str) -> None:
        self.stats = stats
        self.device = torch.device(device)
        shape = (len(stats.layer_ids), len(stats.head_ids))
        self.sums = {name: torch.zeros(shape, dtype=_F64, device=self.device) for name in _names()}

    def add(self, layer_position: int, head_positions: Sequence[int], sums: dict[str, torch.Tensor]) -> None:
        index = torch.as_tensor(list(head_positions), device=self.device)
        for name, values in sums.items():
            self.sums[name][layer_position].index_add_(0, index, values.to(_F64))

    def flush(self) -> None:
        for name, total in self.sums.items():
            self.stats.sums[name] += total.cpu().numpy()
            total.zero_()

    def discard(self) -> None:
        """Drop what was added since the last flush (a batch retried after running out of memory)."""
        for total in self.sums.values():
            total.zero_()


def _names() -> tuple[str, ...]:
    from attnviz.analysis.stats import STATISTICS

    return STATISTICS
