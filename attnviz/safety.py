"""One sanitiser for untrusted text on its way to a terminal.

Texts, tokens, model names, paths and saved files are data, never terminal commands:
control characters (ESC, BEL, CR...), lone surrogates, line/paragraph separators and the
bidirectional overrides and isolates that reorder what a reader sees are shown as escapes
(``\\x1b``, ``\\u202e``). Used for every line that repeats such text on stdout or stderr.
"""

from __future__ import annotations

import json
import re
import unicodedata
from typing import Any

#: Bidi embeddings, overrides, isolates and marks (Trojan-Source style reordering).
_BIDI = {0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)}


def _escape(char: str) -> str:
    code = ord(char)
    if code < 0x100:
        return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(char, f"\\x{code:02x}")
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def printable(text: object) -> str:
    """``text`` as a string that is safe to print: harmful characters escaped."""
    value = str(text)
    if value.isprintable() and value.isascii():
        return value
    out = []
    for char in value:
        category = unicodedata.category(char)
        if category in ("Cc", "Cs", "Zl", "Zp") or ord(char) in _BIDI:
            out.append(_escape(char))
        else:
            out.append(char)
    return "".join(out)


#: Characters JSON may carry raw but a terminal or editor acts on: C1 controls (U+009B is
#: CSI), DEL, line/paragraph separators, bidi controls, and lone surrogates (not UTF-8).
_JSON_UNSAFE = re.compile("[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def json_text(document: Any, *, ascii_only: bool = False) -> str:
    """``document`` as one line of JSON: readable UTF-8, but with the characters that
    reorder or control what a reader sees written as ``\\uXXXX`` escapes (``\\u202e``), so a
    document piped to a terminal or opened in an editor shows the data, not its effect.
    ``ascii_only``: every non-ASCII character escaped (for a non-UTF-8 output)."""
    text = json.dumps(document, ensure_ascii=ascii_only)
    return _JSON_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", text)
