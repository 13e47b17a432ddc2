"""The export directory's records: ``manifest.jsonl`` (one line per finished input) and
``export.json`` (the settings a resumed run must share)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from attnviz.errors import OutputWriteError, SelectionError
from attnviz.io import atomic_write, ensure_directory

MANIFEST = "manifest.jsonl"
SETTINGS = "export.json"


def read_manifest(path: Path) -> dict[int, dict[str, Any]]:
    """Last record per line; a torn last line (a killed write) is ignored."""
    records: dict[int, dict[str, Any]] = {}
    if not path.exists():
        return records
    with open(path, encoding="utf-8", errors="replace") as handle:
        for raw in handle:
            try:
                record = json.loads(raw)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("line"), int):
                records[record["line"]] = record
    return records


class ManifestWriter:
    """Append-only JSONL; each record goes out in one write so a record is whole or absent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self.handle = open(path, "a", encoding="utf-8")  # noqa: SIM115
        except OSError as exc:
            raise OutputWriteError(f"cannot write {path}: {exc.strerror or exc}") from exc

    def append(self, record: dict[str, Any]) -> None:
        try:
            self.handle.write(manifest_line(record))
            self.handle.flush()
        except OSError as exc:
            raise OutputWriteError(
                f"cannot write {self.path}: {exc.strerror or exc}", hint="free some space, then run again with --resume"
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
                previous = json.loads(settings_path.read_text(encoding="utf-8"))
                if previous != settings:
                    changed = sorted(k for k in settings if previous.get(k) != settings[k])
                    raise SelectionError(
                        f"{out_dir} was exported with different settings ({', '.join(changed)})",
                        hint="resume with the same options, or use --overwrite or another directory",
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
                hint="pass --resume to continue it, --overwrite to start again, or choose another -o",
            )
    text = json.dumps(settings, indent=2)
    atomic_write(settings_path, lambda handle: handle.write(text), binary=False)
    return done
