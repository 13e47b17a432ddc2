"""The ``--ray`` option shared by stats, compare and export (no Ray import here)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

RayOpt = Annotated[
    Optional[str],
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help="Run on Ray (pip install 'attnviz[ray]'): 'local' starts an instance on this machine's cores, "
        "'auto' joins the cluster started here with 'ray start', or give the head's address.",
    ),
]


def ray_options(address: str, *, verbose: bool = False) -> Any:
    """:class:`~attnviz.distributed.engine.RayOptions` for a ``--ray`` value."""
    from attnviz.distributed.engine import RayOptions

    return RayOptions(address=None if address.strip().lower() == "local" else address.strip(), verbose=verbose)


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
    """Collects what the workers report per input, worded as a single-process run words it."""

    def __init__(self, items: list[Any], problems: list[str]) -> None:
        self.items, self.problems = items, problems

    def __call__(self, index: int, error: str | None, truncated: int) -> None:
        from attnviz.cli._output import warn

        text = self.items[index].text
        if error is not None:
            self.problems.append(f"'{text[:40]}': {error}")
        elif truncated:
            warn(f"'{text[:40]}…' was cut to fit the model ({truncated} tokens dropped)")
