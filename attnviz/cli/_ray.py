"""The ``--ray`` option shared by stats, compare and export (no Ray import here)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Optional

import typer
from typer.core import TyperCommand

RayOpt = Annotated[
    Optional[str],
    typer.Option(
        "--ray",
        metavar="[ADDRESS]",
        callback=lambda value: checked_address(value),
        help="Run on Ray (pip install 'attnviz[ray]'): --ray alone (or --ray local) starts an instance on this "
        "machine's cores, --ray auto joins the cluster started here with 'ray start', or give the head's "
        "address (HOST:PORT, ray://HOST:PORT).",
    ),
]

#: What ``--ray`` takes besides ``local`` and ``auto``: HOST, HOST:PORT or ray://HOST:PORT.
_ADDRESS = re.compile(r"(ray://)?(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9][A-Za-z0-9._-]*)(:[0-9]{1,5})?")


def ray_alone_is_local(args: list[str]) -> list[str]:
    """Command-line arguments with a bare ``--ray`` (last, or followed by another option)
    written ``--ray=local``: Typer options cannot take an optional value, so this is where
    ``--ray [ADDRESS]`` is read. Arguments after ``--`` are left alone."""
    out: list[str] = []
    for position, arg in enumerate(args):
        if arg == "--":
            out.extend(args[position:])
            break
        following = args[position + 1] if position + 1 < len(args) else None
        out.append("--ray=local" if arg == "--ray" and (following is None or following.startswith("-")) else arg)
    return out


class RayCommand(TyperCommand):
    """The commands that take ``--ray [ADDRESS]`` (stats, compare, export)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, ray_alone_is_local(args))


def ray_options(address: str, *, verbose: bool = False) -> Any:
    """:class:`~attnviz.distributed.engine.RayOptions` for a ``--ray`` value."""
    from attnviz.distributed.engine import RayOptions

    address = checked_address(address) or "local"
    return RayOptions(address=None if address == "local" else address, verbose=verbose)


def checked_address(address: str | None) -> str | None:
    """A ``--ray`` value as the engine takes it (``local`` and ``auto`` in lower case), or a
    usage error, while the command line is read, for what cannot be an address (a text
    given after a bare ``--ray``, say)."""
    if address is None:
        return None
    from attnviz.errors import SelectionError
    from attnviz.safety import printable

    address = address.strip()
    if address.lower() in {"local", "auto"}:
        return address.lower()
    if not _ADDRESS.fullmatch(address):
        raise SelectionError(
            f"--ray '{printable(address[:60])}' is not a Ray address",
            hint="give local, auto, HOST:PORT or ray://HOST:PORT (--ray alone: this machine)",
        )
    return address


def refuse_with_ray(ray: str | None, **flags: bool) -> None:
    """A usage error when ``--ray`` is combined with options it cannot serve (``flags``:
    the flag, as written, and whether it was given)."""
    if ray is None:
        return
    given = [flag for flag, on in flags.items() if on]
    if given:
        from attnviz.errors import SelectionError

        raise SelectionError(
            f"--ray streams per-head sums; {' and '.join(given)} need{'s' if len(given) == 1 else ''} whole maps "
            "in one process",
            hint="drop --ray for this run",
        )


class InputNotes:
    """Collects what the workers report per input, worded as a single-process run words it,
    and moves ``progress`` (a :class:`~attnviz.cli._progress.TextsProgress`) on."""

    def __init__(self, items: list[Any], problems: list[str], progress: Any = None) -> None:
        self.items, self.problems, self.progress = items, problems, progress

    def __call__(self, index: int, error: str | None, truncated: int, unknown: str | None = None) -> None:
        from attnviz.cli._output import warn

        text = self.items[index].text
        if error is not None:
            self.problems.append(f"'{text[:40]}': {error}")
        elif truncated:
            warn(f"'{text[:40]}…' was cut to fit the model ({truncated} tokens dropped)")
        if error is None and unknown:
            warn(unknown)
        if self.progress is not None:
            self.progress.advance()
