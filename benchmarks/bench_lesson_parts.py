"""The lesson's two slowest parts, side by side with an earlier commit's code, in one run:
the nearest neighbours of a long text's tokens in MiniLM's embedding table, and the head
distances of 72 heads over 128 tokens (what a lesson clusters). Medians of 3.

    python benchmarks/bench_lesson_parts.py [COMMIT]    # default COMMIT: 5504cd8, before the speed-up
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import types
from typing import Any

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def baseline(commit: str, path: str) -> dict[str, Any]:
    """The module ``path`` as it was at ``commit``, executed into a namespace."""
    code = subprocess.run(
        ["git", "show", f"{commit}:{path}"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    module = types.ModuleType(f"baseline_{os.path.basename(path)[:-3]}")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(code, f"{commit}:{path}", "exec"), module.__dict__)  # noqa: S102 - our own file at a commit
    return module.__dict__


def median_seconds(function: Any, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    sys.path.insert(0, ROOT)
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    from bench_scale import corpus

    from attnviz.analysis import clusters
    from attnviz.lesson import model
    from attnviz.models import load_model

    commit = sys.argv[1] if len(sys.argv) > 1 else "5504cd8"
    old_model = baseline(commit, "attnviz/lesson/model.py")
    old_clusters = baseline(commit, "attnviz/analysis/clusters.py")
    loaded = load_model("minilm", device="cpu")
    table = loaded.model.get_input_embeddings().weight.detach().numpy()
    ids = loaded.tokenizer(" ".join(corpus(40, seed=3))[:2400])["input_ids"][1:-1]
    exclude = [0, 100, 101, 102, 103]
    rows = np.random.default_rng(0).random((72, 128, 128))
    rows /= rows.sum(-1, keepdims=True)
    print(f"{len(ids)} tokens ({len(set(ids))} distinct), baseline {commit}")

    def new_distances() -> list[np.ndarray]:
        entropies = clusters._entropy(rows)
        return [clusters._js_to_all(rows, a, entropies) for a in range(len(rows))]

    checks = [
        (
            "nearest neighbours",
            lambda: old_model["nearest_neighbours"](table, ids, exclude),
            lambda: model.nearest_neighbours(table, ids, exclude),
        ),
        (
            "head distances, 72 heads x 128 tokens",
            lambda: [old_clusters["_js_to_all"](rows, a) for a in range(len(rows))],
            new_distances,
        ),
    ]
    for name, old, new in checks:
        assert repr(old()) == repr(new()) or name.startswith("head"), name  # the same neighbours, in order
        before, after = median_seconds(old), median_seconds(new)
        print(f"{name:<40} before {before:6.2f} s  now {after:6.2f} s  {before / after:5.1f}x")
    difference = np.abs(np.array(new_distances()) - np.array([old_clusters["_js_to_all"](rows, a) for a in range(72)]))
    print(f"head distances: max |difference| {float(difference.max()):.1e}")


if __name__ == "__main__":
    main()
