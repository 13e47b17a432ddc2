"""What each head does, for the terminal: the pattern ``stats`` gives it and the key it
attends to most, grouped by pattern so 72 heads take a few lines, not 37."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.render.views import head_name
from attnviz.result import AttentionResult

if TYPE_CHECKING:
    from rich.console import Console

LABEL_STYLES = {
    "vertical": "cyan",
    "diagonal": "magenta",
    "previous": "green",
    "next": "green",
    "block": "yellow",
    "broad": "blue",
}


def top_keys_per_head(result: AttentionResult, kind: str | None = None, top: int = 3) -> list[dict[str, Any]]:
    """For each selected head, the keys that receive the most attention on average over
    queries: ``[{"layer", "head", "top": [{"index", "token", "weight"}, ...]}, ...]``."""
    kind = kind or result.default_kind
    array = result.array(kind)
    _, keys = result.axes(kind)
    received = array.mean(axis=2, dtype=np.float64)  # [layers, heads, key]
    out = []
    for li, layer in enumerate(result.layer_ids[kind]):
        for hi, head in enumerate(result.head_ids[kind]):
            order = np.argsort(-received[li, hi], kind="stable")[:top]
            out.append(
                {
                    "layer": int(layer),
                    "head": int(head),
                    "top": [
                        {"index": int(j), "token": keys.display[j], "weight": round(float(received[li, hi, j]), 6)}
                        for j in order
                    ],
                }
            )
    return out


def head_roles(result: AttentionResult, kind: str) -> list[dict[str, Any]]:
    """Per selected head: its pattern label (as ``stats`` computes it; ``None`` for cross
    attention and averaged heads) and the key it attends to most on average."""
    from attnviz.analysis.stats import head_statistics

    labels = None
    array = result.array(kind)
    if array.shape[-1] == array.shape[-2] and kind != "cross":
        labels = head_statistics([result], kind).labels()
    out = []
    for row, entry in enumerate(top_keys_per_head(result, kind, top=1)):
        li, hi = divmod(row, array.shape[1])
        out.append(
            {
                "layer": entry["layer"],
                "head": entry["head"],
                "label": None if labels is None else str(labels[li, hi]),
                "top": entry["top"][0],
            }
        )
    return out


#: Patterns defined by position (itself, the previous or next token, a few around it): the
#: key a head attends to most over all queries says nothing about them.
POSITIONAL = frozenset({"diagonal", "previous", "next", "block"})


def head_spans(heads: list[tuple[int, int]]) -> str:
    """``(layer, head)`` pairs as ``L0 H0,H4-H11 · L1 H0-H11``: runs of heads per layer."""
    by_layer: dict[int, list[int]] = {}
    for layer, head in heads:
        by_layer.setdefault(layer, []).append(head)
    parts = []
    for layer, ids in by_layer.items():
        ids = sorted(ids)
        runs: list[list[int]] = []
        for h in ids:
            if runs and h == runs[-1][-1] + 1:
                runs[-1].append(h)
            else:
                runs.append([h])
        names = [
            f"H{head_name(r[0])}" if len(r) == 1 else f"H{r[0]}-H{r[-1]}" if len(r) > 2 else f"H{r[0]},H{r[1]}"
            for r in runs
        ]
        parts.append(f"L{layer} {','.join(names)}")
    return " · ".join(parts)


def group_roles(roles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Heads grouped by pattern, most common first: ``{"label", "heads": [(layer, head)],
    "keys": Counter of the key each attends to most}``."""
    groups: dict[str, dict[str, Any]] = {}
    for role in roles:
        label = role["label"] or "heads"
        group = groups.setdefault(label, {"label": label, "heads": [], "keys": Counter()})
        group["heads"].append((role["layer"], role["head"]))
        group["keys"][role["top"]["token"]] += 1
    return sorted(groups.values(), key=lambda g: -len(g["heads"]))


def print_head_roles(result: AttentionResult, kind: str, console: Console, fit: Any) -> None:
    """One line (folded) per pattern: ``vertical (55, most → [CLS]): L0 H0,H4-H11 · ...``.
    ``fit(label, width)`` makes a token printable and cuts it to ``width`` cells."""
    from rich.text import Text

    roles = head_roles(result, kind)
    if not roles:
        return
    console.print(Text("what the heads do (patterns as attnviz stats labels them):", style="bold"))
    for group in group_roles(roles):
        count = len(group["heads"])
        (token, times), *_ = group["keys"].most_common(1)
        line = Text()
        line.append(group["label"], style=LABEL_STYLES.get(group["label"], "bold"))
        if group["label"] in POSITIONAL:  # each query attends to its own neighbour: no one key to name
            line.append(f" ({count}): ", style="dim")
        else:
            most = "→" if times == count else "mostly →"
            line.append(f" ({count}, {most} {fit(token, 12)}): ", style="dim")
        line.append(head_spans(group["heads"]))
        console.print(line, overflow="fold")
