"""`attnviz compare`: attention drift between two models, per head, with a CI gate."""

from __future__ import annotations

import json
from typing import Annotated, Any, Optional

import typer

from attnviz.cli._options import (
    BatchSizeOpt,
    DeviceOpt,
    EncodingErrorsOpt,
    FileOpt,
    HeadOpt,
    ImageOutOpt,
    JsonOpt,
    KindOpt,
    LayerOpt,
    NoSpecialOpt,
    NoTruncateOpt,
    TokenizerWordsOpt,
    TrustOpt,
    VerboseOpt,
    WordsOpt,
    check_image_output,
    word_rule,
)
from attnviz.cli._progress import TextsProgress
from attnviz.cli._ray import RayOpt
from attnviz.errors import CompareThresholdExceeded

FAIL_EXIT_CODE = CompareThresholdExceeded.exit_code


def compare(
    text: Annotated[Optional[str], typer.Argument(metavar="TEXT", help="One text (or use -f FILE).")] = None,
    file: FileOpt = None,
    models: Annotated[
        list[str],
        typer.Option("--model", "-m", metavar="NAME", help="Give exactly two: -m A -m B (alias, hub id, dir)."),
    ] = [],  # noqa: B006
    revisions: Annotated[
        Optional[list[str]], typer.Option("--revision", metavar="REV", help="Revision per model, in -m order.")
    ] = None,
    kind: KindOpt = None,
    layer: LayerOpt = "all",
    head: HeadOpt = "all",
    words: WordsOpt = False,
    tokenizer_words: TokenizerWordsOpt = False,
    no_special: NoSpecialOpt = False,
    fail_above: Annotated[
        Optional[float],
        typer.Option(
            "--fail-above",
            metavar="JS",
            help=f"Exit {FAIL_EXIT_CODE} when any head's Jensen-Shannon divergence exceeds this.",
        ),
    ] = None,
    top: Annotated[int, typer.Option("--top", metavar="N", min=1, help="Rows in the most-changed table.")] = 10,
    out: ImageOutOpt = None,
    json_output: JsonOpt = False,
    batch_size: BatchSizeOpt = 16,
    encoding_errors: EncodingErrorsOpt = "strict",
    no_truncate: NoTruncateOpt = False,
    device: DeviceOpt = "auto",
    trust_remote_code: TrustOpt = False,
    ray: RayOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """How much attention changed between two models, per layer and head.

    Jensen-Shannon divergence (base 2) and L1 distance between the attention of the two
    models on the same texts, averaged over query rows and texts.

    With --ray, the texts are spread over Ray workers that each hold both models.

    Exit codes: 0 ok; 1 load/IO failure or skipped lines; 2 bad input;
    3 (--fail-above) a head's divergence is over the threshold."""
    from attnviz.cli._common import gather_inputs
    from attnviz.errors import SelectionError

    if len(models) != 2:
        raise SelectionError(f"compare needs exactly two models, got {len(models)}", hint="pass -m A -m B")
    if revisions is not None and len(revisions) not in (1, 2):
        raise SelectionError("give --revision once per model (in -m order)")
    if fail_above is not None and not 0 <= fail_above <= 1:
        raise SelectionError("--fail-above is a Jensen-Shannon divergence between 0 and 1")
    check_image_output(out, "compare")
    items, problems = gather_inputs(text, file, encoding_errors=encoding_errors)
    if not items:
        raise SelectionError("no usable text in the input")
    revs: list[str | None] = list(revisions) if revisions else [None, None]
    revs = revs * 2 if len(revs) == 1 else revs
    from attnviz.plan import check_early

    for spec, revision in zip(models, revs):  # both models are checked before either loads
        check_early(spec, revision, layer, head)
    with TextsProgress("comparing", len(items)) as progress:
        if ray is not None:
            comparison = _on_ray(
                ray, items, problems, models, revs, layer, head, kind, word_rule(words, tokenizer_words), no_special,
                no_truncate, batch_size, device, trust_remote_code, verbose, progress,
            )  # fmt: skip
        else:
            comparison = _in_process(
                items, problems, models, revs, layer, head, kind, word_rule(words, tokenizer_words), no_special,
                no_truncate, batch_size, device, trust_remote_code, verbose, progress,
            )  # fmt: skip
        progress.update(len(items))
    _report(comparison, problems, words, out, json_output, fail_above, top)


def _in_process(  # type: ignore[no-untyped-def]
    items, problems, models, revs, layer, head, kind, rule, no_special, no_truncate, batch_size, device,
    trust_remote_code, verbose, progress,
):  # fmt: skip
    from attnviz.analysis.compare import compare_models
    from attnviz.cli._output import note
    from attnviz.plan import open_extractor
    from attnviz.transforms import apply_transforms

    extractors = []
    for spec, revision in zip(models, revs):
        extractor = open_extractor(
            spec,
            revision=revision,
            layers=layer,
            heads=head,
            truncate=not no_truncate,
            verbose=verbose,
            quiet=not verbose,
            device=device,
            trust_remote_code=trust_remote_code,
        )
        for message in extractor.notes:
            note(f"note: {message}")
        extractors.append(extractor)
    _warn_unknown(extractors[0], items)

    def taken() -> Any:
        """The items as the comparison takes them, a batch at a time: taking item k means the
        batches before its own are compared."""
        for number, item in enumerate(items):
            progress.update(number // batch_size * batch_size)
            yield item

    return compare_models(
        taken(),
        *extractors,
        kind=kind,
        no_special=no_special,
        transform=(lambda result: apply_transforms(result, words=rule)) if rule else None,
        batch_size=batch_size,
        on_problem=lambda item, message: problems.append(f"'{item.text[:40]}': {message}"),
    )


def _warn_unknown(extractor: Any, items: list[Any]) -> None:
    """The unknown-token warning of each text (the two models tokenize alike, or the
    comparison stops); a text that cannot be encoded is left to the comparison's problems."""
    from attnviz.cli._output import warn
    from attnviz.distributed.compare import unknown_warning

    for item in items:
        message = unknown_warning(extractor, item)
        if message:
            warn(message)


def _on_ray(  # type: ignore[no-untyped-def]
    address, items, problems, models, revs, layer, head, kind, rule, no_special, no_truncate, batch_size, device,
    trust_remote_code, verbose, progress,
):  # fmt: skip
    """The comparison on Ray workers, each holding both models (loaded only there)."""
    from attnviz.cli._output import note
    from attnviz.cli._ray import InputNotes, ray_options
    from attnviz.distributed.compare import distributed_comparison
    from attnviz.distributed.engine import ModelSpec, import_ray

    import_ray()
    spec_a, spec_b = (
        ModelSpec(spec, device=device, revision=revision, trust_remote_code=trust_remote_code)
        for spec, revision in zip(models, revs)
    )
    return distributed_comparison(
        items,
        spec_a,
        spec_b,
        ray_options(address, verbose=verbose),
        layers=layer,
        heads=head,
        kind=kind,
        words=rule,
        no_special=no_special,
        truncate=not no_truncate,
        batch_size=batch_size,
        on_input=InputNotes(items, problems, progress),
        on_note=lambda message: note(f"note: {message}"),
    )


def _report(comparison, problems, words, out, json_output, fail_above, top) -> None:  # type: ignore[no-untyped-def]
    """Problems, the image, the table or JSON, and the exit code."""
    from attnviz.cli._common import report_problems

    report_problems(problems)
    if words:
        comparison.notes.append("word level (--words)")
    if out is not None:
        from attnviz.render.image import save_figure
        from attnviz.render.matrix import head_matrix_figure

        fig = head_matrix_figure(
            comparison.js,
            comparison.layer_ids,
            comparison.head_ids,
            title=f"{comparison.model_a} vs {comparison.model_b} · {comparison.kind} · JS divergence per head"
            + (" · identical" if comparison.identical else ""),
            colorbar_label="Jensen-Shannon divergence (bits)",
            cmap="magma",
            min_range=0.1,
        )
        save_figure(fig, out)
        from attnviz.cli._output import note

        note(f"wrote {out}")
    if json_output:
        document = comparison.to_dict()
        document["fail_above"] = fail_above
        print(json.dumps(document))
    elif out is None:
        _print_table(comparison, top)
    if fail_above is not None:
        over = comparison.over(fail_above)
        if over:
            worst = ", ".join(f"L{h['layer']}H{h['head']}={h['js']:.4f}" for h in over[:5])
            raise CompareThresholdExceeded(
                f"{len(over)} head(s) over --fail-above {fail_above}: {worst}",
                hint="attention drifted between the two models",
            )
    if problems:
        raise typer.Exit(code=1)


def _print_table(comparison, top: int) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table
    from rich.text import Text

    from attnviz.cli._output import stdout_console
    from attnviz.safety import printable

    table = Table(
        title=Text(
            printable(f"{comparison.model_a} vs {comparison.model_b} · {comparison.kind} attention · ")
            + f"{comparison.texts} text(s) · most changed heads"
        ),
        title_justify="left",
    )
    for name in ("layer", "head", "JS divergence", "L1"):
        table.add_column(name, justify="right")
    for row in comparison.most_changed(top):
        table.add_row(str(row["layer"]), str(row["head"]), f"{row['js']:.4f}", f"{row['l1']:.4f}")
    console = stdout_console()
    if comparison.identical:
        console.print(
            f"identical: no head's attention differs (max JS {comparison.js.max():.1e} bits "
            f"over {comparison.js.size} heads and {comparison.texts} text{'' if comparison.texts == 1 else 's'})"
        )
        return
    console.print(table)
    console.print(
        f"max JS {comparison.js.max():.4f}, mean JS {comparison.js.mean():.4f} over {comparison.js.size} heads"
    )
