"""What an export writes for every text, and what it counts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from attnviz.errors import SelectionError

EXPORT_VIEWS = ("head", "layer", "grid", "mean", "rollout", "flow", "norm")
EXPORT_FORMATS = ("png", "svg", "pdf", "npz", "json", "html")


@dataclass(frozen=True)
class ExportOptions:
    """What to write for every text. Layers and heads are 0-based specs (``all``, ``2-4``)."""

    out_dir: Path
    views: tuple[str, ...] = ("grid",)
    formats: tuple[str, ...] = ("png",)
    kind: str | None = None
    layers: str = "all"
    heads: str = "all"
    words: bool | str = False
    no_special: bool = False
    cmap: str = "viridis"
    scale: str = "keys"
    batch_size: int = 16
    workers: int | None = None
    resume: bool = False
    overwrite: bool = False
    truncate: bool = True
    encoding_errors: str = "strict"

    def validate(self) -> None:
        for view in self.views:
            if view not in EXPORT_VIEWS:
                raise SelectionError(f"unknown view '{view}'", hint=f"choose from: {', '.join(EXPORT_VIEWS)}")
        for fmt in self.formats:
            if fmt not in EXPORT_FORMATS:
                raise SelectionError(f"unknown format '{fmt}'", hint=f"choose from: {', '.join(EXPORT_FORMATS)}")
        if not self.views or not self.formats:
            raise SelectionError("give at least one view and one format")
        if "norm" in self.views and (self.words or self.no_special):
            raise SelectionError(
                "an export's norm view draws the norm-based weights as extracted; it does not combine with "
                "{words} or {no_special}",
                hint="show the norm-based weights one text at a time for those, or export the norm view on its own",
                option=("words", "no_special"),
            )
        if self.resume and self.overwrite:
            raise SelectionError("{resume} and {overwrite} contradict each other", option=("resume", "overwrite"))
        if self.batch_size < 1:
            raise SelectionError("{batch_size} must be at least 1", option="batch_size")

    def settings(self, model: str) -> dict[str, Any]:
        """The choices a resumed run must share with the run it continues."""
        return {
            "model": model,
            "views": list(self.views),
            "formats": list(self.formats),
            "kind": self.kind,
            "layers": self.layers,
            "heads": self.heads,
            "words": self.words,
            "no_special": self.no_special,
            "cmap": self.cmap,
            **({"scale": self.scale} if self.scale != "keys" else {}),
        }


@dataclass
class ExportSummary:
    """Counts of one run: ``exported`` now, ``resumed`` (done by an earlier run), ``failed``."""

    out_dir: str
    total: int = 0
    exported: int = 0
    resumed: int = 0
    failed: int = 0
    truncated: int = 0
    files: int = 0
    seconds: float = 0.0
    interrupted: bool = False
    aborted: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
