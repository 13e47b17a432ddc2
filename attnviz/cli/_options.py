"""Options shared by several commands, as reusable ``Annotated`` aliases."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Alias (minilm = bundled offline default; bert, distilbert, roberta, gpt2, t5, bart), "
        "Hugging Face hub id, or local directory.",
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto, cpu, cuda, cuda:N or mps.")]
DtypeOpt = Annotated[
    str,
    typer.Option(
        "--dtype", help="auto (the checkpoint's dtype on a GPU, float32 on CPU), float32, bfloat16 or float16."
    ),
]
DeviceMapOpt = Annotated[
    Optional[str],
    typer.Option(
        "--device-map", help="auto: spread a model too big for one GPU over the GPUs and CPU (needs accelerate)."
    ),
]
RevisionOpt = Annotated[Optional[str], typer.Option("--revision", help="Hub branch, tag or commit.")]
TrustOpt = Annotated[
    bool, typer.Option("--trust-remote-code", help="Allow the checkpoint's own Python code (off by default).")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show the libraries' logs and progress bars.")]
LayerOpt = Annotated[str, typer.Option("--layer", "-l", help="0-based layer: index, range (2-4), list (0,3) or all.")]
HeadOpt = Annotated[str, typer.Option("--head", "-H", help="0-based head: index, range (2-4), list (0,3) or all.")]
WordsOpt = Annotated[bool, typer.Option("--words", help="Merge sub-word tokens into words (sum to, mean from).")]
NoSpecialOpt = Annotated[
    bool, typer.Option("--no-special", help="Hide special tokens ([CLS], [SEP], <s>...) and renormalise rows.")
]
KindOpt = Annotated[
    Optional[str], typer.Option("--kind", "-k", help="encoder, decoder or cross (default: the model's first).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON document to stdout.")]
OutOpt = Annotated[
    Optional[Path],
    typer.Option("--out", "-o", help="Write a file: .png .svg .pdf image, .html page, .npz .json data."),
]
NoTruncateOpt = Annotated[
    bool, typer.Option("--no-truncate", help="Fail on texts longer than the model's maximum instead of cutting them.")
]
CmapOpt = Annotated[str, typer.Option("--cmap", help="Matplotlib colormap for images.")]
