"""`attnviz attribute TEXT`: how much each input token matters for one output."""

from __future__ import annotations

import json
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from attnviz.cli._options import DeviceOpt, DtypeOpt, JsonOpt, ModelOpt, RevisionOpt, TrustOpt, VerboseOpt

MethodOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--method",
        metavar="METHOD",
        help="ablation, grad-x-input, integrated-gradients, attention, rollout, flow, norm, norm-rollout, "
        "grad-rollout or attnlrp; repeat, or separate with commas, for several (default: all that apply).",
    ),
]


def method_list(method: Optional[list[str]]) -> Optional[list[str]]:
    """``--method`` values, each of which may be a comma-separated list (as --view and
    --format take them); None when none was given."""
    if not method:
        return None
    return [name.strip() for value in method for name in value.split(",") if name.strip()] or None


OutputKindOpt = Annotated[
    Optional[str],
    typer.Option(
        "--output-kind",
        metavar="KIND",
        help="What to explain: next-token, target-token, class, mask or embedding "
        "(default: by the model; embedding for minilm).",
    ),
]
TargetTokenOpt = Annotated[
    Optional[str],
    typer.Option(
        "--target-token", metavar="TOKEN", help="The token whose logit is explained (default: the predicted one)."
    ),
]
ClassOpt = Annotated[
    Optional[int],
    typer.Option("--class", metavar="N", min=0, help="Classifiers: the class (default: the predicted one)."),
]
StepsOpt = Annotated[
    int, typer.Option("--steps", metavar="N", min=2, max=1024, help="Integrated gradients: interpolation steps.")
]


def load_attributor(
    model: str,
    *,
    output_kind: str | None,
    target_token: str | None,
    class_index: int | None,
    steps: int,
    device: str,
    dtype: str,
    revision: str | None,
    trust_remote_code: bool,
    verbose: bool,
) -> Any:
    """The model and its output head, with a spinner on a terminal."""
    from attnviz.cli._output import quiet_unless, stderr_console

    spinner = stderr_console().status(f"loading {model}…") if sys.stderr.isatty() and not verbose else nullcontext()
    with spinner:
        quiet_unless(verbose)
        from attnviz.attribution.core import Attributor

        return Attributor.load(
            model,
            device=device,
            dtype=dtype,
            revision=revision,
            trust_remote_code=trust_remote_code,
            verbose=verbose,
            output_kind=output_kind,
            target_token=target_token,
            class_index=class_index,
            steps=steps,
        )


def attribute(
    text: Annotated[str, typer.Argument(metavar="TEXT", help="The text to explain ('-' reads stdin).")],
    model: ModelOpt = "minilm",
    method: MethodOpt = None,
    output_kind: OutputKindOpt = None,
    pair: Annotated[
        Optional[str],
        typer.Option("--pair", metavar="TEXT", help="Second sentence (encoders): its tokens are scored too."),
    ] = None,
    target: Annotated[
        Optional[str],
        typer.Option(
            "--target", metavar="TEXT", help="Encoder-decoders: the target text; its last token is explained."
        ),
    ] = None,
    target_token: TargetTokenOpt = None,
    class_index: ClassOpt = None,
    steps: StepsOpt = 32,
    out: Annotated[
        Optional[Path],
        typer.Option(
            "--out", "-o", metavar="FILE", help="Write a file: .png .svg .pdf image, .html section, .npz .json data."
        ),
    ] = None,
    json_output: JsonOpt = False,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    revision: RevisionOpt = None,
    trust_remote_code: TrustOpt = False,
    verbose: VerboseOpt = False,
) -> None:
    """Score how much each token of TEXT matters for one output of the model.

    The output follows the model: the next token's logit (decoders), a target token
    (encoder-decoders, --target), the predicted class (classifiers), the [MASK] logit
    (masked LMs) or the sentence embedding (embedding models such as minilm; the score is
    the cosine to the unperturbed embedding). Each method is one line of shaded tokens;
    ablation (leave one token out) is the reference. See docs/attribution.md.
    """
    from attnviz.cli.show import read_text_argument
    from attnviz.errors import InputError

    text = read_text_argument(text)
    if not text.strip():
        raise InputError("the text is empty", hint='give some text, e.g. attnviz attribute "AI changes everything"')
    kind = None
    if out is not None:
        from attnviz.io import check_writable
        from attnviz.outputs import output_kind as file_kind

        kind = file_kind(out)
        check_writable(out)
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
    from attnviz.cli._common import warn_unknown_tokens

    warn_unknown_tokens(attributor.loaded.tokenizer, attributor.encode(text, target, pair).tokens)
    result = attributor.attribute(text, target=target, pair=pair, methods=method_list(method))
    from attnviz.cli._output import note, stdout_console, warn

    if result.truncated_tokens:
        warn(f"the input was cut to the model's maximum ({result.truncated_tokens} tokens dropped)")
    if json_output:
        print(json.dumps(result.to_dict(), ensure_ascii=False))
    if out is not None:
        from attnviz.io import atomic_write
        from attnviz.safety import printable

        if kind == "data":
            result.save(out)
        elif kind == "page":
            from attnviz.attribution.render import attribution_html

            page = attribution_html(result)
            atomic_write(out, lambda handle: handle.write(page), binary=False)
        else:
            from attnviz.attribution.render import attribution_figure
            from attnviz.render.image import save_figure

            save_figure(attribution_figure(result), out, tight=True)
        note(f"wrote {printable(out)}")
    if not json_output and out is None:
        from attnviz.attribution.render import print_attribution

        print_attribution(result, stdout_console())
