"""Export over a Ray cluster.

The driver (:func:`run_on_ray`, inside :func:`attnviz.export.pipeline.export`) holds the
directory's lock, reads the input, records bad lines and skips finished ones (``--resume``)
exactly as a single-process export does, then sends the remaining texts as windows (the
single-process run's windows, so its batches and arrays). Each actor loads the model once,
extracts a window, renders every text into the output directory (shared storage on a
cluster) and returns one record per text; the driver alone writes them to the manifest, as
each window completes. A window retried after a worker died writes the same files again
(atomically) and reaches the driver once, so nothing is lost or recorded twice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attnviz.distributed.engine import ModelSpec, RayOptions, WindowJob, run_windows, windows


class _Aborted(Exception):
    """The output directory stopped being writable: stop the job (the run raises)."""


def options_payload(options: Any) -> dict[str, Any]:
    """:class:`~attnviz.export.options.ExportOptions` as JSON."""
    fields = dataclasses.asdict(options)
    fields["out_dir"] = str(fields["out_dir"])
    return fields


class ExportJob(WindowJob):
    """An actor: one model; per window, every text extracted, rendered and written."""

    def setup(self, spec: dict[str, Any], options: dict[str, Any], threads: int | None) -> None:  # type: ignore[override]
        import torch

        from attnviz.export.options import ExportOptions
        from attnviz.export.pipeline import export_extractor

        if threads:
            torch.set_num_threads(max(1, int(threads)))
        fields = dict(options)
        fields["out_dir"] = Path(fields["out_dir"])
        for name in ("views", "formats"):
            fields[name] = tuple(fields[name])
        self.options = ExportOptions(**fields)
        self.loaded = ModelSpec(**spec).load()
        self.extractor = export_extractor(self.loaded, self.options)

    def run(self, window: list[Any]) -> dict[str, Any]:
        from attnviz.errors import InputError, SelectionError
        from attnviz.export.pipeline import glyph_warning, render_payload
        from attnviz.export.render import job
        from attnviz.extraction import TextInput
        from attnviz.inputs import InputRecord
        from attnviz.models import unknown_token_warning
        from attnviz.transforms import apply_transforms

        options = self.options
        records = [
            InputRecord(line=line, id=id_, text=text, pair=pair, target=target)
            for line, id_, text, pair, target in window
        ]
        items = [TextInput(rec.text or "", rec.pair, rec.target) for rec in records]
        out: list[dict[str, Any]] = []
        outcomes = self.extractor.outcomes(items, batch_size=options.batch_size, window=max(1, len(items)))
        for index, (rec, outcome) in enumerate(zip(records, outcomes)):
            if isinstance(outcome, InputError):
                out.append({"index": index, "status": "failed", "value": outcome.message, "extra": {}})
                continue
            extra = {"tokens": len(outcome.tokens), "truncated": outcome.truncated_tokens}
            unknown = unknown_token_warning(self.loaded.tokenizer, outcome.tokens)
            boxes = glyph_warning(outcome, options)
            try:
                result = apply_transforms(outcome, words=options.words, no_special=options.no_special)
            except SelectionError as exc:  # e.g. no special tokens left: this text fails alone
                out.append({"index": index, "status": "failed", "value": exc.message, "extra": extra})
                continue
            status, value = job(render_payload(result, rec, options))
            out.append(
                {"index": index, "status": status, "value": value, "extra": extra, "unknown": unknown, "boxes": boxes}
            )
            if status == "write-error":
                break  # the directory is gone or full: the driver stops the run
        return {"records": out, "max_length": self.loaded.max_length}


def run_on_ray(run: Any, records: Iterator[Any], ray: RayOptions, spec: ModelSpec) -> Any:
    """Export on Ray: ``run`` is the driver's :class:`attnviz.export.pipeline._ExportRun`
    (made with ``local=False``). Returns its summary; raises as a single-process run does
    (a directory that stops being writable, Ctrl-C after a clean stop)."""
    import time

    from attnviz.errors import OutputWriteError
    from attnviz.export.pipeline import export_window

    options, summary = run.options, run.summary
    started = time.monotonic()
    size = export_window(options)
    try:
        for _ in run.texts(records):  # bad lines and finished texts are recorded here
            pass
        fed = list(run.fed)
        run.fed.clear()
        chunks = windows([[rec.line, rec.id, rec.text, rec.pair, rec.target] for rec in fed], size)

        def collect(number: int, result: dict[str, Any]) -> None:
            for entry in result["records"]:
                rec = fed[number * size + int(entry["index"])]
                extra = entry["extra"]
                if entry["status"] == "failed" and not extra:
                    run.record(rec, "failed", [], entry["value"], {})
                    continue
                if extra.get("truncated"):
                    summary.truncated += 1
                    if run.on_warning:
                        run.on_warning(
                            f"line {rec.line}: cut to {result['max_length']} tokens ({extra['truncated']} dropped)"
                        )
                for said in ("unknown", "boxes"):
                    if entry.get(said) and run.on_warning:
                        run.on_warning(f"line {rec.line}: {entry[said]}")
                if entry["status"] == "failed":
                    run.record(rec, "failed", [], entry["value"], extra)
                else:
                    run.complete(rec, (entry["status"], entry["value"]), extra)
            if summary.aborted:
                raise _Aborted

        threads = max(1, int(ray.cpus_per_worker)) if ray.use_gpus is not True else None
        try:
            run_windows(chunks, ExportJob, (dataclasses.asdict(spec), options_payload(options), threads), ray, collect)
        except _Aborted:
            pass
    except KeyboardInterrupt:
        summary.interrupted = True
        raise
    finally:
        summary.seconds = round(time.monotonic() - started, 3)
        run.manifest.close()
    if summary.aborted:
        raise OutputWriteError(
            summary.aborted,
            hint="free some space or choose another {out_dir}, then run again with {resume}",
            option=("out_dir", "resume"),
        )
    return summary
