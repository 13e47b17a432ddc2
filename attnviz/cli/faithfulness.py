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
from attnviz.cli.attribute import ClassOpt, MethodOpt, OutputKindOpt, StepsOpt, TargetTokenOpt, method_list


def _number(value: Any, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


#: Each column of the faithfulness table: key, full header, short header, legend text.
_COLUMNS: tuple[tuple[str, str, str, str], ...] = (
    ("agreement", "ρ", "ρ", "Spearman with ablation (mean)"),
    ("ci", "95% CI", "CI", "95% bootstrap interval of ρ"),
    ("comp", "comp 10/20/50", "comp", "ERASER comprehensiveness, top 10/20/50% of tokens (higher better)"),
    ("suff", "suff 10/20/50", "suff", "sufficiency at 10/20/50% (lower better)"),
    ("aopc", "AOPC", "AOPC", "area over the deletion curve"),
    ("seconds", "s/text", "s", "seconds per text"),
)
#: The order in which columns give way when the width is short: the first ones stay.
_PRIORITY = ("agreement", "ci", "comp", "aopc", "seconds", "suff")
_GAP = 3  # between two columns: padding each side and the box's divider


def _cells(row: dict[str, Any]) -> dict[str, str]:
    interval = row["agreement_ci95"]
    return {
        "method": row["method"] + (" (reference)" if row["method"] == "ablation" else ""),
        "agreement": _number(row["agreement"]),
        "ci": "—" if interval is None else f"{interval[0]:.2f}..{interval[1]:.2f}",
        "comp": " ".join(_number(row[f"comprehensiveness_{p}"]) for p in (10, 20, 50)),
        "suff": " ".join(_number(row[f"sufficiency_{p}"]) for p in (10, 20, 50)),
        "aopc": _number(row["aopc"]),
        "seconds": _number(row["seconds_per_text"], 3),
    }


def faithfulness_table(report: Any, width: int) -> Any:
    """A rich renderable fitted to ``width`` characters without cutting a number: the title,
    the table (sorted by agreement with ablation) and a legend. When all columns with full
    headers do not fit, headers are abbreviated, then columns dropped in :data:`_PRIORITY`
    order (the legend names what was left out)."""
    from rich import box
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from attnviz.safety import printable

    cells = [_cells(row) for row in report.summary()]

    def need(key: str, header: str) -> int:
        return max(len(header), *(len(c[key]) for c in cells)) + _GAP

    used = max(len("method"), *(len(c["method"]) for c in cells))
    full = used + sum(need(key, header) for key, header, _, _ in _COLUMNS)
    short = full > width
    kept: list[str] = []
    for key in _PRIORITY:
        header = next(s if short else h for k, h, s, _ in _COLUMNS if k == key)
        if kept and used + need(key, header) > width:
            continue
        kept.append(key)
        used += need(key, header)
    count = len(report.texts)
    title = Text(printable(f"{report.model}: {count} text{'s' if count != 1 else ''}, output {report.output}"))
    table = Table(box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False, show_edge=False)
    table.add_column("method", no_wrap=True)
    shown = [column for column in _COLUMNS if column[0] in kept]
    for _, header, abbreviation, _ in shown:
        table.add_column(abbreviation if short else header, justify="right", no_wrap=True)
    for c in cells:
        table.add_row(c["method"], *(c[key] for key, _, _, _ in shown))
    legend = "; ".join(f"{s if short else h}: {text}" for _, h, s, text in shown)
    left_out = [h for k, h, _, _ in _COLUMNS if k not in kept]
    if left_out:
        legend += f". Left out: {', '.join(left_out)} (wider terminal or --json)"
    return Group(title, table, Text(legend + ".", style="dim"))


def print_report(report: Any, console: Any) -> None:
    """The summary table fitted to the console's width, sorted by agreement with ablation."""
    from rich.text import Text

    from attnviz.attribution.render import describe_output

    if report.output == "embedding":
        console.print(Text(f"output: {describe_output({'kind': 'embedding'})}"))
    console.print(faithfulness_table(report, console.width))


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
    from attnviz.cli._common import warn_unknown_tokens

    for item in items:
        try:
            encoded = attributor.encoded_input(item)
        except InputError:
            continue  # reported by the evaluation, with the others' problems
        warn_unknown_tokens(attributor.loaded.tokenizer, encoded.tokens, text=item.text)

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
                attributor,
                items,
                methods=method_list(method),
                progress=lambda done, _: bar.update(task, completed=done),
            )
    else:
        report = evaluate_faithfulness(attributor, items, methods=method_list(method))
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
