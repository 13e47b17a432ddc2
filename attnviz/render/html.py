"""One self-contained interactive HTML page: all JavaScript, CSS and data inline.

The page makes no network request (a Content-Security-Policy forbids it), so it opens
from disk, offline, in any current browser, and can be shared as one file. The text is
data, never markup: it travels inside a JSON ``<script>`` block with ``<``, ``>`` and ``&``
escaped, and the page only ever sets it with ``textContent``.

Attention is stored quantised and zlib-compressed, base64 in the page: 16-bit
(absolute error <= 7.7e-6) while that stays under :data:`UINT16_BUDGET` bytes, otherwise
8-bit (absolute error <= 0.002); the browser inflates it with ``DecompressionStream``.
"""

from __future__ import annotations

import base64
import html
import json
import math
import uuid
import zlib
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from attnviz.render.colors import SCALES, hex_colors, scale_excluded_keys
from attnviz.render.neuron import layer_window
from attnviz.render.views import LABEL_LIMIT, shorten
from attnviz.result import AttentionResult, kind_axes

#: Raw size under which attention is stored with 16 bits per weight (else 8 bits).
UINT16_BUDGET = 8_000_000
#: Characters of a raw token kept in the page's data (the drawn label keeps LABEL_LIMIT): a
#: 10 MB token must not make a 10 MB page or a label the browser spends minutes on.
RAW_TOKEN_LIMIT = 200


#: The static page's policy: nothing but its own inline script and styles and data: images.
STATIC_POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
#: The served page's: the same, plus fetches to the server that sent it.
SERVED_POLICY = STATIC_POLICY + "; connect-src 'self'"
#: Milliseconds the served page waits after the last keystroke before asking the server.
DEBOUNCE_MS = 150


@lru_cache(maxsize=1)
def _template() -> tuple[str, str, str]:
    folder = resources.files("attnviz.render") / "templates"
    script = (folder / "page.js").read_text(encoding="utf-8")
    # the views live in their own file but in page.js's closure: one script, one scope
    views = (folder / "page_views.js").read_text(encoding="utf-8")
    return (
        (folder / "page.html").read_text(encoding="utf-8"),
        (folder / "page.css").read_text(encoding="utf-8"),
        script.replace("/*ATTNVIZ_VIEWS*/", views.strip(), 1),
    )


@lru_cache(maxsize=1)
def _serve_template() -> tuple[str, str]:
    folder = resources.files("attnviz.render") / "templates"
    return (folder / "serve.html").read_text(encoding="utf-8"), (folder / "serve.js").read_text(encoding="utf-8")


def _assemble(data: dict[str, Any], *, served: bool = False) -> str:
    page, css, script = _template()
    form = ""
    if served:
        form, serve_script = _serve_template()
        script = script + "\n" + serve_script
        policy = f'content="{STATIC_POLICY}"'
        if policy not in page:  # the template and this module must agree on the policy
            raise RuntimeError("the page template's Content-Security-Policy changed")
        page = page.replace(policy, f'content="{SERVED_POLICY}"')
    document = page.replace("<!--ATTNVIZ_SERVE-->", form)
    document = document.replace("/*ATTNVIZ_CSS*/", css).replace("/*ATTNVIZ_JS*/", script)
    return document.replace("ATTNVIZ_DATA", _json_for_script(data))


def render_serve_page(models: dict[str, Any]) -> str:
    """The page `attnviz serve` sends: today's page plus a text box, pair/target boxes and a
    model picker; its data comes from the server (``models`` is the pool's description:
    ``{"models": [...], "failed": [...]}``)."""
    data = {"schema": "attnviz-page/1", "kinds": {}, "serve": {**models, "debounce_ms": DEBOUNCE_MS}}
    return _assemble(data, served=True)


def _pack(array: np.ndarray, bits: int) -> str:
    scale = 65535 if bits == 16 else 255
    dtype = "<u2" if bits == 16 else "u1"  # little-endian, as the page's typed arrays read it
    quantised = np.clip(np.rint(np.asarray(array, dtype=np.float64) * scale), 0, scale).astype(dtype)
    return base64.b64encode(zlib.compress(quantised.tobytes(), 6)).decode("ascii")


def most_structured(array: np.ndarray, excluded_keys: np.ndarray, special_queries: np.ndarray) -> dict[str, Any] | None:
    """The map the page opens on: the head (or a layer's mean of heads) with the most
    structure a reader can see outside the special-token columns.

    ``array``: ``[layers, heads, query, key]``; ``excluded_keys``: bool ``[key]`` (special
    tokens, a decoder's first token); ``special_queries``: bool ``[query]``. Each row's
    weights over the kept keys are renormalised; its entropy, divided by the log of the keys
    it can see, is averaged over rows weighted by the row's kept mass. A map whose mass sits
    in the excluded columns would draw almost nothing, so the score adds one minus its mean
    kept mass. Lowest score wins. Returns ``{"layer": position, "head": position or "mean"}``,
    or ``None`` when fewer than two keys are kept (nothing to choose between).
    """
    kept_keys = ~np.asarray(excluded_keys, dtype=bool)
    rows = ~np.asarray(special_queries, dtype=bool)
    if kept_keys.sum() < 2 or not rows.any():
        return None
    best: tuple[float, int, int | None] | None = None
    for layer in range(array.shape[0]):  # one layer at a time: memory stays [heads, Q, K]
        block = np.asarray(array[layer][:, rows][:, :, kept_keys], dtype=np.float64)
        block = np.concatenate([block, block.mean(axis=0, keepdims=True)])  # the mean is a candidate
        mass = block.sum(axis=-1)  # [heads + 1, rows]
        seen = (block > 0).sum(axis=-1)
        p = block / np.where(mass > 0, mass, 1)[..., None]
        with np.errstate(divide="ignore", invalid="ignore"):
            entropy = -np.where(p > 0, p * np.log(p), 0.0).sum(axis=-1)
            normalised = np.where(seen >= 2, entropy / np.log(np.maximum(seen, 2)), 0.0)
        weight = np.where(seen >= 2, mass, 0.0)
        total = weight.sum(axis=-1)
        spread = np.where(total > 0, (normalised * weight).sum(axis=-1) / np.where(total > 0, total, 1), 1.0)
        score = spread + (1.0 - mass.mean(axis=-1))
        for head in range(score.shape[0]):
            value = float(score[head])
            if math.isfinite(value) and (best is None or value < best[0] - 1e-9):
                best = (value, layer, head if head < array.shape[1] else None)
    if best is None:
        return None
    return {"layer": best[1], "head": "mean" if best[2] is None else best[2]}


def _text_field(value: Any) -> str | None:
    """A text, pair or target as the page shows it: a string or nothing (a saved file's
    ``"pair": NaN`` must not make the page's JSON invalid)."""
    return value if isinstance(value, str) else None


def _json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as ``None``: JSON has no NaN, and ``JSON.parse``
    refuses the ``NaN`` that Python's json module writes."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def page_data(result: AttentionResult, *, scale: str = "keys") -> dict[str, Any]:
    """The JSON document the page script reads. ``scale``: ``keys`` (the colour scale
    leaves out the special-token columns, see :func:`attnviz.render.colors.color_scale`) or
    ``full``."""
    from attnviz.analysis.rollout import attention_rollout

    if scale not in SCALES:
        from attnviz.errors import SelectionError

        raise SelectionError(f"unknown colour scale '{scale}'", hint=f"choose one of: {', '.join(SCALES)}")

    total = sum(int(a.size) for a in result.attentions.values())
    bits = 16 if total * 2 <= UINT16_BUDGET else 8
    sequences: dict[str, Any] = {"source": result.tokens}
    if result.target_tokens is not None:
        sequences["target"] = result.target_tokens
    tokens = {
        name: {
            "display": [shorten(str(t), LABEL_LIMIT) for t in seq.display],
            "raw": [shorten(str(t), RAW_TOKEN_LIMIT) for t in seq.tokens],
            "segments": [int(s) for s in seq.segment_ids],
            "special": [bool(s) for s in seq.special_mask],
        }
        for name, seq in sequences.items()
    }
    kinds: dict[str, Any] = {}
    for kind in result.kinds:
        array = result.attentions[kind]
        query_side, key_side = kind_axes(kind, "source", "target" if result.target_tokens is not None else None)
        query_seq, key_seq = sequences[query_side], sequences[key_side]
        excluded = scale_excluded_keys(key_seq.special_mask, sink=kind == "decoder")
        entry: dict[str, Any] = {
            "shape": [int(d) for d in array.shape],
            "layers": [int(i) for i in result.layer_ids[kind]],
            "heads": [int(i) for i in result.head_ids[kind]],
            "query": query_side,
            "key": key_side,
            "data": _pack(array, bits),
            "scale_excluded": [bool(x) for x in excluded],
            "opening": most_structured(array, excluded, query_seq.special_mask),
            # the neuron view marks "masked" exactly the keys the model's mask hides: a
            # decoder's later keys, and (vectors' "window") keys a sliding window leaves out;
            # results hold no padding, and a tiny quantised weight of 0 is not "masked"
            "causal": kind == "decoder",
        }
        if kind != "cross":
            entry["rollout"] = _pack(attention_rollout(array), bits)
        parts = result.vectors.get(kind)
        if parts and "query" in parts and "key" in parts:
            meta = result.extra_meta.get("vectors", {}).get(kind, {})
            entry["vectors"] = {
                "dim": int(parts["query"].shape[-1]),
                "query": _pack_float(parts["query"]),
                "key": _pack_float(parts["key"]),
                "scaling": [float(s) if s is not None else None for s in meta.get("scaling", [])],
                "window": [layer_window(result, kind, n) for n in range(array.shape[0])],
            }
        kinds[kind] = entry
    return {
        "schema": "attnviz-page/1",
        "model": str(result.model),
        "family": str(result.family),
        "text": _text_field(result.text),
        "pair": _text_field(result.pair),
        "target": _text_field(result.target),
        "transforms": [str(t) for t in result.transforms],
        "bits": bits,
        "scale": scale,
        "tokens": tokens,
        "kinds": kinds,
        "colors": hex_colors("viridis"),
    }


def _pack_float(array: np.ndarray) -> str:
    """float32, little-endian, zlib, base64 (query and key vectors are not in [0, 1])."""
    raw = np.ascontiguousarray(np.asarray(array, dtype="<f4")).tobytes()
    return base64.b64encode(zlib.compress(raw, 6)).decode("ascii")


def _json_for_script(document: dict[str, Any]) -> str:
    """JSON safe inside <script>: no '<', '>' or '&' can close the element or open a comment."""
    text = json.dumps(_json_safe(document), ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


#: What an untrusted notebook shows instead of the page (Jupyter strips iframes and scripts
#: from untrusted output; this text survives, and the page's own script hides it).
UNTRUSTED_NOTE = (
    "attnviz: the interactive attention view needs a trusted notebook. "
    "Trust it (File > Trust Notebook) or re-run this cell to see the view."
)


def render_html(result: AttentionResult, *, inline: bool = False, scale: str = "keys") -> str:
    """The page as a string. ``inline=True`` wraps it in an ``<iframe srcdoc>`` for Jupyter,
    so its script and styles stay isolated from the notebook; the frame takes the height the
    page reports, and an untrusted notebook shows :data:`UNTRUSTED_NOTE` instead of a blank.
    ``scale``: the colour scale the page opens with (``keys`` or ``full``; the page has a
    picker for both)."""
    data = page_data(result, scale=scale)
    frame = f"attnviz-{uuid.uuid4().hex[:12]}" if inline else None
    if frame:
        data["frame"] = frame
    document = _assemble(data)
    if not inline:
        return document
    # The frame takes exactly the height reported: the page's scrollHeight is never less than the
    # frame's own height, so any margin added here would grow the frame a little on every report.
    return (
        f'<div id="{frame}-note" style="color:#666;font:13px system-ui,sans-serif">{html.escape(UNTRUSTED_NOTE)}</div>'
        f'<iframe id="{frame}" style="width:100%;height:420px;border:1px solid #ddd" '
        f'sandbox="allow-scripts" srcdoc="{html.escape(document, quote=True)}"></iframe>'
        "<script>(function(){"
        f'var id="{frame}",f=document.getElementById(id),n=document.getElementById(id+"-note");'
        "if(n)n.style.display='none';"
        "window.addEventListener('message',function(e){"
        "if(!f||e.source!==f.contentWindow||!e.data||e.data.attnviz!==id)return;"
        "var h=Number(e.data.height);if(h>0&&h<20000)f.style.height=h+'px';});"
        "})();</script>"
    )
