"""`attnviz lesson TEXT`: the transformer's core concepts on the learner's own sentence."""

from __future__ import annotations

import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Optional

import typer

from attnviz.cli._options import DeviceOpt, JsonOpt, ModelOpt, VerboseOpt
from attnviz.cli._output import note, stderr_console

STEPS = 9


def _output_target(out: Path) -> str:
    """``page`` for .html, ``folder`` for a directory (existing, or a path ending in / or
    without a suffix); anything else is a usage error."""
    from attnviz.errors import OutputFormatError

    if str(out).endswith(("/", "\\")) or out.is_dir() or (not out.suffix and not out.exists()):
        return "folder"
    if out.suffix.lower() in (".html", ".htm"):
        return "page"
    raise OutputFormatError(
        f"lesson -o writes a page (.html) or a folder of PNGs, not '{out.suffix}'",
        hint="use -o lesson.html or -o lesson/",
    )


def lesson(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The sentence to learn from ('-' reads stdin).")],
    model: ModelOpt = "minilm",
    target: Annotated[
        Optional[str],
        typer.Option("--target", metavar="TEXT", help="Decoder text of encoder-decoders (default: TEXT itself)."),
    ] = None,
    step: Annotated[
        Optional[int],
        typer.Option("--step", "-s", metavar="N", min=1, max=STEPS, help="Show step N (1-9) with its picture."),
    ] = None,
    all_steps: Annotated[bool, typer.Option("--all", help="Show all nine steps with their pictures.")] = False,
    query: Annotated[
        Optional[int],
        typer.Option("--query", metavar="N", min=0, help="Step 4's 0-based query token (default: the last word)."),
    ] = None,
    layer: Annotated[
        Optional[int], typer.Option("--layer", "-l", metavar="N", min=0, help="Step 4's 0-based layer.")
    ] = None,
    head: Annotated[
        Optional[int], typer.Option("--head", "-H", metavar="N", min=0, help="Step 4's 0-based head.")
    ] = None,
    out: Annotated[
        Optional[Path],
        typer.Option("--out", "-o", metavar="PATH", help="lesson.html (one offline page) or DIR/ (one PNG per step)."),
    ] = None,
    json_output: JsonOpt = False,
    device: DeviceOpt = "auto",
    verbose: VerboseOpt = False,
) -> None:
    """Walk through a transformer's core concepts with the model's own numbers on TEXT.

    Nine steps: tokenization, embeddings, positional encoding, self-attention, multi-head
    attention, feed-forward layers, residual connections, layer normalization, encoder and
    decoder. Without options: every step's sentences; --step N or --all adds the pictures.
    """
    from attnviz.cli.show import read_text_argument
    from attnviz.errors import InputError

    text = read_text_argument(text)
    if not text.strip():
        raise InputError("the text is empty", hint='give a sentence, e.g. attnviz lesson "AI changes everything"')
    if step is not None and all_steps:
        raise InputError("--step and --all both choose what to show", hint="give one of them")
    kind = _output_target(out) if out is not None else None
    if out is not None:
        from attnviz.io import check_writable

        if kind == "page":
            check_writable(out)
        else:
            from attnviz.io import ensure_directory

            ensure_directory(out)

    from attnviz.cli._common import refuse_early

    refuse_early(model, None, "all", "all")
    from attnviz.cli._output import quiet_unless
    from attnviz.lesson import build_lesson
    from attnviz.models import load_model

    spinner = stderr_console().status(f"loading {model}…") if sys.stderr.isatty() and not verbose else nullcontext()
    with spinner:
        quiet_unless(verbose)
        loaded = load_model(model, device=device, verbose=verbose)
        built = build_lesson(text, model=loaded, target=target, query=query, layer=layer, head=head, verbose=verbose)
    from attnviz.cli._common import warn_unknown_tokens

    warn_unknown_tokens(loaded.tokenizer, built.capture.result.tokens)
    dropped = built.capture.result.truncated_tokens
    if dropped:
        from attnviz.cli._output import warn

        warn(f"the input was cut to the model's maximum of {loaded.max_length} tokens ({dropped} tokens dropped)")

    if out is not None:
        if kind == "page":
            from attnviz.io import atomic_write
            from attnviz.lesson.page import render_lesson_page

            page = render_lesson_page(built)
            atomic_write(out, lambda handle: handle.write(page), binary=False)
            note(f"wrote {out}")
        else:
            from attnviz.lesson.figures import write_step_images

            for path in write_step_images(built, out):
                note(f"wrote {path}")
    if json_output:
        import json

        print(json.dumps(built.to_dict(), ensure_ascii=False))
        return
    if out is not None and step is None and not all_steps:
        return
    from attnviz.cli._output import stdout_console
    from attnviz.lesson.terminal import print_lesson, print_overview

    console = stdout_console()
    if step is None and not all_steps:
        print_overview(built, console)
    else:
        print_lesson(built, console, None if all_steps else [step] if step else None)
