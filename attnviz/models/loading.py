"""Loading a tokenizer and model for attention capture: weights from safetensors only (a
pickle checkpoint is refused unless allowed), the tokenizer checked against the model,
device and dtype chosen, and the model's attention routed through attnviz's capture.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from attnviz.errors import ModelLoadError, SelectionError
from attnviz.models.info import ModelInfo, _sub_configs, config_notes, model_info_from_config, peek_counts
from attnviz.models.quiet import quiet_libraries
from attnviz.models.spec import DEFAULT_MODEL, ModelSpec, _hub_reachable, _offline_env, resolve_model_spec


@dataclass(eq=False)
class LoadedModel:
    """A tokenizer and model ready for attention extraction, in eval mode: attention routed
    through attnviz's capture (see ``captured``), or eager for models that bypass it."""

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
        hint = (
            f"check {os.path.join(spec.source, 'config.json')}: it must be the JSON a model's save_pretrained writes"
            if spec.is_local
            else "check the model name; private models need `hf auth login`"
        )
        raise ModelLoadError(f"cannot load the config of '{spec.name}': {_first_line(exc)}", hint=hint) from exc


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
    weights: bool = True,
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
    ``weights=False`` reads only the config and the tokenizer (``model`` is None): what a
    process that checks the options and names the output needs while others run the model
    (``export --ray``'s driver).
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
    # counts the weights cannot hold are refused before transformers builds anything from them
    peek_counts(spec, revision)
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
        if not weights:
            notes = tuple(config_notes(config, trust_remote_code))
            return LoadedModel(spec=resolved, tokenizer=tokenizer, model=None, info=info, device="cpu", notes=notes)
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
    """Refuse a tokenizer that cannot tokenize at all: one whose vocabulary holds nothing
    beyond its special tokens (a directory without tokenizer files), or one that fails on a
    character outside its vocabulary (a WordPiece ``vocab.txt`` without its unknown token).
    Nothing assumes English: an amino-acid or any other vocabulary passes, and a text that a
    vocabulary does not cover is a warning when it is run (:func:`unknown_token_warning`)."""
    unk = getattr(tokenizer, "unk_token", None) or "the unknown token"
    try:
        vocabulary = tokenizer.get_vocab()
    except Exception:  # noqa: BLE001 - a tokenizer without get_vocab is judged by its output alone
        vocabulary = None
    if isinstance(vocabulary, dict):
        special = set(getattr(tokenizer, "all_special_tokens", ()) or ())
        if not any(token not in special for token in vocabulary):
            raise ModelLoadError(
                f"the tokenizer of '{spec.name}' turns every word into {unk}: its vocabulary is missing "
                f"(it holds only its {len(vocabulary)} special tokens)",
                hint="the model directory needs its tokenizer files (tokenizer.json, or vocab.txt / vocab.json)",
            )
    try:
        # a character no vocabulary holds: the tokenizer must map it to its unknown token or bytes
        tokenizer("a \u0378 \u2603", add_special_tokens=False)  # U+0378 is unassigned
    except Exception as exc:  # noqa: BLE001 - the tokenizers library raises a bare Exception
        raise ModelLoadError(
            f"the tokenizer of '{spec.name}' fails on a character outside its vocabulary ({_first_line(exc)})",
            hint=f"its vocabulary must hold its unknown token {unk} (e.g. a line {unk} in vocab.txt)",
        ) from None


#: The unknown token's usual spellings (WordPiece; SentencePiece, BPE and ESM vocabularies),
#: for saved data read without its tokenizer.
COMMON_UNKNOWN_TOKENS = ("[UNK]", "<unk>")


def unknown_token_warning(
    tokenizer: Any, tokens: Any, special_mask: Iterable[Any] | None = None, *, text: str | None = None
) -> str | None:
    """A warning when every non-special token of a text is the unknown token (the text is
    outside the vocabulary: a protein model given English, say), naming the count; else None.
    Every command that runs a text says it in these words (once per text).

    ``tokens``: the raw tokens of one side of a result with ``special_mask`` beside them, or
    a :class:`~attnviz.result.TokenSequence` (its own mask). ``tokenizer``: the model's (its
    ``unk_token``), or None for saved data: then [UNK] and <unk> count as unknown.
    ``text``: named in the warning (cut to 40 characters), for a command that runs several."""
    if special_mask is None:
        tokens, special_mask = tokens.tokens, tokens.special_mask
    tokens, special = list(tokens), [bool(flag) for flag in special_mask]
    candidates = (getattr(tokenizer, "unk_token", None),) if tokenizer is not None else COMMON_UNKNOWN_TOKENS
    for unk in candidates:
        if not unk:
            continue
        # the unknown token counts as special in the tokenizer's own mask, so it is kept here
        words = [token for token, flag in zip(tokens, special) if not flag or token == unk]
        if words and all(token == unk for token in words):
            which = "the text" if text is None else f"'{text[:40]}…'" if len(text) > 40 else f"'{text}'"
            count = f"all {len(words)} tokens of {which} are" if len(words) > 1 else f"the only token of {which} is"
            # short enough for one 80-column line; docs/errors.md says what it means
            return f"{count} {unk} (outside the model's vocabulary)"
    return None
