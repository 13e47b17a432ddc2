"""The export pipeline: every text of a file to heatmaps and data, fast and resumable.

Texts stream from the input file through batched, length-bucketed forward passes (the
main process) to rendering workers (separate processes) that overlap with the model.
Every file is written to a temporary name and renamed; ``manifest.jsonl`` gets one
record per finished input, so a killed run can be resumed without redoing finished texts.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time
import unicodedata
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from attnviz.errors import AttnvizError, InputError, OutputWriteError, SelectionError
from attnviz.inputs import InputRecord, read_inputs
from attnviz.io import DirectoryLock, atomic_write, ensure_directory
from attnviz.result import AttentionResult

MANIFEST = "manifest.jsonl"
SETTINGS = "export.json"
EXPORT_VIEWS = ("head", "layer", "grid", "mean", "rollout", "flow", "norm")
EXPORT_FORMATS = ("png", "svg", "pdf", "npz", "json", "html")
_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
SLUG_LENGTH = 40


def slugify(text: str, limit: int = SLUG_LENGTH) -> str:
    """A short, safe file-name part: ASCII letters, digits and dashes only (no separators,
    no dots, no reserved device names), at most ``limit`` characters, never empty."""
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:limit].strip("-")
    if not slug:
        slug = "text"
    if slug in _RESERVED:
        slug += "-text"
    return slug


def base_name(record: InputRecord) -> str:
    """``000042-the-quick-brown-fox``: the line number keeps repeated lines unique."""
    return f"{record.line:06d}-{slugify(record.id if record.id else (record.text or ''))}"


@dataclass(frozen=True)
class ExportOptions:
    """What to write for every text. Layers and heads are 0-based specs (``all``, ``2-4``)."""

    out_dir: Path
    views: tuple[str, ...] = ("grid",)
    formats: tuple[str, ...] = ("png",)
    kind: str | None = None
    layers: str = "all"
    heads: str = "all"
    words: bool | str = False
    no_special: bool = False
    cmap: str = "viridis"
    batch_size: int = 16
    workers: int | None = None
    resume: bool = False
    overwrite: bool = False
    truncate: bool = True
    encoding_errors: str = "strict"

    def validate(self) -> None:
        for view in self.views:
            if view not in EXPORT_VIEWS:
                raise SelectionError(f"unknown view '{view}'", hint=f"choose from: {', '.join(EXPORT_VIEWS)}")
        for fmt in self.formats:
            if fmt not in EXPORT_FORMATS:
                raise SelectionError(f"unknown format '{fmt}'", hint=f"choose from: {', '.join(EXPORT_FORMATS)}")
        if not self.views or not self.formats:
            raise SelectionError("give at least one --view and one --format")
        if "norm" in self.views and (self.words or self.no_special):
            raise SelectionError(
                "export --view norm draws the norm-based weights as extracted; it does not combine with "
                "--words or --no-special",
                hint="use show --norm for those, or export the norm view on its own",
            )
        if self.resume and self.overwrite:
            raise SelectionError("--resume and --overwrite contradict each other")
        if self.batch_size < 1:
            raise SelectionError("--batch-size must be at least 1")

    def settings(self, model: str) -> dict[str, Any]:
        """The choices a resumed run must share with the run it continues."""
        return {
            "model": model,
            "views": list(self.views),
            "formats": list(self.formats),
            "kind": self.kind,
            "layers": self.layers,
            "heads": self.heads,
            "words": self.words,
            "no_special": self.no_special,
            "cmap": self.cmap,
        }


@dataclass
class ExportSummary:
    """Counts of one run: ``exported`` now, ``resumed`` (done by an earlier run), ``failed``."""

    out_dir: str
    total: int = 0
    exported: int = 0
    resumed: int = 0
    failed: int = 0
    truncated: int = 0
    files: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    aborted: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- rendering jobs (run in worker processes) -------------------------------------------------
_RENDERERS: dict[str, Any] = {}


def _worker_init(parent: int | None = None) -> None:
    # Ctrl-C goes to the whole process group: the main process decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent is not None:
        _die_with(parent)


def _die_with(parent: int) -> None:
    """End this worker when the export process dies, however it dies (SIGKILL included):
    the kernel sends SIGTERM when the parent goes (Linux ``PR_SET_PDEATHSIG``), and a
    watchdog thread notices a new parent pid (elsewhere, or if the parent died first)."""
    import threading

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="attnviz-parent-watch", daemon=True).start()


class Terminated(KeyboardInterrupt):
    """SIGTERM during an export: stop as cleanly as for Ctrl-C (workers stopped, manifest
    true), then exit 143."""


def _view_results(result: AttentionResult, view: str, kind: str) -> Iterator[tuple[str, AttentionResult]]:
    """(file-name suffix, result to draw) for each image a view makes."""
    from attnviz.transforms import select

    layer_ids = result.layer_ids[kind]
    head_ids = result.head_ids[kind]
    if view == "head":
        for li, layer in enumerate(layer_ids):
            for hi, head in enumerate(head_ids):
                yield f"L{layer:02d}H{head:02d}", select(result, li, hi)
    elif view == "layer":
        for li, layer in enumerate(layer_ids):
            yield f"L{layer:02d}", select(result, li)
    else:
        yield view, result


def render_text(
    result: AttentionResult,
    base: str,
    out_dir: str,
    views: tuple[str, ...],
    formats: tuple[str, ...],
    kind: str | None,
    cmap: str,
) -> list[str]:
    """Write every requested view and format of one text; return the file names written.

    Raises :class:`AttnvizError` (e.g. :class:`OutputWriteError`) on failure; files already
    written for this text are removed so that a text is either complete or absent.
    """
    from attnviz.render.views import build_view

    kind = kind or result.default_kind
    written: list[str] = []
    directory = Path(out_dir)
    try:
        for fmt in formats:
            if fmt in ("npz", "json", "html"):
                from attnviz.outputs import write_output

                # data files carry rollout/flow when those views were asked for
                derived_view = "flow" if "flow" in views else "rollout" if "rollout" in views else "grid"
                name = f"{base}.{fmt}"
                write_output(result, directory / name, view=derived_view, kind=kind)
                written.append(name)
            else:
                for view in views:
                    source, layout = (result.norm_weights(), "auto") if view == "norm" else (result, view)
                    for suffix, part in _view_results(source, layout, kind):
                        name = f"{base}.{'norm' if view == 'norm' else suffix}.{fmt}"
                        data = build_view(part, layout, kind)
                        if fmt == "png":
                            from attnviz.render.fast import FastRenderer

                            renderer = _RENDERERS.get(cmap)
                            if renderer is None:
                                renderer = _RENDERERS[cmap] = FastRenderer(cmap)
                            png = renderer.render(data)

                            def write_png(handle: Any, png: bytes = png) -> None:
                                handle.write(png)

                            atomic_write(directory / name, write_png)
                        else:
                            from attnviz.render.image import figure_for_view, save_figure

                            save_figure(figure_for_view(data, cmap=cmap), directory / name)
                        written.append(name)
    except BaseException:
        for name in written:
            try:
                (directory / name).unlink()
            except OSError:
                pass
        raise
    return written


def _job(payload: tuple[Any, ...]) -> tuple[str, Any]:
    """Worker entry: ("ok", files) or ("error" | "write-error", message)."""
    try:
        return "ok", render_text(*payload)
    except OutputWriteError as exc:
        return "write-error", exc.message
    except AttnvizError as exc:
        return "error", exc.message


# -- the pipeline ------------------------------------------------------------------------------
def count_inputs(path: str | os.PathLike[str]) -> int | None:
    """Non-blank lines of a file (None for stdin): the progress bar's total."""
    if str(path) == "-":
        return None
    try:
        with open(path, "rb") as handle:
            return sum(1 for line in handle if line.strip())
    except OSError:
        return None


def _read_manifest(path: Path) -> dict[int, dict[str, Any]]:
    """Last record per line; a torn last line (a killed write) is ignored."""
    records: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return records
    with open(path, encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("line"), int):
                records[record["line"]] = record
    return records


class _Manifest:
    """Append-only JSONL; each record goes out in one write so a record is whole or absent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise OutputWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc

    def append(self, record: dict[str, Any]) -> None:
        try:
            self.handle.write(_manifest_line(record))
            self.handle.flush()
        except OSError as exc:
            raise OutputWriteError(
                f"cannot write {self.path}: {exc.strerror or exc}", hint="free some space, then run again with --resume"
            ) from exc

    def close(self) -> None:
        try:
            self.handle.close()
        except OSError:
            pass


def _prepare_directory(options: ExportOptions, model: str) -> dict[int, dict[str, Any]]:
    """Create the output directory, check resume/overwrite, return finished records."""
    out_dir = ensure_directory(options.out_dir)
    manifest_path = out_dir / MANIFEST
    settings_path = out_dir / SETTINGS
    for stale in out_dir.glob(".*.part"):  # temp files of a killed run
        try:
            stale.unlink()
        except OSError:
            pass
    settings = options.settings(model)
    done: dict[int, dict[str, Any]] = {}
    if manifest_path.exists():
        if options.resume:
            if settings_path.exists():
                previous = json.loads(settings_path.read_text(encoding="utf-8"))
                if previous != settings:
                    changed = sorted(k for k in settings if previous.get(k) != settings[k])
                    raise SelectionError(
                        f"{out_dir} was exported with different settings ({', '.join(changed)})",
                        hint="resume with the same options, or use --overwrite or another directory",
                    )
            for line, record in _read_manifest(manifest_path).items():
                if record.get("status") == "ok" and all((out_dir / f).exists() for f in record.get("files", [])):
                    done[line] = record
            text = "".join(_manifest_line(r) for _, r in sorted(done.items()))
            atomic_write(manifest_path, lambda handle: handle.write(text), binary=False, durable=True)
        elif options.overwrite:
            manifest_path.unlink()
        else:
            raise SelectionError(
                f"{out_dir} already holds an export ({MANIFEST})",
                hint="pass --resume to continue it, --overwrite to start again, or choose another -o",
            )
    text = json.dumps(settings, indent=2)
    atomic_write(settings_path, lambda handle: handle.write(text), binary=False)
    return done


def export(
    input_path: str | os.PathLike[str],
    loaded: Any,
    options: ExportOptions,
    *,
    on_progress: Callable[[ExportSummary], None] | None = None,
    on_warning: Callable[[str], None] | None = None,
) -> ExportSummary:
    """Export every text of ``input_path`` (``-`` for stdin) with ``loaded`` model.

    Returns the summary; raises :class:`OutputWriteError` after recording what finished if the
    directory stops being writable (disk full), and ``KeyboardInterrupt`` after a clean stop.
    """

    options.validate()
    if options.kind is not None and options.kind not in loaded.info.kinds:
        raise SelectionError(
            f"this {loaded.family} model has no '{options.kind}' attention",
            hint=f"choose one of: {', '.join(loaded.info.kinds)}",
        )
    from attnviz.transforms import parse_index_spec

    for kind in loaded.info.kinds:  # a bad --layer/--head is a usage error: fail before any output
        parse_index_spec(options.layers, loaded.info.layers[kind], "layer")
        parse_index_spec(options.heads, loaded.info.heads[kind], "head")
    records = read_inputs(input_path, encoding_errors=options.encoding_errors)
    first = next(records)  # raises InputError for a missing, binary or empty file before any output
    lock = DirectoryLock(ensure_directory(options.out_dir)).acquire()
    try:
        return _export_locked(first, records, loaded, options, on_progress=on_progress, on_warning=on_warning)
    finally:
        lock.release()


def _export_locked(
    first: InputRecord,
    records: Iterator[InputRecord],
    loaded: Any,
    options: ExportOptions,
    *,
    on_progress: Callable[[ExportSummary], None] | None,
    on_warning: Callable[[str], None] | None,
) -> ExportSummary:
    """The export itself, while this process holds the directory's lock."""
    from attnviz.extraction import Extractor, TextInput
    from attnviz.transforms import apply_transforms

    done = _prepare_directory(options, loaded.name)
    out_dir = Path(options.out_dir)
    summary = ExportSummary(out_dir=str(out_dir))
    manifest = _Manifest(out_dir / MANIFEST)
    extractor = Extractor(
        loaded,
        truncate=options.truncate,
        layers=options.layers,
        heads=options.heads,
        norms="norm" in options.views,
        kinds=[options.kind] if options.kind and "norm" in options.views else None,
    )
    if on_warning is not None:
        for message in extractor.notes:
            on_warning(message)
    workers = options.workers if options.workers is not None else (os.cpu_count() or 1)
    pool = None
    if workers > 0:
        import multiprocessing

        pool = ProcessPoolExecutor(
            max_workers=workers,
            mp_context=multiprocessing.get_context("spawn"),
            initializer=_worker_init,
            initargs=(os.getpid(),),
        )
    started = time.monotonic()
    fed: deque[InputRecord] = deque()
    inflight: dict[Future[Any], tuple[InputRecord, dict[str, Any]]] = {}
    max_inflight = max(2, workers * 4)

    def record_of(rec: InputRecord, status: str, files: list[str], error: str | None, extra: dict[str, Any]) -> None:
        entry = {
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
        manifest.append(entry)
        if status == "ok":
            summary.exported += 1
            summary.files += len(files)
        else:
            summary.failed += 1
            if len(summary.failures) < 50:
                summary.failures.append({"line": rec.line, "error": error})
        summary.total += 1
        if on_progress:
            on_progress(summary)

    def finish(future: Future[Any]) -> None:
        rec, extra = inflight.pop(future)
        status, value = future.result()
        if status == "ok":
            record_of(rec, "ok", value, None, extra)
        else:
            record_of(rec, "failed", [], value, extra)
            if status == "write-error" and summary.aborted is None:
                summary.aborted = value

    def items() -> Iterator[Any]:
        for rec in _chain(first, records):
            if summary.aborted:
                return
            if rec.error is not None:
                record_of(rec, "failed", [], rec.error, {})
                continue
            previous = done.get(rec.line)
            if previous is not None and previous.get("text") == rec.text:
                summary.resumed += 1
                summary.total += 1
                if on_progress:
                    on_progress(summary)
                continue
            fed.append(rec)
            yield TextInput(rec.text or "", rec.pair, rec.target)

    try:
        # a window of texts is sorted by length (little padding) and held until its results
        # come back in input order: bounded, so a huge --batch-size cannot hold thousands of results
        window = min(max(options.batch_size * 4, 8), 256)
        for outcome in extractor.extract_many(items(), batch_size=options.batch_size, window=window):
            rec = fed.popleft()
            if isinstance(outcome, InputError):
                record_of(rec, "failed", [], outcome.message, {})
                continue
            extra = {"tokens": len(outcome.tokens), "truncated": outcome.truncated_tokens}
            if outcome.truncated_tokens:
                summary.truncated += 1
                if on_warning:
                    on_warning(
                        f"line {rec.line}: cut to {loaded.max_length} tokens ({outcome.truncated_tokens} dropped)"
                    )
            try:
                result = apply_transforms(outcome, words=options.words, no_special=options.no_special)
            except SelectionError as exc:  # e.g. --no-special on a text of only special tokens
                record_of(rec, "failed", [], exc.message, extra)
                continue
            payload = (result, base_name(rec), str(out_dir), options.views, options.formats, options.kind, options.cmap)
            if pool is None:
                status, value = _job(payload)
                if status == "ok":
                    record_of(rec, "ok", value, None, extra)
                else:
                    record_of(rec, "failed", [], value, extra)
                    if status == "write-error":
                        summary.aborted = value
            else:
                inflight[pool.submit(_job, payload)] = (rec, extra)
                while len(inflight) >= max_inflight:
                    finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
                    for future in finished:
                        finish(future)
            if summary.aborted:
                break
        while inflight:
            finished, _ = wait(list(inflight), return_when=FIRST_COMPLETED)
            for future in finished:
                finish(future)
    except KeyboardInterrupt:
        summary.interrupted = True
        for future in list(inflight):
            if future.cancel():
                inflight.pop(future)
        try:
            for future in list(inflight):
                future.result(timeout=60)
                finish(future)
        except Exception:  # noqa: BLE001 - stopping: unfinished texts are simply redone on resume
            pass
        raise
    finally:
        summary.seconds = round(time.monotonic() - started, 3)
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        manifest.close()
    if summary.aborted:
        raise OutputWriteError(
            summary.aborted, hint="free some space or choose another -o, then run again with --resume"
        )
    return summary


def _manifest_line(record: dict[str, Any]) -> str:
    """One JSON line, readable UTF-8 where possible; a text holding lone surrogates (not
    encodable as UTF-8) is written with ASCII escapes, which read back to the same text."""
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record)
    return line + "\n"


def _chain(first: InputRecord, rest: Iterator[InputRecord]) -> Iterator[InputRecord]:
    yield first
    yield from rest
