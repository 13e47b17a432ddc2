"""Rendering jobs: one text's views and formats, run in worker processes that die with
the export."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attnviz.errors import AttnvizError, OutputWriteError
from attnviz.result import AttentionResult


def worker_init(parent: int | None = None) -> None:
    # Ctrl-C goes to the whole process group: the main process decides how to stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # SIGTERM (also what the kernel sends when the export dies) unwinds normally, so a file
    # being written is removed rather than left as a temporary part
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(1))
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
    scale: str = "keys",
) -> list[str]:
    """Write every requested view and format of one text; return the file names written.

    Raises :class:`AttnvizError` (e.g. :class:`OutputWriteError`) on failure; files already
    written for this text are removed so that a text is either complete or absent.
    """
    from attnviz.outputs import write_output, write_view
    from attnviz.render.views import build_view

    kind = kind or result.default_kind
    written: list[str] = []
    directory = Path(out_dir)
    try:
        for fmt in formats:
            if fmt in ("npz", "json", "html"):
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
                        write_view(build_view(part, layout, kind), directory / name, cmap=cmap, fast=True, scale=scale)
                        written.append(name)
    except BaseException:
        for name in written:
            try:
                (directory / name).unlink()
            except OSError:
                pass
        raise
    return written


def job(payload: tuple[Any, ...]) -> tuple[str, Any]:
    """Worker entry: ("ok", files) or ("error" | "write-error", message)."""
    try:
        return "ok", render_text(*payload)
    except OutputWriteError as exc:
        return "write-error", exc.message
    except AttnvizError as exc:
        return "error", exc.message
