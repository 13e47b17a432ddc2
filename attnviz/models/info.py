"""What a model is, read from its config alone (no weights): family, attention kinds, and
layers and heads per kind (:class:`ModelInfo`); also from config.json without transformers
(:func:`peek_counts`), so a bad layer or head choice is refused in milliseconds.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from attnviz.errors import AttnvizError, ModelLoadError

# Model types whose positions start after the padding index, so that
# max_position_embeddings overstates the usable length by padding_idx + 1.
_OFFSET_POSITION_TYPES = {
    "roberta",
    "xlm-roberta",
    "xlm-roberta-xl",
    "camembert",
    "longformer",
    "roberta-prelayernorm",
    "data2vec-text",
}
_FALLBACK_MAX_LENGTH = 512


@dataclass(frozen=True)
class ModelInfo:
    """What ``attnviz info`` reports, read from the config alone (no weights loaded).

    ``layers`` and ``heads`` map each attention kind (``encoder``, ``decoder``, ``cross``)
    to its number of layers and heads per layer.
    """

    name: str
    source: str
    model_type: str
    family: str
    architecture: str
    layers: dict[str, int]
    heads: dict[str, int]
    max_length: int
    notes: tuple[str, ...] = ()

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(self.layers)

    @property
    def counts(self) -> dict[str, tuple[int, int]]:
        """(layers, heads) per kind."""
        return {kind: (self.layers[kind], self.heads[kind]) for kind in self.layers}

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "source": self.source,
            "model_type": self.model_type,
            "family": self.family,
            "architecture": self.architecture,
            "attention_kinds": list(self.kinds),
            "layers": self.layers,
            "heads": self.heads,
            "max_length": self.max_length,
            "notes": list(self.notes),
        }


def _family(config: Any) -> str:
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES,
    )

    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder"
    model_type = getattr(config, "model_type", "")
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES:
        return "encoder"
    architectures = getattr(config, "architectures", None) or []
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES or any(
        a.endswith(("ForCausalLM", "LMHeadModel")) for a in architectures
    ):
        return "decoder"
    return "encoder"


_COUNT_FIELDS = (
    "num_hidden_layers",
    "num_attention_heads",
    "num_key_value_heads",
    "encoder_layers",
    "decoder_layers",
    "encoder_attention_heads",
    "decoder_attention_heads",
    "num_layers",
    "num_heads",
    "n_layer",
    "n_head",
)


def _check_counts(name: str, config: Any) -> None:
    """A layer or head count that is not a positive integer is a broken config: say which."""
    for field in _COUNT_FIELDS:
        value = getattr(config, field, None)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise ModelLoadError(
                f"the config of '{name}' is broken: {field} is {value!r}, not a positive integer",
                hint="fix config.json (layer and head counts are positive integers)",
            )


#: Where configs keep their layer and head counts (the first positive integer wins), read by
#: kind_counts for model_info_from_config and peek_counts (config.json without transformers).
_LAYER_FIELDS = ("encoder_layers", "num_layers", "num_hidden_layers", "n_layer")
_HEAD_FIELDS = ("encoder_attention_heads", "num_heads", "num_attention_heads", "n_head")
_DECODER_LAYER_FIELDS = ("decoder_layers", "num_decoder_layers", "num_layers", "num_hidden_layers")
_DECODER_HEAD_FIELDS = ("decoder_attention_heads", "num_heads", "num_attention_heads")


def _first_attr(config: Any, names: tuple[str, ...]) -> int | None:
    for attr in names:
        value = getattr(config, attr, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _max_length(config: Any, tokenizer: Any | None) -> int:
    candidates = []
    positions = _first_attr(config, ("max_position_embeddings", "n_positions", "n_ctx"))
    if positions is not None and getattr(config, "model_type", "") in _OFFSET_POSITION_TYPES:
        positions -= (getattr(config, "pad_token_id", None) or 0) + 1
    if positions is not None:
        candidates.append(positions)
    tok_max = getattr(tokenizer, "model_max_length", None) if tokenizer is not None else None
    if isinstance(tok_max, int) and 0 < tok_max < 1_000_000:
        candidates.append(tok_max)
    return min(candidates) if candidates else _FALLBACK_MAX_LENGTH


def kind_counts(config: Any, family: str) -> dict[str, tuple[int, int]] | None:
    """(layers, heads) per attention kind of one flat config (attributes, or a
    ``SimpleNamespace`` over config.json): ``encoder`` or ``decoder`` alone, or for an
    encoder-decoder ``encoder``, ``decoder`` and ``cross`` (cross attention sits in the
    decoder's layers, with its heads). None when the counts are not found."""
    layers = _first_attr(config, _LAYER_FIELDS)
    heads = _first_attr(config, _HEAD_FIELDS)
    if layers is None or heads is None:
        return None
    if family != "encoder-decoder":
        return {"decoder" if family == "decoder" else "encoder": (layers, heads)}
    decoder = (_first_attr(config, _DECODER_LAYER_FIELDS) or layers, _first_attr(config, _DECODER_HEAD_FIELDS) or heads)
    return {"encoder": (layers, heads), "decoder": decoder, "cross": decoder}


def _joined_counts(
    encoder: dict[str, tuple[int, int]], decoder: dict[str, tuple[int, int]]
) -> dict[str, tuple[int, int]]:
    """The counts of an ``EncoderDecoderModel`` from those of its two sub-configs."""
    enc, dec = next(iter(encoder.values())), next(iter(decoder.values()))
    return {"encoder": enc, "decoder": dec, "cross": dec}


def model_info_from_config(name: str, source: str, config: Any, tokenizer: Any | None = None) -> ModelInfo:
    """Describe a model from its config: family, attention kinds, layers and heads per kind."""
    parts = _sub_configs(config)
    if parts is not None:
        encoder = model_info_from_config(name, source, parts[0], tokenizer)
        decoder = model_info_from_config(name, source, parts[1], tokenizer)
        counts = _joined_counts(encoder.counts, decoder.counts)
        return ModelInfo(
            name=name,
            source=source,
            model_type=f"encoder-decoder ({encoder.model_type} to {decoder.model_type})",
            family="encoder-decoder",
            architecture="EncoderDecoderModel",
            layers={kind: layers for kind, (layers, _) in counts.items()},
            heads={kind: heads for kind, (_, heads) in counts.items()},
            max_length=min(encoder.max_length, decoder.max_length),
        )
    family = _family(config)
    _check_counts(name, config)
    found = kind_counts(config, family)
    if found is None:
        raise ModelLoadError(
            f"cannot tell the number of layers and heads of '{name}' from its config",
            hint="attnviz supports transformer checkpoints with standard config fields",
        )
    architectures = getattr(config, "architectures", None) or []
    return ModelInfo(
        name=name,
        source=source,
        model_type=getattr(config, "model_type", "unknown"),
        family=family,
        architecture=architectures[0] if architectures else type(config).__name__.replace("Config", ""),
        layers={kind: layers for kind, (layers, _) in found.items()},
        heads={kind: heads for kind, (_, heads) in found.items()},
        max_length=_max_length(config, tokenizer),
    )


def _sub_configs(config: Any) -> tuple[Any, Any] | None:
    """(encoder config, decoder config) of a composite ``EncoderDecoderModel`` (BERT2BERT)."""
    if getattr(config, "model_type", "") == "encoder-decoder":
        return config.encoder, config.decoder
    return None


def config_notes(config: Any, trust_remote_code: bool) -> list[str]:
    """What a user should know about how a config was read: custom code that was not run."""
    notes = []
    auto_map = getattr(config, "auto_map", None)
    if auto_map and not trust_remote_code:
        names = ", ".join(sorted(auto_map)) if isinstance(auto_map, dict) else str(auto_map)
        notes.append(
            f"config.json names custom code (auto_map: {names}) that was not run; the standard "
            f"'{getattr(config, 'model_type', '?')}' architecture was used. --trust-remote-code would run that code"
        )
    return notes


def peek_counts(model: str | os.PathLike[str] | None, revision: str | None = None) -> dict[str, tuple[int, int]] | None:
    """(layers, heads) per attention kind, read from config.json alone: no torch, no
    transformers, no network. For a local directory, the bundled model or a hub id already
    in the local cache; None when the config is not at hand or not understood (the full
    load checks again). Lets the CLI refuse an out-of-range ``--layer`` in milliseconds.
    Raises :class:`ModelLoadError` when a local checkpoint's safetensors headers cannot hold
    the counts (:func:`~attnviz.models.weights.check_counts_fit_weights`)."""
    import json
    from types import SimpleNamespace

    from attnviz.models.spec import resolve_model_spec

    try:
        spec = resolve_model_spec(model)
        if spec.is_local:
            path: Any = Path(spec.source) / "config.json"
        else:
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(spec.source, "config.json", revision=revision)
            if not isinstance(path, str):
                return None
        document = json.loads(Path(path).read_text(encoding="utf-8"))
    except (AttnvizError, OSError, ValueError, ImportError):
        return None
    if not isinstance(document, dict):
        return None

    def counts(config: dict[str, Any]) -> dict[str, tuple[int, int]] | None:
        # transformers is not imported here, so the family is a guess; only the counts matter
        family = "encoder-decoder" if config.get("is_encoder_decoder") else "encoder"
        return kind_counts(SimpleNamespace(**config), family)

    found: dict[str, tuple[int, int]] | None
    if document.get("model_type") == "encoder-decoder":
        encoder, decoder = document.get("encoder"), document.get("decoder")
        if not isinstance(encoder, dict) or not isinstance(decoder, dict):
            return None
        enc, dec = counts(encoder), counts(decoder)
        found = None if enc is None or dec is None else _joined_counts(enc, dec)
    else:
        found = counts(document)
    if found is not None:
        from attnviz.models.weights import check_counts_fit_weights

        # the weights beside config.json: a local directory, or the hub cache's snapshot
        check_counts_fit_weights(spec.name, Path(path).parent, found, _sizes(document))  # before anything is built
    return found


def _sizes(document: dict[str, Any]) -> dict[str, int]:
    """The integer tensor sizes (:data:`~attnviz.models.weights.SIZE_FIELDS`) of a config
    document and of its nested sub-configs (an encoder-decoder's, a vision-text model's)."""
    from attnviz.models.weights import SIZE_FIELDS

    found: dict[str, int] = {}
    for part in [document, *(v for v in document.values() if isinstance(v, dict))]:
        for field in SIZE_FIELDS:
            value = part.get(field)
            if isinstance(value, int) and not isinstance(value, bool) and value > found.get(field, 0):
                found[field] = value
    return found
