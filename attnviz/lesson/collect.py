"""Run the learner's text through the model once for the attention (every head, with the
query and key vectors of the neuron view) and once more with the layer hooks and the
value-collecting sink, and gather what the nine steps need into a :class:`Capture`."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from attnviz.errors import SelectionError
from attnviz.lesson.model import LayerStates, ModelFacts

if TYPE_CHECKING:
    from attnviz.models import LoadedModel
    from attnviz.render.neuron import NeuronData
    from attnviz.result import AttentionResult

#: a recipe's one-line name, for the steps that say which layer shape was read
RECIPE_NAMES = {
    "bert": "BERT-style post-norm layers",
    "distilbert": "DistilBERT post-norm layers",
    "bart": "BART post-norm layers",
    "llama": "Llama-style pre-norm layers (RMSNorm)",
    "gpt2": "GPT-2 pre-norm layers",
    "t5": "T5 pre-norm layers (RMSNorm)",
}


#: Head clusters compare every pair of heads row by row (heads^2 x tokens^2): on longer texts
#: they are computed over the attention among the first this many tokens.
CLUSTER_TOKENS = 128


def _first_tokens(result: AttentionResult, kind: str, count: int) -> AttentionResult:
    """``result``'s ``kind`` attention among its first ``count`` tokens, rows renormalised."""
    from attnviz.result import AttentionResult

    array = result.array(kind)
    if array.shape[-1] <= count and array.shape[-2] <= count:
        return result
    block = array[:, :, :count, :count].astype(np.float64)
    block = block / np.maximum(block.sum(-1, keepdims=True), 1e-12)
    queries, _ = result.axes(kind)
    return AttentionResult.from_arrays(
        block.astype(np.float32),
        list(queries.tokens[:count]),
        model=result.model,
        kind=kind,
        layer_ids=list(result.layer_ids[kind]),
        head_ids=list(result.head_ids[kind]),
        special_mask=[bool(s) for s in queries.special_mask[:count]],
    )


@dataclass
class Capture:
    """Everything one lesson is computed from. ``spans``: each source token's character
    ``(start, end)`` in the text (None for special tokens or without offsets);
    ``states``: per kind, one :class:`LayerStates` per layer (empty when the layer shape
    is not covered: ``not_covered`` says why)."""

    result: AttentionResult
    facts: ModelFacts
    kind: str
    query: int
    layer: int
    head: int
    labels: np.ndarray  # [L, H] str
    clusters: np.ndarray | None  # [L, H] int, 1-based
    neuron: NeuronData | None
    spans: list[tuple[int, int] | None]
    ids: list[int]
    states: dict[str, list[LayerStates]] = field(default_factory=dict)
    recipe: str | None = None
    not_covered: str | None = None
    notes: list[str] = field(default_factory=list)


def _spans(loaded: LoadedModel, text: str, ids: list[int]) -> list[tuple[int, int] | None]:
    try:
        encoding = loaded.tokenizer(text, return_offsets_mapping=True, truncation=True)
        offsets = encoding["offset_mapping"]
    except (NotImplementedError, KeyError, TypeError, ValueError):
        return [None] * len(ids)
    if list(encoding["input_ids"]) != list(ids):
        return [None] * len(ids)
    return [(int(a), int(b)) if b > a else None for a, b in offsets]


def default_query(result: AttentionResult, kind: str) -> int:
    """The last query token that is neither special nor punctuation (else the last
    non-special one, else 0): in a decoder it has seen the whole sentence."""
    queries, _ = result.axes(kind)
    ordinary = [
        i for i in range(len(queries)) if not queries.special_mask[i] and any(c.isalnum() for c in queries.display[i])
    ]
    if ordinary:
        return ordinary[-1]
    positions = np.flatnonzero(~np.asarray(queries.special_mask, dtype=bool))
    return int(positions[-1]) if positions.size else 0


def choose_head(labels: np.ndarray, means: dict[str, np.ndarray]) -> tuple[int, int]:
    """The head of step 4: among heads labelled ``previous`` (first) or ``diagonal``, the
    one in the layer nearest the middle, strongest by that statistic; without any, the
    middle layer's head with the most attention to the previous token."""
    layers = labels.shape[0]
    middle = layers // 2
    order = sorted(range(layers), key=lambda layer: (abs(layer - middle), layer))
    for label, stat in (("previous", "previous"), ("diagonal", "self")):
        for layer in order:
            heads = np.flatnonzero(labels[layer] == label)
            if heads.size:
                values = np.nan_to_num(means[stat][layer, heads])
                return layer, int(heads[int(np.argmax(values))])
    return middle, int(np.argmax(np.nan_to_num(means["previous"][middle])))


def collect(
    loaded: LoadedModel,
    text: str,
    *,
    target: str | None = None,
    query: int | None = None,
    layer: int | None = None,
    head: int | None = None,
    verbose: bool = False,
) -> Capture:
    """Run ``text`` (and ``target`` for encoder-decoders) through ``loaded``."""
    from attnviz.analysis.clusters import head_distances
    from attnviz.analysis.stats import head_statistics
    from attnviz.extraction import Extractor, TextInput
    from attnviz.lesson.trace import AttentionSink, find_layers, layer_states, model_facts, record_layers
    from attnviz.render.neuron import neuron_data
    from attnviz.transforms import select

    notes: list[str] = []
    extractor = Extractor(loaded, verbose=verbose, vectors=True)
    encoded = extractor.encode(TextInput(text, None, target))
    try:
        result = extractor.run_batch([encoded])[0]
    except SelectionError:  # attention that bypasses the interface: no vectors to read
        extractor = Extractor(loaded, verbose=verbose)
        encoded = extractor.encode(TextInput(text, None, target))
        result = extractor.run_batch([encoded])[0]
        notes.append("its attention bypasses transformers' attention interface, so q and k cannot be read")
    kind = result.default_kind
    statistics = head_statistics([result], kind)
    labels = statistics.labels()
    clusters = None
    if labels.size >= 2:
        clusters = head_distances([_first_tokens(result, kind, CLUSTER_TOKENS)], kind).clusters().reshape(labels.shape)
    chosen_layer, chosen_head = choose_head(labels, statistics.means())
    if layer is not None:
        chosen_layer = _checked(layer, labels.shape[0], "layer")
    if head is not None:
        chosen_head = _checked(head, labels.shape[1], "head")
    n_queries = result.array(kind).shape[2]
    chosen_query = default_query(result, kind) if query is None else _checked(query, n_queries, "query")
    neuron = None
    if result.vectors.get(kind):
        one = select(result, layers=[chosen_layer], heads=[chosen_head])
        neuron = neuron_data(one, kind, chosen_query)

    facts = model_facts(loaded)
    recipe, modules = find_layers(loaded.model, dict(loaded.info.layers), loaded.family)
    states: dict[str, list[LayerStates]] = {}
    not_covered = None
    if recipe is None:
        not_covered = (
            f"attnviz reads sub-layer states of BERT, DistilBERT, BART, Llama-style, GPT-2 and T5 layers; "
            f"'{facts.model_type}' layers have another shape"
        )
    else:
        sink = AttentionSink(dict(loaded.info.layers), dict(loaded.info.heads), model=loaded.model)
        store, remove = record_layers(modules, recipe)
        try:
            extractor.reduce_batch([encoded], sink)
        finally:
            remove()
        states = layer_states(store, modules, recipe, sink)
    return Capture(
        result=result,
        facts=facts,
        kind=kind,
        query=chosen_query,
        layer=chosen_layer,
        head=chosen_head,
        labels=labels,
        clusters=clusters,
        neuron=neuron,
        spans=_spans(loaded, text, encoded.ids),
        ids=list(encoded.ids),
        states=states,
        recipe=recipe,
        not_covered=not_covered,
        notes=notes,
    )


def _checked(value: int, count: int, name: str) -> int:
    from attnviz.errors import IndexSpecError

    if not 0 <= value < count:
        raise IndexSpecError(
            name,
            f"{{name}} {value} is out of range: there are {count} ({0}-{count - 1})",
            hint="{name} is 0-based",
        )
    return int(value)
