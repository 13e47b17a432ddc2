"""`attnviz lesson`: the transformer's core concepts, each drawn from the model's own
numbers on the learner's sentence (see docs/lesson.md).

``build_lesson(text, model=...)`` returns a :class:`~attnviz.lesson.steps.Lesson`: nine
:class:`~attnviz.lesson.steps.Step` objects, each with its sentences and numbers.
Presenters: :mod:`attnviz.lesson.terminal` (rich), :mod:`attnviz.lesson.figures`
(matplotlib, one PNG per step), :mod:`attnviz.lesson.page` (one self-contained HTML page).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from attnviz.lesson.steps import Lesson
    from attnviz.models import LoadedModel

__all__ = ["build_lesson"]


def build_lesson(
    text: str,
    *,
    model: str | os.PathLike[str] | LoadedModel | None = None,
    target: str | None = None,
    query: int | None = None,
    layer: int | None = None,
    head: int | None = None,
    device: str = "auto",
    verbose: bool = False,
) -> Lesson:
    """The lesson for ``text`` through ``model`` (alias, hub id, directory or a loaded
    model; default the bundled MiniLM). Encoder-decoders read ``target`` in the decoder
    (default: the text itself). ``query``, ``layer``, ``head`` (0-based) choose step 4's
    query token and head instead of the defaults (the last word; the most
    previous-token-like head near the middle layer)."""
    from attnviz.extraction import validate_text
    from attnviz.lesson.collect import collect
    from attnviz.lesson.steps import Lesson, build_steps
    from attnviz.models import LoadedModel, load_model

    validate_text(text)
    loaded = model if isinstance(model, LoadedModel) else load_model(model, device=device, verbose=verbose)
    if loaded.family == "encoder-decoder" and target is None:
        target = text
    capture = collect(loaded, text, target=target, query=query, layer=layer, head=head, verbose=verbose)
    return Lesson(
        model=loaded.name,
        model_type=capture.facts.model_type,
        family=loaded.family,
        text=text,
        target=target if loaded.family == "encoder-decoder" else None,
        steps=build_steps(capture),
        capture=capture,
    )
