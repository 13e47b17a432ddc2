"""One sanitiser for untrusted text on its way to a terminal.

Texts, tokens, model names, paths and saved files are data, never terminal commands:
control characters (ESC, BEL, CR...), lone surrogates, line/paragraph separators and the
bidirectional overrides and isolates that reorder what a reader sees are shown as escapes
(``\\x1b``, ``\\u202e``). Used for every line that repeats such text on stdout or stderr.
"""

from __future__ import annotations

import unicodedata

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
