"""Rollout, flow, head statistics and comparison against hand-computed values."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnviz.analysis.compare import compare_results, js_divergence_rows
from attnviz.analysis.rollout import attention_flow, attention_rollout
from attnviz.analysis.stats import HeadStatistics, head_statistics, per_query_statistics
from attnviz.errors import SelectionError
from attnviz.result import AttentionResult, TokenSequence


def _stochastic(rng, shape):
    a = rng.random(shape)
    return a / a.sum(-1, keepdims=True)


def _result(array, tokens, special=None, model="m"):
    seq = TokenSequence.from_tokens(tokens, None, special if special is not None else [False] * len(tokens))
    return AttentionResult(
        model=model,
        family="encoder",
        text=" ".join(tokens),
        tokens=seq,
        attentions={"encoder": np.asarray(array, dtype=np.float32)},
        layer_ids={"encoder": tuple(range(array.shape[0]))},
        head_ids={"encoder": tuple(range(array.shape[1]))},
    )


# -- rollout ------------------------------------------------------------------------------
def test_rollout_follows_the_formula():
    rng = np.random.default_rng(0)
    attention = _stochastic(rng, (3, 4, 5, 5))
    expected = []
    current = None
    for layer in attention:
        a_hat = layer.mean(0) + np.eye(5)
        a_hat = a_hat / a_hat.sum(1, keepdims=True)
        current = a_hat if current is None else a_hat @ current
        expected.append(current)
    rollout = attention_rollout(attention)
    assert rollout.shape == (3, 5, 5)
    np.testing.assert_allclose(rollout, np.array(expected), atol=1e-6)
    np.testing.assert_allclose(rollout.sum(-1), 1.0, atol=1e-6)


def test_rollout_of_identity_attention_is_identity():
    attention = np.broadcast_to(np.eye(4), (3, 2, 4, 4))
    np.testing.assert_allclose(attention_rollout(attention)[-1], np.eye(4), atol=1e-7)


def test_rollout_refuses_non_square_attention():
    with pytest.raises(SelectionError, match="square self-attention"):
        attention_rollout(np.ones((2, 2, 3, 4)) / 4)


# -- flow ---------------------------------------------------------------------------------
def test_flow_on_one_layer_is_the_residual_attention():
    """One layer: the only path from top token i to input token j is the edge i->j."""
    attention = np.array([[[[0.5, 0.5, 0.0], [0.2, 0.2, 0.6], [0.0, 0.0, 1.0]]]])
    a_hat = (attention[0, 0] + np.eye(3)) / 2
    np.testing.assert_allclose(attention_flow(attention), a_hat, atol=1e-5)


def test_flow_two_layers_hand_solved():
    """Two tokens, identity-free layers chosen so the cut is easy to see.

    Layer 1 (input side) A_hat1 = [[1, 0], [.5, .5]]; layer 2 A_hat2 = [[.5, .5], [0, 1]].
    From top token 0 to input token 0: paths 0->0->0 (min(.5, 1) = .5) and 0->1->0
    (min(.5, .5) = .5): flow 1.0. To input 1: only 0->1->1: min(.5, .5) = .5.
    Row 0 normalised: [2/3, 1/3]. From top token 1: 1->1->0 = .5, 1->1->1 = .5: [.5, .5].
    """
    # choose raw attention so that rownorm(A + I) gives the A_hat above
    a1 = np.array([[1.0, 0.0], [1.0, 0.0]])  # + I -> [[2,0],[1,1]] -> [[1,0],[.5,.5]]
    a2 = np.array([[0.0, 1.0], [0.0, 1.0]])  # + I -> [[1,1],[0,2]] -> [[.5,.5],[0,1]]
    attention = np.stack([a1, a2])[:, None]
    np.testing.assert_allclose(attention_flow(attention), [[2 / 3, 1 / 3], [0.5, 0.5]], atol=1e-5)


def test_flow_rows_sum_to_one_and_match_networkx():
    import networkx as nx

    rng = np.random.default_rng(3)
    attention = _stochastic(rng, (3, 2, 4, 4))
    flow = attention_flow(attention)
    np.testing.assert_allclose(flow.sum(-1), 1.0, atol=1e-6)
    a_hat = attention.mean(1) + np.eye(4)
    a_hat /= a_hat.sum(-1, keepdims=True)
    graph = nx.DiGraph()
    for layer in range(3, 0, -1):
        for i in range(4):
            for j in range(4):
                graph.add_edge((layer, i), (layer - 1, j), capacity=a_hat[layer - 1, i, j])
    raw = np.array([[nx.maximum_flow_value(graph, (3, i), (0, j)) for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(flow, raw / raw.sum(1, keepdims=True), atol=1e-4)


def test_flow_refuses_long_inputs_with_the_limit_stated():
    with pytest.raises(SelectionError, match="limited to 8 tokens"):
        attention_flow(np.ones((1, 1, 9, 9)) / 9, max_tokens=8)


# -- statistics ---------------------------------------------------------------------------
def test_statistics_on_a_hand_made_map():
    tokens = ["[CLS]", "a", ",", "b", "[SEP]"]
    a = np.array(
        [
            [1.0, 0.0, 0.0, 0.0, 0.0],
            [0.5, 0.5, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.25, 0.25, 0.5],
            [0.2, 0.2, 0.2, 0.2, 0.2],
        ]
    )
    stats = head_statistics([_result(a[None, None], tokens, [True, False, False, False, True])])
    row = stats.rows()[0]
    ln = np.log
    assert row["entropy"] == pytest.approx((0 + ln(2) + 0 + (0.5 * ln(4) + 0.5 * ln(2)) + ln(5)) / 5, abs=1e-6)
    # distances: 0, .5*1, 1*1, .25*1 + .5*1, .2*(4+3+2+1)
    assert row["distance"] == pytest.approx((0 + 0.5 + 1 + 0.75 + 2.0) / 5, abs=1e-6)
    assert row["first"] == pytest.approx((1 + 0.5 + 0 + 0 + 0.2) / 5, abs=1e-6)
    assert row["separator"] == pytest.approx((0 + 0 + 0 + 0.5 + 0.2) / 5, abs=1e-6)
    assert row["punctuation"] == pytest.approx((0 + 0 + 0 + 0.25 + 0.2) / 5, abs=1e-6)
    assert row["self"] == pytest.approx((1 + 0.5 + 0 + 0.25 + 0.2) / 5, abs=1e-6)
    assert row["previous"] == pytest.approx((0.5 + 1 + 0.25 + 0.2) / 4, abs=1e-6)
    assert row["next"] == pytest.approx((0 + 0 + 0 + 0.5) / 4, abs=1e-6)


@pytest.mark.parametrize(
    "builder,label",
    [
        (lambda n: np.eye(n), "diagonal"),
        (lambda n: np.eye(n, k=-1) + np.diag([1.0] + [0.0] * (n - 1)), "previous"),
        (lambda n: np.eye(n, k=1) + np.diag([0.0] * (n - 1) + [1.0]), "next"),
        (lambda n: np.tile(np.eye(n)[0], (n, 1)), "vertical"),
        (lambda n: np.full((n, n), 1.0 / n), "broad"),
    ],
)
def test_pattern_labels(builder, label):
    n = 12
    a = builder(n)
    assert np.allclose(a.sum(-1), 1)
    tokens = ["[CLS]"] + [f"w{i}" for i in range(n - 2)] + ["[SEP]"]
    special = [True] + [False] * (n - 2) + [True]
    stats = head_statistics([_result(a[None, None], tokens, special)])
    assert stats.rows()[0]["label"] == label


def test_merged_shards_equal_the_unsharded_run():
    rng = np.random.default_rng(5)
    results = [_result(_stochastic(rng, (2, 3, n, n)), [f"t{i}" for i in range(n)]) for n in (4, 7, 5, 9)]
    whole = head_statistics(results)
    left = HeadStatistics.from_dict(json.loads(json.dumps(head_statistics(results[:1]).to_dict())))
    right = HeadStatistics.from_dict(json.loads(json.dumps(head_statistics(results[1:]).to_dict())))
    merged = left.merge(right)
    assert merged.texts == 4
    for name, value in whole.means().items():
        np.testing.assert_allclose(merged.means()[name], value, atol=1e-12)
    assert merged.rows() == whole.rows()


def test_statistics_refuse_cross_attention():
    with pytest.raises(SelectionError, match="square self-attention"):
        per_query_statistics(np.ones((1, 1, 2, 3)) / 3, TokenSequence.from_tokens(["a", "b"]))


# -- comparison ---------------------------------------------------------------------------
def test_js_divergence_by_hand():
    p = np.array([1.0, 0.0])
    q = np.array([0.0, 1.0])
    assert js_divergence_rows(p, q) == pytest.approx(1.0)
    assert js_divergence_rows(p, p) == pytest.approx(0.0)
    r = np.array([0.5, 0.5])
    # JS(p, r) = .5*KL(p||m) + .5*KL(r||m), m = [.75, .25]
    expected = 0.5 * np.log2(1 / 0.75) + 0.5 * (0.5 * np.log2(0.5 / 0.75) + 0.5 * np.log2(0.5 / 0.25))
    assert js_divergence_rows(p, r) == pytest.approx(expected)


def test_compare_identical_is_zero_and_l1_by_hand():
    rng = np.random.default_rng(2)
    a = _stochastic(rng, (2, 2, 3, 3))
    b = a.copy()
    b[1, 0] = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    same = compare_results([(_result(a, list("xyz")), _result(a, list("xyz")))])
    assert np.all(same.js == 0) and np.all(same.l1 == 0)
    changed = compare_results([(_result(a, list("xyz")), _result(b, list("xyz")))])
    assert np.count_nonzero(changed.js) == 1 and changed.js[1, 0] > 0
    expected_l1 = np.abs(a[1, 0] - b[1, 0]).sum(-1).mean()
    assert changed.l1[1, 0] == pytest.approx(expected_l1, abs=1e-6)


def test_head_distances_are_pooled_js_between_heads_and_cluster(loaded_models):
    """The distance between two heads is the JS divergence of their rows for the same
    query, averaged over every query row of every text; computed here pair by pair."""
    from attnviz.analysis.clusters import head_distances
    from attnviz.analysis.compare import js_divergence_rows
    from attnviz.extraction import extract

    results = [extract(t, model=loaded_models["bert"]) for t in ("the cat sat on the mat", "a dog ran")]
    distances = head_distances(results)
    heads = [(layer, head) for layer in range(3) for head in range(4)]
    expected = np.zeros((12, 12))
    rows = 0
    for result in results:
        array = result.attentions["encoder"]
        rows += array.shape[2]
        for a, (la, ha) in enumerate(heads):
            for b, (lb, hb) in enumerate(heads):
                expected[a, b] += js_divergence_rows(array[la, ha], array[lb, hb]).sum()
    np.testing.assert_allclose(distances.matrix, expected / rows, atol=1e-9)
    assert distances.head_names[:2] == ["L0H0", "L0H1"]
    clusters = distances.clusters(3)
    assert sorted(set(clusters)) == [1, 2, 3]
    # the closest pair of heads shares a cluster
    masked = distances.matrix + np.eye(12) * 9
    a, b = np.unravel_index(np.argmin(masked), masked.shape)
    assert clusters[a] == clusters[b]
