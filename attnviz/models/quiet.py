"""Quieting transformers and huggingface_hub: their logs, progress bars and warnings stay
off our stderr, for a block (:func:`quiet_libraries`, for library users) or for the rest of
the process (:func:`silence_libraries`, what the command line does unless ``verbose``).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator

_SILENCED = False


def _quiet() -> tuple[int, int]:
    """Turn transformers' and huggingface_hub's logs and progress bars down; returns the
    previous (transformers, huggingface_hub) log levels."""
    import transformers
    from huggingface_hub import utils as hub_utils

    previous = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    hub_logger = logging.getLogger("huggingface_hub")
    previous_hub = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    hub_utils.disable_progress_bars()
    return previous, previous_hub


def silence_libraries() -> None:
    """Silence transformers' and huggingface_hub's logs, progress bars and warnings for the
    rest of the process (the command line does this once, unless ``--verbose``)."""
    global _SILENCED
    _quiet()
    warnings.filterwarnings("ignore", module=r"(transformers|huggingface_hub|torch)(\..*)?")
    _SILENCED = True


@contextlib.contextmanager
def quiet_libraries(verbose: bool = False) -> Iterator[None]:
    """Silence transformers' and huggingface_hub's progress bars, logs and warnings while
    the block runs, then restore them (for library users; a no-op once
    :func:`silence_libraries` ran).

    Our stderr is for our own messages; ``--verbose`` lets the libraries speak.
    """
    if verbose or _SILENCED:
        yield
        return
    import transformers
    from huggingface_hub import utils as hub_utils

    previous, previous_hub = _quiet()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers.utils.logging.set_verbosity(previous)
        transformers.utils.logging.enable_progress_bar()
        hub_utils.enable_progress_bars()
        logging.getLogger("huggingface_hub").setLevel(previous_hub)
