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
import uuid
import zlib
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from attnviz.render.colors import hex_colors
from attnviz.result import AttentionResult, kind_axes

#: Raw size under which attention is stored with 16 bits per weight (else 8 bits).
UINT16_BUDGET = 8_000_000


#: The static page's policy: nothing but its own inline script and styles and data: images.
STATIC_POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"
#: The served page's: the same, plus fetches to the server that sent it.
SERVED_POLICY = STATIC_POLICY + "; connect-src 'self'"
#: Milliseconds the served page waits after the last keystroke before asking the server.
DEBOUNCE_MS = 150


@lru_cache(maxsize=1)
def _template() -> tuple[str, str, str]:
    folder = resources.files("attnviz.render") / "templates"
    return (
        (folder / "page.html").read_text(encoding="utf-8"),
        (folder / "page.css").read_text(encoding="utf-8"),
        (folder / "page.js").read_text(encoding="utf-8"),
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


def page_data(result: AttentionResult) -> dict[str, Any]:
    """The JSON document the page script reads."""
    from attnviz.analysis.rollout import attention_rollout

    total = sum(int(a.size) for a in result.attentions.values())
    bits = 16 if total * 2 <= UINT16_BUDGET else 8
    sequences: dict[str, Any] = {"source": result.tokens}
    if result.target_tokens is not None:
        sequences["target"] = result.target_tokens
    tokens = {
        name: {
            "display": list(seq.display),
            "raw": list(seq.tokens),
            "segments": [int(s) for s in seq.segment_ids],
            "special": [bool(s) for s in seq.special_mask],
        }
        for name, seq in sequences.items()
    }
    kinds: dict[str, Any] = {}
    for kind in result.kinds:
        array = result.attentions[kind]
        query_side, key_side = kind_axes(kind, "source", "target" if result.target_tokens is not None else None)
        entry: dict[str, Any] = {
            "shape": [int(d) for d in array.shape],
            "layers": [int(i) for i in result.layer_ids[kind]],
            "heads": [int(i) for i in result.head_ids[kind]],
            "query": query_side,
            "key": key_side,
            "data": _pack(array, bits),
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
            }
        kinds[kind] = entry
    return {
        "schema": "attnviz-page/1",
        "model": result.model,
        "family": result.family,
        "text": result.text,
        "pair": result.pair,
        "target": result.target,
        "transforms": list(result.transforms),
        "bits": bits,
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
    text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
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


def render_html(result: AttentionResult, *, inline: bool = False) -> str:
    """The page as a string. ``inline=True`` wraps it in an ``<iframe srcdoc>`` for Jupyter,
    so its script and styles stay isolated from the notebook; the frame takes the height the
    page reports, and an untrusted notebook shows :data:`UNTRUSTED_NOTE` instead of a blank."""
    data = page_data(result)
    frame = f"attnviz-{uuid.uuid4().hex[:12]}" if inline else None
    if frame:
        data["frame"] = frame
    document = _assemble(data)
    if not inline:
        return document
    return (
        f'<div id="{frame}-note" style="color:#666;font:13px system-ui,sans-serif">{html.escape(UNTRUSTED_NOTE)}</div>'
        f'<iframe id="{frame}" style="width:100%;height:420px;border:1px solid #ddd" '
        f'sandbox="allow-scripts" srcdoc="{html.escape(document, quote=True)}"></iframe>'
        "<script>(function(){"
        f'var id="{frame}",f=document.getElementById(id),n=document.getElementById(id+"-note");'
        "if(n)n.style.display='none';"
        "window.addEventListener('message',function(e){"
        "if(!f||e.source!==f.contentWindow||!e.data||e.data.attnviz!==id)return;"
        "var h=Number(e.data.height);if(h>0&&h<20000)f.style.height=(h+4)+'px';});"
        "})();</script>"
    )
