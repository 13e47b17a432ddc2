"""Map expected failures to one line on stderr and an exit code; bugs still raise.

Two kinds of expected failure: our own (:class:`AttnvizError`, from the library and the
commands) and the command line parser's (Typer/Click's usage errors: an unknown option, a
value out of range, a missing argument), which Click would print as a usage block and an
``Error:`` line. Both end as ``error: ...`` plus an optional ``hint: ...`` on stderr.
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

import typer
from typer.core import TyperGroup

from attnviz.errors import AttnvizError

DEBUG_VARIABLE = "ATTNVIZ_DEBUG"


def debug_enabled() -> bool:
    return os.environ.get(DEBUG_VARIABLE, "").strip() not in {"", "0", "false", "no"}


#: Library parameters whose flag is not ``--`` + the name with dashes.
FLAGS: dict[str, str] = {"output": "-o", "out_dir": "-o", "views": "--view", "formats": "--format"}


def flag(option: str) -> str:
    """The command line's name for a library parameter: ``max_bytes`` -> ``--max-bytes``."""
    return FLAGS.get(option, "--" + option.replace("_", "-"))


def report(error: AttnvizError) -> None:
    """Print ``error: ...`` and ``hint: ...`` on stderr. An error that carries the option it
    concerns gets the command line's wording here (``--layer`` for the layer axis): the
    library does not name flags."""
    _print_error(*error.worded(flag))


def _print_error(message: str, hint: str | None) -> None:
    from attnviz.safety import printable

    print(f"error: {printable(message)}", file=sys.stderr)
    if hint:
        print(f"hint: {printable(hint)}", file=sys.stderr)


@contextlib.contextmanager
def error_boundary() -> Iterator[None]:
    """Turn :class:`AttnvizError` into its exit code and Ctrl-C into 130.

    With ``ATTNVIZ_DEBUG=1`` the traceback is shown as well.
    """
    try:
        yield
    except AttnvizError as error:
        if debug_enabled():
            import traceback

            traceback.print_exc()
        report(error)
        raise typer.Exit(code=error.exit_code) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise typer.Exit(code=130) from None


@contextlib.contextmanager
def usage_boundary(command: Callable[[], str] | None = None) -> Iterator[None]:
    """Turn the parser's own errors (an unknown option, a bad value, a missing argument) into
    ``error: ...`` and ``hint: ...`` lines and their exit code (2), instead of Click's usage
    block. Help shown for a bare ``attnviz`` passes through unchanged. ``command``: the
    command line being parsed (``attnviz stats``), for the errors Click raises without it."""
    try:
        yield
    except typer.TyperException as exc:  # the base of every Click exception Typer raises
        if any(kind.__name__ == "NoArgsIsHelpError" for kind in type(exc).__mro__):
            raise
        if debug_enabled():
            import traceback

            traceback.print_exc()
        _print_error(*word_usage_error(exc, command() if command else None))
        raise typer.Exit(code=getattr(exc, "exit_code", 2)) from None


_COMMAND_KEY = "attnviz.command_path"


class ErrorBoundaryGroup(TyperGroup):
    """The command group of `attnviz`: every command runs inside :func:`error_boundary`
    (errors are caught once, here, not in each command), the parser's usage errors go
    through :func:`usage_boundary` (a subcommand's arguments are parsed inside
    :meth:`invoke`, the root's own in :meth:`make_context`), and a closed stdout (``attnviz
    show ... | head -1``) ends the run quietly with exit 0."""

    def make_context(self, info_name, args, parent=None, **extra):  # type: ignore[no-untyped-def]
        with usage_boundary(lambda: str(info_name or "attnviz")):
            return super().make_context(info_name, args, parent=parent, **extra)

    def resolve_command(self, ctx, args):  # type: ignore[no-untyped-def]
        name, command, rest = super().resolve_command(ctx, args)
        # Click's parser raises some errors ('--layer' without its value) with no context;
        # the command's name, kept here, lets the hint name the command anyway.
        ctx.meta[_COMMAND_KEY] = f"{ctx.command_path} {name}"
        return name, command, rest

    def invoke(self, ctx):  # type: ignore[no-untyped-def]
        try:
            with usage_boundary(lambda: ctx.meta.get(_COMMAND_KEY, ctx.command_path)), error_boundary():
                result = super().invoke(ctx)
                sys.stdout.flush()
                return result
        except BrokenPipeError:
            _silence_stdout()
            raise typer.Exit(code=0) from None


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


# Wording of the parser's errors. Click's exceptions are read by their public attributes
# (``ctx``, ``param``, ``option_name``, ``possibilities``), the value checks through the
# pydantic errors Typer raises them from; the message text is parsed only where Click keeps
# nothing else, and anything not recognised is still printed as one ``error:`` line.

_RANGE_WORDS = {"ge": "at least", "gt": "greater than", "le": "at most", "lt": "less than"}
_CLICK_RANGE = re.compile(r"^(?P<value>.*?) is not in the range (?P<range>.+?)\.?$")
_CLICK_CHOICE = re.compile(r"^(?P<value>.*?) is not one of (?P<choices>.+?)\.?$")
_EXTRA_ARGUMENTS = re.compile(r"^Got unexpected extra argument\S* \((?P<arguments>.*)\)$")
_NO_COMMAND = re.compile(r"^No such command (?P<name>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\")")


def word_usage_error(exc: Any, command_path: str | None = None) -> tuple[str, str | None]:
    """(message, hint) for one of Click's exceptions, in the project's words:
    ``--batch-size must be at least 1 (got 0)`` and ``attnviz stats -h lists the options``.
    ``command_path``: the command being parsed, for an exception that carries no context."""
    ctx = getattr(exc, "ctx", None)
    command = ctx.command_path if ctx is not None else command_path or "attnviz"
    is_root = ctx is not None and ctx.parent is None and hasattr(ctx.command, "list_commands")
    options_hint = f"{command} -h lists the {'commands and options' if is_root else 'options'}"
    usage_hint = f"{command} -h shows the usage"
    message = str(getattr(exc, "message", "") or "")
    param = getattr(exc, "param", None)

    if hasattr(exc, "possibilities"):  # NoSuchOption
        name = _cut(getattr(exc, "option_name", "") or "?")
        return f"{command} has no option {name}", _suggest(getattr(exc, "possibilities", None) or [], options_hint)
    if hasattr(exc, "option_name"):  # BadOptionUsage: '--n' without its value, '--flag=x'
        name = _cut(exc.option_name)
        if "requires" in message:
            return f"{name} needs a value", options_hint
        if "does not take a value" in message:
            return f"{name} is a switch: it takes no value", options_hint
        return _plain(message), options_hint
    if hasattr(exc, "param_type"):  # MissingParameter
        what = _param_name(param) if param is not None else str(getattr(exc, "param_hint", None) or "an argument")
        return f"{command} needs {what}", usage_hint
    if param is not None:  # BadParameter: the value does not fit the option
        reason = _value_reason(exc, param)
        name = _param_name(param)
        return f"{name} {reason}", options_hint if param.param_type_name == "option" else usage_hint
    match = _NO_COMMAND.match(message)
    if match and ctx is not None:
        typed = str(ast.literal_eval(match["name"]))
        commands = list(ctx.command.list_commands(ctx))
        return f"unknown command '{_cut(typed)}'", _suggest(
            difflib.get_close_matches(typed, commands), f"{command} -h lists the commands"
        )
    match = _EXTRA_ARGUMENTS.match(message)
    if match:
        takes_text = ctx is not None and any(_param_name(p) == "TEXT" for p in ctx.command.params)
        hint = f'put a text with spaces in quotes: {command} "AI changes everything"' if takes_text else usage_hint
        return f"{command} got more arguments than it takes: {_cut(match['arguments'])}", hint
    return _plain(message or exc.format_message()), usage_hint if ctx is not None else None


def _suggest(candidates: Any, hint: str) -> str:
    """``did you mean X?`` before the hint, when the parser found close matches."""
    names = sorted(str(name) for name in candidates)
    if not names:
        return hint
    return f"did you mean {' or '.join(names)}? {hint}"


def _plain(message: str) -> str:
    """Click's sentence as one of ours: lower-case start, no full stop."""
    message = message.strip().rstrip(".")
    if len(message) > 200:  # a value echoed in it can be any length
        message = message[:190] + f"... ({len(message)} characters)"
    return message[:1].lower() + message[1:] if message[1:2].islower() else message


def _param_name(param: Any) -> str:
    """``--step`` for an option (its long name), ``TEXT`` for an argument."""
    if param.param_type_name != "option":
        return str(param.display_name_raw or param.name or "the argument").upper()
    opts = list(getattr(param, "opts", []) or [])
    return next((o for o in opts if o.startswith("--")), opts[0] if opts else f"--{param.name}")


def _cut(value: Any) -> str:
    """Text the user typed, cut to a readable length (a 5000-digit number stays one line)."""
    text = str(value)
    return text if len(text) <= 40 else text[:30] + f"... ({len(text)} characters)"


def _shown(value: Any) -> str:
    """A value as the user typed it: numbers bare, anything else in quotes; cut when long."""
    text = _cut(value)
    return text if re.fullmatch(r"[-+]?\d+(\.\d*)?", text) else f"'{text}'"


def _bounds(param: Any, kind: str, limit: Any) -> str:
    """``at least 1``, or ``from 1 to 9`` when the option has both closed bounds."""
    low, high = getattr(param, "min", None), getattr(param, "max", None)
    if kind in ("ge", "le") and low is not None and high is not None and not getattr(param, "clamp", False):
        return f"from {low} to {high}"
    return f"{_RANGE_WORDS[kind]} {limit}"


def _value_reason(exc: Any, param: Any) -> str:
    """Why a value was refused: ``must be at least 1 (got 0)``."""
    cause = exc.__cause__
    errors = cause.errors() if hasattr(cause, "errors") else []
    for error in errors[:1]:  # pydantic's record: type, input, ctx (the bound)
        kind, value, context = error.get("type", ""), error.get("input"), error.get("ctx") or {}
        got = f" (got {_shown(value)})" if value is not None else ""
        bound = next((key for key in _RANGE_WORDS if key in context), None)
        if bound:
            return f"must be {_bounds(param, bound, context[bound])}{got}"
        if kind.startswith("int_"):
            return f"must be a whole number{got}"
        if kind.startswith("float_") or kind.startswith("decimal_"):
            return f"must be a number{got}"
        if kind.startswith("bool_"):
            return f"must be true or false{got}"
        if kind in ("enum", "literal_error") and "expected" in context:
            return f"must be one of {context['expected']}{got}"
        if kind == "value_error":  # Typer's choices: "'x' is not one of 'a', 'b'."
            reason = str(error.get("msg", "")).removeprefix("Value error, ")
            choice = _CLICK_CHOICE.match(reason)
            if choice:
                return f"must be one of {choice['choices']}{got}"
            return _plain(reason) + got
    message = str(getattr(exc, "message", "") or "")
    match = _CLICK_RANGE.match(message)  # Click's own wording: "0 is not in the range x>=1."
    if match:
        return f"must be {_click_range(match['range'])} (got {_shown(match['value'])})"
    match = _CLICK_CHOICE.match(message)
    if match:
        return f"must be one of {match['choices']} (got {_cut(match['value'])})"
    return f"is not valid: {_plain(message)}" if message else "is not valid"


def _click_range(text: str) -> str:
    """Click's range notation in words: ``x>=1`` -> ``at least 1``, ``1<=x<=9`` -> ``from 1 to 9``."""
    both = re.fullmatch(r"(?P<low>[^<>=]+)<=x<=(?P<high>[^<>=]+)", text.replace(" ", ""))
    if both:
        return f"from {both['low']} to {both['high']}"
    words = {">=": "at least", ">": "greater than", "<=": "at most", "<": "less than"}
    for operator in (">=", "<=", ">", "<"):
        if text.startswith("x" + operator):
            return f"{words[operator]} {text[len(operator) + 1 :]}"
    return f"in the range {text}"
