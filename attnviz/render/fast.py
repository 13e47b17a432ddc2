"""Fast PNG heatmaps drawn directly with Pillow (the export path).

matplotlib needs ~100 ms per labelled figure; this renderer draws the same information —
token labels, panel titles, a title, a colour bar with its scale — in a few milliseconds:
the labelled frame of a layout is drawn once and reused for every head of a text, and
each heatmap is a colour lookup plus a nearest-neighbour upscale.
"""

from __future__ import annotations

import io
from functools import lru_cache
from typing import Any

import numpy as np

from attnviz.render import fonts
from attnviz.render.colors import LEVELS, colormap_lut
from attnviz.render.views import ViewData, shorten

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (90, 90, 90)
GAP = 8
BAR_WIDTH = 14
MARK_H = 5  # room above each panel for the marks over saturated columns


@lru_cache(maxsize=8)
def _palette_image(name: str) -> Any:
    """A palette of the colormap levels plus greys: the finished RGB image is mapped onto it
    (exact for heatmap cells, near-exact for anti-aliased grey text), because an 8-bit
    PNG encodes several times faster than RGB."""
    from PIL import Image

    greys = np.linspace(0, 255, 256 - LEVELS).round().astype(np.uint8)
    palette = np.concatenate([colormap_lut(name), np.repeat(greys[:, None], 3, axis=1)])
    image = Image.new("P", (1, 1))
    image.putpalette(palette.ravel().tolist())
    return image


@lru_cache(maxsize=64)
def _font(size: int, path: str | None = None) -> Any:
    """The font file ``path`` (default DejaVu Sans) at ``size`` pixels."""
    from PIL import ImageFont

    path = path or fonts.base_font_file()
    try:
        if path is not None:
            return ImageFont.truetype(path, size)
    except OSError:  # pragma: no cover - an unreadable fallback font
        pass
    return ImageFont.load_default(size)


def _runs(font: Any, text: str) -> list[tuple[str, Any]]:
    """``text`` cut into runs that one font draws: ``font`` (DejaVu Sans at some size) where
    it has the glyphs, the same size of a fallback font elsewhere."""
    path = getattr(font, "path", None)
    if path is None or text.isascii():
        return [(text, font)]
    runs: list[tuple[str, Any]] = []
    current, chars = path, ""
    for character in text:
        # a character no font has is drawn as a box (the export says so per line, beforehand)
        wanted = path if character.isspace() else (fonts.font_file_for(character) or path)
        if wanted != current and chars:
            runs.append((chars, font if current == path else _font(int(font.size), current)))
            chars = ""
        current = wanted
        chars += character
    if chars:
        runs.append((chars, font if current == path else _font(int(font.size), current)))
    return runs


def _draw_text(draw: Any, xy: tuple[float, float], text: str, font: Any, fill: Any, anchor: str = "la") -> Any:
    """``draw.text`` with fallback fonts for the characters ``font`` lacks: the runs share
    one baseline, placed as ``anchor`` (Pillow's two letters) places the whole. Returns the
    drawn box (left, top, right, bottom)."""
    runs = _runs(font, text)
    if len(runs) == 1 and runs[0][1] is font:
        draw.text(xy, text, fill=fill, font=font, anchor=anchor)
        return draw.textbbox(xy, text, font=font, anchor=anchor)
    width = sum(run_font.getlength(run) for run, run_font in runs)
    ascent, descent = font.getmetrics()
    x = xy[0] - {"l": 0.0, "m": width / 2, "r": width}[anchor[0]]
    shift = {"a": ascent, "t": ascent, "m": (ascent - descent) / 2, "s": 0.0, "b": -descent, "d": -descent}
    baseline = xy[1] + shift[anchor[1]]
    box = [float("inf"), float("inf"), float("-inf"), float("-inf")]
    for run, run_font in runs:
        draw.text((x, baseline), run, fill=fill, font=run_font, anchor="ls")
        left, top, right, bottom = draw.textbbox((x, baseline), run, font=run_font, anchor="ls")
        box = [min(box[0], left), min(box[1], top), max(box[2], right), max(box[3], bottom)]
        x += run_font.getlength(run)
    return tuple(box)


def _text_box(font: Any, text: str) -> tuple[float, float, float, float]:
    """``font.getbbox(text)`` with the fallback fonts of :func:`_draw_text` (anchor "la")."""
    runs = _runs(font, text)
    if len(runs) == 1 and runs[0][1] is font:
        return font.getbbox(text)
    from PIL import Image, ImageDraw

    return _draw_text(ImageDraw.Draw(Image.new("L", (1, 1))), (0, 0), text, font, 0, "la")


def _text_width(font: Any, text: str) -> int:
    left, _, right, _ = _text_box(font, text)
    return int(right - left)


def _line_height(font: Any) -> int:
    """Pixels from the highest ascender to the lowest descender of ``font``."""
    _, top, _, bottom = font.getbbox("ÁÉgjpqy[]|")
    return int(bottom - top)


def _fit(text: str, limit: int = 18) -> str:
    return shorten(text, limit)


def nice_ticks(vmax: float, most: int = 6) -> list[float]:
    """Round tick values from 0 to at most ``vmax`` (steps of 1, 2, 2.5 or 5 x 10^k), as
    matplotlib's colour bars choose them."""
    if vmax <= 0:
        return [0.0]
    raw = vmax / (most - 1)
    power = 10.0 ** np.floor(np.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    count = int(np.floor(vmax / step + 1e-9))
    return [round(i * step, 12) for i in range(count + 1)]


def _tick_text(value: float, ticks: list[float]) -> str:
    step = ticks[1] - ticks[0] if len(ticks) > 1 else 1.0
    decimals = max(0, int(-np.floor(np.log10(step) + 1e-9))) + (
        1 if round(step / 10 ** np.floor(np.log10(step)), 6) == 2.5 else 0
    )
    return f"{value:.{decimals}f}"


class _Layout:
    """Pixel geometry of a view: panel grid, margins for labels, title and colour bar.

    Token labels are drawn only at a font size whose line fits one cell, so neighbouring
    labels never overlap; ``label_boxes`` records every label's box for the tests."""

    def __init__(self, data: ViewData, font_size: int) -> None:
        self.data = data
        n_query, n_key = len(data.query_labels), len(data.key_labels)
        single = len(data.panels) == 1
        grid = data.view == "grid"
        longest = max(n_query, n_key, 1)
        if single:
            self.cell = int(np.clip(560 // longest, 4, 30))
            if longest <= 80:
                self.cell = max(self.cell, 9)
        elif grid:
            self.cell = max(1, int(np.clip(88 // longest, 1, 12)))
        else:
            self.cell = max(1, int(np.clip(220 // longest, 2, 16)))
            if longest <= 48:
                self.cell = max(self.cell, 9)
        self.panel_w, self.panel_h = n_key * self.cell, n_query * self.cell
        self.font = _font(font_size)
        self.small = _font(max(8, font_size - 2))
        self.label_font = None
        if not grid:
            for size in range(font_size if single else font_size - 2, 6, -1):
                if _line_height(_font(size)) <= self.cell - 1:
                    self.label_font = _font(size)
                    break
        self.show_tokens = self.label_font is not None
        self.label_boxes: list[tuple[int, int, int, int]] = []
        if self.label_font is not None:
            q_w = max(_text_width(self.label_font, _fit(t)) for t in data.query_labels)
            k_w = max(_text_width(self.label_font, _fit(t)) for t in data.key_labels)
        else:
            q_w = k_w = 0
        row_w = max((_text_width(self.small, s) for s in data.row_labels or []), default=0)
        caption_w = (font_size + GAP) if single else 0  # "query (attending)", rotated
        self.caption_w = caption_w
        self.left = GAP * 2 + q_w + (row_w + GAP if row_w else 0) + caption_w
        self.title_h = font_size + 2 * GAP + (font_size + GAP // 2 if data.text else 0)
        col_h = (font_size + GAP) if (data.col_labels or (not single and not grid)) else 0
        self.top = self.title_h + col_h + MARK_H
        self.bottom = GAP * 2 + k_w + (font_size + GAP if single else 0)
        # panels with their own titles need room for them between rows
        self.vgap = (GAP + font_size if (not single and not grid) else GAP) + MARK_H
        self.grid_w = data.cols * self.panel_w + (data.cols - 1) * GAP
        self.grid_h = data.rows * self.panel_h + (data.rows - 1) * self.vgap
        tick_w = _text_width(self.small, "0.000")
        self.bar_x = self.left + self.grid_w + GAP * 3
        self.bar_label_x = self.bar_x + BAR_WIDTH + GAP + tick_w + GAP + font_size / 2
        width = self.bar_x + BAR_WIDTH + GAP + tick_w + GAP + font_size + GAP * 2
        title_w = max(_text_width(self.font, data.title), _text_width(self.small, data.text)) + 4 * GAP
        self.width = max(width, title_w)
        self.height = self.top + self.grid_h + self.bottom
        # one line under everything for the legend of marked columns (drawn per image)
        self.legend_y = self.height
        self.height += font_size + GAP
        self.col_h = col_h

    def origin(self, index: int) -> tuple[int, int]:
        row, col = divmod(index, self.data.cols)
        return self.left + col * (self.panel_w + GAP), self.top + row * (self.panel_h + self.vgap)


def _rotated_text(
    image: Any, text: str, font: Any, fill: tuple[int, int, int], center_x: float, top: int
) -> tuple[int, int, int, int]:
    """Draw ``text`` rotated 90° (reading upwards), right-aligned at ``top`` and centred on
    ``center_x``, through a mask, so it never paints over its neighbours; returns its box."""
    from PIL import Image, ImageDraw

    left, upper, right, lower = _text_box(font, text)
    w, h = max(1, int(right - left)), max(1, int(lower - upper))
    mask = Image.new("L", (w, h), 0)
    _draw_text(ImageDraw.Draw(mask), (-left, -upper), text, font, 255)
    rotated = mask.rotate(90, expand=True)  # h wide, w tall
    x0, y0 = int(round(center_x - h / 2)), top
    image.paste(Image.new("RGB", rotated.size, fill), (x0, y0), rotated)
    return x0, y0, x0 + rotated.size[0], y0 + rotated.size[1]


class FastRenderer:
    """Draws :class:`ViewData` to PNG bytes; caches the labelled frame of each layout."""

    def __init__(self, cmap: str = "viridis", font_size: int = 12) -> None:
        self.lut = colormap_lut(cmap)
        self.palette = _palette_image(cmap)
        self.font_size = font_size
        self._frames: dict[Any, tuple[_Layout, Any]] = {}
        self._labels: dict[Any, Any] = {}
        self._blanks: dict[Any, Any] = {}
        self._white = 255
        self._ink = int(np.argmin(np.abs(np.linspace(0, 255, 256 - LEVELS) - INK[0]))) + LEVELS

    def _frame(self, data: ViewData) -> tuple[_Layout, Any]:
        key = (
            data.view,
            data.rows,
            data.cols,
            len(data.panels),
            tuple(data.query_labels),
            tuple(data.key_labels),
            tuple(data.row_labels or ()),
            tuple(data.col_labels or ()),
            data.value_label,
            data.text,
            len(data.title),
            tuple(p.label for p in data.panels) if len(data.panels) > 1 and data.view != "grid" else (),
        )
        cached = self._frames.get(key)
        if cached is not None:
            return cached
        if len(self._frames) > 16:
            self._frames.clear()
        from PIL import Image, ImageDraw

        layout = _Layout(data, self.font_size)
        image = Image.new("RGB", (layout.width, layout.height), BACKGROUND)
        draw = ImageDraw.Draw(image)
        single = len(data.panels) == 1
        cell = layout.cell
        for index in range(len(data.panels)):
            x0, y0 = layout.origin(index)
            row, col = divmod(index, data.cols)
            last_row = row == data.rows - 1 or index + data.cols >= len(data.panels)
            font = layout.label_font
            if font is not None and col == 0:
                for i, label in enumerate(data.query_labels):
                    text = _fit(label)
                    center = y0 + i * cell + cell / 2
                    left, upper, right, lower = _draw_text(draw, (x0 - GAP, center), text, font, INK, "rm")
                    layout.label_boxes.append((int(left), int(upper), int(right), int(lower)))
            if font is not None and last_row:
                for j, label in enumerate(data.key_labels):
                    box = _rotated_text(
                        image, _fit(label), font, INK, x0 + j * cell + cell / 2, y0 + layout.panel_h + GAP // 2
                    )
                    layout.label_boxes.append(box)
            if data.row_labels and col == 0:
                label = data.row_labels[row]
                _draw_text(draw, (GAP, y0 + layout.panel_h / 2), label, layout.small, INK, "lm")
            if data.col_labels and row == 0:
                _draw_text(
                    draw, (x0 + layout.panel_w / 2, layout.title_h + 2), data.col_labels[col], layout.small, INK, "mt"
                )
        if single:
            draw.text(
                (layout.left + layout.grid_w / 2, layout.legend_y - GAP),
                "key (attended to)",
                fill=MUTED,
                font=layout.small,
                anchor="mb",
            )
            caption = "query (attending)"
            w, h = _text_width(layout.small, caption) + 4, self.font_size + 4
            strip = Image.new("RGB", (w, h), BACKGROUND)
            ImageDraw.Draw(strip).text((w // 2, h // 2), caption, fill=MUTED, font=layout.small, anchor="mm")
            image.paste(strip.rotate(90, expand=True), (GAP // 2, int(layout.top + layout.grid_h / 2 - w / 2)))
        if data.text:
            _draw_text(draw, (layout.width / 2, GAP + self.font_size + GAP // 2), data.text, layout.small, MUTED, "mt")
        _rotated_text(
            image,
            data.value_label,
            layout.small,
            MUTED,
            layout.bar_label_x,
            int(layout.top + layout.grid_h / 2 - _text_width(layout.small, data.value_label) / 2),
        )
        # colour bar: top = high
        bar = np.repeat(self.lut[::-1][:, None, :], BAR_WIDTH, axis=1)
        bar_image = Image.fromarray(bar, "RGB").resize((BAR_WIDTH, layout.grid_h), Image.Resampling.BILINEAR)
        image.paste(bar_image, (layout.bar_x, layout.top))
        draw.rectangle(
            [layout.bar_x - 1, layout.top - 1, layout.bar_x + BAR_WIDTH, layout.top + layout.grid_h], outline=MUTED
        )
        if len(data.panels) > 1 and data.view != "grid":
            for index, panel in enumerate(data.panels):
                x0, y0 = layout.origin(index)
                _draw_text(draw, (x0 + layout.panel_w / 2, y0 - 2 - MARK_H), panel.label, layout.small, INK, "mb")
        # one palette image per layout: each PNG then only pastes colour indices into a copy
        frame = image.quantize(palette=self.palette, dither=Image.Dither.NONE)
        self._frames[key] = (layout, frame)
        return layout, frame

    def _tick_label(self, text: str, font: Any) -> Any:
        key = (text, id(font))
        label = self._labels.get(key)
        if label is None:
            if len(self._labels) > 512:
                self._labels.clear()
            left, top, right, bottom = _text_box(font, text)
            label = self._strip(
                (int(right - left) + 2, int(bottom - top) + 4), [((1 - left, 2 - top), text, font, "la")]
            )
            self._labels[key] = label
        return label

    def _blank(self, width: int, height: int) -> Any:
        from PIL import Image

        key = (width, height)
        blank = self._blanks.get(key)
        if blank is None:
            blank = self._blanks[key] = Image.new("P", (max(1, width), max(1, height)), self._white)
        return blank

    def _strip(self, size: tuple[int, int], texts: list[tuple[tuple[float, float], str, Any, str]]) -> Any:
        """Text drawn anti-aliased on a small RGB strip, mapped onto the palette."""
        from PIL import Image, ImageDraw

        strip = Image.new("RGB", (max(1, size[0]), max(1, size[1])), BACKGROUND)
        draw = ImageDraw.Draw(strip)
        for xy, text, font, anchor in texts:
            _draw_text(draw, xy, text, font, INK, anchor)
        return strip.quantize(palette=self.palette, dither=Image.Dither.NONE)

    def render(self, data: ViewData) -> bytes:
        """PNG bytes of ``data``; colours scale from 0 to the top of the view's colour scale
        (:meth:`ViewData.color_scale`); columns above it are marked ``▼`` and named under
        the image with their true maximum."""
        from PIL import Image

        layout, frame = self._frame(data)
        image = frame.copy()
        colors = data.color_scale()
        vmax = max(colors.vmax, 1e-6)
        cell = layout.cell
        top = LEVELS - 1
        for index, panel in enumerate(data.panels):
            # palette indices 0..LEVELS-1 are the colormap levels
            levels = np.clip(np.asarray(panel.matrix, dtype=np.float32) * (top / vmax) + 0.5, 0, top).astype(np.uint8)
            if cell > 1:
                levels = np.repeat(np.repeat(levels, cell, axis=0), cell, axis=1)
            image.paste(Image.fromarray(np.ascontiguousarray(levels), "L"), layout.origin(index))
            if colors.saturates:
                x0, y0 = layout.origin(index)
                for j in np.flatnonzero(colors.marked):
                    middle = x0 + j * cell + cell // 2
                    for k in range(3):  # a small downward triangle over the column
                        image.paste(self._ink, (middle - 2 + k, y0 - 5 + k, middle + 3 - k, y0 - 4 + k))
        if colors.saturates:
            names = ", ".join(_fit(data.key_labels[j], 12) for j in np.flatnonzero(colors.marked)[:4])
            more = "…" if int(colors.marked.sum()) > 4 else ""
            legend = f"▼ {names}{more}: above the colour scale, up to {colors.marked_max:.3g}"
            legend = shorten(legend, max(20, layout.width // 7))
            image.paste(
                self._strip((layout.width, self.font_size + GAP), [((GAP, 2), legend, layout.small, "la")]),
                (0, layout.legend_y),
            )
        title_h = self.font_size + GAP
        image.paste(
            self._strip((layout.width, title_h), [((layout.width / 2, GAP / 2), data.title, layout.font, "mt")]),
            (0, GAP // 2),
        )
        ticks = nice_ticks(vmax)
        tick_x = layout.bar_x + BAR_WIDTH
        # blank the tick column of the frame, then paste each tick label (cached by text)
        blank = self._blank(int(layout.bar_label_x - self.font_size / 2 - tick_x), layout.grid_h + 2 * self.font_size)
        image.paste(blank, (tick_x, layout.top - self.font_size))
        for value in ticks:
            y = int(round(layout.top + layout.grid_h * (1 - value / vmax)))
            image.paste(self._ink, (tick_x, y, tick_x + 3, y + 1))
            label = self._tick_label(_tick_text(value, ticks), layout.small)
            image.paste(label, (tick_x + 5, y - label.size[1] // 2))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
