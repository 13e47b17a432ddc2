"""File names of exported texts: the line number and a short, safe ASCII slug."""

from __future__ import annotations

import re
import unicodedata

from attnviz.inputs import InputRecord

_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
SLUG_LENGTH = 40


def slugify(text: str, limit: int = SLUG_LENGTH) -> str:
    """A short, safe file-name part: ASCII letters, digits and dashes only (no separators,
    no dots, no reserved device names), at most ``limit`` characters cut at a word boundary
    (mid-word only for a first word longer than ``limit``), never empty."""
    folded = unicodedata.normalize("NFKD", text[: limit * 8]).encode("ascii", "ignore").decode("ascii").lower()
    whole = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")
    slug = whole[:limit].strip("-")
    if len(whole) > limit and whole[limit] != "-" and "-" in slug:
        slug = slug[: slug.rfind("-")]  # cut at a word boundary, not mid-word
    if not slug:
        slug = "text"
    if slug in _RESERVED:
        slug += "-text"
    return slug


def base_name(record: InputRecord) -> str:
    """``000042-the-quick-brown-fox``: the line number keeps repeated lines unique."""
    return f"{record.line:06d}-{slugify(record.id if record.id else (record.text or ''))}"
