"""`attnviz export FILE -o DIR`: heatmaps and data for every line of a file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from attnviz.cli._options import (
    BatchSizeOpt,
    CmapOpt,
    DeviceOpt,
    EncodingErrorsOpt,
    HeadOpt,
    JsonOpt,
    KindOpt,
    LayerOpt,
    ModelOpt,
    NoSpecialOpt,
    NoTruncateOpt,
    RevisionOpt,
    ScaleOpt,
    TokenizerWordsOpt,
    TrustOpt,
    VerboseOpt,
    WordsOpt,
    word_rule,
)
from attnviz.cli._progress import TextsProgress
from attnviz.cli._ray import RayOpt


def _split(values: list[str]) -> tuple[str, ...]:
    """Accept both repeated options and comma lists: --format png --format npz, --format png,npz."""
    out: list[str] = []
    for value in values:
        out.extend(v.strip().lower() for v in value.split(",") if v.strip())
    return tuple(dict.fromkeys(out))


_DEFAULT_VIEWS = ["grid"]  # read by Typer, never mutated


def export(
    file: Annotated[
        str,
        typer.Argument(
            metavar="FILE", help="Text file (one text per line), JSONL (text/pair/target/id), or - for stdin."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", metavar="FILE", help="Output directory (created if missing).")],
    view: Annotated[
        list[str], typer.Option("--view", metavar="VIEW", help="head, layer, grid, mean, rollout, flow (repeatable).")
    ] = _DEFAULT_VIEWS,
    fmt: Annotated[
        list[str], typer.Option("--format", metavar="FORMAT", help="png, svg, pdf, npz, json, html (repeatable).")
    ] = ["png"],  # noqa: B006
    model: ModelOpt = "minilm",
    kind: KindOpt = None,
    layer: LayerOpt = "all",
    head: HeadOpt = "all",
    words: WordsOpt = False,
    tokenizer_words: TokenizerWordsOpt = False,
    no_special: NoSpecialOpt = False,
    batch_size: BatchSizeOpt = 16,
    workers: Annotated[
        Optional[int],
        typer.Option("--workers", metavar="N", min=0, help="Rendering processes (default: CPU cores; 0 = in-process)."),
    ] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted or failed export in DIR.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Start again in a DIR that holds an export.")] = False,
    encoding_errors: EncodingErrorsOpt = "strict",
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or per-line warnings.")] = False,
    json_output: JsonOpt = False,
    no_truncate: NoTruncateOpt = False,
    cmap: CmapOpt = "viridis",
    scale: ScaleOpt = "keys",
    device: DeviceOpt = "auto",
    revision: RevisionOpt = None,
    trust_remote_code: TrustOpt = False,
    ray: RayOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Export attention for every line of FILE into DIR, with DIR/manifest.jsonl.

    With --ray, Ray workers (each holding the model) extract and write the files into DIR
    (shared storage on a cluster); this process writes the manifest, so --resume works alike.

    Exit codes: 0 every text exported; 1 some texts failed (see the manifest) or the
    directory could not be written; 2 bad usage or an unusable input file; 130 Ctrl-C
    (run again with --resume to finish)."""
    from attnviz.export import ExportOptions, count_inputs
    from attnviz.export import export as run_export

    options = ExportOptions(
        out_dir=out,
        views=_split(view),
        formats=_split(fmt),
        kind=kind,
        layers=layer,
        heads=head,
        words=word_rule(words, tokenizer_words),
        no_special=no_special,
        cmap=cmap,
        scale=scale,
        batch_size=batch_size,
        workers=workers,
        resume=resume,
        overwrite=overwrite,
        truncate=not no_truncate,
        encoding_errors=encoding_errors,
    )
    options.validate()
    from attnviz.cli._options import check_cmap, check_scale

    check_cmap(cmap)
    check_scale(scale)
    from attnviz.inputs import check_input

    check_input(file)  # a missing file or a directory fails before the model loads (a FIFO is not opened)
    if ray is not None:
        from attnviz.distributed.engine import import_ray

        import_ray()  # missing Ray: one line before the model loads
    from attnviz.plan import load_model_checked

    loaded = load_model_checked(
        model,
        revision=revision,
        layers=layer,
        heads=head,
        device="cpu" if ray is not None else device,
        weights=ray is None,  # with --ray, here only to check the options: the workers load the weights
        trust_remote_code=trust_remote_code,
        verbose=verbose,
        quiet=not verbose,
    )
    distributed: dict[str, Any] = {}
    if ray is not None:
        from attnviz.cli._ray import ray_options
        from attnviz.distributed.engine import ModelSpec

        distributed = {
            "ray": ray_options(ray, verbose=verbose),
            "spec": ModelSpec(model, device=device, revision=revision, trust_remote_code=trust_remote_code),
        }
    from attnviz.safety import printable

    show_progress = not quiet and sys.stderr.isatty()
    warnings: list[str] = []

    def on_warning(message: str) -> None:
        if not quiet:
            warnings.append(message)

    total_inputs = count_inputs(file) if show_progress else None
    import signal

    from attnviz.export import Terminated

    def on_term(signum: int, frame: Any) -> None:
        raise Terminated

    previous = signal.signal(signal.SIGTERM, on_term)  # SIGTERM stops as cleanly as Ctrl-C
    try:
        with TextsProgress("exporting", total_inputs, enabled=show_progress) as progress:

            def on_progress(summary: Any) -> None:
                progress.update(summary.total, summary.resumed)

            summary = run_export(file, loaded, options, on_progress=on_progress, on_warning=on_warning, **distributed)
    except KeyboardInterrupt as stop:
        what = "terminated" if isinstance(stop, Terminated) else "interrupted"
        print(
            f"{what}: finished texts are in {printable(out)}/manifest.jsonl; run again with --resume to finish",
            file=sys.stderr,
        )
        raise typer.Exit(code=143 if isinstance(stop, Terminated) else 130) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    for message in warnings[:20]:
        print(f"warning: {printable(message)}", file=sys.stderr)
    if len(warnings) > 20:
        print(
            f"warning: … {len(warnings) - 20} more warnings (cut texts: see 'truncated' in the manifest)",
            file=sys.stderr,
        )
    if json_output:
        print(json.dumps(summary.to_dict()))
    if not quiet:
        resumed = f"; {summary.resumed} done by an earlier run" if summary.resumed else ""
        failed = f"; {summary.failed} failed (see {printable(out)}/manifest.jsonl)" if summary.failed else ""
        rate = summary.exported / summary.seconds if summary.seconds else 0.0
        if summary.exported == 0 and summary.resumed and not summary.failed:
            print(f"nothing left to export: all {summary.resumed} texts were done by an earlier run", file=sys.stderr)
        else:
            print(
                f"exported {summary.exported} text{'' if summary.exported == 1 else 's'} ({summary.files} "
                f"file{'' if summary.files == 1 else 's'}) in {summary.seconds:.1f} s ({rate:.1f} texts/s) "
                f"to {printable(out)}{resumed}{failed}",
                file=sys.stderr,
            )
        for failure in summary.failures[:5]:
            error = str(failure["error"])
            where = "" if error.startswith(f"line {failure['line']}") else f"line {failure['line']}: "
            print(f"  {where}{printable(error)}", file=sys.stderr)
    if summary.failed:
        raise typer.Exit(code=1)
