"""The export pipeline: texts stream from the input through batched, length-bucketed
forward passes (this process) to rendering workers (other processes) that overlap with the
model; every finished input becomes one manifest record."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attnviz.errors import InputError, OutputWriteError, SelectionError
from attnviz.export.manifest import MANIFEST, ManifestWriter, prepare_directory
from attnviz.export.naming import base_name
from attnviz.export.options import ExportOptions, ExportSummary
from attnviz.export.render import job, worker_init
from attnviz.inputs import InputRecord, line_cap, read_inputs
from attnviz.io import DirectoryLock, ensure_directory

if TYPE_CHECKING:
    from attnviz.models import LoadedModel
    from attnviz.result import AttentionResult


def count_inputs(path: str | os.PathLike[str]) -> int | None:
    """Non-blank lines of a file (None for stdin): the progress bar's total."""
    if str(path) == "-":
        return None
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None


def export(
    input_path: str | os.PathLike[str],
    loaded: LoadedModel,
    options: ExportOptions,
    *,
    on_progress: Callable[[ExportSummary], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
    ray: Any = None,
    spec: Any = None,
) -> ExportSummary:
    """Export every text of ``input_path`` (``-`` for stdin) with ``loaded`` model.

    Returns the summary; raises :class:`OutputWriteError` after recording what finished if the
    directory stops being writable (disk full), and ``KeyboardInterrupt`` after a clean stop.
    With ``ray`` (:class:`~attnviz.distributed.engine.RayOptions`), Ray workers load the model
    ``spec`` (:class:`~attnviz.distributed.engine.ModelSpec`) and write the files; this
    process reads the input, holds the lock and writes the manifest, as always.
    """
    options.validate()
    if options.kind is not None and options.kind not in loaded.info.kinds:
        raise SelectionError(
            f"this {loaded.family} model has no '{options.kind}' attention",
            hint=f"choose one of: {', '.join(loaded.info.kinds)}",
        )
    from attnviz.transforms import parse_index_spec

    for kind in loaded.info.kinds:  # a bad layer or head choice is a usage error: fail before any output
        parse_index_spec(options.layers, loaded.info.layers[kind], "layer")
        parse_index_spec(options.heads, loaded.info.heads[kind], "head")
    records = read_inputs(
        input_path, encoding_errors=options.encoding_errors, max_line_bytes=line_cap(loaded.max_length)
    )
    first = next(records)  # raises InputError for a missing, binary or empty file before any output
    lock = DirectoryLock(ensure_directory(options.out_dir)).acquire()
    try:
        if ray is not None:
            from attnviz.distributed.export import run_on_ray

            run = _ExportRun(loaded, options, on_progress, on_warning, local=False)
            return run_on_ray(run, _chain(first, records), ray, spec)
        return _ExportRun(loaded, options, on_progress, on_warning).run(_chain(first, records))
    finally:
        lock.release()


class _ExportRun:
    """One export, while this process holds the directory's lock: the manifest, the
    summary, the texts fed to the model and the rendering jobs in flight."""

    def __init__(
        self,
        loaded: LoadedModel,
        options: ExportOptions,
        on_progress: Callable[[ExportSummary], None] | None,
        on_warning: Callable[[str], None] | None,
        *,
        local: bool = True,
    ) -> None:
        """``local`` False: the texts are extracted and rendered elsewhere (Ray workers);
        this run only records them (no extractor, no rendering pool)."""
        self.loaded, self.options = loaded, options
        self.on_progress, self.on_warning = on_progress, on_warning
        self.done = prepare_directory(options, loaded.name)
        self.out_dir = Path(options.out_dir)
        self.summary = ExportSummary(out_dir=str(self.out_dir))
        self.manifest = ManifestWriter(self.out_dir / MANIFEST)
        self.fed: deque[InputRecord] = deque()
        self.inflight: dict[Future[Any], tuple[InputRecord, dict[str, Any]]] = {}
        self.pool: ProcessPoolExecutor | None = None
        if not local:
            return
        self.extractor = export_extractor(loaded, options)
        if on_warning is not None:
            for message in self.extractor.notes:
                on_warning(message)
        workers = options.workers if options.workers is not None else (os.cpu_count() or 1)
        if workers > 0:
            import multiprocessing

            self.pool = ProcessPoolExecutor(
                max_workers=workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=worker_init,
                initargs=(os.getpid(),),
            )
        self.max_inflight = max(2, workers * 4)

    # -- records -------------------------------------------------------------------------
    def record(self, rec: InputRecord, status: str, files: list[str], error: str | None, extra: dict[str, Any]) -> None:
        """One manifest line, and the counts."""
        self.manifest.append(
            {
                "line": rec.line,
                "id": rec.id,
                "text": rec.text,
                "pair": rec.pair,
                "target": rec.target,
                **extra,
                "files": files,
                "status": status,
                "error": error,
            }
        )
        summary = self.summary
        if status == "ok":
            summary.exported += 1
            summary.files += len(files)
        else:
            summary.failed += 1
            if len(summary.failures) < 50:
                summary.failures.append({"line": rec.line, "error": error})
        summary.total += 1
        if self.on_progress:
            self.on_progress(summary)

    def complete(self, rec: InputRecord, outcome: tuple[str, Any], extra: dict[str, Any]) -> None:
        """A rendering job's outcome, from a worker or in-process alike."""
        status, value = outcome
        if status == "ok":
            self.record(rec, "ok", value, None, extra)
            return
        self.record(rec, "failed", [], value, extra)
        if status == "write-error" and self.summary.aborted is None:
            self.summary.aborted = value  # the directory stopped being writable: stop

    # -- the stream ------------------------------------------------------------------------
    def texts(self, records: Iterator[InputRecord]) -> Iterator[Any]:
        """The texts to extract: bad lines are recorded, finished ones (resume) skipped."""
        from attnviz.extraction import TextInput

        for rec in records:
            if self.summary.aborted:
                return
            if rec.error is not None:
                self.record(rec, "failed", [], rec.error, {})
                continue
            previous = self.done.get(rec.line)
            if previous is not None and previous.get("text") == rec.text:
                self.summary.resumed += 1
                self.summary.total += 1
                if self.on_progress:
                    self.on_progress(self.summary)
                continue
            self.fed.append(rec)
            yield TextInput(rec.text or "", rec.pair, rec.target)

    def render(self, rec: InputRecord, result: AttentionResult, extra: dict[str, Any]) -> None:
        """Render one text, in a worker (waiting when too many are in flight) or here."""
        payload = render_payload(result, rec, self.options)
        if self.pool is None:
            self.complete(rec, job(payload), extra)
            return
        self.inflight[self.pool.submit(job, payload)] = (rec, extra)
        if len(self.inflight) >= self.max_inflight:
            self.wait(until=self.max_inflight - 1)

    def wait(self, until: int = 0) -> None:
        """Collect finished jobs until at most ``until`` are in flight."""
        while len(self.inflight) > until:
            finished, _ = wait(list(self.inflight), return_when=FIRST_COMPLETED)
            for future in finished:
                rec, extra = self.inflight.pop(future)
                self.complete(rec, future.result(), extra)

    def run(self, records: Iterator[InputRecord]) -> ExportSummary:
        from attnviz.models import unknown_token_warning
        from attnviz.transforms import apply_transforms

        options, summary = self.options, self.summary
        started = time.monotonic()
        try:
            window = export_window(options)
            for outcome in self.extractor.outcomes(self.texts(records), batch_size=options.batch_size, window=window):
                rec = self.fed.popleft()
                if isinstance(outcome, InputError):
                    self.record(rec, "failed", [], outcome.message, {})
                    continue
                extra = {"tokens": len(outcome.tokens), "truncated": outcome.truncated_tokens}
                if outcome.truncated_tokens:
                    summary.truncated += 1
                    if self.on_warning:
                        self.on_warning(
                            f"line {rec.line}: cut to {self.loaded.max_length} tokens "
                            f"({outcome.truncated_tokens} dropped)"
                        )
                unknown = unknown_token_warning(self.loaded.tokenizer, outcome.tokens)
                if unknown and self.on_warning:
                    self.on_warning(f"line {rec.line}: {unknown}")
                boxes = glyph_warning(outcome, options)
                if boxes and self.on_warning:
                    self.on_warning(f"line {rec.line}: {boxes}")
                try:
                    result = apply_transforms(outcome, words=options.words, no_special=options.no_special)
                except SelectionError as exc:  # e.g. --no-special on a text of only special tokens
                    self.record(rec, "failed", [], exc.message, extra)
                    continue
                self.render(rec, result, extra)
                if summary.aborted:
                    break
            self.wait()
        except KeyboardInterrupt:
            summary.interrupted = True
            for future in list(self.inflight):
                if future.cancel():
                    self.inflight.pop(future)
            try:
                for future in list(self.inflight):
                    outcome = future.result(timeout=60)
                    rec, extra = self.inflight.pop(future)
                    self.complete(rec, outcome, extra)
            except Exception:  # noqa: BLE001 - stopping: unfinished texts are simply redone on resume
                pass
            raise
        finally:
            summary.seconds = round(time.monotonic() - started, 3)
            if self.pool is not None:
                self.pool.shutdown(wait=True, cancel_futures=True)
            self.manifest.close()
        if summary.aborted:
            raise OutputWriteError(
                summary.aborted,
                hint="free some space or choose another {out_dir}, then run again with {resume}",
                option=("out_dir", "resume"),
            )
        return summary


def export_extractor(loaded: LoadedModel, options: ExportOptions) -> Any:
    """The extractor of an export (here, or in a Ray worker): every view is drawn from the
    same extraction, and data files carry every head."""
    from attnviz.plan import open_extractor, plan_views

    plan = plan_views(options.views, kind=options.kind, drawn=False)
    return open_extractor(loaded, layers=options.layers, heads=options.heads, plan=plan, truncate=options.truncate)


def export_window(options: ExportOptions) -> int:
    """Texts per window: a window is sorted by length (little padding) and held until its
    results come back in input order; bounded, so a huge batch size cannot hold thousands of
    results. Ray workers take whole windows, so their batches are this process's."""
    return min(max(options.batch_size * 4, 8), 256)


def render_payload(result: AttentionResult, rec: InputRecord, options: ExportOptions) -> tuple[Any, ...]:
    """The arguments of :func:`attnviz.export.render.job` for one text."""
    return (
        result,
        base_name(rec),
        str(options.out_dir),
        options.views,
        options.formats,
        options.kind,
        options.cmap,
        options.scale,
    )


def _chain(first: InputRecord, rest: Iterator[InputRecord]) -> Iterator[InputRecord]:
    yield first
    yield from rest


def glyph_warning(result: Any, options: ExportOptions) -> str | None:
    """The line's warning when an image of it will draw some characters as boxes (no
    installed font has them): its token labels and text; nothing for data formats."""
    from attnviz.render import IMAGE_SUFFIXES
    from attnviz.render.fonts import undrawable_warning

    if not any(f".{fmt}" in IMAGE_SUFFIXES for fmt in options.formats):
        return None
    labels = [*result.tokens.display, *(result.target_tokens.display if result.target_tokens is not None else ())]
    return undrawable_warning([result.text, *labels])
