"""The nine steps of the lesson: each step's numbers (JSON-ready) and the one or two
sentences computed from them. Pure NumPy on a :class:`~attnviz.lesson.collect.Capture`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnviz.lesson import model as numbers
from attnviz.lesson.collect import CLUSTER_TOKENS, RECIPE_NAMES, Capture

TITLES = (
    "Tokenization",
    "Embeddings",
    "Positional encoding",
    "Self-attention",
    "Multi-head attention",
    "Feed-forward layers",
    "Residual connections",
    "Layer normalization",
    "Encoder and decoder",
)


@dataclass
class Step:
    """One concept: ``number`` 1-9, its ``title``, the ``sentences`` computed from the
    model's numbers, and ``data``, the numbers themselves (lists and floats). ``applies``
    is False when the concept does not apply to (or is not read from) this model; the
    first sentence then says why."""

    number: int
    title: str
    sentences: list[str]
    data: dict[str, Any] = field(default_factory=dict)
    applies: bool = True

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.number,
            "title": self.title,
            "applies": self.applies,
            "text": " ".join(self.sentences),
            "data": self.data,
        }


@dataclass
class Lesson:
    model: str
    model_type: str
    family: str
    text: str
    target: str | None
    steps: list[Step]
    capture: Capture

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": "attnviz-lesson/1",
            "model": self.model,
            "model_type": self.model_type,
            "family": self.family,
            "text": self.text,
            "target": self.target,
            # tokens cut off past the model's maximum (0 when the whole text fit)
            "truncated_tokens": int(self.capture.result.truncated_tokens or 0),
            "steps": [step.to_dict() for step in self.steps],
        }


def _r(value: Any, digits: int = 4) -> Any:
    """Rounded floats (nested lists too) for JSON."""
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        return None if not np.isfinite(array) else round(float(array), digits)
    return np.round(np.nan_to_num(array), digits).tolist()


def q(token: str) -> str:
    """A token in a sentence."""
    return f"'{token}'"


def plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def _name(capture: Capture) -> str:
    return capture.result.model.rstrip("/").split("/")[-1]


# -- 1 ------------------------------------------------------------------------------------
def tokenization(capture: Capture) -> Step:
    tokens = capture.result.tokens
    text = capture.result.text
    rows: list[dict[str, Any]] = []
    for i, (raw, display) in enumerate(zip(tokens.tokens, tokens.display)):
        span = capture.spans[i] if i < len(capture.spans) else None
        rows.append(
            {
                "index": i,
                "piece": raw,
                "display": display,
                "id": int(capture.ids[i]),
                "special": bool(tokens.special_mask[i]),
                "word": int(tokens.word_ids[i]),
                "chars": list(span) if span else None,
                "text": text[span[0] : span[1]] if span else None,
            }
        )
    words: dict[int, list[int]] = {}
    for row in rows:
        if not row["special"] and row["word"] >= 0:
            words.setdefault(row["word"], []).append(row["index"])
    specials = [tokens.display[i] for i in range(len(tokens)) if tokens.special_mask[i]]
    sentences = [
        f"The text becomes {plural(len(tokens), 'token')}"
        + (
            f"; the model adds {', '.join(dict.fromkeys(specials))}."
            if specials
            else "; the model adds no special tokens."
        )
    ]
    if words:
        # the word cut into the most pieces; among equals the longest, then the last
        word, pieces = max(words.items(), key=lambda item: (len(item[1]), _word_length(capture, item[1]), item[0]))
        spans = [capture.spans[i] for i in pieces]
        if all(spans):
            shown = text[spans[0][0] : spans[-1][1]]  # type: ignore[index]
        else:
            shown = "".join(tokens.display[i] for i in pieces)
        parts = " + ".join(q(tokens.display[i]) for i in pieces)
        if len(pieces) > 1:
            sentences.append(f"{q(shown.strip())} is split into {len(pieces)} pieces ({parts}).")
        else:
            sentences.append("Every word here is one token.")
    return Step(1, TITLES[0], sentences, {"tokens": rows, "words": len(words)})


def _word_length(capture: Capture, pieces: list[int]) -> int:
    spans = [capture.spans[i] for i in pieces]
    if all(spans):
        return spans[-1][1] - spans[0][0]  # type: ignore[index]
    return sum(len(capture.result.tokens.display[i]) for i in pieces)


# -- 2 ------------------------------------------------------------------------------------
def embeddings(capture: Capture) -> Step:
    facts = capture.facts
    table = facts.embeddings
    ids = capture.ids
    tokens = capture.result.tokens
    similarity = numbers.cosine_matrix(table[ids])
    exclude = [i for i in facts.special_ids if i < len(table)]
    neighbours: list[dict[str, Any]] = []
    ordinary = [i for i in range(len(ids)) if not tokens.special_mask[i]]
    nearest = numbers.nearest_neighbours(table, [ids[i] for i in ordinary], exclude)
    for i, near in zip(ordinary, nearest):
        neighbours.append(
            {
                "index": i,
                "token": tokens.display[i],
                "neighbours": [{"id": n, "token": _vocab(facts.vocabulary, n), "cosine": round(c, 4)} for n, c in near],
            }
        )
    sentences = [f"Each token id picks one row of the {table.shape[0]:,} x {table.shape[1]} embedding table."]
    focus = next((n for n in neighbours if n["index"] == capture.query), neighbours[-1] if neighbours else None)
    if focus and focus["neighbours"]:
        best = focus["neighbours"][0]
        sentences.append(
            f"{q(focus['token'])} is closest to {q(best['token'])} in the embedding table (cosine {best['cosine']:.2f})."
        )
    pairs = [(similarity[a, b], a, b) for a in ordinary for b in ordinary if a < b and ids[a] != ids[b]]
    data: dict[str, Any] = {
        "vocabulary": int(table.shape[0]),
        "dim": int(table.shape[1]),
        "similarity": _r(similarity),
        "labels": list(tokens.display),
        "neighbours": neighbours,
    }
    if pairs:
        value, a, b = max(pairs)
        sentences.append(
            f"In this sentence {q(tokens.display[a])} and {q(tokens.display[b])} are the most alike ({value:.2f})."
        )
        data["most_alike"] = {"tokens": [int(a), int(b)], "cosine": round(float(value), 4)}
    return Step(2, TITLES[1], sentences, data)


def _vocab(vocabulary: list[str], index: int) -> str:
    from attnviz.result import clean_token

    return clean_token(vocabulary[index]) if 0 <= index < len(vocabulary) else str(index)


# -- 3 ------------------------------------------------------------------------------------
def positions(capture: Capture) -> Step:
    facts = capture.facts.positions
    name = _name(capture)
    data: dict[str, Any] = {"kind": facts.kind, "source": facts.source}
    if facts.table is not None and len(facts.table) >= 2:
        similarity = numbers.cosine_matrix(facts.table)
        by_distance = numbers.similarity_by_distance(facts.table)
        far = min(32, len(by_distance) - 1)
        data.update(similarity=_r(similarity), by_distance=_r(by_distance), positions=len(facts.table))
        adjective = "fixed sinusoidal" if facts.kind == "sinusoidal" else "learned"
        return Step(
            3,
            TITLES[2],
            [
                f"{name} uses {facts.kind} positions: a {adjective} vector for each position is added to the token's embedding.",
                f"Neighbouring positions are alike (mean cosine {by_distance[1]:.2f} at distance 1), "
                f"distant ones less ({by_distance[far]:.2f} at distance {far})."
                if by_distance[1] > by_distance[far] + 0.1
                else f"Here near and distant positions are about equally alike (mean cosine {by_distance[1]:.2f} "
                f"at distance 1, {by_distance[far]:.2f} at distance {far}): these vectors show no order.",
            ],
            data,
        )
    if facts.kind == "rotary" and facts.frequencies is not None:
        distances = np.arange(64)
        scores = numbers.rotary_scores(facts.frequencies, facts.head_dim, distances)
        data.update(
            distances=distances.tolist(),
            scores=_r(scores),
            frequencies=_r(facts.frequencies, 6),
            head_dim=facts.head_dim,
        )
        return Step(
            3,
            TITLES[2],
            [
                f"{name} uses rotary positions: queries and keys are turned by an angle that grows with their position "
                f"({facts.source.split('(')[-1].rstrip(')')}), so a score depends on the distance between them.",
                f"The same query and key score {scores[0]:.2f} at distance 0, {scores[4]:.2f} at distance 4 "
                f"and {scores[32]:.2f} at distance 32.",
            ],
            data,
        )
    if facts.kind == "relative bias" and facts.bias_by_distance is not None and facts.distances is not None:
        bias, distances = facts.bias_by_distance, facts.distances
        data.update(distances=distances.tolist(), bias=_r(bias))
        strongest = np.unravel_index(int(np.argmax(bias)), bias.shape)
        head, distance = int(strongest[0]), int(distances[strongest[1]])
        return Step(
            3,
            TITLES[2],
            [
                f"{name} has no position vectors: each head adds a learned bias to every score by the distance from query to key.",
                f"The largest bias is head {head}'s {bias.max():+.2f} for keys {abs(distance)} "
                f"{'before' if distance < 0 else 'after'} the query."
                if distance
                else f"The largest bias is head {head}'s {bias.max():+.2f}, for the query's own position.",
            ],
            data,
        )
    return Step(
        3,
        TITLES[2],
        [f"Not drawn for {name}: its positions are {facts.kind} ({facts.source}), which this lesson does not chart."],
        data,
        applies=False,
    )


# -- 4 ------------------------------------------------------------------------------------
def self_attention(capture: Capture) -> Step:
    neuron = capture.neuron
    label = str(capture.labels[capture.layer, capture.head])
    if neuron is None:
        reason = capture.notes[0] if capture.notes else "no query and key vectors were captured"
        return Step(4, TITLES[3], [f"Not drawn for this model: {reason}."], {}, applies=False)
    seen = ~neuron.masked
    best = int(np.argmax(np.where(seen, neuron.weights, -np.inf)))
    data = {
        "kind": capture.kind,
        "layer": capture.layer,
        "head": capture.head,
        "label": label,
        "query": neuron.query_index,
        "query_token": neuron.query_label,
        "keys": neuron.key_labels,
        "dots": _r(neuron.dots),
        "scaling": round(float(neuron.scaling), 6),
        "scores": _r(neuron.scores),
        "weights": _r(neuron.weights),
        "masked": [bool(m) for m in neuron.masked],
    }
    return Step(
        4,
        TITLES[3],
        [
            f"Layer {capture.layer}, head {capture.head} ({label}): the query of {q(neuron.query_label)} is "
            f"multiplied with every key; with {q(neuron.key_labels[best])} the dot product q·k is "
            f"{neuron.dots[best]:.2f}, scaled by {neuron.scaling:.3f} to a score of {neuron.scores[best]:.2f}.",
            f"The softmax turns the {int(seen.sum())} scores into weights that sum to "
            + (
                "1"
                if abs(float(neuron.weights.sum()) - 1) < 0.01
                else f"{neuron.weights.sum():.2f} (the rest goes to the head's learned sink)"
            )
            + f": {q(neuron.key_labels[best])} gets the most, {neuron.weights[best]:.2f}.",
        ],
        data,
    )


# -- 5 ------------------------------------------------------------------------------------
def multi_head(capture: Capture) -> Step:
    labels = capture.labels
    layers, heads = labels.shape
    counts = {str(k): int(v) for k, v in zip(*np.unique(labels.astype(str), return_counts=True))}
    ordered = sorted(counts.items(), key=lambda item: -item[1])
    data: dict[str, Any] = {
        "kind": capture.kind,
        "labels": labels.astype(str).tolist(),
        "counts": counts,
    }
    sentences = [
        f"Each of the {layers} layers runs {plural(heads, 'head')} side by side; by the shape of their maps the "
        f"{layers * heads} heads are " + ", ".join(f"{n} {label}" for label, n in ordered) + "."
    ]
    if capture.clusters is not None:
        clusters = capture.clusters
        sizes = np.bincount(clusters.ravel())[1:]
        data["clusters"] = clusters.tolist()
        data["cluster_sizes"] = sizes.tolist()
        tokens = capture.result.array(capture.kind).shape[-1]
        over = f" (compared over the first {CLUSTER_TOKENS} tokens)" if tokens > CLUSTER_TOKENS else ""
        data["clusters_over_tokens"] = min(tokens, CLUSTER_TOKENS)
        sentences.append(
            f"By how alike their maps are they fall into {plural(len(sizes), 'cluster')}{over}; "
            f"the largest holds {plural(int(sizes.max()), 'head')}."
        )
    return Step(5, TITLES[4], sentences, data)


# -- 6-8: per-layer states -----------------------------------------------------------------
def _not_covered(number: int, capture: Capture) -> Step:
    return Step(
        number,
        TITLES[number - 1],
        [f"Not read for this model: {capture.not_covered}."],
        {"covered": False},
        applies=False,
    )


def _query_for(capture: Capture, kind: str, tokens: int) -> int:
    return capture.query if kind == capture.kind else tokens - 1


def feed_forward(capture: Capture) -> Step:
    if not capture.states:
        return _not_covered(6, capture)
    per_kind: dict[str, list[dict[str, Any]]] = {}
    for kind, layers in capture.states.items():
        for index, layer in enumerate(layers):
            tokens = len(next(iter(layer.states.values())))
            result = numbers.feed_forward(layer, _query_for(capture, kind, tokens))
            if result is None:
                continue
            per_kind.setdefault(kind, []).append(
                {
                    "layer": index,
                    "update": _r(result["update"]),
                    "residual": _r(result["residual"]),
                    "ratio": _r(result["ratio"]),
                    "mean_ratio": _r(result["ratio"].mean()),
                    "width": result["width"],
                    "top_neurons": [{"neuron": n, "activation": round(a, 4)} for n, a in result["top_neurons"]],
                }
            )
    rows = per_kind.get(capture.kind) or next(iter(per_kind.values()), [])
    if not rows:
        return _not_covered(6, capture)
    hidden = capture.facts.embeddings.shape[1]
    biggest = max(rows, key=lambda r: r["mean_ratio"])
    token = capture.result.axes(capture.kind)[0].display[capture.query]
    sentences = [
        "After attention, each token goes alone through a feed-forward block"
        + (f" that widens {hidden} dims to {rows[0]['width']} and back" if rows[0]["width"] else "")
        + f"; its update is largest against the residual stream in layer {biggest['layer']} "
        f"({biggest['mean_ratio']:.2f}x its length).",
    ]
    last = rows[-1]
    if last["top_neurons"]:
        top = ", ".join(f"#{n['neuron']} ({n['activation']:.2f})" for n in last["top_neurons"])
        sentences.append(f"For {q(token)} the most active neurons of layer {last['layer']} are {top}.")
    return Step(6, TITLES[5], sentences, {"covered": True, "kind": capture.kind, "layers": per_kind})


def residual(capture: Capture) -> Step:
    if not capture.states:
        return _not_covered(7, capture)
    per_kind: dict[str, list[dict[str, Any]]] = {}
    for kind, layers in capture.states.items():
        for index, layer in enumerate(layers):
            parts = numbers.mixing(layer)
            if parts is None:
                continue
            per_kind.setdefault(kind, []).append(
                {"layer": index, **{k: _r(v) for k, v in parts.items()}, "mean_ratio": _r(parts["ratio"].mean())}
            )
    rows = per_kind.get(capture.kind) or next(iter(per_kind.values()), [])
    if not rows:
        return Step(
            7,
            TITLES[6],
            ["Not read for this model: its attention weights and values could not both be captured."],
            {"covered": False},
            applies=False,
        )
    middle = rows[len(rows) // 2]
    most = max(rows, key=lambda r: r["mean_ratio"])
    carried = 1 - middle["mean_ratio"]
    return Step(
        7,
        TITLES[6],
        [
            f"In layer {middle['layer']} the residual stream carries {carried:.0%} of each token's new vector "
            f"(its own vector, kept by the residual connection, plus what it attends to in itself); "
            f"{middle['mean_ratio']:.0%} comes from the other tokens through attention.",
            f"Layer {most['layer']} mixes the most ({most['mean_ratio']:.0%}): the mixing ratio of Kobayashi et al. 2021.",
        ],
        {
            "covered": True,
            "kind": capture.kind,
            "placement": capture.states[capture.kind][0].placement if capture.kind in capture.states else None,
            "layers": per_kind,
        },
    )


def layer_norm(capture: Capture) -> Step:
    if not capture.states or capture.recipe is None:
        return _not_covered(8, capture)
    per_kind: dict[str, list[dict[str, Any]]] = {}
    placement = "post"
    for kind, layers in capture.states.items():
        for index, layer in enumerate(layers):
            norms = numbers.norm_placement(layer)
            placement = layer.placement
            if norms is None:
                continue
            per_kind.setdefault(kind, []).append(
                {
                    "layer": index,
                    **{k: _r(v) for k, v in norms.items()},
                    **{f"mean_{k}": _r(v.mean()) for k, v in norms.items()},
                }
            )
    rows = per_kind.get(capture.kind) or next(iter(per_kind.values()), [])
    if not rows:
        return _not_covered(8, capture)
    first, last = rows[0], rows[-1]
    peak = max(rows, key=lambda r: r["mean_ffn_norm_in"])
    where = RECIPE_NAMES[capture.recipe]
    if placement == "post":
        sentences = [
            f"{_name(capture)} normalizes after each residual addition ({where}).",
            f"Each norm resets the length: in layer {peak['layer']} residual plus feed-forward update reach a mean "
            f"length of {peak['mean_ffn_norm_in']:.1f} and leave the norm at {peak['mean_ffn_norm_out']:.1f}; "
            f"after every layer the stream is back near {np.mean([r['mean_ffn_norm_out'] for r in rows]):.1f}.",
        ]
    else:
        sentences = [
            f"{_name(capture)} normalizes what each sub-layer reads, before attention and before the feed-forward "
            f"block ({where}); the residual stream itself is never normalized inside a layer.",
            f"The stream {'grows' if last['mean_ffn_norm_in'] >= first['mean_attn_norm_in'] else 'shrinks'} from "
            f"a mean length of {first['mean_attn_norm_in']:.2f} into layer {first['layer']} to "
            f"{last['mean_ffn_norm_in']:.2f} in layer {last['layer']}, while attention reads vectors of length "
            f"{first['mean_attn_norm_out']:.2f}-{last['mean_attn_norm_out']:.2f}.",
        ]
    return Step(8, TITLES[7], sentences, {"covered": True, "placement": placement, "layers": per_kind})


# -- 9 ------------------------------------------------------------------------------------
def masks(capture: Capture) -> Step:
    result = capture.result
    name = _name(capture)
    data: dict[str, Any] = {"family": result.family, "kinds": {}}
    described = []
    for kind in result.kinds:
        array = result.array(kind)
        queries, keys = result.axes(kind)
        if kind == "cross":
            mean = array[-1].mean(axis=0)
            data["kinds"][kind] = {
                "mask": "full",
                "mean_last_layer": _r(mean),
                "queries": list(queries.display),
                "keys": list(keys.display),
            }
            continue
        kind_of_mask = numbers.mask_kind(array[0])
        seen = (array[0] > 0).any(axis=0)
        data["kinds"][kind] = {"mask": kind_of_mask, "seen": seen.astype(int).tolist(), "tokens": list(queries.display)}
        described.append((kind, kind_of_mask, len(queries)))
    parts = []
    for kind, kind_of_mask, count in described:
        if kind_of_mask == "full":
            parts.append(f"the {kind}'s {count} tokens each see all {count}, before and after them (full mask)")
        elif kind_of_mask == "causal":
            parts.append(f"in the {kind} token i sees only tokens 0..i (causal mask), so it can predict the next one")
        else:
            parts.append(f"the {kind} limits what each token sees ({kind_of_mask} mask)")
    sentences = [f"{name} is {'an' if result.family[0] in 'ae' else 'a'} {result.family}: " + "; ".join(parts) + "."]
    if "cross" in result.kinds:
        mean = np.asarray(data["kinds"]["cross"]["mean_last_layer"])
        queries, keys = result.axes("cross")
        row = len(queries) - 1
        sentences.append(
            f"Through cross-attention every decoder token reads the encoder's tokens: in the last layer "
            f"{q(queries.display[row])} reads {q(keys.display[int(np.argmax(mean[row]))])} most."
        )
    else:
        other = "decoder" if result.family == "encoder" else "encoder"
        sentences.append(f"There is no cross-attention: {name} has no {other} whose tokens it could read.")
    return Step(9, TITLES[8], sentences, data)


BUILDERS: tuple[Callable[[Capture], Step], ...] = (
    tokenization,
    embeddings,
    positions,
    self_attention,
    multi_head,
    feed_forward,
    residual,
    layer_norm,
    masks,
)


def build_steps(capture: Capture) -> list[Step]:
    return [build(capture) for build in BUILDERS]
