"""Fonts for the images: DejaVu Sans (matplotlib's) wherever it has the glyphs, and an
installed font that has them elsewhere (Chinese, Japanese, Korean, Devanagari, ...).

Both image paths use it: the Pillow export (:mod:`attnviz.render.fast`) draws each run of a
label with the font that has it (:func:`font_file_for`), and matplotlib
(:mod:`attnviz.render.image`) gets the fallback families after DejaVu Sans
(:func:`matplotlib_families`). The system's font files are found once per process
(``matplotlib.font_manager.findSystemFonts``, not matplotlib's cached font list, which can
predate a font's installation) and read only when a label has a character DejaVu Sans
lacks. A character no installed font has is drawn as a box and said once per process.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from functools import cache, lru_cache

import numpy as np

_LOG = logging.getLogger("attnviz")

#: Font files never used as a fallback: Last Resort draws every character as a box of its
#: Unicode block, and colour emoji fonts come only in fixed bitmap sizes.
NOT_FALLBACKS = ("lastresort", "last resort", "emoji", "color")

_told = False


@cache
def base_font_file() -> str | None:
    """matplotlib's DejaVu Sans, the labels' font wherever it has the glyphs."""
    try:
        import matplotlib
    except ImportError:  # pragma: no cover - matplotlib is a dependency
        return None
    path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
    return path if os.path.exists(path) else None


@cache
def fallback_font_files() -> tuple[str, ...]:
    """The system's TrueType/OpenType files, regular sans-serif faces first."""
    try:
        from matplotlib import font_manager

        paths = font_manager.findSystemFonts()
    except Exception:  # noqa: BLE001 - no font directory, no fontconfig: no fallback
        return ()

    def rank(path: str) -> tuple[bool, bool, str]:
        name = os.path.basename(path).lower()
        styled = any(word in name for word in ("bold", "italic", "oblique", "light", "thin", "black", "mono"))
        return styled, "sans" not in name, name

    usable = [
        path
        for path in paths
        if path.lower().endswith((".ttf", ".otf"))
        and not any(w in os.path.basename(path).lower() for w in NOT_FALLBACKS)
    ]
    return tuple(sorted(usable, key=rank))


@cache
def _charmap(path: str) -> np.ndarray:
    """The sorted code points ``path`` has glyphs for (empty when it cannot be read)."""
    try:
        from matplotlib.ft2font import FT2Font

        return np.array(sorted(FT2Font(path).get_charmap()), dtype=np.int64)
    except Exception:  # noqa: BLE001 - a broken font file is no fallback
        return np.zeros(0, dtype=np.int64)


def has(path: str, character: str) -> bool:
    """Whether the font file ``path`` has a glyph for ``character``."""
    charmap = _charmap(path)
    if not len(charmap):
        return False
    code = ord(character)
    where = int(np.searchsorted(charmap, code))
    return where < len(charmap) and int(charmap[where]) == code


@lru_cache(maxsize=8192)
def font_file_for(character: str) -> str | None:
    """The font file to draw ``character`` with: DejaVu Sans when it has it (or when it is
    a space or unprintable), else the first installed font that does; None when none does."""
    base = base_font_file()
    if base is None or character.isspace() or not character.isprintable():
        return base
    return next((path for path in (base, *fallback_font_files()) if has(path, character)), None)


def missing_glyphs(texts: Iterable[str]) -> set[str]:
    """The printable characters of ``texts`` that DejaVu Sans lacks."""
    base = base_font_file()
    if base is None:
        return set()
    return {c for text in texts for c in text if c.isprintable() and not c.isspace() and not has(base, c)}


def undrawable(texts: Iterable[str]) -> set[str]:
    """The printable characters of ``texts`` that no installed font has (drawn as boxes)."""
    return {c for c in missing_glyphs(texts) if font_file_for(c) is None}


def undrawable_warning(texts: Iterable[str]) -> str | None:
    """One line when some characters of ``texts`` will be drawn as boxes, else None."""
    missing = undrawable(texts)
    if not missing:
        return None
    count = f"{len(missing)} character{'s' if len(missing) != 1 else ''}"
    return f"{count} of the text have no glyph in the installed fonts (drawn as boxes)"


def tell_undrawable(characters: Iterable[str]) -> None:
    """Say once per process, in one line, that some characters are drawn as boxes."""
    global _told
    boxes = {c for c in characters if font_file_for(c) is None}
    if boxes and not _told:
        _told = True
        _LOG.warning(
            "warning: %d characters have no glyph in the installed fonts and are drawn as boxes "
            "(install a font that has them, e.g. Noto Sans CJK)",
            len(boxes),
        )


@cache
def _registered_family(path: str) -> str | None:
    """``path`` added to matplotlib's font list (it may predate the font); its family name."""
    try:
        from matplotlib import font_manager

        font_manager.fontManager.addfont(path)
        return str(font_manager.FontProperties(fname=path).get_name())
    except Exception:  # noqa: BLE001 - an unreadable font is no fallback
        return None


def matplotlib_families(characters: Iterable[str]) -> list[str]:
    """The families, after DejaVu Sans, that draw ``characters`` (first found first)."""
    base = base_font_file()
    families: list[str] = []
    for path in sorted({font_file_for(c) for c in characters} - {None, base}, key=str):
        family = _registered_family(str(path))
        if family is not None and family not in families:
            families.append(family)
    return families
