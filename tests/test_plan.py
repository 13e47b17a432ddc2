"""What each view asks of extraction, decided once in attnviz.plan for CLI and Python."""

from __future__ import annotations

import pytest

from attnviz.errors import SelectionError
from attnviz.plan import normalise_view, plan_views


def test_view_names_are_normalised_once_and_unknown_ones_refused() -> None:
    assert normalise_view(" Rollout ") == "rollout"
    assert normalise_view(None) == "auto"
    with pytest.raises(SelectionError) as caught:
        normalise_view("spiral")
    assert caught.value.option == "view"


@pytest.mark.parametrize(
    ("views", "options", "expected"),
    [
        ("grid", {}, (False, False, False, None)),
        ("mean", {}, (True, False, False, None)),
        ("rollout", {"no_special": True}, (False, False, False, None)),  # each head renormalised first
        ("flow", {"drawn": False}, (False, False, False, None)),  # a data file keeps every head
        ("neuron", {"kind": "decoder"}, (False, True, False, ("decoder",))),
        ("norm", {"kind": "encoder"}, (False, False, True, ("encoder",))),
        ("grid", {"norm": True}, (False, False, True, None)),
        (("mean", "grid"), {}, (False, False, False, None)),  # grid needs the heads
        (("rollout", "norm"), {"kind": "cross", "drawn": False}, (False, False, True, ("cross",))),
    ],
)
def test_what_a_view_needs_from_extraction(views, options, expected) -> None:
    plan = plan_views(views, **options)
    assert (plan.head_mean, plan.vectors, plan.norms, plan.kinds) == expected
    assert plan.extractor_options() == {
        "head_mean": expected[0],
        "vectors": expected[1],
        "norms": expected[2],
        "kinds": list(expected[3]) if expected[3] else None,
    }
