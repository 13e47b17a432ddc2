"""Atomic file writes: a file appears whole under its final name or not at all."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
import threading
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
_UMASK_LOCK = threading.Lock()


def new_file_mode() -> int:
    """The mode a new file gets under the process umask (``0o666 & ~umask``)."""
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return 0o666 & ~mask


def open_no_follow(path: str | os.PathLike[str], flags: int, mode: int = 0o666) -> int:
    """``os.open`` that refuses a symbolic link as the last part of ``path`` (``O_NOFOLLOW``):
    a planted link must not make an export create or append to a file elsewhere."""
    try:
        return os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP or (exc.errno == errno.EMLINK and os.path.islink(path)):
            raise OutputWriteError(
                f"{path} is a symbolic link; attnviz does not write through links in its output",
                hint="remove the link, or choose another directory",
            ) from exc
        raise


def refuse_special(path: str | os.PathLike[str]) -> None:
    """Refuse to replace a FIFO, a device or a socket with a regular file."""
    try:
        info = os.lstat(path)
    except OSError:
        return
    if (
        stat.S_ISFIFO(info.st_mode)
        or stat.S_ISCHR(info.st_mode)
        or stat.S_ISBLK(info.st_mode)
        or stat.S_ISSOCK(info.st_mode)
    ):
        what = "a FIFO" if stat.S_ISFIFO(info.st_mode) else "a socket" if stat.S_ISSOCK(info.st_mode) else "a device"
        raise OutputWriteError(f"{path} is {what}, not a file", hint="give the path of a regular file")


class DirectoryLock:
    """An OS lock (``flock``; ``msvcrt.locking`` on Windows) on ``DIR/.attnviz.lock`` held
    while an export writes to ``DIR``. The OS drops it when the process dies, however it
    dies, so a crashed run never leaves the directory stuck (unlike a pid file)."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.path = Path(directory) / LOCK_NAME
        self._handle: IO[Any] | None = None

    def acquire(self) -> DirectoryLock:
        try:
            fd = open_no_follow(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, new_file_mode())
            handle = os.fdopen(fd, "a+b")
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
    refuse_special(target)
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
    the rename, which survives power loss but costs about a millisecond per file. A new
    file gets the umask's mode; a replaced file keeps its own. A FIFO or device at ``path``
    is refused (a symbolic link there is replaced, never written through).
    """
    target = Path(path)
    refuse_special(target)
    try:
        existing = os.lstat(target)
        mode = stat.S_IMODE(existing.st_mode) if stat.S_ISREG(existing.st_mode) else new_file_mode()
    except OSError:
        mode = new_file_mode()
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
        os.chmod(temp_name, mode)
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
