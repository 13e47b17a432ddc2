"""Errors that reach the user as one line plus a hint.

Each subclass carries the exit code the command line uses for it: 2 for bad usage or bad
input (Typer's convention), 1 for everything else that is expected to fail (a model that
cannot be loaded, a file that cannot be written).
"""

from __future__ import annotations


class AttnvizError(Exception):
    """Base class: an expected failure with a user-facing message and a hint."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message


class InputError(AttnvizError):
    """The text or file given to us cannot be used (empty, too long, not UTF-8...)."""

    exit_code = 2


class SelectionError(AttnvizError):
    """A --layer / --head / --view choice that the model or result cannot satisfy."""

    exit_code = 2


class IndexSpecError(SelectionError):
    """A layer or head index that cannot be used. The message names the axis plainly
    (``layer 9 is out of range``) for library users; the command line shows it as the flag
    (``--layer 9 is out of range``) through :meth:`worded`."""

    def __init__(self, axis: str, template: str, hint: str | None = None) -> None:
        self.axis = axis
        self.template = template  # "{name}" stands for the axis or the flag
        self.hint_template = hint
        super().__init__(template.format(name=axis), hint=hint.format(name=axis) if hint else None)

    def worded(self, name: str) -> tuple[str, str | None]:
        """(message, hint) with ``name`` (e.g. ``--layer``) for the axis."""
        hint = self.hint_template.format(name=name) if self.hint_template else None
        return self.template.format(name=name), hint


class OutputFormatError(AttnvizError):
    """An output path whose extension we do not know how to write."""

    exit_code = 2


class ModelLoadError(AttnvizError):
    """The model spec could not be resolved or loaded (missing, offline, not a model)."""

    exit_code = 1


class NoAttentionError(AttnvizError):
    """The model ran but returned no attention weights."""

    exit_code = 1


class OutputWriteError(AttnvizError):
    """A file or directory could not be written."""

    exit_code = 1


class CompareThresholdExceeded(AttnvizError):
    """`attnviz compare --fail-above` found a head over the threshold (a deliberate failure)."""

    exit_code = 3
