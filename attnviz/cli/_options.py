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
        metavar="NAME",
        help="Alias (minilm = bundled offline default; bert, distilbert, roberta, gpt2, t5, bart), "
        "Hugging Face hub id, or local directory.",
    ),
]
DeviceOpt = Annotated[str, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps.")]
DtypeOpt = Annotated[
    str,
    typer.Option(
        "--dtype",
        metavar="DTYPE",
        help="auto (the checkpoint's dtype on a GPU, float32 on CPU), float32, bfloat16 or float16.",
    ),
]
DeviceMapOpt = Annotated[
    Optional[str],
    typer.Option(
        "--device-map",
        metavar="MAP",
        help="auto: spread a model too big for one GPU over the GPUs and CPU (needs accelerate).",
    ),
]
RevisionOpt = Annotated[Optional[str], typer.Option("--revision", metavar="REV", help="Hub branch, tag or commit.")]
TrustOpt = Annotated[
    bool, typer.Option("--trust-remote-code", help="Allow the checkpoint's own Python code (off by default).")
]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Show the libraries' logs and progress bars.")]
LayerOpt = Annotated[
    str, typer.Option("--layer", "-l", metavar="SPEC", help="0-based layer: index, range (2-4), list (0,3) or all.")
]
HeadOpt = Annotated[
    str, typer.Option("--head", "-H", metavar="SPEC", help="0-based head: index, range (2-4), list (0,3) or all.")
]
WordsOpt = Annotated[bool, typer.Option("--words", help="Merge sub-word tokens into words (sum to, mean from).")]
TokenizerWordsOpt = Annotated[
    bool,
    typer.Option(
        "--tokenizer-words",
        help="With --words: merge into the tokenizer's own words (didn't -> didn / ' / t) "
        "instead of whitespace-separated ones.",
    ),
]


def word_rule(words: bool, tokenizer_words: bool) -> bool | str:
    """What ``apply_transforms(words=...)`` takes for the two flags."""
    if tokenizer_words and not words:
        from attnviz.errors import SelectionError

        raise SelectionError("--tokenizer-words chooses how --words merges tokens", hint="add --words")
    return "tokenizer" if tokenizer_words else words


NoSpecialOpt = Annotated[
    bool, typer.Option("--no-special", help="Hide special tokens ([CLS], [SEP], <s>...) and renormalise rows.")
]
KindOpt = Annotated[
    Optional[str],
    typer.Option("--kind", "-k", metavar="KIND", help="encoder, decoder or cross (default: the model's first)."),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one machine-readable JSON document to stdout.")]
OutOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--out", "-o", metavar="FILE", help="Write a file: .png .svg .pdf image, .html page, .npz .json data."
    ),
]
NoTruncateOpt = Annotated[
    bool, typer.Option("--no-truncate", help="Fail on texts longer than the model's maximum instead of cutting them.")
]
CmapOpt = Annotated[str, typer.Option("--cmap", metavar="CMAP", help="Matplotlib colormap for images.")]
FileOpt = Annotated[
    Optional[Path],
    typer.Option("--file", "-f", metavar="FILE", help="Text or JSONL file, one text per line ('-' = stdin)."),
]
BatchSizeOpt = Annotated[
    int, typer.Option("--batch-size", metavar="N", min=1, help="Texts per forward pass (at most).")
]
EncodingErrorsOpt = Annotated[
    str,
    typer.Option("--encoding-errors", metavar="MODE", help="strict (bad UTF-8 lines fail) or replace."),
]
ImageOutOpt = Annotated[
    Optional[Path],
    typer.Option("--out", "-o", metavar="FILE", help="Draw the per-head matrix as an image: .png, .svg or .pdf."),
]


def check_query(query: Optional[int], view: Optional[str]) -> None:
    """``--query`` only means something to the neuron view: given with another view it is
    a usage error, not silently ignored."""
    if query is None:
        return
    from attnviz.errors import SelectionError
    from attnviz.plan import normalise_view

    if normalise_view(view) != "neuron":
        raise SelectionError(
            "--query chooses the neuron view's query token, and this is not the neuron view",
            hint="add --view neuron, with one --layer and one --head",
        )


def check_image_output(out: Optional[Path], command: str) -> None:
    """``-o`` of stats and compare must be a writable image path (checked before loading)."""
    if out is None:
        return
    from attnviz.errors import SelectionError
    from attnviz.io import check_writable
    from attnviz.render import IMAGE_SUFFIXES

    if out.suffix.lower() not in IMAGE_SUFFIXES:
        what = f"'{out.suffix}' is not one" if out.suffix else f"{out} has no extension"
        raise SelectionError(f"{command} -o draws an image; {what}", hint="use .png, .svg or .pdf")
    check_writable(out)


MaxBytesOpt = Annotated[
    str,
    typer.Option("--max-bytes", metavar="SIZE", help="Largest array data read from the file (e.g. 500M, 8G)."),
]


def check_cmap(name: str) -> None:
    """An unknown ``--cmap`` is a one-line error before any work (matplotlib is imported
    only when the name is not the default)."""
    if name == "viridis":
        return
    import matplotlib

    if name not in matplotlib.colormaps:
        from attnviz.errors import SelectionError

        close = [c for c in sorted(matplotlib.colormaps) if c.lower().startswith(name[:2].lower())][:6]
        raise SelectionError(
            f"unknown colour map '{name}'",
            hint="matplotlib colormaps, e.g. " + ", ".join(close or ["viridis", "magma", "cividis", "Blues"]),
        )


ViewOpt = Annotated[
    str,
    typer.Option(
        "--view",
        metavar="VIEW",
        help="auto, head, layer, grid, mean, rollout, flow, norm or neuron (auto: by the selection; "
        "norm: norm-based weights; neuron: one head's query and key vectors, with -l and -H).",
    ),
]


ScaleOpt = Annotated[
    str,
    typer.Option(
        "--scale",
        metavar="SCALE",
        help="Colour scale: keys (the top colour from the non-special key columns; [CLS], [SEP] and a "
        "decoder's first token drawn saturated, marked, their maximum in the legend) or full.",
    ),
]


def check_scale(scale: str) -> None:
    """An unknown ``--scale`` is a one-line error before any work."""
    from attnviz.render.colors import SCALES

    if scale not in SCALES:
        from attnviz.errors import SelectionError

        raise SelectionError(f"unknown --scale '{scale}'", hint=f"choose one of: {', '.join(SCALES)}")


ColumnsOpt = Annotated[
    Optional[str],
    typer.Option(
        "--columns",
        metavar="NAMES",
        help="Statistics in the table: comma-separated names or short names (ent,dist,1st,sep,punc,self,"
        "prev,next,loc) or all (default: as many as fit the terminal).",
    ),
]
