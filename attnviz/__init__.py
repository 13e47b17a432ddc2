"""attnviz: look inside transformer attention.

Heavy modules (torch, transformers, matplotlib) load only when a function that needs them is
first used, so ``import attnviz`` and ``attnviz --help`` stay fast.

>>> import attnviz
>>> result = attnviz.extract("AI changes everything")        # bundled MiniLM, offline
>>> result.array("encoder").shape                              # [layers, heads, query, key]
(6, 12, 5, 5)
>>> fig = attnviz.render_figure(result, view="grid")          # a matplotlib Figure
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "extract": "attnviz.extraction",
    "extract_many": "attnviz.extraction",
    "Extractor": "attnviz.extraction",
    "TextInput": "attnviz.encoding",
    "load_model": "attnviz.models",
    "describe_model": "attnviz.models",
    "LoadedModel": "attnviz.models",
    "ModelInfo": "attnviz.models",
    "ALIASES": "attnviz.models",
    "AttentionResult": "attnviz.result",
    "head_distances": "attnviz.analysis.clusters",
    "stream_statistics": "attnviz.analysis.stats",
    "compare_models": "attnviz.analysis.compare",
    "TokenSequence": "attnviz.result",
    "select": "attnviz.transforms",
    "mean_heads": "attnviz.transforms",
    "merge_words": "attnviz.transforms",
    "drop_special": "attnviz.transforms",
    "apply_transforms": "attnviz.transforms",
    "render_figure": "attnviz.render.image",
    "save_figure": "attnviz.render.image",
    "render_html": "attnviz.render.html",
    "attention_rollout": "attnviz.analysis.rollout",
    "attention_flow": "attnviz.analysis.rollout",
    "head_statistics": "attnviz.analysis.stats",
    "compare_results": "attnviz.analysis.compare",
    "AttnvizError": "attnviz.errors",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'attnviz' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
