"""The numbers behind the lesson, as plain NumPy: what a forward pass left behind
(:class:`LayerStates`, :class:`ModelFacts`) and the arithmetic each step does with it.

Shapes: T tokens, D hidden size, H heads, d head size, I feed-forward size, V vocabulary.
Norms are Euclidean lengths of hidden-state vectors, in the model's own units.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass
class PositionFacts:
    """How the model tells positions apart. ``kind``: ``learned absolute``, ``sinusoidal``,
    ``rotary``, ``relative bias``, ``relative (disentangled)`` or ``none found``."""

    kind: str
    source: str
    table: np.ndarray | None = None  # [positions, D]: learned or sinusoidal vectors
    frequencies: np.ndarray | None = None  # [rotated dims / 2]: rotary angles per position
    head_dim: int = 0
    bias_by_distance: np.ndarray | None = None  # [H, distances]: T5's bias, query in the middle
    distances: np.ndarray | None = None  # [distances]: key - query


@dataclass
class ModelFacts:
    model_type: str
    family: str
    embeddings: np.ndarray  # [V, D]
    special_ids: list[int]
    positions: PositionFacts
    vocabulary: list[str]


@dataclass
class LayerStates:
    """One layer's hidden states (each ``[T, D]``, float64; the feed-forward activation
    ``ffn_act`` is ``[T, I]``) by role: ``layer_in``, ``attn_update`` (what attention adds
    to the residual stream, output bias included), ``attn_norm_in/out``, ``ffn_act``,
    ``ffn_update``, ``ffn_norm_in/out``, ``layer_out``. ``weights`` ``[H, T]`` (what each
    token's attention gives itself, the diagonal of each head's map),
    ``values`` ``[H, T, d]`` and ``projection`` ``[D, H*d]`` (the output projection) come
    from the capture of the same pass. ``placement``: ``post`` (norm after the residual
    addition, BERT) or ``pre`` (norm on the sub-layer's input, Llama, GPT-2, T5)."""

    placement: str
    states: dict[str, np.ndarray]
    weights: np.ndarray | None = None
    values: np.ndarray | None = None
    projection: np.ndarray | None = None
    output_bias: np.ndarray | None = None
    norm_weight: np.ndarray | None = None  # gamma of the norm after attention (post-norm)
    norm_eps: float = 1e-12
    extra: dict[str, Any] = field(default_factory=dict)

    def has(self, *roles: str) -> bool:
        return all(role in self.states for role in roles)


def cosine_matrix(vectors: np.ndarray) -> np.ndarray:
    """``[N, N]`` cosine similarity of the rows of ``vectors`` ``[N, D]``."""
    v = np.asarray(vectors, np.float64)
    unit = v / np.maximum(np.linalg.norm(v, axis=1, keepdims=True), 1e-12)
    return unit @ unit.T  # type: ignore[no-any-return]


def nearest_neighbours(
    table: np.ndarray, token_ids: list[int], exclude: list[int], top: int = 5
) -> list[list[tuple[int, float]]]:
    """For each of ``token_ids``, the ``top`` rows of ``table`` ``[V, D]`` closest to its
    row by cosine, without the row itself and the ids in ``exclude``: ``(id, cosine)``
    best first (ties: lower id first)."""
    # float64 where the table is small enough (MiniLM's: 12M values), float32 for big vocabularies
    t = np.asarray(table, np.float64 if np.size(table) <= 20_000_000 else np.float32)
    unit = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    unique = list(dict.fromkeys(int(i) for i in token_ids))  # a repeated token is looked up once
    found: dict[int, list[tuple[int, float]]] = {}
    top = max(1, min(top, len(t) - 1))
    for start in range(0, len(unique), 32):  # [32, V] at a time, whatever the vocabulary
        chunk = unique[start : start + 32]
        sims = np.asarray(unit[chunk] @ unit.T, np.float64)
        sims[:, exclude] = -np.inf
        sims[np.arange(len(chunk)), chunk] = -np.inf
        # the top-th best value of each row in one pass over [32, V]; only the rows' values
        # at or above it (the top and any ties with the last) are sorted
        kth = np.partition(sims, sims.shape[1] - top, axis=1)[:, sims.shape[1] - top]
        for row, token_id in enumerate(chunk):
            candidates = np.flatnonzero(sims[row] >= kth[row])
            order = candidates[np.lexsort((candidates, -sims[row, candidates]))][:top]
            found[token_id] = [(int(i), float(sims[row, i])) for i in order]
    return [found[int(i)] for i in token_ids]


def similarity_by_distance(table: np.ndarray) -> np.ndarray:
    """Mean cosine between positions ``i`` and ``i + d`` for ``d = 0..P-1`` (``[P]``)."""
    sims = cosine_matrix(table)
    return np.array([np.mean(np.diagonal(sims, offset=d)) for d in range(len(table))])


def rotary_scores(frequencies: np.ndarray, head_dim: int, distances: np.ndarray) -> np.ndarray:
    """The score of one query and an identical key (both the unit vector with equal parts
    in every dimension) placed ``distance`` positions apart, after rotary embedding:
    each rotated pair of dimensions turns by ``distance * frequency``, so it contributes
    ``2 cos(distance * frequency) / head_dim``; dimensions that do not rotate give
    ``1 / head_dim`` each. 1.0 at distance 0."""
    d = np.asarray(distances, np.float64)[:, None]
    rotated = 2 * np.cos(d * np.asarray(frequencies, np.float64)[None, :]).sum(1)
    still = head_dim - 2 * len(frequencies)
    return (rotated + still) / head_dim  # type: ignore[no-any-return]


def own_contribution(layer: LayerStates) -> np.ndarray:
    """``[T, D]``: what each token sends to itself through attention, summed over heads:
    ``W_O [alpha_ii^h v_i^h]_h`` (output bias left out)."""
    assert layer.weights is not None and layer.values is not None and layer.projection is not None
    diagonal, values = layer.weights.astype(np.float64), layer.values.astype(np.float64)  # [H, T], [H, T, d]
    mixed = diagonal[:, :, None] * values  # [H, T, d]
    concat = mixed.transpose(1, 0, 2).reshape(mixed.shape[1], -1)  # [T, H*d]
    return concat @ layer.projection.astype(np.float64).T  # type: ignore[no-any-return]


def _layer_norm_part(part: np.ndarray, total: np.ndarray, weight: np.ndarray | None, eps: float) -> np.ndarray:
    """The share of LayerNorm(total) that comes from ``part`` (Kobayashi et al. 2021: the
    norm is linear once its scale, the standard deviation of the total, is fixed; beta
    and the mean of the other parts are not part of it)."""
    scale = np.sqrt(total.var(axis=-1, keepdims=True) + eps)
    centred = part - part.mean(axis=-1, keepdims=True)
    gamma = 1.0 if weight is None else weight.astype(np.float64)
    return gamma * centred / scale  # type: ignore[no-any-return]


def mixing(layer: LayerStates) -> dict[str, np.ndarray] | None:
    """The residual and attention block of one layer split by where each token's new
    vector comes from (Kobayashi et al. 2021, "Incorporating Residual and Normalization
    Layers into Analysis of Masked Language Models"): ``preserved`` ``[T]``, the length
    of what comes from the token itself (its residual ``x_i`` plus what it sends itself
    through attention), ``mixed`` ``[T]``, the length of what comes from the other tokens
    through attention, and ``ratio`` ``[T]`` = mixed / (mixed + preserved), the
    context-mixing ratio. Biases belong to no token and are left out. For post-norm
    layers both parts pass through the LayerNorm that follows the addition (linearised
    with the total's scale). None when the weights, values or states are missing."""
    if layer.weights is None or layer.values is None or layer.projection is None:
        return None
    if not layer.has("layer_in", "attn_update"):
        return None
    x = layer.states["layer_in"]
    own = own_contribution(layer)
    bias = layer.output_bias if layer.output_bias is not None else 0.0
    others = layer.states["attn_update"] - bias - own
    preserved_vec = x + own
    if layer.placement == "post":
        if not layer.has("attn_norm_in"):
            return None
        total = layer.states["attn_norm_in"]
        preserved_vec = _layer_norm_part(preserved_vec, total, layer.norm_weight, layer.norm_eps)
        others = _layer_norm_part(others, total, layer.norm_weight, layer.norm_eps)
    preserved = np.linalg.norm(preserved_vec, axis=-1)
    mixed = np.linalg.norm(others, axis=-1)
    return {
        "residual": np.linalg.norm(x, axis=-1),
        "own_attention": np.linalg.norm(own, axis=-1),
        "preserved": preserved,
        "mixed": mixed,
        "ratio": mixed / np.maximum(mixed + preserved, 1e-12),
    }


def feed_forward(layer: LayerStates, query: int, top: int = 3) -> dict[str, Any] | None:
    """The feed-forward update against the residual stream it is added to: ``update``
    and ``residual`` norms ``[T]`` and their ``ratio``; the ``top`` most activated
    neurons of token ``query`` (``(index, activation)``, largest activation first); the
    feed-forward width. None without the states."""
    if not layer.has("ffn_update", "ffn_norm_in"):
        return None
    update = layer.states["ffn_update"]
    # post-norm: the norm's input is residual + update; pre-norm: it is the residual itself
    residual = layer.states["ffn_norm_in"] - update if layer.placement == "post" else layer.states["ffn_norm_in"]
    update_norm = np.linalg.norm(update, axis=-1)
    residual_norm = np.linalg.norm(residual, axis=-1)
    out: dict[str, Any] = {
        "update": update_norm,
        "residual": residual_norm,
        "ratio": update_norm / np.maximum(residual_norm, 1e-12),
        "width": None,
        "top_neurons": [],
    }
    act = layer.states.get("ffn_act")
    if act is not None:
        row = act[query]
        order = np.argsort(-row, kind="stable")[:top]
        out["width"] = int(act.shape[-1])
        out["top_neurons"] = [(int(i), float(row[i])) for i in order]
    return out


def norm_placement(layer: LayerStates) -> dict[str, np.ndarray] | None:
    """Vector lengths ``[T]`` before and after the layer's two norms (around attention
    and around the feed-forward block)."""
    if not layer.has("attn_norm_in", "attn_norm_out", "ffn_norm_in", "ffn_norm_out"):
        return None
    return {
        role: np.linalg.norm(layer.states[role], axis=-1)
        for role in ("attn_norm_in", "attn_norm_out", "ffn_norm_in", "ffn_norm_out")
    }


def mask_kind(weights: np.ndarray) -> str:
    """``causal`` when every head gives zero weight above the diagonal, ``full`` when
    every query sees every key, else ``windowed`` (``weights`` ``[H, T, T]`` or ``[T, T]``)."""
    seen: np.ndarray = np.asarray(np.asarray(weights) > 0)
    if seen.ndim == 3:
        seen = np.asarray(seen.any(axis=0))
    upper = np.triu(np.ones_like(seen, dtype=bool), 1)
    if seen.all():
        return "full"
    if not seen[upper].any():
        lower = ~upper
        return "causal" if seen[lower].all() else "windowed causal"
    return "windowed"
