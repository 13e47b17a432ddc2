"""`attnviz faithfulness -f FILE`: which attribution to trust on this model, measured."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from attnviz.cli._options import (
    DeviceOpt,
    DtypeOpt,
    EncodingErrorsOpt,
    ImageOutOpt,
    JsonOpt,
    ModelOpt,
    RevisionOpt,
    TrustOpt,
    VerboseOpt,
)
from attnviz.cli.attribute import ClassOpt, MethodOpt, OutputKindOpt, StepsOpt, TargetTokenOpt


def _number(value: Any, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def print_report(report: Any, console: Any) -> None:
    """The summary table, sorted by agreement with ablation."""
    from rich.table import Table
    from rich.text import Text

    from attnviz.attribution.render import describe_output
    from attnviz.safety import printable

    rows = report.summary()
    table = Table(
        title=f"{printable(report.model)}: {len(report.texts)} texts, output {report.output}",
        caption="ρ: Spearman with ablation (mean, 95% bootstrap CI); comp/suff: ERASER comprehensiveness "
        "(higher better) / sufficiency (lower better) at 10/20/50% of tokens; AOPC over the deletion curve",
        caption_justify="left",
    )
    for name, justify in (("method", "left"), ("ρ", "right"), ("95% CI", "right"), ("comp 10/20/50", "right")):
        table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    for name in ("suff 10/20/50", "AOPC", "s/text"):
        table.add_column(name, justify="right", no_wrap=True)
    for row in rows:
        interval = row["agreement_ci95"]
        table.add_row(
            row["method"] + (" (reference)" if row["method"] == "ablation" else ""),
            _number(row["agreement"]),
            "—" if interval is None else f"{interval[0]:.2f}..{interval[1]:.2f}",
            " ".join(_number(row[f"comprehensiveness_{p}"]) for p in (10, 20, 50)),
            " ".join(_number(row[f"sufficiency_{p}"]) for p in (10, 20, 50)),
            _number(row["aopc"]),
            _number(row["seconds_per_text"], 3),
        )
    if report.output == "embedding":
        console.print(Text(f"output: {describe_output({'kind': 'embedding'})}"))
    console.print(table)


def faithfulness(
    file: Annotated[
        Path, typer.Option("--file", "-f", metavar="FILE", help="Text or JSONL file, one text per line ('-' = stdin).")
    ],
    model: ModelOpt = "minilm",
    method: MethodOpt = None,
    limit: Annotated[Optional[int], typer.Option("--limit", metavar="N", min=1, help="Use the first N texts.")] = None,
    output_kind: OutputKindOpt = None,
    target_token: TargetTokenOpt = None,
    class_index: ClassOpt = None,
    steps: StepsOpt = 32,
    out: ImageOutOpt = None,
    json_output: JsonOpt = False,
    encoding_errors: EncodingErrorsOpt = "strict",
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    revision: RevisionOpt = None,
    trust_remote_code: TrustOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Measure each attribution method against ablation over the texts of FILE.

    Per method: Spearman correlation with ablation (mean over texts and a 95% bootstrap
    interval), ERASER comprehensiveness and sufficiency at 10/20/50% of the tokens, AOPC of
    the deletion curve, and the seconds per text. -o draws the deletion curves.
    """
    from attnviz.cli._common import gather_inputs, report_problems
    from attnviz.cli._options import check_image_output
    from attnviz.cli._output import note, stderr_console, stdout_console
    from attnviz.cli.attribute import load_attributor
    from attnviz.errors import InputError

    check_image_output(out, "faithfulness")
    items, problems = gather_inputs(None, file, encoding_errors=encoding_errors)
    if limit is not None:
        items = items[:limit]
    if not items:
        report_problems(problems)
        raise InputError(f"no texts to evaluate in {file}", hint="give a file with one text per line")
    attributor = load_attributor(
        model,
        output_kind=output_kind,
        target_token=target_token,
        class_index=class_index,
        steps=steps,
        device=device,
        dtype=dtype,
        revision=revision,
        trust_remote_code=trust_remote_code,
        verbose=verbose,
    )
    from attnviz.attribution.faithfulness import evaluate_faithfulness

    if sys.stderr.isatty() and not verbose:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        with Progress(
            TextColumn("evaluating"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=stderr_console(),
            transient=True,
        ) as bar:
            task = bar.add_task("texts", total=len(items))
            report = evaluate_faithfulness(
                attributor, items, methods=method, progress=lambda done, _: bar.update(task, completed=done)
            )
    else:
        report = evaluate_faithfulness(attributor, items, methods=method)
    report_problems(problems + report.problems)
    if not report.texts:
        raise InputError("no text could be evaluated", hint="see the warnings above")
    if out is not None:
        from attnviz.attribution.render import curves_figure
        from attnviz.render.image import save_figure
        from attnviz.safety import printable

        save_figure(curves_figure(report), out, tight=True)
        note(f"wrote {printable(out)}")
    if json_output:
        print(json.dumps(report.to_dict(), ensure_ascii=False))
        return
    print_report(report, stdout_console(min_width=120))
    for message in report.notes:
        note(f"note: {message}")
