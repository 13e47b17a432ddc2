"""Atomic file writes: a file appears whole under its final name or not at all."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from attnviz.errors import OutputWriteError


def _describe(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "the disk is full"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "permission denied"
    return exc.strerror or str(exc)


LOCK_NAME = ".attnviz.lock"


class DirectoryLock:
    """An OS lock (``flock``; ``msvcrt.locking`` on Windows) on ``DIR/.attnviz.lock`` held
    while an export writes to ``DIR``. The OS drops it when the process dies, however it
    dies, so a crashed run never leaves the directory stuck (unlike a pid file)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._handle: IO[Any] | None = None

    def acquire(self) -> DirectoryLock:
        try:
            handle = open(self.path, "a+b")  # noqa: SIM115 - held until release()
        except OSError as exc:
            raise OutputWriteError(f"cannot create the lock file {self.path}: {_describe(exc)}") from exc
        try:
            try:
                import fcntl

                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # pragma: no cover - Windows
                import msvcrt

                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)  # type: ignore[attr-defined]
        except OSError as exc:
            handle.close()
            raise OutputWriteError(
                f"another attnviz export is writing to {self.path.parent}",
                hint="wait for it to finish, or export to another directory",
            ) from exc
        self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            self._handle.close()  # closing the file releases the lock
            self._handle = None

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def ensure_directory(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` (and parents) or raise :class:`OutputWriteError` naming it."""
    directory = Path(path)
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputWriteError(
            f"cannot create directory {directory}: {_describe(exc)}",
            hint="choose a directory you can write to",
        ) from exc
    if not os.access(directory, os.W_OK | os.X_OK):
        raise OutputWriteError(
            f"cannot write to directory {directory}: permission denied",
            hint="choose a directory you can write to",
        )
    return directory


def check_writable(path: str | os.PathLike[str]) -> None:
    """Fail early (before any model is loaded) when ``path``'s directory cannot be written."""
    target = Path(path)
    if target.is_dir():
        raise OutputWriteError(f"{target} is a directory", hint="give a file name such as out.png")
    parent = target.parent if str(target.parent) else Path(".")
    if not parent.exists():
        ensure_directory(parent)
    elif not parent.is_dir():
        raise OutputWriteError(f"cannot write {target}: {parent} is not a directory")
    elif not os.access(parent, os.W_OK | os.X_OK):
        raise OutputWriteError(
            f"cannot write {target}: permission denied in {parent}",
            hint="choose a directory you can write to",
        )


def atomic_write(
    path: str | os.PathLike[str],
    write: Callable[[IO[Any]], Any],
    *,
    binary: bool = True,
    durable: bool = False,
) -> Path:
    """Call ``write(handle)`` on a temporary file beside ``path``, then rename it into place.

    A killed process, a full disk or Ctrl-C leaves either the old file or the complete new
    one, never a truncated file (the rename is atomic). ``durable=True`` also fsyncs before
    the rename, which survives power loss but costs about a millisecond per file.
    """
    target = Path(path)
    parent = target.parent if str(target.parent) else Path(".")
    try:
        fd, temp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=parent)
    except OSError as exc:
        raise OutputWriteError(
            f"cannot write {target}: {_describe(exc)}", hint="choose a directory you can write to"
        ) from exc
    try:
        handle: IO[Any] = os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8")
        with handle:
            write(handle)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
        os.chmod(temp_name, 0o644)
        os.replace(temp_name, target)
    except BaseException as exc:
        try:
            os.unlink(temp_name)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise OutputWriteError(f"cannot write {target}: {_describe(exc)}") from exc
        raise
    return target
