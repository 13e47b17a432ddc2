"""Attention rollout and attention flow (Abnar & Zuidema 2020).

Both work on one stack of self-attention layers, ``[layers, heads, tokens, tokens]``:

* residual-augmented, head-averaged attention: ``A_hat_l = rownorm(mean_heads(A_l) + I)``;
* rollout: ``R_1 = A_hat_1``, ``R_l = A_hat_l @ R_(l-1)``; returned for every layer,
  ``[layers, tokens, tokens]``;
* flow: the maximum flow from token i at the top layer to token j at the input through the
  layered graph whose edges carry ``A_hat`` as capacities; rows normalised to sum to 1,
  ``[tokens, tokens]``. It needs ``tokens^2`` max-flow solves, so it is refused past
  :data:`FLOW_MAX_TOKENS` tokens unless a larger limit is passed.
"""

from __future__ import annotations

import numpy as np

from attnviz.errors import SelectionError

#: Flow cost grows as tokens^2 max-flow solves on a graph of layers*tokens^2 edges;
#: 64 tokens through 6 layers takes about 5 s on one core (SciPy, Dinic), 16 tokens 0.5 s.
FLOW_MAX_TOKENS = 64
#: Capacities are scaled to integers for SciPy's exact integer max-flow: results are exact
#: up to 1/FLOW_SCALE per edge.
FLOW_SCALE = 1_000_000


def residual_attention(attention: np.ndarray) -> np.ndarray:
    """``[layers, heads, T, T]`` -> ``[layers, T, T]``: rownorm(mean over heads + identity)."""
    attention = np.asarray(attention, dtype=np.float64)
    if attention.ndim != 4 or attention.shape[-1] != attention.shape[-2]:
        raise SelectionError(
            f"rollout and flow need square self-attention [layers, heads, T, T], got shape {list(attention.shape)}",
            hint="cross attention maps target onto source tokens and has no rollout; use {kind} encoder or decoder",
            option="kind",
        )
    mean = attention.mean(axis=1) + np.eye(attention.shape[-1])[None]
    return mean / mean.sum(axis=-1, keepdims=True)


def attention_rollout(attention: np.ndarray) -> np.ndarray:
    """Rollout up to each layer: ``[layers, T, T]``; entry ``[l, i, j]`` is how much of
    token i's representation after layer l comes from input token j. Rows sum to 1."""
    augmented = residual_attention(attention)
    out = np.empty_like(augmented)
    current = augmented[0]
    out[0] = current
    for layer in range(1, augmented.shape[0]):
        current = augmented[layer] @ current
        out[layer] = current
    return out.astype(np.float32)


def attention_flow(attention: np.ndarray, *, max_tokens: int = FLOW_MAX_TOKENS) -> np.ndarray:
    """Attention flow through all layers: ``[T, T]``, rows normalised to sum to 1."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import maximum_flow

    augmented = residual_attention(attention)
    layers, tokens, _ = augmented.shape
    if tokens > max_tokens:
        raise SelectionError(
            f"attention flow is limited to {max_tokens} tokens (this text has {tokens}): "
            f"it solves tokens^2 max-flow problems",
            hint="use {view} rollout, or shorten the text",
            option="view",
        )
    # node (l, t) -> l * tokens + t; layer `layers` is the output, layer 0 the input
    nodes = (layers + 1) * tokens
    rows, cols, caps = [], [], []
    for layer in range(layers, 0, -1):
        weights = augmented[layer - 1]
        upper = layer * tokens + np.arange(tokens)
        lower = (layer - 1) * tokens + np.arange(tokens)
        rr, cc = np.meshgrid(upper, lower, indexing="ij")
        rows.append(rr.ravel())
        cols.append(cc.ravel())
        caps.append(np.rint(weights.ravel() * FLOW_SCALE).astype(np.int64))
    graph = csr_matrix(
        (np.concatenate(caps).astype(np.int32), (np.concatenate(rows), np.concatenate(cols))),
        shape=(nodes, nodes),
    )
    graph.eliminate_zeros()
    flow = np.zeros((tokens, tokens), dtype=np.float64)
    for i in range(tokens):
        source = layers * tokens + i
        for j in range(tokens):
            flow[i, j] = maximum_flow(graph, source, j, method="dinic").flow_value / FLOW_SCALE
    sums = flow.sum(axis=1, keepdims=True)
    return np.where(sums > 0, flow / np.where(sums > 0, sums, 1), 0).astype(np.float32)
