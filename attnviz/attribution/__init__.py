"""Token attributions and how far to trust them (issue #17).

``attribute`` scores how much each input token matters for one output of the model (the
next token's logit, a target token, a class, the ``[MASK]`` logit, or the sentence
embedding), by leave-one-out ablation, captum's gradients, Chefer's gradient rollout and
the attention views; ``evaluate_faithfulness`` measures each method against ablation
(Spearman with a bootstrap interval, ERASER comprehensiveness and sufficiency, AOPC).

torch is imported only inside the functions that run the model, never at import time.

>>> from attnviz.attribution import Attributor
>>> attributor = Attributor.load("minilm")                   # the sentence embedding
>>> result = attributor.attribute("AI changes everything")
>>> result.scores.shape                                        # [methods, tokens]
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Attributor": "attnviz.attribution.core",
    "Attribution": "attnviz.attribution.core",
    "METHODS": "attnviz.attribution.methods",
    "SIGNED_METHODS": "attnviz.attribution.methods",
    "OUTPUT_KINDS": "attnviz.attribution.targets",
    "evaluate_faithfulness": "attnviz.attribution.faithfulness",
    "FaithfulnessReport": "attnviz.attribution.faithfulness",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'attnviz.attribution' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
