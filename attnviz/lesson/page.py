"""The lesson as one self-contained HTML page: a section per step with its sentences and
picture (PNG inline as a data: URL), and the interactive attention page of
:func:`attnviz.render.html.render_html` embedded (inline iframes) in steps 4 and 5. Like
that page it makes no request: a Content-Security-Policy allows only inline script,
styles and data: images. Every text is escaped."""

from __future__ import annotations

import base64
import html
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attnviz.lesson.steps import Lesson, Step

POLICY = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data:"

# overflow-y: scroll keeps the width fixed: a scrollbar that appears while an embedded view
# is still decoding would resize its frame, and the view's resize handler would draw early.
STYLE = """
html { overflow-y: scroll; }
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 1100px; padding: 1em 1.5em; color: #222; }
header h1 { margin-bottom: 0.2em; }
header p { margin: 0.2em 0; color: #555; }
nav ol { columns: 3; padding-left: 1.2em; }
section { border-top: 1px solid #ddd; padding: 0.6em 0 1.2em; }
section h2 { margin: 0.4em 0; font-size: 1.2em; }
section p.sentences { max-width: 75ch; }
section.skipped p.sentences { color: #666; font-style: italic; }
section img { max-width: 100%; height: auto; border: 1px solid #eee; }
section .embed { margin-top: 0.8em; }
table.tokens { border-collapse: collapse; font-size: 14px; }
table.tokens td, table.tokens th { padding: 2px 10px; border-bottom: 1px solid #eee; text-align: left; }
table.tokens tr.special { color: #888; }
section .embed iframe { border: 1px solid #ddd; max-width: 100%; }
section .embed h3 { font-size: 1em; margin: 0.3em 0; color: #444; }
"""

FRAME_HEIGHT = 600
#: Fills the frames after the first layout, then marks the page ready.
FILL_FRAMES = (
    "requestAnimationFrame(function(){setTimeout(function(){"
    "document.querySelectorAll('iframe[data-page]').forEach(function(f){f.srcdoc=f.dataset.page;});"
    "document.body.dataset.ready='1';},0);});"
)

EMBED_NOTES = {
    4: "This head, interactive (Neuron view): click a query token for its query and key vectors.",
    5: "Every layer and head, interactive: switch views, layers and heads.",
}


def _embed(lesson: Lesson, step: Step) -> str:
    from attnviz.render.html import render_html
    from attnviz.transforms import select

    capture = lesson.capture
    if step.number == 4 and step.applies:
        result = select(capture.result, layers=[capture.layer], heads=[capture.head])
    elif step.number == 5:
        result = capture.result
    else:
        return ""
    # Our own frame rather than render_html(inline=True): that one resizes itself to the
    # height the page reports, which grows by a few pixels on every report here; a fixed
    # size that scrolls inside is steadier on a long page. The page goes in (data-page ->
    # srcdoc, by the script at the end) only once the frame is laid out: Chromium sends a
    # new frame a resize event, and the page's resize handler must not run before its data
    # is decoded.
    document = html.escape(render_html(result), quote=True)
    note = html.escape(EMBED_NOTES[step.number])
    return (
        f'<div class="embed"><h3>{note}</h3>'
        f'<iframe title="{note}" sandbox="allow-scripts" width="1040" height="{FRAME_HEIGHT}" '
        f'data-page="{document}"></iframe></div>'
    )


def _token_table(step: Step) -> str:
    """Step 1 as a table: each piece under the characters it came from."""
    rows = []
    for row in step.data["tokens"]:
        source = html.escape(row["text"]) if row["chars"] else "<i>added by the model</i>"
        where = f"{row['chars'][0]}-{row['chars'][1]}" if row["chars"] else ""
        rows.append(
            f'<tr class="{"special" if row["special"] else ""}"><td>{row["index"]}</td><td>{source}</td>'
            f"<td>{where}</td><td><code>{html.escape(row['piece'])}</code></td><td>{row['id']}</td></tr>"
        )
    return (
        '<table class="tokens"><thead><tr><th>#</th><th>characters</th><th>span</th><th>piece</th><th>id</th>'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def picture_url(lesson: Lesson, step: Step) -> str:
    """The step's picture as this page shows it (without its sentences, which the page
    prints as text): a PNG ``data:`` URL. `attnviz serve`'s lesson view shows the same."""
    from attnviz.lesson.figures import step_png

    return "data:image/png;base64," + base64.b64encode(step_png(lesson, step, sentences=False)).decode("ascii")


def _section(lesson: Lesson, step: Step) -> str:
    sentences = html.escape(" ".join(step.sentences))
    alt = html.escape(f"step {step.number}: {step.title}")
    if step.number == 1:
        picture = _token_table(step)
    else:
        picture = f'<img alt="{alt}" src="{picture_url(lesson, step)}">'
    return (
        f'<section id="step-{step.number}" class="step{"" if step.applies else " skipped"}" '
        f'data-applies="{"1" if step.applies else "0"}">'
        f"<h2>{step.number}. {html.escape(step.title)}</h2>"
        f'<p class="sentences">{sentences}</p>'
        f"{picture}"
        f"{_embed(lesson, step)}</section>"
    )


def render_lesson_page(lesson: Lesson) -> str:
    """The whole page as a string."""
    title = f"attnviz lesson: {lesson.text}"
    meta = f"{lesson.model} ({lesson.model_type}, {lesson.family})"
    target = f"<p>target (decoder): {html.escape(lesson.target)}</p>" if lesson.target is not None else ""
    contents = "".join(f'<li><a href="#step-{s.number}">{html.escape(s.title)}</a></li>' for s in lesson.steps)
    sections = "".join(_section(lesson, step) for step in lesson.steps)
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{POLICY}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{STYLE}</style></head><body>"
        f"<header><h1>A transformer, step by step</h1><p>text: {html.escape(lesson.text)}</p>{target}"
        f"<p>model: {html.escape(meta)}</p></header>"
        f"<nav><ol>{contents}</ol></nav><main>{sections}</main>"
        "<footer><p>Made by attnviz lesson: every number on this page comes from this model on this text.</p></footer>"
        f"<script>{FILL_FRAMES}</script>"
        "</body></html>\n"
    )
