"""Errors that reach the user as one line plus a hint.

Each subclass carries the exit code the command line uses for it: 2 for bad usage or bad
input (Typer's convention), 1 for everything else that is expected to fail (a model that
cannot be loaded, a file that cannot be written).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


class AttnvizError(Exception):
    """Base class: an expected failure with a user-facing message and a hint.

    An error about one parameter carries it as ``option`` (its Python name, ``max_bytes``);
    ``{max_bytes}`` in the message or hint stands for that parameter. The library words it
    as the parameter itself (``max_bytes '5X' is not a size``); the command line words it as
    the flag (``--max-bytes '5X' is not a size``) through :meth:`worded`. So the library
    never names a flag, and the CLI never re-phrases a message.
    """

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None, *, option: str | Sequence[str] | None = None) -> None:
        self.options: tuple[str, ...] = (option,) if isinstance(option, str) else tuple(option or ())
        self.template, self.hint_template = message, hint
        self.message, self.hint = self.worded(_as_written)
        super().__init__(self.message)

    @property
    def option(self) -> str | None:
        """The parameter the error concerns (the first one named), if any."""
        return self.options[0] if self.options else None

    def worded(self, name: str | Callable[[str], str]) -> tuple[str, str | None]:
        """(message, hint) with ``name(option)`` (e.g. ``--max-bytes``) for each option; a
        string ``name`` stands for the (one) option."""

        if "template" not in self.__dict__:  # a subclass that set message and hint itself
            return str(getattr(self, "message", self)), getattr(self, "hint", None)

        def fill(text: str) -> str:
            for option in self.options:
                text = text.replace("{" + option + "}", name if isinstance(name, str) else name(option))
            return text

        return fill(self.template), fill(self.hint_template) if self.hint_template else None

    def __reduce__(self) -> tuple[Any, ...]:
        # Errors cross process boundaries (export's workers); rebuild from the templates,
        # not from ``args``, which subclasses with other signatures cannot take.
        return _rebuild, (type(self), self.__dict__.copy())

    def __str__(self) -> str:
        return self.message


def _as_written(option: str) -> str:
    """The library's wording of a parameter: its Python name (``max_bytes``)."""
    return option


def _rebuild(cls: type[AttnvizError], state: dict[str, Any]) -> AttnvizError:
    error = cls.__new__(cls)
    Exception.__init__(error, state.get("message", ""))
    error.__dict__.update(state)
    return error


class InputError(AttnvizError):
    """The text or file given to us cannot be used (empty, too long, not UTF-8...)."""

    exit_code = 2


class TooLongError(InputError):
    """A text longer than the model takes, with truncation off (a caller that never cuts,
    such as the server, words its own hint)."""


class SelectionError(AttnvizError):
    """A layer, head or view choice that the model or result cannot satisfy."""

    exit_code = 2


class IndexSpecError(SelectionError):
    """A layer, head or query index that cannot be used: an :class:`AttnvizError` whose
    option is the axis (``layer 9 is out of range``; ``--layer 9 ...`` on the command line).
    ``template`` is a :meth:`str.format` template in which ``{name}`` stands for the axis."""

    def __init__(self, axis: str, template: str, hint: str | None = None) -> None:
        self.axis = axis
        placeholder = "{" + axis + "}"
        super().__init__(
            template.format(name=placeholder),
            hint=hint.format(name=placeholder) if hint else None,
            option=axis,
        )


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
