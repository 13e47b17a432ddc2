"""Models: resolve a spec, read what a model is from its config, load it for capture.

* :mod:`attnviz.models.spec`: aliases, local directories and hub ids (no network);
* :mod:`attnviz.models.info`: :class:`ModelInfo` from a config, counts per attention kind;
* :mod:`attnviz.models.quiet`: keeping the libraries' logs and progress bars quiet;
* :mod:`attnviz.models.loading`: :func:`load_model` (safetensors, tokenizer checks).

Every public name is importable from ``attnviz.models``.
"""

from __future__ import annotations

from attnviz.models.info import ModelInfo, config_notes, kind_counts, model_info_from_config, peek_counts
from attnviz.models.loading import (
    DTYPES,
    PICKLE_VARIABLE,
    LoadedModel,
    describe_model,
    load_config,
    load_model,
    pick_device,
    pick_dtype,
    unknown_token_warning,
)
from attnviz.models.quiet import quiet_libraries, silence_libraries
from attnviz.models.spec import ALIASES, DEFAULT_MODEL, ModelSpec, bundled_model_path, resolve_model_spec

__all__ = [
    "ALIASES",
    "DEFAULT_MODEL",
    "DTYPES",
    "PICKLE_VARIABLE",
    "LoadedModel",
    "ModelInfo",
    "ModelSpec",
    "bundled_model_path",
    "config_notes",
    "describe_model",
    "kind_counts",
    "load_config",
    "load_model",
    "model_info_from_config",
    "peek_counts",
    "pick_device",
    "pick_dtype",
    "quiet_libraries",
    "resolve_model_spec",
    "silence_libraries",
    "unknown_token_warning",
]
