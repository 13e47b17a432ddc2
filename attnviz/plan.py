"""A view's rules, in one place for the command line and Python alike: what a view needs
from extraction (:func:`plan_views`), the load sequence that refuses a bad choice before
any weights are read (:func:`check_early`, :func:`open_extractor`), and how a raw result
becomes what a view draws (:func:`prepare_view`).

A view name is normalised once, where it enters (:func:`normalise_view`); everything after
that compares lowercase names.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from attnviz.errors import SelectionError

if TYPE_CHECKING:
    from attnviz.extraction import Extractor
    from attnviz.models import LoadedModel
    from attnviz.result import AttentionResult
    from attnviz.transforms import IndexSpec

#: Views that draw one map per layer, the mean over heads: extraction may average as it
#: goes instead of keeping every head.
MEAN_VIEWS = ("mean", "rollout", "flow")


def normalise_view(view: str | None) -> str:
    """``view`` lowercased (``None`` is ``auto``); :class:`SelectionError` when unknown."""
    from attnviz.render import VIEWS

    name = (view or "auto").strip().lower()
    if name not in VIEWS:
        raise SelectionError(f"unknown view '{name}'", hint=f"choose one of: {', '.join(VIEWS)}", option="view")
    return name


@dataclass(frozen=True)
class ViewPlan:
    """What extraction must compute for ``views``: ``head_mean`` (only each layer's mean
    over heads), ``vectors`` (queries and keys: the neuron view), ``norms`` (norm-based
    weights) and ``kinds`` (only these attention kinds, or all when None)."""

    views: tuple[str, ...]
    head_mean: bool = False
    vectors: bool = False
    norms: bool = False
    kinds: tuple[str, ...] | None = None

    def extractor_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~attnviz.extraction.Extractor`."""
        return {
            "head_mean": self.head_mean,
            "vectors": self.vectors,
            "norms": self.norms,
            "kinds": list(self.kinds) if self.kinds else None,
        }


def plan_views(
    views: str | Sequence[str] | None,
    *,
    norm: bool = False,
    no_special: bool = False,
    kind: str | None = None,
    drawn: bool = True,
) -> ViewPlan:
    """What extraction must compute to show ``views`` (one name or several, normalised).

    Only what is shown is computed: views that average heads get only the mean when every
    view asked for does, the result is only ``drawn`` (data files and pages carry every
    head) and special tokens stay (``no_special`` renormalises each head first). The
    neuron view needs the query and key vectors, the norm view (or ``norm``) the norm-based
    weights; both are computed for ``kind`` alone when one is given.
    """
    names = tuple(v.strip().lower() for v in ([views or "auto"] if isinstance(views, str) or views is None else views))
    vectors = "neuron" in names
    norms = norm or "norm" in names
    return ViewPlan(
        views=names,
        head_mean=drawn and not no_special and bool(names) and all(v in MEAN_VIEWS for v in names),
        vectors=vectors,
        norms=norms,
        kinds=(kind,) if kind and (norms or vectors) else None,
    )


def check_early(
    model: str | os.PathLike[str] | None,
    revision: str | None = None,
    layers: IndexSpec = None,
    heads: IndexSpec = None,
    view: str | None = None,
) -> None:
    """Check ``layers``, ``heads`` and ``view`` against the model's config.json before torch
    and transformers are imported or any weights are read (a no-op when the config is not
    at hand: the full load checks again)."""
    from attnviz.models import peek_counts
    from attnviz.transforms import count_index_spec

    counts = peek_counts(model, revision)
    if counts is None:
        return
    for n_layers, n_heads in counts.values():
        chosen_layers = count_index_spec(layers, n_layers, "layer")  # counted, never enumerated
        chosen_heads = count_index_spec(heads, n_heads, "head")
        if view is not None and view != "auto":
            from attnviz.render.views import check_view_shape

            check_view_shape(view, chosen_layers, chosen_heads)


def load_model_checked(
    model: str | os.PathLike[str] | None,
    *,
    revision: str | None = None,
    layers: IndexSpec = None,
    heads: IndexSpec = None,
    view: str | None = None,
    quiet: bool = False,
    **load: Any,
) -> LoadedModel:
    """:func:`check_early`, then :func:`~attnviz.models.load_model` (``load``: its options).
    ``quiet`` silences the libraries' logs and progress bars for the rest of the process
    (:func:`~attnviz.models.silence_libraries`; after the check, which imports neither)."""
    from attnviz.models import load_model, silence_libraries

    check_early(model, revision, layers, heads, view)
    if quiet:
        silence_libraries()
    return load_model(model, revision=revision, **load)


def open_extractor(
    model: str | os.PathLike[str] | LoadedModel | None,
    *,
    revision: str | None = None,
    layers: IndexSpec = None,
    heads: IndexSpec = None,
    plan: ViewPlan | None = None,
    truncate: bool = True,
    verbose: bool = False,
    quiet: bool = False,
    **load: Any,
) -> Extractor:
    """Load, check early, and build the :class:`~attnviz.extraction.Extractor` that computes
    what ``plan`` needs: the sequence every command runs. ``model`` may be loaded already
    (then only the extractor is built); ``load``: :func:`~attnviz.models.load_model`'s
    options (device, dtype, device_map, trust_remote_code); ``quiet`` as for
    :func:`load_model_checked`. Its ``notes`` say how the model was loaded and captured."""
    from attnviz.models import LoadedModel

    plan = plan or ViewPlan(views=("auto",))
    if not isinstance(model, LoadedModel):
        view = plan.views[0] if len(plan.views) == 1 else None
        model = load_model_checked(
            model, revision=revision, layers=layers, heads=heads, view=view, quiet=quiet, verbose=verbose, **load
        )
    from attnviz.extraction import Extractor

    return Extractor(model, truncate=truncate, verbose=verbose, layers=layers, heads=heads, **plan.extractor_options())


@dataclass(frozen=True)
class PreparedView:
    """What a view draws: the transformed ``result``, the attention ``kind`` and the
    resolved ``view`` (``auto`` and ``norm`` resolved to head, layer or grid)."""

    result: AttentionResult
    kind: str
    view: str


def prepare_view(
    raw: AttentionResult,
    view: str | None = "auto",
    *,
    kind: str | None = None,
    layers: IndexSpec = "all",
    heads: IndexSpec = "all",
    words: bool | str = False,
    no_special: bool = False,
    norm: bool = False,
) -> PreparedView:
    """Transform ``raw`` for ``view`` (any view but neuron, which draws one head of
    ``raw`` itself): the norm view (or ``norm``) draws the norm-based weights laid out as
    ``auto`` would; rollout and flow without special tokens follow the raw attention with
    them (as Abnar & Zuidema define it) and only hide them afterwards."""
    from attnviz.render.views import resolve_view
    from attnviz.transforms import apply_transforms

    name = normalise_view(view)
    if kind is not None:
        raw.array(kind)  # an unknown kind fails here, with the kinds there are
    if norm or name == "norm":
        raw = raw.norm_weights()
        name = "auto" if name == "norm" else name
    result = apply_transforms(raw, layers=layers, heads=heads, words=words, no_special=no_special)
    chosen_kind = kind or result.default_kind
    array = result.array(chosen_kind)
    resolved = resolve_view(name, array.shape[0], array.shape[1])
    if no_special and resolved in ("rollout", "flow") and chosen_kind != "cross":
        from attnviz.outputs import raw_derived_without_special

        base = apply_transforms(raw, layers=layers, heads=heads, words=words)
        result = raw_derived_without_special(base, result, resolved, chosen_kind)
    return PreparedView(result, chosen_kind, resolved)
