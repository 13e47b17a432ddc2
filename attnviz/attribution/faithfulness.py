"""Which attribution to trust on this model: every method measured against ablation over a
set of texts (definitions in :mod:`attnviz.attribution.metrics`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.attribution import metrics
from attnviz.attribution.methods import METHODS
from attnviz.errors import AttnvizError

if TYPE_CHECKING:
    from attnviz.attribution.core import Attributor
    from attnviz.extraction import TextInput


@dataclass
class TextEvaluation:
    """One text: per method, ``agreement`` (Spearman with ablation), ``comprehensiveness``
    and ``sufficiency`` at :data:`metrics.FRACTIONS`, the deletion ``curve`` (score drop at
    each of :data:`metrics.CURVE`), ``aopc`` and ``seconds``."""

    text: str
    tokens: int
    score: float
    agreement: dict[str, float] = field(default_factory=dict)
    comprehensiveness: dict[str, list[float]] = field(default_factory=dict)
    sufficiency: dict[str, list[float]] = field(default_factory=dict)
    curve: dict[str, list[float]] = field(default_factory=dict)
    aopc: dict[str, float] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)


def _mean(values: list[float]) -> float | None:
    data = [v for v in values if v is not None and np.isfinite(v)]
    return float(np.mean(data)) if data else None


def _interval(values: list[float]) -> list[float] | None:
    """The 95% bootstrap interval of the mean over texts; None from fewer than two finite
    values (one text's resamples are all the same value: no interval to speak of)."""
    data = [v for v in values if v is not None and np.isfinite(v)]
    if len(data) < 2:
        return None
    low, high = metrics.bootstrap_interval(data)
    return [low, high]


@dataclass
class FaithfulnessReport:
    """All texts' evaluations; :meth:`summary` is the table (one row per method)."""

    model: str
    output: str
    methods: list[str]
    texts: list[TextEvaluation]
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def summary(self) -> list[dict[str, Any]]:
        """Rows sorted by agreement with ablation (ablation itself, the reference, first;
        methods without a defined agreement last)."""
        rows = []
        for method in self.methods:
            done = [t for t in self.texts if method in t.curve]
            agreement = [t.agreement[method] for t in done if method in t.agreement]
            aopc = [t.aopc[method] for t in done]
            row: dict[str, Any] = {
                "method": method,
                "texts": len(done),
                "agreement": None if method == "ablation" else _mean(agreement),
                "agreement_ci95": None if method == "ablation" else _interval(agreement),
                "aopc": _mean(aopc),
                "aopc_ci95": _interval(aopc),
                "seconds_per_text": _mean([t.seconds.get(method, float("nan")) for t in done]),
            }
            for i, fraction in enumerate(metrics.FRACTIONS):
                percent = int(round(fraction * 100))
                comprehensiveness = [t.comprehensiveness[method][i] for t in done]
                sufficiency = [t.sufficiency[method][i] for t in done]
                row[f"comprehensiveness_{percent}"] = _mean(comprehensiveness)
                row[f"comprehensiveness_{percent}_ci95"] = _interval(comprehensiveness)
                row[f"sufficiency_{percent}"] = _mean(sufficiency)
                row[f"sufficiency_{percent}_ci95"] = _interval(sufficiency)
            rows.append(row)

        def key(row: dict[str, Any]) -> tuple[int, float]:
            if row["method"] == "ablation":
                return (0, 0.0)
            value = row["agreement"]
            return (1, -value) if value is not None else (2, 0.0)

        return sorted(rows, key=key)

    def curves(self) -> dict[str, np.ndarray]:
        """Mean score drop ``[1 + len(CURVE)]`` per method, starting at 0 (nothing removed)."""
        out = {}
        for method in self.methods:
            rows = [t.curve[method] for t in self.texts if method in t.curve]
            if rows:
                out[method] = np.concatenate([[0.0], np.mean(np.asarray(rows, dtype=np.float64), axis=0)])
        return out

    def to_dict(self) -> dict[str, Any]:
        from attnviz import __version__

        return {
            "schema": "attnviz-faithfulness/1",
            "model": self.model,
            "output": self.output,
            "texts": len(self.texts),
            "fractions": list(metrics.FRACTIONS),
            "curve_fractions": list(metrics.CURVE),
            "summary": self.summary(),
            "curves": {m: [float(v) for v in c] for m, c in self.curves().items()},
            "problems": list(self.problems),
            "notes": list(self.notes),
            "attnviz": __version__,
        }


def evaluate_text(attributor: Attributor, item: TextInput, requested: Sequence[str] | None) -> TextEvaluation:
    """Attribute one text with every method, then score all their removal variants in one
    batched run (within the token budget)."""
    encoded = attributor.encoded_input(item)
    target = attributor.target(encoded)
    methods, _ = attributor.choose_methods(None, len(encoded.ids))
    if requested:
        methods = [m for m in methods if m in requested or m == "ablation"]
    attribution = attributor.attribute_encoded(encoded, methods, fixed=target)
    special = attribution.special
    evaluation = TextEvaluation(item.text, int((~special).sum()), target.score, seconds=dict(attribution.seconds))
    reference = attribution.row("ablation")
    batches, spans = [], {}
    start = 0
    for method in methods:
        scores = attribution.row(method)
        order = metrics.ranking(scores, ~special)
        curve, keep = metrics.removal_variants(encoded.ids, special, order, attributor.scorer.ablation_id)
        batches += [curve, keep]
        spans[method] = (start, start + len(curve), start + len(curve) + len(keep))
        start += len(curve) + len(keep)
        if method != "ablation":
            evaluation.agreement[method] = metrics.spearman(scores, reference)
    scored = attributor.scorer.scores(np.concatenate(batches), target)
    for method, (a, b, c) in spans.items():
        curve = metrics.comprehensiveness(target.score, scored[a:b])
        evaluation.curve[method] = [float(v) for v in curve]
        evaluation.aopc[method] = float(np.mean(curve))
        positions = [metrics.CURVE.index(f) for f in metrics.FRACTIONS]
        evaluation.comprehensiveness[method] = [float(curve[p]) for p in positions]
        evaluation.sufficiency[method] = [float(v) for v in metrics.sufficiency(target.score, scored[b:c])]
    return evaluation


def evaluate_faithfulness(
    attributor: Attributor,
    items: Sequence[TextInput],
    *,
    methods: Sequence[str] | None = None,
    progress: Callable[[int, str], None] | None = None,
) -> FaithfulnessReport:
    """Evaluate ``methods`` (default: all that apply) on ``items``. A text that fails (no
    mask token, too long...) is recorded in ``problems``; the others still count.
    ``progress(done, text)`` is called after each text."""
    requested = None
    if methods:
        chosen, _ = attributor.choose_methods(methods, 0)  # names and applicability, not length
        requested = set(chosen)
    texts: list[TextEvaluation] = []
    problems: list[str] = []
    for done, item in enumerate(items, start=1):
        try:
            texts.append(evaluate_text(attributor, item, sorted(requested) if requested else None))
        except AttnvizError as error:
            problems.append(f"'{item.text[:40]}': {error.message}")
        if progress is not None:
            progress(done, item.text)
    order = ["ablation"] + [m for m in METHODS if m != "ablation"]
    present = {m for t in texts for m in t.curve}
    _, notes = attributor.choose_methods(None, 0)
    return FaithfulnessReport(
        model=attributor.loaded.name,
        output=attributor.kind,
        methods=[m for m in order if m in present],
        texts=texts,
        problems=problems,
        notes=notes,
    )
