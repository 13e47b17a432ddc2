"""Head statistics over a Ray cluster: each actor streams its windows through
:class:`attnviz.analysis.stats.StatisticsSink` and returns the sums and counts; the driver
merges them exactly as ``HeadStatistics.merge`` (``stats --merge``) does, in window order,
so the result equals a single-process run to float64 rounding."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import numpy as np

from attnviz.distributed.engine import DEFAULT_WINDOW, ModelSpec, RayOptions, WindowJob, run_windows, windows

#: ``on_input(index, error, truncated, unknown)``: an input's error message (None when it
#: counted), its dropped tokens and the unknown-token warning (None when its vocabulary is
#: covered), by its position in the items.
InputCallback = Callable[[int, "str | None", int, "str | None"], None]


def item_payload(item: Any) -> list[Any]:
    """A text input as JSON: [text, pair, target]."""
    from attnviz.extraction import TextInput

    item = item if isinstance(item, TextInput) else TextInput(item)
    return [item.text, item.pair, item.target]


def build_extractor(spec: dict[str, Any], extraction: dict[str, Any], threads: int | None) -> Any:
    """The actor's model and :class:`~attnviz.extraction.Extractor` (loaded once per actor)."""
    import torch

    from attnviz.extraction import Extractor

    if threads:
        torch.set_num_threads(max(1, int(threads)))
    loaded = ModelSpec(**spec).load()
    return Extractor(loaded, **extraction)


def outcome_record(index: int, outcome: Any, tokenizer: Any = None) -> list[Any] | None:
    """[index, error, truncated, unknown] for an input that failed, was cut or is all
    unknown tokens (:func:`attnviz.models.unknown_token_warning`, with the text named);
    None otherwise."""
    from attnviz.errors import InputError
    from attnviz.models import unknown_token_warning

    if isinstance(outcome, InputError):
        return [index, outcome.message, 0, None]
    truncated = int(getattr(outcome, "truncated", 0) or getattr(outcome, "truncated_tokens", 0) or 0)
    item = getattr(outcome, "item", None)
    unknown = unknown_token_warning(tokenizer, outcome.tokens, text=item.text if item is not None else None)
    return [index, None, truncated, unknown] if truncated or unknown else None


def chosen_kind(extractor: Any, kind: str | None) -> str:
    """The kind statistics are computed for, refused as ``stream_statistics`` refuses it."""
    from attnviz.analysis import stats
    from attnviz.errors import SelectionError

    kinds = list(extractor.selection.layers)
    chosen = kind or kinds[0]
    if chosen not in kinds:
        raise SelectionError(
            f"this {extractor.loaded.family} model has no '{chosen}' attention",
            hint=f"choose one of: {', '.join(kinds)}",
        )
    if chosen == "cross":  # the same refusal as a single-process run (renamed in the refactor of #20)
        check = getattr(stats, "check_square", None) or getattr(stats, "_check_square")  # noqa: B009
        check(())
    return chosen


class NoteOnce:
    """Passes each distinct note of the workers on once."""

    def __init__(self, on_note: Callable[[str], None] | None) -> None:
        self.on_note, self.seen = on_note, set()  # type: ignore[var-annotated]

    def __call__(self, notes: Sequence[str]) -> None:
        for message in notes:
            if self.on_note is not None and message not in self.seen:
                self.seen.add(message)
                self.on_note(message)


class StatisticsJob(WindowJob):
    """An actor: one model; per window, the statistic sums of its texts."""

    def setup(  # type: ignore[override]
        self,
        spec: dict[str, Any],
        extraction: dict[str, Any],
        kind: str | None,
        no_special: bool,
        batch_size: int,
        threads: int | None,
    ) -> None:
        self.extractor = build_extractor(spec, extraction, threads)
        self.kind = chosen_kind(self.extractor, kind)
        self.no_special = no_special
        self.batch_size = batch_size

    def run(self, window: list[Any]) -> dict[str, Any]:
        from attnviz.analysis.stats import HeadStatistics, StatisticsSink
        from attnviz.extraction import TextInput

        selection = self.extractor.selection
        stats = HeadStatistics(
            self.extractor.loaded.name, self.kind, list(selection.layers[self.kind]), list(selection.heads[self.kind])
        )
        sink = StatisticsSink(stats, no_special=self.no_special)
        items = [TextInput(text, pair, target) for text, pair, target in window]
        outcomes = []
        for index, outcome in enumerate(
            self.extractor.reduce(items, sink, batch_size=self.batch_size, window=max(1, len(items)))
        ):
            record = outcome_record(index, outcome, self.extractor.loaded.tokenizer)
            if record is not None:
                outcomes.append(record)
        return {
            "model": stats.model,
            "kind": stats.kind,
            "layers": stats.layer_ids,
            "heads": stats.head_ids,
            "texts": stats.texts,
            "sums": {name: values.tolist() for name, values in stats.sums.items()},
            "counts": {name: values.tolist() for name, values in stats.counts.items()},
            "outcomes": outcomes,
            "notes": self.extractor.notes,
        }


def shard(result: dict[str, Any]) -> Any:
    """One window's result as a :class:`~attnviz.analysis.stats.HeadStatistics` shard."""
    from attnviz.analysis.stats import HeadStatistics

    return HeadStatistics(
        model=result["model"],
        kind=result["kind"],
        layer_ids=list(result["layers"]),
        head_ids=list(result["heads"]),
        texts=int(result["texts"]),
        sums={k: np.asarray(v, dtype=np.float64) for k, v in result["sums"].items()},
        counts={k: np.asarray(v, dtype=np.float64) for k, v in result["counts"].items()},
    )


def distributed_statistics(
    items: Sequence[Any],
    spec: ModelSpec,
    options: RayOptions,
    *,
    layers: Any = None,
    heads: Any = None,
    kind: str | None = None,
    no_special: bool = False,
    truncate: bool = True,
    batch_size: int = 16,
    window: int = DEFAULT_WINDOW,
    on_input: InputCallback | None = None,
    on_note: Callable[[str], None] | None = None,
) -> Any:
    """Head statistics of ``items`` (texts or :class:`~attnviz.extraction.TextInput`) on
    Ray: the same sums, counts and labels as :func:`attnviz.analysis.stats.stream_statistics`
    over the same items with the same ``batch_size`` (to float64 rounding).

    ``on_input(index, error, truncated)`` is called, as each window completes, for every
    input of it (``error`` None when the input counted); ``on_note(message)`` once per note
    the workers' extractors make (how the model was loaded and captured)."""
    from attnviz.analysis.stats import merge_statistics
    from attnviz.errors import InputError

    chunks = windows([item_payload(item) for item in items], window)
    starts = [number * max(1, int(window)) for number in range(len(chunks))]
    shards: dict[int, Any] = {}

    notes = NoteOnce(on_note)

    def collect(number: int, result: dict[str, Any]) -> None:
        shards[number] = shard(result)
        notes(result.get("notes", ()))
        if on_input is not None:
            special = {int(record[0]): record[1:] for record in result["outcomes"]}
            for index in range(len(chunks[number])):
                error, cut, unknown = special.get(index, (None, 0, None))
                on_input(starts[number] + index, error, int(cut), unknown)

    threads = max(1, int(options.cpus_per_worker)) if options.use_gpus is not True else None
    extraction = {"truncate": truncate, "layers": layers, "heads": heads}
    arguments = (asdict(spec), extraction, kind, no_special, batch_size, threads)
    run_windows(chunks, StatisticsJob, arguments, options, collect)
    merged = merge_statistics(shards[number] for number in sorted(shards))
    if merged.texts == 0:
        raise InputError("no texts to compute statistics over")
    return merged
