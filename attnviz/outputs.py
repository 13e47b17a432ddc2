"""Write a result to a file whose extension picks the format: image, page or data."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from attnviz.errors import OutputFormatError
from attnviz.render import DATA_SUFFIXES, IMAGE_SUFFIXES, OUTPUT_SUFFIXES, PAGE_SUFFIXES
from attnviz.result import AttentionResult


def output_kind(path: str | os.PathLike[str]) -> str:
    """``image``, ``page`` or ``data`` for a path, or :class:`OutputFormatError`."""
    suffix = Path(path).suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        return "image"
    if suffix in PAGE_SUFFIXES:
        return "page"
    if suffix in DATA_SUFFIXES:
        return "data"
    raise OutputFormatError(
        f"unknown output type '{suffix}' for {path}" if suffix else f"{path} has no extension",
        hint=f"use one of: {' '.join(OUTPUT_SUFFIXES)}",
    )


def with_derived(result: AttentionResult, view: str, kind: str | None) -> AttentionResult:
    """Add ``rollout`` (and ``flow`` for the flow view) arrays for data exports of those views."""
    if view not in ("rollout", "flow"):
        return result
    from attnviz.analysis.rollout import attention_flow, attention_rollout

    kind = kind or result.default_kind
    array = result.array(kind)
    derived = dict(result.derived)
    if "rollout" not in derived:
        derived["rollout"] = attention_rollout(array)
    if view == "flow" and "flow" not in derived:
        derived["flow"] = attention_flow(array)
    meta = dict(result.extra_meta, derived_kind=kind)
    return result.with_changes(derived=derived, extra_meta=meta)


def raw_derived_without_special(raw: AttentionResult, shown: AttentionResult, view: str, kind: str) -> AttentionResult:
    """``shown`` (special tokens dropped) with rollout/flow computed on ``raw``'s attention,
    special tokens included, as Abnar & Zuidema define them; the special tokens are then
    hidden from the maps only (rows are not renormalised: what remains is each kept
    token's share of the real flow)."""
    if view not in ("rollout", "flow"):
        return shown
    base = with_derived(raw, view, kind)
    queries, keys = base.axes(kind)
    keep_q, keep_k = ~queries.special_mask, ~keys.special_mask
    derived = {
        name: np.ascontiguousarray(np.asarray(value)[..., keep_q, :][..., keep_k])
        for name, value in base.derived.items()
    }
    meta = dict(shown.extra_meta, derived_kind=kind, derived_from="raw attention; special tokens hidden afterwards")
    return shown.with_changes(derived=derived, extra_meta=meta)


_FAST_RENDERERS: dict[str, Any] = {}


def write_view(
    data: Any,
    path: str | os.PathLike[str],
    *,
    cmap: str = "viridis",
    fast: bool = False,
    dpi: int = 100,
    scale: str | None = None,
) -> Path:
    """Draw laid-out panels (:class:`~attnviz.render.views.ViewData`) to an image file,
    atomically: PNGs through the Pillow renderer when ``fast`` (export: one labelled frame
    per layout, reused), otherwise, and for SVG and PDF, through matplotlib."""
    target = Path(path)
    if scale is not None:  # "keys" or "full" (see attnviz.render.colors.color_scale)
        from dataclasses import replace

        data = replace(data, scale=scale)
    if fast and target.suffix.lower() == ".png":
        from attnviz.io import atomic_write
        from attnviz.render.fast import FastRenderer

        renderer = _FAST_RENDERERS.get(cmap)
        if renderer is None:
            renderer = _FAST_RENDERERS[cmap] = FastRenderer(cmap)
        png = renderer.render(data)
        return atomic_write(target, lambda handle: handle.write(png))
    from attnviz.render.image import figure_for_view, save_figure

    return save_figure(figure_for_view(data, cmap=cmap, dpi=dpi), target)


def write_output(
    result: AttentionResult,
    path: str | os.PathLike[str],
    *,
    view: str = "auto",
    kind: str | None = None,
    cmap: str = "viridis",
    dpi: int = 100,
    fast: bool = False,
    scale: str | None = None,
) -> Path:
    """Write ``result`` to ``path`` atomically, in the format its extension names: an image
    of ``view`` (see :func:`write_view`; ``scale`` ``keys`` or ``full``), the page, or data
    (with rollout/flow for those views). The one place that turns a result into a file."""
    target = Path(path)
    what = output_kind(target)
    if what == "image":
        from attnviz.render.views import build_view

        return write_view(build_view(result, view, kind), target, cmap=cmap, fast=fast, dpi=dpi, scale=scale)
    if what == "page":
        from attnviz.io import atomic_write
        from attnviz.render.html import render_html

        page = render_html(result, scale=scale or "keys")
        return atomic_write(target, lambda handle: handle.write(page), binary=False)
    with_derived(result, view, kind).save(target)
    return target
