"""The lesson view of `attnviz serve`: `attnviz lesson`'s nine steps for the typed text.

A lesson costs far more than the attention of the other views: two forward passes, the
nearest neighbours over the whole embedding table, the head clusters (about 1 s for a short
sentence on MiniLM here), and a matplotlib picture per step (0.2-1 s each). So the page asks
twice: first the lesson's document (what `attnviz lesson --json` prints: every step's
sentences and numbers), then each step's picture, one request at a time, so that a newer
text (a stale-dropped request) or another client never waits behind all eight pictures.
Lessons are kept per model for the pictures that follow them, and pictures are kept by the
step's own numbers: a new head for step 4 redraws steps 4 and 6 only.

The cost grows with the text (MiniLM here: 0.6 s for 10 tokens, 1.8 s for 128, 3.5 s for 512,
and the pictures of 512 tokens 23 s, step 4's alone 13 s), so a typed text's lesson reads its
first :data:`LESSON_TOKENS` tokens, cut as `attnviz lesson` cuts a text at the model's
maximum, and says how many it dropped; the other views still read the whole text.
"""

from __future__ import annotations

import json
import threading
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
#: Each model's queue runs in its own thread; matplotlib's text and font caches are not meant
#: for two threads at once, so pictures are drawn one at a time across models.
_DRAWING = threading.Lock()
#: Tokens (special ones included) a served lesson reads: the head clusters of `attnviz
#: lesson` are compared over as many (lesson.collect.CLUSTER_TOKENS).
LESSON_TOKENS = 128


def first_tokens(tokenizer: Any, text: str, limit: int) -> tuple[str, int]:
    """``text`` cut after the character where its first ``limit`` tokens (special tokens
    counted) end, and how many tokens that drops; ``(text, 0)`` when it is short enough.
    The cut text is tokenized again to check it: a word cut between its pieces can make
    other pieces, so the cut moves back a token until it fits."""
    encoding = tokenizer(text, return_offsets_mapping=True)
    ids = list(encoding["input_ids"])
    if len(ids) <= limit:
        return text, 0
    special = tokenizer.get_special_tokens_mask(ids, already_has_special_tokens=True)
    ends = [int(end) for (start, end), s in zip(encoding["offset_mapping"], special) if not s and end > start]
    keep = limit - sum(special)
    while keep > 0:
        cut = text[: ends[keep - 1]]
        count = len(tokenizer(cut)["input_ids"])
        if count <= limit:
            return cut, len(ids) - count
        keep -= 1
    raise InputError("the text cannot be cut to a lesson's length", hint="shorten it")


class LessonStore:
    """One model's lessons and step pictures, computed in the model's queue (one at a time)."""

    def __init__(self, loaded: LoadedModel, limit: int = LESSON_TOKENS) -> None:
        self.loaded = loaded
        self.limit = limit
        self._lessons: OrderedDict[tuple[Any, ...], tuple[Lesson, int]] = OrderedDict()
        self._pictures: OrderedDict[str, str | None] = OrderedDict()

    def _lesson(self, query: Query) -> tuple[Lesson, float | None, int]:
        """The lesson for ``query``, the seconds it took (None when it was kept) and the
        tokens of the text (or target) cut off past :attr:`limit`."""
        from attnviz.lesson import build_lesson

        key = (query.text, query.target, query.layer, query.head, query.query)
        kept = self._lessons.get(key)
        if kept is not None:
            self._lessons.move_to_end(key)
            return kept[0], None, kept[1]
        started = time.perf_counter()
        text, dropped = self._cut(query.text)
        target = query.target
        if target is not None:
            target, cut_target = self._cut(target)
            dropped = max(dropped, cut_target)
        lesson = build_lesson(
            text, model=self.loaded, target=target, query=query.query, layer=query.layer, head=query.head
        )
        seconds = time.perf_counter() - started
        self._lessons[key] = (lesson, dropped)
        while len(self._lessons) > LESSONS_KEPT:
            self._lessons.popitem(last=False)
        return lesson, seconds, dropped

    def _cut(self, text: str) -> tuple[str, int]:
        try:
            return first_tokens(self.loaded.tokenizer, text, self.limit)
        except (NotImplementedError, KeyError, TypeError, ValueError):
            # a tokenizer without character offsets: a long text is refused instead
            length = len(self.loaded.tokenizer(text)["input_ids"])
            if length > self.limit:
                raise InputError(
                    f"the text has {length} tokens; the lesson view reads at most {self.limit}",
                    hint="shorten it, or run attnviz lesson for the whole text",
                ) from None
            return text, 0

    def document(self, query: Query) -> dict[str, Any]:
        """`attnviz lesson --json`'s document for ``query``, plus ``notes`` (the
        unknown-token warning, the tokens cut off) and ``lesson_ms`` (null when the lesson
        was kept). ``truncated_tokens``: the tokens cut off past :attr:`limit`."""
        from attnviz.models import unknown_token_warning

        lesson, seconds, dropped = self._lesson(query)
        document = lesson.to_dict()
        unknown = unknown_token_warning(self.loaded.tokenizer, lesson.capture.result.tokens)
        document["notes"] = [unknown] if unknown else []
        if dropped:
            document["truncated_tokens"] = dropped
            document["notes"].append(
                f"the lesson reads the first {self.limit} tokens: {dropped} tokens of the text were cut off "
                "(the other views read it whole; attnviz lesson reads up to the model's maximum)"
            )
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
        lesson, seconds, _ = self._lesson(query)
        step = lesson.steps[number - 1]
        # figures draw from the step's numbers alone, so those numbers are the picture's key
        key = json.dumps(step.to_dict(), sort_keys=True)
        drawn: float | None = None
        if key in self._pictures:
            self._pictures.move_to_end(key)
            url = self._pictures[key]
        else:
            started = time.perf_counter()
            if step.applies:
                with _DRAWING:
                    url = picture_url(lesson, step)
            else:
                url = None
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
