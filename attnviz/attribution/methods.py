"""Attribution methods: one score per input token for one output (see :mod:`.targets`).

Every method returns float64 ``[tokens]`` with NaN at special tokens ([CLS], [SEP], BOS...),
which are never ablated and carry no score.

* ``ablation``: leave one token out by replacing it with the tokenizer's mask token (unk,
  then pad, where it has none); importance = unperturbed score - perturbed score. All
  variants of a text go through the model in batches of at most the token budget. It is
  the reference the others are measured against. Signed.
* ``grad-x-input``, ``integrated-gradients``: captum's ``InputXGradient`` and
  ``IntegratedGradients`` on the input embeddings, summed over the hidden dimension. The
  baseline of integrated gradients is the ablation token's embedding at every non-special
  position (the same "removed" as ablation), with ``steps`` Gauss-Legendre points. Signed.
* ``attention``: last layer, mean over heads, averaged over the output's query rows (the
  last position for next-token, the mask position, [CLS] for a class, every position for a
  mean-pooled embedding, the scored decoder position's cross attention for encoder-decoders).
* ``rollout``, ``flow``: :mod:`attnviz.analysis.rollout` (Abnar & Zuidema 2020), read on the
  same query rows; ``norm``, ``norm-rollout``: the same on norm-based weights
  (Kobayashi et al. 2020, ``AttentionResult.norm_weights``), exactly as ``attnviz show --norm``.
* ``grad-rollout``: Chefer et al. 2021 ("Generic Attention-model Explainability"):
  ``R = I``; for each layer ``R += mean_heads((dS/dA * A)^+) R``, on the eager attention
  probabilities kept in the autograd graph; read on the query rows.
* ``attnlrp``: AttnLRP (Achtibat et al. 2024) through ``lxt``; refused with the reason
  when ``lxt`` cannot run here (lxt 2.1 does not import with transformers 5).
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from attnviz.attribution.targets import Scorer, Target
    from attnviz.extraction import EncodedInput
    from attnviz.models import LoadedModel

METHODS = (
    "ablation",
    "grad-x-input",
    "integrated-gradients",
    "attention",
    "rollout",
    "flow",
    "norm",
    "norm-rollout",
    "grad-rollout",
    "attnlrp",
)
#: Methods whose scores can be negative: drawn on one shared diverging scale.
SIGNED_METHODS = frozenset({"ablation", "grad-x-input", "integrated-gradients"})
VIEW_METHODS = ("attention", "rollout", "flow", "norm", "norm-rollout")
_SELF_ATTENTION_ONLY = {"rollout", "flow", "norm", "norm-rollout", "grad-rollout"}


@cache
def lxt_problem() -> str:
    """Why AttnLRP cannot run here (always a reason today; see the module docstring)."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import lxt.efficient  # noqa: F401
    except ImportError as exc:
        if getattr(exc, "name", None) == "lxt":
            return "it needs the lxt package, which is not installed"
        return f"lxt cannot be imported with this transformers version: {type(exc).__name__}: {exc}"
    return "lxt imports, but attnviz has not been validated against this lxt version"


def unavailable(method: str, loaded: LoadedModel, kind: str, length: int) -> str | None:
    """Why ``method`` does not apply to this model, output and text length, or None."""
    from attnviz.analysis.rollout import FLOW_MAX_TOKENS

    if method == "attnlrp":
        return lxt_problem()
    if kind == "target-token" and method in _SELF_ATTENTION_ONLY:
        return (
            "it follows a self-attention stack; an encoder-decoder's output reaches the source through cross attention"
        )
    if method in ("norm", "norm-rollout") and not loaded.captured:
        return "norm-based weights need attention that goes through transformers' attention interface"
    if method == "flow" and length > FLOW_MAX_TOKENS:
        return f"attention flow is limited to {FLOW_MAX_TOKENS} tokens (this text has {length})"
    return None


def _with_special(values: Any, special: np.ndarray) -> np.ndarray:
    out = np.asarray(values, dtype=np.float64).copy()
    out[np.asarray(special, dtype=bool)] = np.nan
    return out


def ablation(scorer: Scorer, encoded: EncodedInput, target: Target) -> np.ndarray:
    """Leave-one-out: ``score(x) - score(x with token i replaced)`` for each non-special i."""
    ids = np.asarray(encoded.ids)
    special = np.asarray(encoded.tokens.special_mask, dtype=bool)
    positions = np.flatnonzero(~special)
    variants = np.repeat(ids[None], len(positions), axis=0)
    variants[np.arange(len(positions)), positions] = scorer.ablation_id
    out = np.full(len(ids), np.nan)
    out[positions] = target.score - scorer.scores(variants, target)
    return out


def ablated_ids(ids: Any, special: np.ndarray, ablation_id: int) -> np.ndarray:
    """``ids`` with every non-special token replaced by ``ablation_id``."""
    out = np.asarray(ids).copy()
    out[~np.asarray(special, dtype=bool)] = ablation_id
    return out


def gradients(scorer: Scorer, encoded: EncodedInput, target: Target, method: str, steps: int) -> np.ndarray:
    """captum's InputXGradient or IntegratedGradients, summed over the hidden dimension."""
    from captum.attr import InputXGradient, IntegratedGradients

    special = np.asarray(encoded.tokens.special_mask, dtype=bool)
    forward = scorer.embedding_function(target)
    embeds = scorer.embed(encoded.ids)
    if method == "grad-x-input":
        attribution = InputXGradient(forward).attribute(embeds.clone().requires_grad_(True))
    else:
        baseline = scorer.embed(ablated_ids(encoded.ids, special, scorer.ablation_id))
        width = len(encoded.ids) + len(target.decoder_ids or [])
        attribution = IntegratedGradients(forward).attribute(
            embeds,
            baselines=baseline,
            n_steps=max(2, int(steps)),
            internal_batch_size=max(1, scorer.max_batch_tokens // max(1, width)),
        )
    return _with_special(attribution.sum(dim=-1)[0].detach().double().cpu().numpy(), special)


def grad_rollout(scorer: Scorer, encoded: EncodedInput, target: Target) -> np.ndarray:
    """Chefer et al. 2021: ``R = I``, ``R += mean_heads((grad * A)^+) @ R`` per layer."""
    import torch

    attentions, grads = scorer.attention_gradients(list(encoded.ids), target)
    length = len(encoded.ids)
    relevance = torch.eye(length, dtype=torch.float64)
    for attention, grad in zip(attentions, grads):
        cam = (grad.double().cpu() * attention.double().cpu()).clamp(min=0).mean(dim=0)
        relevance = relevance + cam @ relevance
    rows = relevance.numpy()[target.query_rows].mean(axis=0)
    return _with_special(rows, encoded.tokens.special_mask)


def attention_views(
    loaded: LoadedModel, encoded: EncodedInput, target: Target, methods: list[str], *, verbose: bool = False
) -> dict[str, np.ndarray]:
    """The attention-derived methods from one captured forward pass (``attnviz show``'s
    numbers and conventions): ``{method: [tokens]}``."""
    from attnviz.analysis.rollout import attention_flow, attention_rollout
    from attnviz.extraction import Extractor

    wanted = [m for m in methods if m in VIEW_METHODS]
    if not wanted:
        return {}
    norms = any(m.startswith("norm") for m in wanted)
    extractor = Extractor(loaded, verbose=verbose, norms=norms)
    result = extractor.run_batch([encoded])[0]
    special = encoded.tokens.special_mask
    rows = target.query_rows
    if target.kind == "target-token":
        cross = result.array("cross")
        return {"attention": _with_special(cross[-1].mean(axis=0)[target.position], special)}
    kind = result.default_kind
    raw = result.array(kind).astype(np.float64)
    normed = result.norm_weights().array(kind).astype(np.float64) if norms else None
    out: dict[str, np.ndarray] = {}
    for method in wanted:
        weights = normed if method.startswith("norm") else raw
        assert weights is not None
        if method in ("attention", "norm"):
            values = weights[-1].mean(axis=0)[rows].mean(axis=0)
        elif method in ("rollout", "norm-rollout"):
            values = attention_rollout(weights)[-1][rows].mean(axis=0)
        else:
            values = attention_flow(weights)[rows].mean(axis=0)
        out[method] = _with_special(values, special)
    return out
