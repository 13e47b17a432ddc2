"""Comparison of two models over a Ray cluster: each actor holds both models and runs
:func:`attnviz.analysis.compare.compare_models` on its windows; the driver adds the
per-head sums (JS, L1, rows) in window order. Windows are whole batches, so every forward
pass is the one a single-process run makes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from attnviz.distributed.engine import DEFAULT_WINDOW, ModelSpec, RayOptions, WindowJob, run_windows, windows
from attnviz.distributed.stats import InputCallback, NoteOnce, build_extractor, item_payload


class CompareJob(WindowJob):
    """An actor: both models; per window, the comparison sums of its texts."""

    def setup(  # type: ignore[override]
        self,
        spec_a: dict[str, Any],
        spec_b: dict[str, Any],
        extraction: dict[str, Any],
        kind: str | None,
        words: Any,
        no_special: bool,
        batch_size: int,
        threads: int | None,
    ) -> None:
        self.extractors = (build_extractor(spec_a, extraction, threads), build_extractor(spec_b, extraction, threads))
        self.kind, self.words, self.no_special, self.batch_size = kind, words, no_special, batch_size

    def run(self, window: list[Any]) -> dict[str, Any]:
        from attnviz.analysis.compare import compare_models
        from attnviz.errors import InputError
        from attnviz.extraction import TextInput
        from attnviz.transforms import apply_transforms

        items = [TextInput(text, pair, target) for text, pair, target in window]
        index = {id(item): number for number, item in enumerate(items)}
        problems: list[list[Any]] = []
        try:
            comparison = compare_models(
                items,
                *self.extractors,
                kind=self.kind,
                no_special=self.no_special,
                transform=(lambda result: apply_transforms(result, words=self.words)) if self.words else None,
                batch_size=self.batch_size,
                on_problem=lambda item, message: problems.append([index[id(item)], message]),
            )
        except InputError:
            if len(problems) < len(items):
                raise
            return {"texts": 0, "outcomes": [[i, message, 0, None] for i, message in problems]}
        failed = {i for i, _ in problems}
        outcomes: list[list[Any]] = [[i, message, 0, None] for i, message in problems]
        for number, item in enumerate(items):  # the unknown-token warning of each text compared
            if number not in failed:
                unknown = unknown_warning(self.extractors[0], item)
                if unknown:
                    outcomes.append([number, None, 0, unknown])
        assert comparison.js_sum is not None and comparison.l1_sum is not None and comparison.rows is not None
        return {
            "model_a": comparison.model_a,
            "model_b": comparison.model_b,
            "kind": comparison.kind,
            "layers": comparison.layer_ids,
            "heads": comparison.head_ids,
            "texts": comparison.texts,
            "js_sum": comparison.js_sum.tolist(),
            "l1_sum": comparison.l1_sum.tolist(),
            "rows": comparison.rows.tolist(),
            "notes": comparison.notes,
            "outcomes": outcomes,
            "extractor_notes": [*self.extractors[0].notes, *self.extractors[1].notes],
        }


def unknown_warning(extractor: Any, item: Any) -> str | None:
    """The unknown-token warning of ``item`` (the text named), or None (also when it cannot
    be encoded: that is the comparison's problem to report). The CLI's compare says the same."""
    from attnviz.errors import InputError
    from attnviz.models import unknown_token_warning

    try:
        encoded = extractor.encode(item)
    except InputError:
        return None
    return unknown_token_warning(extractor.loaded.tokenizer, encoded.tokens, text=item.text)


def distributed_comparison(
    items: Sequence[Any],
    spec_a: ModelSpec,
    spec_b: ModelSpec,
    options: RayOptions,
    *,
    layers: Any = None,
    heads: Any = None,
    kind: str | None = None,
    words: Any = False,
    no_special: bool = False,
    truncate: bool = True,
    batch_size: int = 16,
    window: int = DEFAULT_WINDOW,
    on_input: InputCallback | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Any:
    """:func:`attnviz.analysis.compare.compare_models` of ``items`` on Ray: the same
    per-head sums (to float64 rounding), texts and notes. ``window`` is rounded up to a
    multiple of ``batch_size`` so that the batches are a single-process run's.
    ``on_input(index, error, truncated)`` sees every input as its window completes;
    ``on_note(message)`` each distinct note of the workers' extractors once."""
    from attnviz.analysis.compare import Comparison
    from attnviz.errors import InputError

    batch_size = max(1, int(batch_size))
    window = -(-max(1, int(window)) // batch_size) * batch_size
    chunks = windows([item_payload(item) for item in items], window)
    results: dict[int, dict[str, Any]] = {}

    notes = NoteOnce(on_note)

    def collect(number: int, result: dict[str, Any]) -> None:
        results[number] = result
        notes(result.get("extractor_notes", ()))
        if on_input is not None:
            said = {int(record[0]): record for record in result["outcomes"]}
            for i in range(len(chunks[number])):
                record = said.get(i, [i, None, 0, None])
                on_input(number * window + i, record[1], 0, record[3] if len(record) > 3 else None)

    threads = max(1, int(options.cpus_per_worker)) if options.use_gpus is not True else None
    extraction = {"truncate": truncate, "layers": layers, "heads": heads}
    arguments = (asdict(spec_a), asdict(spec_b), extraction, kind, words, no_special, batch_size, threads)
    run_windows(chunks, CompareJob, arguments, options, collect)
    comparison: Comparison | None = None
    for number in sorted(results):
        result = results[number]
        if not result["texts"]:
            continue
        if comparison is None:
            shape = np.asarray(result["js_sum"]).shape
            comparison = Comparison(
                result["model_a"],
                result["model_b"],
                result["kind"],
                list(result["layers"]),
                list(result["heads"]),
                js_sum=np.zeros(shape),
                l1_sum=np.zeros(shape),
                rows=np.zeros(shape),
                notes=list(result["notes"]),
            )
        assert comparison.js_sum is not None and comparison.l1_sum is not None and comparison.rows is not None
        comparison.js_sum += np.asarray(result["js_sum"], dtype=np.float64)
        comparison.l1_sum += np.asarray(result["l1_sum"], dtype=np.float64)
        comparison.rows += np.asarray(result["rows"], dtype=np.float64)
        comparison.texts += int(result["texts"])
    if comparison is None:
        raise InputError("no texts to compare")
    return comparison
