"""Drawing attributions: terminal (rich), image (matplotlib ``Figure``), an HTML section,
and the faithfulness deletion curves. NumPy only: no torch here.

Colours: signed methods (ablation and the gradients) are diverging, blue for negative and
red for positive, each row symmetric around 0 at its own largest magnitude (ablation's drop
in cosine and a gradient's unnormalised projection are in different units: one shared
scale would draw the smaller one white); unsigned methods (the attention views, grad-rollout) each run from 0 to their own
maximum on a sequential map. Special tokens are not coloured (they carry no score).
"""

from __future__ import annotations

import html
import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from rich.console import Console

    from attnviz.attribution.core import Attribution
    from attnviz.attribution.faithfulness import FaithfulnessReport

DIVERGING = "RdBu_r"
SEQUENTIAL = "Oranges"


def row_scale(attribution: Attribution, method: str) -> float:
    """The magnitude of ``method``'s diverging scale: max ``|score|`` of its row (1 if none)."""
    values = np.abs(attribution.row(method).astype(np.float64))
    finite = values[np.isfinite(values)]
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def _signed_scales(attribution: Attribution) -> str:
    """``"ablation ±0.12, grad-x-input ±3.4"``: each signed row's scale."""
    return ", ".join(f"{m} ±{row_scale(attribution, m):.3g}" for m in attribution.methods if attribution.signed(m))


def levels(attribution: Attribution) -> np.ndarray:
    """Colour positions ``[methods, tokens]`` in [0, 1] (NaN for special tokens): signed
    rows map [-scale, scale] to [0, 1] (scale: the row's max ``|score|``); unsigned rows
    map [0, max] to [0, 1]."""
    out = np.full(attribution.scores.shape, np.nan)
    for i, method in enumerate(attribution.methods):
        row = attribution.scores[i].astype(np.float64)
        if attribution.signed(method):
            out[i] = np.clip(row / row_scale(attribution, method), -1, 1) / 2 + 0.5
        else:
            peak = np.nanmax(row) if np.isfinite(row).any() else 0.0
            out[i] = np.clip(row / peak, 0, 1) if peak > 0 else np.where(np.isfinite(row), 0.0, np.nan)
    return out


def _rgb(level: float, signed: bool) -> tuple[int, int, int]:
    from attnviz.render.colors import colormap_lut

    lut = colormap_lut(DIVERGING if signed else SEQUENTIAL, 64)
    r, g, b = (int(c) for c in lut[int(round(float(level) * 63))])
    return r, g, b


def _ink(rgb: tuple[int, int, int]) -> str:
    """Black or white text, whichever reads on ``rgb``."""
    luminance = 0.2126 * rgb[0] + 0.7152 * rgb[1] + 0.0722 * rgb[2]
    return "#000000" if luminance > 140 else "#ffffff"


def describe_output(output: dict[str, Any]) -> str:
    """One line: what the scores explain."""
    kind = output.get("kind")
    score = output.get("score")
    value = f"{score:.4g}" if isinstance(score, float) and math.isfinite(score) else "?"
    if kind == "embedding":
        return "the sentence embedding (mean pooling, L2-normalised); score = cosine to the unperturbed embedding"
    if kind == "class":
        return f"the logit of class {output.get('class_index')} ({output.get('class_label')}) = {value}"
    where = {"next-token": "the next token", "mask": "the mask position", "target-token": "the target position"}
    return f"the logit of '{output.get('token')}' at {where.get(str(kind), kind)} = {value}"


def print_attribution(attribution: Attribution, console: Console) -> None:
    """The text once per method, each token's background shaded by its score."""
    from rich.table import Table
    from rich.text import Text

    from attnviz.render.terminal import color_mode
    from attnviz.safety import printable

    colour = color_mode(console) != "none"
    console.print(Text(f"{printable(attribution.model)}: {printable(describe_output(attribution.output))}"))
    table = Table(box=None, show_header=False, padding=(0, 1), pad_edge=False)
    table.add_column("method", no_wrap=True, style="bold")
    table.add_column("tokens", overflow="fold")
    shades = levels(attribution)
    for i, method in enumerate(attribution.methods):
        line = Text()
        signed = attribution.signed(method)
        for j, token in enumerate(attribution.tokens):
            label = printable(token)
            if j:
                line.append(" ")
            level = shades[i, j]
            if not np.isfinite(level):
                line.append(label, style="dim")
            elif colour:
                rgb = _rgb(level, signed)
                line.append(label, style=f"{_ink(rgb)} on #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}")
            else:
                line.append(f"{label}[{attribution.scores[i, j]:+.2g}]" if signed else f"{label}[{level:.2f}]")
        table.add_row(method, line)
    console.print(table)
    if any(attribution.signed(m) for m in attribution.methods):
        bar = Text("signed rows, each row on its own scale: -max ")
        for step in np.linspace(0, 1, 11):
            if colour:
                rgb = _rgb(step, True)
                bar.append("  ", style=f"on #{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x}")
            else:
                bar.append("-" if step < 0.5 else ("0" if step == 0.5 else "+"))
        bar.append(f" +max ({printable(_signed_scales(attribution))})")
        console.print(bar)
    if any(not attribution.signed(m) for m in attribution.methods):
        console.print(Text("unsigned rows: 0 to each row's own maximum" + ("" if colour else " (values in [0, 1])")))
    for note in attribution.notes:
        console.print(Text(f"note: {printable(note)}", style="dim"))


def attribution_figure(attribution: Attribution, *, dpi: int = 100) -> Figure:
    """A ``[methods, tokens]`` grid: each cell coloured as in the terminal, the token on
    the x axis, the value written in the cell when there is room."""
    from matplotlib.figure import Figure

    methods, tokens = attribution.scores.shape
    shades = levels(attribution)
    image = np.ones((methods, tokens, 3))
    for i, method in enumerate(attribution.methods):
        for j in range(tokens):
            if np.isfinite(shades[i, j]):
                image[i, j] = np.asarray(_rgb(shades[i, j], attribution.signed(method))) / 255
            else:
                image[i, j] = 0.92
    width = min(40.0, 2.5 + 0.55 * tokens)
    fig = Figure(figsize=(width, 1.2 + 0.42 * methods + 0.08 * max(len(t) for t in attribution.tokens)), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(image, aspect="auto", interpolation="nearest")
    ax.set_yticks(range(methods), labels=list(attribution.methods), fontsize=9)
    ax.set_xticks(range(tokens), labels=list(attribution.tokens), rotation=60, ha="right", fontsize=9)
    ax.tick_params(length=0)
    if tokens <= 40:
        for i in range(methods):
            for j in range(tokens):
                value = attribution.scores[i, j]
                if np.isfinite(value):
                    ink = _ink(tuple(int(c * 255) for c in image[i, j]))  # type: ignore[arg-type]
                    ax.text(j, i, f"{value:.2g}", ha="center", va="center", fontsize=6, color=ink)
    scales = _signed_scales(attribution)
    signed = f"signed rows: blue - .. red +, each row on its own scale ({scales}); " if scales else ""
    ax.set_title(
        f"{attribution.model}: {describe_output(attribution.output)}\n{signed}unsigned rows: 0 .. own max",
        fontsize=9,
    )
    fig.subplots_adjust(left=0.18 if width < 10 else 0.08, right=0.98, bottom=0.3, top=0.82)
    return fig


def attribution_html(attribution: Attribution) -> str:
    """A self-contained page holding one ``<section class="attnviz-attribution">`` (inline
    styles, no script): one row per method, each token a shaded span with its value as
    the tooltip."""
    esc = html.escape
    shades = levels(attribution)
    rows = []
    for i, method in enumerate(attribution.methods):
        spans = []
        for j, token in enumerate(attribution.tokens):
            level, value = shades[i, j], attribution.scores[i, j]
            if not np.isfinite(level):
                spans.append(f'<span class="tok special" title="special token: no score">{esc(token)}</span>')
                continue
            rgb = _rgb(level, attribution.signed(method))
            style = f"background:#{rgb[0]:02x}{rgb[1]:02x}{rgb[2]:02x};color:{_ink(rgb)}"
            spans.append(f'<span class="tok" style="{style}" title="{value:.4g}">{esc(token)}</span>')
        kind = "signed" if attribution.signed(method) else "unsigned"
        rows.append(f'<tr><th scope="row">{esc(method)}</th><td class="{kind}">{" ".join(spans)}</td></tr>')
    notes = "".join(f"<li>{esc(n)}</li>" for n in attribution.notes)
    section = (
        '<section class="attnviz-attribution">'
        f"<h2>Token attributions: {esc(attribution.model)}</h2>"
        f"<p>Output: {esc(describe_output(attribution.output))}. Signed rows: blue negative, red "
        f"positive, each row on its own scale ({esc(_signed_scales(attribution))}); unsigned rows run from 0 "
        "to their own maximum. Hover a token for its score.</p>"
        f"<table>{''.join(rows)}</table>" + (f"<ul>{notes}</ul>" if notes else "") + "</section>"
    )
    css = (
        "body{font-family:system-ui,sans-serif;margin:1.5em}"
        ".attnviz-attribution th{text-align:right;padding-right:1em;font-weight:600;white-space:nowrap}"
        ".attnviz-attribution td{line-height:2}"
        ".attnviz-attribution .tok{padding:2px 3px;border-radius:3px}"
        ".attnviz-attribution .special{color:#888}"
    )
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>attnviz attribution: {esc(attribution.text[:60])}</title><style>{css}</style></head>"
        f"<body>{section}</body></html>"
    )


def curves_figure(report: FaithfulnessReport, *, dpi: int = 100) -> Figure:
    """Deletion curves: the mean score drop as the top fraction of tokens (by each
    method) is removed. Higher and earlier is more faithful."""
    from matplotlib.figure import Figure

    from attnviz.attribution.metrics import CURVE

    fig = Figure(figsize=(7, 4.5), dpi=dpi)
    ax = fig.add_subplot(1, 1, 1)
    x = [0.0, *CURVE]
    for method, curve in report.curves().items():
        style = "-" if method == "ablation" else "--" if method in ("grad-x-input", "integrated-gradients") else "-."
        ax.plot(x, curve, style, marker="o", markersize=3, label=method, linewidth=2 if method == "ablation" else 1.2)
    ax.set_xlabel("fraction of tokens removed (top-ranked first)")
    ax.set_ylabel("score drop, mean over texts")
    ax.set_title(f"{report.model}: deletion curves over {len(report.texts)} texts ({report.output})", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig
