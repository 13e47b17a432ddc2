"""Helpers shared by the commands that read several texts (stats, compare), and the
unknown-token warning every command that runs a text gives."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attnviz.cli._output import warn
from attnviz.errors import InputError


def gather_inputs(
    text: str | None, file: Path | None, *, encoding_errors: str = "strict"
) -> tuple[list[Any], list[str]]:
    """TEXT or the records of FILE as ``TextInput`` items, plus one message per bad line."""
    from attnviz.extraction import TextInput
    from attnviz.inputs import read_inputs

    if (text is None) == (file is None):
        raise InputError(
            "give either TEXT or -f FILE", hint="e.g. attnviz stats 'some text' or attnviz stats -f texts.txt"
        )
    if text is not None:
        from attnviz.extraction import validate_text

        return [TextInput(validate_text(text))], []
    items, problems = [], []
    for record in read_inputs(file, encoding_errors=encoding_errors):  # type: ignore[arg-type]
        if record.error is not None:
            problems.append(record.error)
        else:
            items.append(TextInput(record.text or "", record.pair, record.target))
    return items, problems


def extract_all(extractor: Any, items: list[Any], problems: list[str], *, batch_size: int) -> Iterator[tuple[int, Any]]:
    """(position in ``items``, result) in order; a text that fails is noted in ``problems``
    and skipped, so the others still count."""
    outcomes = extractor.outcomes(items, batch_size=batch_size)
    for index, (item, outcome) in enumerate(zip(items, outcomes)):
        if note_outcome(extractor, item, outcome, problems):
            yield index, outcome


def note_outcome(extractor: Any, item: Any, outcome: Any, problems: list[str]) -> bool:
    """Record a failed input in ``problems`` (False) or warn when it was truncated (True)."""
    if isinstance(outcome, InputError):
        problems.append(f"'{item.text[:40]}': {outcome.message}")
        return False
    truncated = getattr(outcome, "truncated_tokens", None)
    if truncated is None:
        truncated = getattr(outcome, "truncated", 0)
    if truncated:
        warn(f"'{item.text[:40]}…' was cut to {extractor.loaded.max_length} tokens ({truncated} dropped)")
    warn_unknown_tokens(extractor.loaded.tokenizer, outcome.tokens, text=item.text)
    return True


def warn_unknown_tokens(tokenizer: Any, tokens: Any, *, text: str | None = None) -> None:
    """The warning for a text the vocabulary does not cover (every token unknown), once per
    text, in the words of :func:`attnviz.models.unknown_token_warning`. ``tokens``: a
    :class:`~attnviz.result.TokenSequence`; ``text``: named when a command runs several."""
    from attnviz.models import unknown_token_warning

    message = unknown_token_warning(tokenizer, tokens, text=text)
    if message:
        warn(message)


def report_problems(problems: list[str]) -> None:
    for problem in problems:
        warn(f"skipped {problem}")


def refuse_early(model: Any, revision: Any, layer: Any, head: Any, view: str | None = None) -> None:
    """Check ``--layer``, ``--head`` and ``--view`` before any weights are read
    (:func:`attnviz.plan.check_early`)."""
    from attnviz.plan import check_early

    check_early(model, revision, layer, head, view)
