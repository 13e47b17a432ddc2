"""The export directory's records: ``manifest.jsonl`` (one line per finished input) and
``export.json`` (the settings a resumed run must share)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from attnviz.errors import OutputWriteError, SelectionError
from attnviz.io import atomic_write, ensure_directory, new_file_mode, open_no_follow

MANIFEST = "manifest.jsonl"
SETTINGS = "export.json"


def read_manifest(path: Path) -> dict[int, dict[str, Any]]:
    """Last record per line; a torn last line (a killed write) is ignored."""
    records: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return records
    with os.fdopen(open_no_follow(path, os.O_RDONLY), encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except (json.JSONDecodeError, RecursionError):
                continue
            if _valid_record(record):
                records[record["line"]] = record
    return records


def _valid_record(record: Any) -> bool:
    """A record a resumed run can trust: an int line, and file names that stay inside the
    directory (a damaged or crafted record is treated as not done)."""
    if not isinstance(record, dict) or type(record.get("line")) is not int:
        return False
    files = record.get("files", [])
    return isinstance(files, list) and all(
        isinstance(f, str) and f and "/" not in f and "\\" not in f and f not in (".", "..") for f in files
    )


class ManifestWriter:
    """Append-only JSONL; each record goes out in one write so a record is whole or absent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            fd = open_no_follow(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, new_file_mode())
            self.handle = os.fdopen(fd, "a", encoding="utf-8")
        except OSError as exc:
            raise OutputWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc

    def append(self, record: dict[str, Any]) -> None:
        try:
            self.handle.write(manifest_line(record))
            self.handle.flush()
        except OSError as exc:
            raise OutputWriteError(
                f"cannot write {self.path}: {exc.strerror or exc}",
                hint="free some space, then run again with {resume}",
                option="resume",
            ) from exc

    def close(self) -> None:
        try:
            self.handle.close()
        except OSError:
            pass


def manifest_line(record: dict[str, Any]) -> str:
    """One JSON line, readable UTF-8 where possible; a text holding lone surrogates (not
    encodable as UTF-8) is written with ASCII escapes, which read back to the same text."""
    line = json.dumps(record, ensure_ascii=False)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        line = json.dumps(record)
    return line + "\n"


def prepare_directory(options: Any, model: str) -> dict[int, dict[str, Any]]:
    """Create the output directory, check resume/overwrite, return finished records."""
    out_dir = ensure_directory(options.out_dir)
    manifest_path = out_dir / MANIFEST
    settings_path = out_dir / SETTINGS
    for stale in out_dir.glob(".*.part"):  # temp files of a killed run
        try:
            stale.unlink()
        except OSError:
            pass
    settings = options.settings(model)
    done: dict[int, dict[str, Any]] = {}
    if manifest_path.exists():
        if options.resume:
            if settings_path.exists():
                previous = _read_settings(settings_path)
                if previous != settings:
                    changed = sorted(k for k in settings if previous.get(k) != settings[k]) or ["unknown"]
                    raise SelectionError(
                        f"{out_dir} was exported with different settings ({', '.join(changed)})",
                        hint="resume with the same options, or use {overwrite} or another directory",
                        option="overwrite",
                    )
            for line, record in read_manifest(manifest_path).items():
                if record.get("status") == "ok" and all((out_dir / f).exists() for f in record.get("files", [])):
                    done[line] = record
            text = "".join(manifest_line(r) for _, r in sorted(done.items()))
            atomic_write(manifest_path, lambda handle: handle.write(text), binary=False, durable=True)
        elif options.overwrite:
            manifest_path.unlink()
        else:
            raise SelectionError(
                f"{out_dir} already holds an export ({MANIFEST})",
                hint="pass {resume} to continue it, {overwrite} to start again, or choose another {output}",
                option=("resume", "overwrite", "output"),
            )
    text = json.dumps(settings, indent=2)
    atomic_write(settings_path, lambda handle: handle.write(text), binary=False)
    return done


def _read_settings(path: Path) -> dict[str, Any]:
    """``export.json`` of the run being resumed; a damaged one is a one-line refusal."""
    try:
        with os.fdopen(open_no_follow(path, os.O_RDONLY), encoding="utf-8") as handle:
            value = json.load(handle)
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise SelectionError(
            f"{path} is damaged ({type(exc).__name__}); the settings of the run to resume are unknown",
            hint="start again with {overwrite}, or export to another directory",
            option="overwrite",
        ) from exc
    if not isinstance(value, dict):
        raise SelectionError(
            f"{path} is damaged (not a JSON object); the settings of the run to resume are unknown",
            hint="start again with {overwrite}, or export to another directory",
            option="overwrite",
        )
    return value
