"""Fast PNG heatmaps drawn directly with Pillow (the export path).

matplotlib needs ~100 ms per labelled figure; this renderer draws the same information —
token labels, panel titles, a title, a colour bar with its scale — in a few milliseconds:
the labelled frame of a layout is drawn once and reused for every head of a text, and
each heatmap is a colour lookup plus a nearest-neighbour upscale.
"""

from __future__ import annotations

import io
import os
from functools import lru_cache
from typing import Any

import numpy as np

from attnviz.render.colors import LEVELS, colormap_lut
from attnviz.render.views import ViewData

BACKGROUND = (255, 255, 255)
INK = (20, 20, 20)
MUTED = (90, 90, 90)
GAP = 8
BAR_WIDTH = 14


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


@lru_cache(maxsize=8)
def _font(size: int) -> Any:
    from PIL import ImageFont

    try:
        import matplotlib

        path = os.path.join(matplotlib.get_data_path(), "fonts", "ttf", "DejaVuSans.ttf")
        return ImageFont.truetype(path, size)
    except (ImportError, OSError):  # pragma: no cover - matplotlib ships DejaVu
        return ImageFont.load_default(size)


def _text_width(font: Any, text: str) -> int:
    left, _, right, _ = font.getbbox(text)
    return int(right - left)


def _fit(text: str, limit: int = 18) -> str:
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[: limit - 1] + "…"


class _Layout:
    """Pixel geometry of a view: panel grid, margins for labels, title and colour bar."""

    def __init__(self, data: ViewData, font_size: int) -> None:
        self.data = data
        n_query, n_key = len(data.query_labels), len(data.key_labels)
        single = len(data.panels) == 1
        grid = data.view == "grid"
        longest = max(n_query, n_key, 1)
        if single:
            self.cell = int(np.clip(560 // longest, 4, 30))
        elif grid:
            self.cell = max(1, int(np.clip(88 // longest, 1, 12)))
        else:
            self.cell = max(1, int(np.clip(220 // longest, 2, 16)))
        self.panel_w, self.panel_h = n_key * self.cell, n_query * self.cell
        self.show_tokens = not grid and self.cell >= 6
        self.font = _font(font_size)
        self.small = _font(max(8, font_size - 2))
        label_font = self.font if single else self.small
        self.label_font = label_font
        if self.show_tokens:
            q_w = max(_text_width(label_font, _fit(t)) for t in data.query_labels)
            k_w = max(_text_width(label_font, _fit(t)) for t in data.key_labels)
        else:
            q_w = k_w = 0
        row_w = max((_text_width(self.small, s) for s in data.row_labels or []), default=0)
        caption_w = (font_size + GAP) if single else 0  # "query (attending)", rotated
        self.caption_w = caption_w
        self.left = GAP * 2 + q_w + (row_w + GAP if row_w else 0) + caption_w
        self.title_h = font_size + 2 * GAP
        col_h = (font_size + GAP) if (data.col_labels or (not single and not grid)) else 0
        self.top = self.title_h + col_h
        self.bottom = GAP * 2 + k_w + (font_size + GAP if single else 0)
        # panels with their own titles need room for them between rows
        self.vgap = GAP + font_size if (not single and not grid) else GAP
        self.grid_w = data.cols * self.panel_w + (data.cols - 1) * GAP
        self.grid_h = data.rows * self.panel_h + (data.rows - 1) * self.vgap
        tick_w = _text_width(self.small, "0.000")
        self.bar_x = self.left + self.grid_w + GAP * 3
        self.width = self.bar_x + BAR_WIDTH + GAP + tick_w + GAP * 2
        self.height = self.top + self.grid_h + self.bottom
        self.col_h = col_h

    def origin(self, index: int) -> tuple[int, int]:
        row, col = divmod(index, self.data.cols)
        return self.left + col * (self.panel_w + GAP), self.top + row * (self.panel_h + self.vgap)


class FastRenderer:
    """Draws :class:`ViewData` to PNG bytes; caches the labelled frame of each layout."""

    def __init__(self, cmap: str = "viridis", font_size: int = 12) -> None:
        self.lut = colormap_lut(cmap)
        self.palette = _palette_image(cmap)
        self.font_size = font_size
        self._frames: dict[Any, tuple[_Layout, Any]] = {}

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
            if layout.show_tokens and col == 0:
                for i, label in enumerate(data.query_labels):
                    text = _fit(label)
                    w = _text_width(layout.label_font, text)
                    draw.text(
                        (x0 - GAP - w, y0 + i * cell + cell / 2), text, fill=INK, font=layout.label_font, anchor="lm"
                    )
            if layout.show_tokens and last_row:
                for j, label in enumerate(data.key_labels):
                    text = _fit(label)
                    w = _text_width(layout.label_font, text) + 4
                    h = self.font_size + 6
                    strip = Image.new("RGB", (max(w, 1), h), BACKGROUND)
                    ImageDraw.Draw(strip).text((w - 2, h // 2), text, fill=INK, font=layout.label_font, anchor="rm")
                    rotated = strip.rotate(90, expand=True)
                    image.paste(rotated, (int(x0 + j * cell + cell / 2 - h / 2), y0 + layout.panel_h + GAP // 2))
            if data.row_labels and col == 0:
                draw.text(
                    (GAP, y0 + layout.panel_h / 2), data.row_labels[row], fill=INK, font=layout.small, anchor="lm"
                )
            if data.col_labels and row == 0:
                draw.text(
                    (x0 + layout.panel_w / 2, layout.title_h + 2),
                    data.col_labels[col],
                    fill=INK,
                    font=layout.small,
                    anchor="mt",
                )
        if single:
            draw.text(
                (layout.left + layout.grid_w / 2, layout.height - GAP),
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
        # colour bar: top = high
        bar = np.repeat(self.lut[::-1][:, None, :], BAR_WIDTH, axis=1)
        bar_image = Image.fromarray(bar, "RGB").resize((BAR_WIDTH, layout.grid_h), Image.Resampling.BILINEAR)
        image.paste(bar_image, (layout.bar_x, layout.top))
        draw.rectangle(
            [layout.bar_x - 1, layout.top - 1, layout.bar_x + BAR_WIDTH, layout.top + layout.grid_h], outline=MUTED
        )
        self._frames[key] = (layout, image)
        return layout, image

    def render(self, data: ViewData) -> bytes:
        """PNG bytes of ``data``; colours scale from 0 to the largest value shown."""
        from PIL import Image, ImageDraw

        layout, frame = self._frame(data)
        image = frame.copy()
        draw = ImageDraw.Draw(image)
        vmax = max(float(max(p.matrix.max() for p in data.panels)), 1e-6)
        cell = layout.cell
        multi = len(data.panels) > 1 and data.view != "grid"
        for index, panel in enumerate(data.panels):
            top = LEVELS - 1
            levels = np.clip(np.asarray(panel.matrix, dtype=np.float32) / vmax * top + 0.5, 0, top).astype(np.uint8)
            pixels = self.lut[levels]
            if cell > 1:
                pixels = np.repeat(np.repeat(pixels, cell, axis=0), cell, axis=1)
            x0, y0 = layout.origin(index)
            image.paste(Image.fromarray(np.ascontiguousarray(pixels), "RGB"), (x0, y0))
            if multi:
                draw.text((x0 + layout.panel_w / 2, y0 - 2), panel.label, fill=INK, font=layout.small, anchor="mb")
        draw.text((layout.width / 2, GAP), data.title, fill=INK, font=layout.font, anchor="mt")
        for fraction in (0.0, 0.5, 1.0):
            y = layout.top + layout.grid_h * (1 - fraction)
            draw.text(
                (layout.bar_x + BAR_WIDTH + 4, y), f"{vmax * fraction:.3f}", fill=INK, font=layout.small, anchor="lm"
            )
        buffer = io.BytesIO()
        image.quantize(palette=self.palette, dither=Image.Dither.NONE).save(buffer, format="PNG", compress_level=1)
        return buffer.getvalue()
