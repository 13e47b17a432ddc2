"""`attnviz stats`: per-head statistics and pattern labels, for one text or a corpus."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from attnviz.cli._options import (
    BatchSizeOpt,
    ColumnsOpt,
    DeviceOpt,
    EncodingErrorsOpt,
    FileOpt,
    HeadOpt,
    ImageOutOpt,
    JsonOpt,
    KindOpt,
    LayerOpt,
    ModelOpt,
    NoSpecialOpt,
    NoTruncateOpt,
    RevisionOpt,
    TokenizerWordsOpt,
    TrustOpt,
    VerboseOpt,
    WordsOpt,
    check_image_output,
    word_rule,
)
from attnviz.cli._progress import TextsProgress
from attnviz.cli._ray import RayOpt


def stats(
    text: Annotated[
        Optional[str], typer.Argument(metavar="TEXT", help="One text (or use -f FILE, or --merge).")
    ] = None,
    file: FileOpt = None,
    merge: Annotated[
        Optional[list[Path]], typer.Option("--merge", metavar="FILE", help="Merge statistics JSON shards (repeatable).")
    ] = None,
    model: ModelOpt = "minilm",
    kind: KindOpt = None,
    layer: LayerOpt = "all",
    head: HeadOpt = "all",
    words: WordsOpt = False,
    tokenizer_words: TokenizerWordsOpt = False,
    no_special: NoSpecialOpt = False,
    statistic: Annotated[
        str, typer.Option("--stat", metavar="NAME", help="Statistic drawn by -o (entropy, distance, first, ...).")
    ] = "entropy",
    out: ImageOutOpt = None,
    cluster: Annotated[
        bool,
        typer.Option(
            "--cluster",
            help="Cluster the heads by Jensen-Shannon distance: -o draws a seaborn clustermap, --json and the "
            "table add each head's cluster.",
        ),
    ] = False,
    clusters_wanted: Annotated[
        Optional[int],
        typer.Option(
            "--clusters", metavar="K", min=2, help="With --cluster: how many clusters (default sqrt(heads/2))."
        ),
    ] = None,
    json_output: JsonOpt = False,
    columns: ColumnsOpt = None,
    batch_size: BatchSizeOpt = 16,
    encoding_errors: EncodingErrorsOpt = "strict",
    no_truncate: NoTruncateOpt = False,
    device: DeviceOpt = "auto",
    revision: RevisionOpt = None,
    trust_remote_code: TrustOpt = False,
    ray: RayOpt = None,
    verbose: VerboseOpt = False,
) -> None:
    """Per-head statistics and pattern labels, for one text or a corpus.

    Entropy, attention distance, mass on [CLS]/[SEP]/punctuation/self/previous/next, and a
    pattern label, per layer and head (0-based). Averaged over every query position of every
    text; --json output can be merged exactly with --merge. With --ray, the texts are spread
    over Ray workers that each hold the model, and their sums merged as --merge does."""
    from attnviz.analysis.stats import (
        STATISTICS,
        HeadStatistics,
        head_statistics,
        merge_statistics,
        stream_statistics,
    )
    from attnviz.cli._common import extract_all, gather_inputs, note_outcome, report_problems
    from attnviz.errors import SelectionError

    if statistic not in STATISTICS:
        raise SelectionError(f"unknown statistic '{statistic}'", hint=f"choose one of: {', '.join(STATISTICS)}")
    check_image_output(out, "stats")
    problems: list[str] = []
    distances = None
    if merge:
        if cluster:
            raise SelectionError(
                "--cluster needs the attention itself; merged shards hold only sums",
                hint="run --cluster on the texts (-f FILE)",
            )
        if text is not None or file is not None:
            raise SelectionError("--merge combines saved shards; do not also give TEXT or -f")
        result = merge_statistics(HeadStatistics.load(path) for path in merge)
    else:
        from attnviz.cli._output import note
        from attnviz.cli._ray import refuse_with_ray
        from attnviz.plan import open_extractor
        from attnviz.transforms import apply_transforms

        refuse_with_ray(ray, **{"--words": bool(words or tokenizer_words), "--cluster": cluster})
        items, problems = gather_inputs(text, file, encoding_errors=encoding_errors)
        if not items:
            raise SelectionError("no usable text in the input")
    if not merge and ray is not None:
        with TextsProgress("stats", len(items)) as progress:
            result = _on_ray(
                ray, items, problems, model, revision, layer, head, kind, no_special, no_truncate, batch_size, device,
                trust_remote_code, verbose, progress,
            )  # fmt: skip
    elif not merge:
        extractor = open_extractor(
            model,
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
        with TextsProgress("stats", len(items)) as progress:
            if words or cluster:
                # Word merging averages query rows across a word, and head distances compare
                # whole rows of two heads: both need whole maps (one batch at a time).
                def extracted() -> Any:
                    for index, r in extract_all(extractor, items, problems, batch_size=batch_size):
                        progress.update(index + 1)
                        yield apply_transforms(r, words=word_rule(words, tokenizer_words), no_special=no_special)

                from attnviz.analysis.clusters import DistanceTap

                tap = DistanceTap(kind) if cluster else None
                result = head_statistics(tap(extracted()) if tap is not None else extracted(), kind)
                distances = tap.distances if tap is not None else None
            else:

                def on_input(index: int, outcome: Any) -> None:
                    note_outcome(extractor, items[index], outcome, problems)
                    progress.advance()

                result = stream_statistics(
                    extractor, items, kind=kind, no_special=no_special, batch_size=batch_size, on_input=on_input
                )
            progress.update(len(items))
    report_problems(problems)
    if out is not None and distances is not None:
        from attnviz.render.clustermap import clustermap_figure
        from attnviz.render.image import save_figure

        texts = f"{result.texts} text{'s' if result.texts != 1 else ''}"
        fig = clustermap_figure(
            distances,
            result.labels(),
            title=f"{result.model} · {result.kind} · heads clustered by Jensen-Shannon distance ({texts})",
            clusters=distances.clusters(clusters_wanted),
        )
        save_figure(fig, out, tight=True)
        from attnviz.cli._output import note

        note(f"wrote {out}")
    elif out is not None:
        from attnviz.render.image import save_figure
        from attnviz.render.matrix import head_matrix_figure

        fig = head_matrix_figure(
            result.means()[statistic],
            result.layer_ids,
            result.head_ids,
            title=f"{result.model} · {result.kind} · {statistic} per head ({result.texts} text{'s' if result.texts != 1 else ''})",
            colorbar_label=statistic
            + (" (nats)" if statistic == "entropy" else " (tokens)" if statistic == "distance" else " (mass)"),
        )
        save_figure(fig, out)
        from attnviz.cli._output import note

        note(f"wrote {out}")
    clusters = distances.clusters(clusters_wanted) if distances is not None else None
    if json_output:
        document = result.to_dict()
        if distances is not None and clusters is not None:
            for row, number in zip(document["heads"], clusters):
                row["cluster"] = int(number)
            document["distances"] = distances.to_dict()
        print(json.dumps(document))
    elif out is None:
        from attnviz.cli._output import stdout_console
        from attnviz.render.stats_table import parse_columns, print_stats_table

        print_stats_table(
            stdout_console(min_width=110), result, columns=parse_columns(columns), clusters=clusters,
            hidden_note="choose with --columns; --json has all",
        )  # fmt: skip
    if problems:
        raise typer.Exit(code=1)


def _on_ray(  # type: ignore[no-untyped-def]
    address, items, problems, model, revision, layer, head, kind, no_special, no_truncate, batch_size, device,
    trust_remote_code, verbose, progress,
):  # fmt: skip
    """The streamed statistics of ``items`` on Ray workers (the model is checked against its
    config here, loaded only by the workers)."""
    from attnviz.cli._output import note
    from attnviz.cli._ray import InputNotes, ray_options
    from attnviz.distributed.engine import ModelSpec, import_ray
    from attnviz.distributed.stats import distributed_statistics
    from attnviz.plan import check_early

    check_early(model, revision, layer, head)
    import_ray()  # missing Ray: one line before anything starts
    return distributed_statistics(
        items,
        ModelSpec(model, device=device, revision=revision, trust_remote_code=trust_remote_code),
        ray_options(address, verbose=verbose),
        layers=layer,
        heads=head,
        kind=kind,
        no_special=no_special,
        truncate=not no_truncate,
        batch_size=batch_size,
        on_input=InputNotes(items, problems, progress),
        on_note=lambda message: note(f"note: {message}"),
    )
