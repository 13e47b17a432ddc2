"""The faithfulness metrics on toy cases computed by hand (no model)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from attnviz.attribution import metrics


@pytest.mark.parametrize(
    ("fraction", "n", "expected"),
    [(0.1, 7, 1), (0.2, 7, 2), (0.5, 7, 4), (0.5, 4, 2), (1.0, 3, 3), (0.3, 10, 3), (0.1, 30, 3)],
)
def test_token_count_is_the_ceiling_of_the_fraction_and_at_least_one(fraction, n, expected):
    assert metrics.token_count(fraction, n) == expected


def test_ranking_is_by_descending_score_over_the_candidates_with_ties_in_position_order():
    scores = np.array([np.nan, 0.3, 0.9, 0.3, -1.0, np.nan])
    candidates = np.array([False, True, True, True, True, False])
    assert metrics.ranking(scores, candidates).tolist() == [2, 1, 3, 4]


def test_removal_variants_remove_the_top_tokens_and_keep_only_them():
    ids = [101, 5, 6, 7, 8, 102]
    special = np.array([True, False, False, False, False, True])
    order = np.array([3, 1, 4, 2])  # n = 4 non-special tokens
    curve, keep = metrics.removal_variants(ids, special, order, 0)
    assert curve.shape == (10, 6) and keep.shape == (3, 6)
    # 10%, 20%: ceil(0.4), ceil(0.8) = 1 token; 50%: 2 tokens; 100%: all four
    assert curve[0].tolist() == [101, 5, 6, 0, 8, 102]
    assert curve[1].tolist() == [101, 5, 6, 0, 8, 102]
    assert curve[4].tolist() == [101, 0, 6, 0, 8, 102]
    assert curve[9].tolist() == [101, 0, 0, 0, 0, 102]
    # sufficiency keeps the top k(f) and removes the other non-special tokens
    assert keep[0].tolist() == [101, 0, 0, 7, 0, 102]
    assert keep[2].tolist() == [101, 5, 0, 7, 0, 102]


def test_comprehensiveness_sufficiency_and_aopc_by_hand():
    assert metrics.comprehensiveness(1.0, np.array([0.8, 0.5])).tolist() == pytest.approx([0.2, 0.5])
    assert metrics.sufficiency(2.0, np.array([1.5, 2.5])).tolist() == pytest.approx([0.5, -0.5])
    assert metrics.aopc(1.0, np.array([0.8, 0.5])) == pytest.approx(0.35)


def test_spearman_by_hand_with_and_without_ties():
    # d = (0, 1, 1, 0): 1 - 6 * 2 / (4 * 15) = 0.8
    assert metrics.spearman(np.array([1, 2, 3, 4]), np.array([1, 3, 2, 4])) == pytest.approx(0.8)
    # ranks (1.5, 1.5, 3) vs (1, 2, 3): cov 1.5 / sqrt(1.5 * 2)
    assert metrics.spearman(np.array([1, 1, 2]), np.array([1, 2, 3])) == pytest.approx(1.5 / math.sqrt(3))
    # NaN (special) positions are dropped before ranking
    assert metrics.spearman(np.array([np.nan, 3, 2, 1]), np.array([9, 1, 2, 3])) == pytest.approx(-1.0)
    assert math.isnan(metrics.spearman(np.array([1, 1, 1]), np.array([1, 2, 3])))
    assert math.isnan(metrics.spearman(np.array([1.0]), np.array([2.0])))


def test_bootstrap_interval_by_hand():
    # resampled means of (0, 1) are 0, 0.5, 1 with probabilities 1/4, 1/2, 1/4: the 2.5% and
    # 97.5% quantiles are 0 and 1
    assert metrics.bootstrap_interval([0.0, 1.0]) == (0.0, 1.0)
    assert metrics.bootstrap_interval([0.5, 0.5, 0.5]) == (0.5, 0.5)
    assert metrics.bootstrap_interval([0.7, float("nan")]) == (0.7, 0.7)
    low, high = metrics.bootstrap_interval([float("nan")])
    assert math.isnan(low) and math.isnan(high)
    low, high = metrics.bootstrap_interval(list(np.linspace(0, 1, 21)))
    assert 0.3 < low < 0.5 < high < 0.7  # around the mean 0.5, sd of the mean ~0.07


def _fake_report(texts: int):
    """A report whose summary has every column filled with a known number (no model)."""
    from types import SimpleNamespace

    methods = ["ablation", "integrated-gradients", "grad-x-input", "norm-rollout", "grad-rollout", "attention"]
    rows = []
    for i, method in enumerate(methods):
        row = {
            "method": method,
            "agreement": None if method == "ablation" else -0.1 * i,
            "agreement_ci95": None if method == "ablation" else [-0.1 * i - 0.33, 0.44],
            "aopc": 0.25 + i / 100,
            "seconds_per_text": 1.234 + i,
        }
        for p in (10, 20, 50):
            row[f"comprehensiveness_{p}"] = -0.11 * i
            row[f"sufficiency_{p}"] = 0.5 + i / 100
        rows.append(row)
    return SimpleNamespace(model="tiny", output="embedding", texts=[object()] * texts, summary=lambda: rows, rows=rows)


@pytest.mark.parametrize("width", [80, 160])
def test_faithfulness_table_fits_without_cutting_a_number(width):
    import io

    from rich.console import Console

    from attnviz.cli.faithfulness import print_report

    report = _fake_report(3)
    buffer = io.StringIO()
    print_report(report, Console(width=width, file=buffer, force_terminal=True, color_system=None))
    shown = buffer.getvalue()
    assert "…" not in shown
    assert all(len(line) <= width for line in shown.splitlines())
    assert "3 texts" in shown
    for row in report.rows:
        assert f"{row['aopc']:.2f}" in shown  # each number whole
        if row["agreement"] is not None:
            assert f"{row['agreement']:.2f}" in shown
            low, high = row["agreement_ci95"]
            assert f"{low:.2f}..{high:.2f}" in shown
        assert " ".join(f"{row[f'comprehensiveness_{p}']:.2f}" for p in (10, 20, 50)) in shown
    if width == 160:  # everything, full headers, nothing left out
        assert "suff 10/20/50" in shown and "s/text" in shown and "Left out" not in shown
        for row in report.rows:
            assert " ".join(f"{row[f'sufficiency_{p}']:.2f}" for p in (10, 20, 50)) in shown
            assert f"{row['seconds_per_text']:.3f}" in shown
    else:  # what was dropped is named in the legend
        legend = " ".join(shown.split("Left out")[1].split())  # the legend may wrap
        assert "suff 10/20/50" in legend


def test_one_text_has_no_interval():
    import io

    from rich.console import Console

    from attnviz.attribution.faithfulness import FaithfulnessReport, TextEvaluation
    from attnviz.cli.faithfulness import print_report

    evaluation = TextEvaluation(
        text="the cat",
        tokens=4,
        score=1.0,
        agreement={"attention": 0.5},
        comprehensiveness={m: [0.1, 0.2, 0.3] for m in ("ablation", "attention")},
        sufficiency={m: [0.1, 0.2, 0.3] for m in ("ablation", "attention")},
        curve={m: [0.0, 0.1] for m in ("ablation", "attention")},
        aopc={m: 0.1 for m in ("ablation", "attention")},
        seconds={m: 0.01 for m in ("ablation", "attention")},
    )
    report = FaithfulnessReport(
        model="tiny", output="embedding", methods=["ablation", "attention"], texts=[evaluation], problems=[]
    )
    row = next(r for r in report.summary() if r["method"] == "attention")
    assert row["agreement"] == pytest.approx(0.5) and row["agreement_ci95"] is None
    buffer = io.StringIO()
    print_report(report, Console(width=120, file=buffer, force_terminal=True, color_system=None))
    shown = buffer.getvalue()
    assert "1 text," in shown and "1 texts" not in shown
    assert "0.50..0.50" not in shown


def _attribution():
    """Ablation in cosine drops (~0.01) and grad-x-input in projection units (~5): the
    case where one shared scale draws ablation white."""
    from attnviz.attribution.core import Attribution

    scores = np.array(
        [[np.nan, 0.01, -0.005, 0.002, np.nan], [np.nan, 5.0, -2.5, 1.0, np.nan], [np.nan, 0.2, 0.4, 0.1, np.nan]],
        dtype=np.float32,
    )
    return Attribution(
        model="tiny",
        text="a b c",
        tokens=("[CLS]", "a", "b", "c", "[SEP]"),
        special=np.array([True, False, False, False, True]),
        methods=("ablation", "grad-x-input", "attention"),
        scores=scores,
        output={"kind": "embedding"},
    )


def test_each_signed_row_on_its_own_scale_in_terminal_image_and_html():
    import io
    import re

    from rich.console import Console

    from attnviz.attribution.render import attribution_figure, attribution_html, levels, print_attribution

    attribution = _attribution()
    shades = levels(attribution)
    # each signed row: score / its own max |score|, mapped from [-1, 1] to [0, 1]
    np.testing.assert_allclose(shades[0, 1:4], [1.0, 0.25, 0.6], atol=1e-6)
    np.testing.assert_allclose(shades[1, 1:4], [1.0, 0.25, 0.6], atol=1e-6)
    np.testing.assert_allclose(shades[2, 1:4], [0.5, 1.0, 0.25], atol=1e-6)
    buffer = io.StringIO()
    print_attribution(attribution, Console(width=120, file=buffer, force_terminal=True, color_system="truecolor"))
    shown = re.sub(r"\x1b\[[0-9;]*m", "", buffer.getvalue())
    assert "each row on its own scale" in shown and "share one scale" not in shown
    assert "ablation ±0.01" in shown and "grad-x-input ±5" in shown
    page = attribution_html(attribution)
    assert "each row on its own scale" in page and "share one scale" not in page
    # the two signed rows, same relative pattern, get the same colours in the page
    colours = re.findall(r"background:(#[0-9a-f]{6})", page)
    assert colours[0:3] == colours[3:6]
    title = attribution_figure(attribution).axes[0].get_title()
    assert "each row on its own scale" in title and "shared" not in title


def test_every_mean_over_texts_has_its_bootstrap_interval():
    """comprehensiveness, sufficiency and AOPC get the interval agreement has: the
    percentile bootstrap of the per-text values, computed here from them directly."""
    from attnviz.attribution import metrics
    from attnviz.attribution.faithfulness import FaithfulnessReport, TextEvaluation

    rng = np.random.default_rng(4)
    texts = []
    for number in range(6):
        values = rng.random(8)
        texts.append(
            TextEvaluation(
                text=f"text {number}",
                tokens=5,
                score=1.0,
                agreement={"attention": float(values[0])},
                comprehensiveness={m: list(values[1:4]) for m in ("ablation", "attention")},
                sufficiency={m: list(values[4:7]) for m in ("ablation", "attention")},
                curve={m: [0.0, 0.1] for m in ("ablation", "attention")},
                aopc={m: float(values[7]) for m in ("ablation", "attention")},
            )
        )
    report = FaithfulnessReport(model="tiny", output="embedding", methods=["ablation", "attention"], texts=texts)
    row = next(r for r in report.summary() if r["method"] == "attention")

    def interval(values):
        data = np.asarray(values, dtype=np.float64)
        means = data[np.random.default_rng(0).integers(0, data.size, size=(2000, data.size))].mean(axis=1)
        return list(np.quantile(means, [0.025, 0.975]))

    for i, percent in enumerate((10, 20, 50)):
        comprehensiveness = [t.comprehensiveness["attention"][i] for t in texts]
        sufficiency = [t.sufficiency["attention"][i] for t in texts]
        assert row[f"comprehensiveness_{percent}_ci95"] == pytest.approx(interval(comprehensiveness))
        assert row[f"sufficiency_{percent}_ci95"] == pytest.approx(interval(sufficiency))
        low, high = row[f"comprehensiveness_{percent}_ci95"]
        assert low <= row[f"comprehensiveness_{percent}"] <= high
    assert row["aopc_ci95"] == pytest.approx(interval([t.aopc["attention"] for t in texts]))
    assert row["agreement_ci95"] == pytest.approx(
        list(metrics.bootstrap_interval([t.agreement["attention"] for t in texts]))
    )
    one = FaithfulnessReport(model="tiny", output="embedding", methods=["ablation", "attention"], texts=texts[:1])
    first = next(r for r in one.summary() if r["method"] == "attention")
    assert first["aopc_ci95"] is None and first["sufficiency_50_ci95"] is None
