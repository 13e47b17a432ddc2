"""The lesson view of `attnviz serve`: `attnviz lesson`'s nine steps for the typed text.

A lesson costs far more than the attention of the other views: two forward passes, the
nearest neighbours over the whole embedding table, the head clusters (about 1 s for a short
sentence on MiniLM here), and a matplotlib picture per step (0.2-1 s each). So the page asks
twice: first the lesson's document (what `attnviz lesson --json` prints: every step's
sentences and numbers), then each step's picture, one request at a time, so that a newer
text (a stale-dropped request) or another client never waits behind all eight pictures.
Lessons are kept per model for the pictures that follow them, and pictures are kept by the
step's own numbers: a new head for step 4 redraws steps 4 and 6 only.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

from attnviz.errors import InputError

if TYPE_CHECKING:
    from attnviz.lesson.steps import Lesson
    from attnviz.models import LoadedModel
    from attnviz.serve.pool import Query

#: Lessons kept per model (one per text and step-4 choice): the picture requests that follow
#: a lesson find it here; the oldest is forgotten first.
LESSONS_KEPT = 4
#: Step pictures kept per model (a PNG data URL is 20-90 kB).
PICTURES_KEPT = 64
#: The steps the page asks a picture for: step 1 is a table the page builds from its numbers.
PICTURE_STEPS = range(2, 10)


class LessonStore:
    """One model's lessons and step pictures, computed in the model's queue (one at a time)."""

    def __init__(self, loaded: LoadedModel) -> None:
        self.loaded = loaded
        self._lessons: OrderedDict[tuple[Any, ...], Lesson] = OrderedDict()
        self._pictures: OrderedDict[str, str | None] = OrderedDict()

    def _lesson(self, query: Query) -> tuple[Lesson, float | None]:
        """The lesson for ``query`` and the seconds it took (None when it was kept)."""
        from attnviz.lesson import build_lesson

        key = (query.text, query.target, query.layer, query.head, query.query)
        kept = self._lessons.get(key)
        if kept is not None:
            self._lessons.move_to_end(key)
            return kept, None
        started = time.perf_counter()
        lesson = build_lesson(
            query.text, model=self.loaded, target=query.target, query=query.query, layer=query.layer, head=query.head
        )
        seconds = time.perf_counter() - started
        self._lessons[key] = lesson
        while len(self._lessons) > LESSONS_KEPT:
            self._lessons.popitem(last=False)
        return lesson, seconds

    def document(self, query: Query) -> dict[str, Any]:
        """`attnviz lesson --json`'s document for ``query``, plus ``notes`` (the
        unknown-token warning) and ``lesson_ms`` (null when the lesson was kept)."""
        from attnviz.models import unknown_token_warning

        lesson, seconds = self._lesson(query)
        document = lesson.to_dict()
        unknown = unknown_token_warning(self.loaded.tokenizer, lesson.capture.result.tokens)
        document["notes"] = [unknown] if unknown else []
        document["lesson_ms"] = None if seconds is None else round(seconds * 1000, 2)
        return document

    def picture(self, query: Query) -> dict[str, Any]:
        """Step ``query.picture``'s picture as the lesson page draws it: ``{"step",
        "picture"}``, a PNG data URL, or null for a step that does not apply (its sentence
        says why) or is a table (step 1)."""
        from attnviz.lesson.page import picture_url

        number = query.picture
        if number is None or number not in PICTURE_STEPS:
            raise InputError("picture must be a step number from 2 to 9", hint='send {"picture": 2, ...}')
        lesson, seconds = self._lesson(query)
        step = lesson.steps[number - 1]
        # figures draw from the step's numbers alone, so those numbers are the picture's key
        key = json.dumps(step.to_dict(), sort_keys=True)
        drawn: float | None = None
        if key in self._pictures:
            self._pictures.move_to_end(key)
            url = self._pictures[key]
        else:
            started = time.perf_counter()
            url = picture_url(lesson, step) if step.applies else None
            drawn = time.perf_counter() - started
            self._pictures[key] = url
            while len(self._pictures) > PICTURES_KEPT:
                self._pictures.popitem(last=False)
        return {
            "step": number,
            "picture": url,
            "lesson_ms": None if seconds is None else round(seconds * 1000, 2),
            "picture_ms": None if drawn is None else round(drawn * 1000, 2),
        }
