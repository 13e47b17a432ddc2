"""``Attributor`` (a model ready to attribute) and ``Attribution`` (one text's scores)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.attribution.methods import METHODS, SIGNED_METHODS
from attnviz.errors import SelectionError

if TYPE_CHECKING:
    from attnviz.attribution.targets import Target
    from attnviz.extraction import EncodedInput
    from attnviz.models import LoadedModel

SCHEMA = "attnviz-attribution/1"


@dataclass(frozen=True)
class Attribution:
    """One text's token attributions.

    ``scores``: float32 ``[methods, tokens]``, NaN at special tokens; units are the
    method's own (a score drop for ablation, score x embedding for the gradients, attention
    mass for the views), so compare methods by rank, not by value. ``output``: what was
    explained (:meth:`Target.describe`). ``seconds``: wall time per method.
    """

    model: str
    text: str
    tokens: tuple[str, ...]
    special: np.ndarray
    methods: tuple[str, ...]
    scores: np.ndarray
    output: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    truncated_tokens: int = 0
    pair: str | None = None

    def signed(self, method: str) -> bool:
        return method in SIGNED_METHODS

    def row(self, method: str) -> np.ndarray:
        return self.scores[self.methods.index(method)]

    def meta(self) -> dict[str, Any]:
        from attnviz import __version__
        from attnviz.result import _transformers_version

        return {
            "schema": SCHEMA,
            "model": self.model,
            "text": self.text,
            "pair": self.pair,
            "output": self.output,
            "methods": [{"name": m, "signed": self.signed(m), "seconds": self.seconds.get(m)} for m in self.methods],
            "notes": list(self.notes),
            "truncated_tokens": self.truncated_tokens,
            "attnviz": __version__,
            "transformers": _transformers_version(),
        }

    def to_dict(self) -> dict[str, Any]:
        scores = [[None if not np.isfinite(v) else float(v) for v in row] for row in self.scores]
        return {
            "meta": self.meta(),
            "tokens": list(self.tokens),
            "special": [bool(s) for s in self.special],
            "methods": list(self.methods),
            "scores": scores,
        }

    def save(self, path: str | os.PathLike[str]) -> Path:
        """``.json`` or ``.npz`` (arrays ``scores`` ``[methods, tokens]``, ``tokens``,
        ``special``, ``methods`` and ``meta``, a JSON string), written atomically."""
        from attnviz.errors import OutputFormatError
        from attnviz.io import atomic_write

        suffix = Path(path).suffix.lower()
        if suffix == ".json":
            text = json.dumps(self.to_dict(), ensure_ascii=False, indent=1)
            return atomic_write(path, lambda handle: handle.write(text + "\n"), binary=False)
        if suffix == ".npz":
            arrays: dict[str, Any] = {
                "scores": self.scores.astype(np.float32),
                "tokens": np.asarray(self.tokens, dtype=str),
                "special": np.asarray(self.special, dtype=bool),
                "methods": np.asarray(self.methods, dtype=str),
                "meta": np.asarray(json.dumps(self.meta(), ensure_ascii=False)),
            }
            return atomic_write(path, lambda handle: np.savez_compressed(handle, **arrays))
        raise OutputFormatError(f"cannot write attribution data as '{suffix}'", hint="use .json or .npz")


class Attributor:
    """A model loaded for attribution: the capture model (attention views) from
    :func:`attnviz.models.load_model` plus the head that computes the output, eager."""

    def __init__(
        self,
        loaded: LoadedModel,
        *,
        output_kind: str | None = None,
        target_token: str | None = None,
        class_index: int | None = None,
        steps: int = 32,
        max_batch_tokens: int | None = None,
        revision: str | None = None,
        truncate: bool = True,
        verbose: bool = False,
    ) -> None:
        from attnviz.attribution.targets import Scorer, check_output_kind, default_output_kind, load_head
        from attnviz.extraction import DEFAULT_BATCH_TOKENS, Extractor

        self.loaded = loaded
        self.kind = check_output_kind(loaded, output_kind) if output_kind else default_output_kind(loaded)
        if class_index is not None and self.kind != "class":
            raise SelectionError(
                "{class} chooses a classifier's class", hint=f"this model's output is '{self.kind}'", option="class"
            )
        if target_token is not None and self.kind in ("class", "embedding"):
            raise SelectionError(
                "{target_token} chooses a token to predict",
                hint=f"this model's output is '{self.kind}'",
                option="target_token",
            )
        self.steps = steps
        self.verbose = verbose
        self.max_batch_tokens = max_batch_tokens or DEFAULT_BATCH_TOKENS
        self.head = load_head(loaded, self.kind, revision=revision, verbose=verbose)
        self.scorer = Scorer(
            loaded,
            self.head,
            self.kind,
            target_token=target_token,
            class_index=class_index,
            max_batch_tokens=self.max_batch_tokens,
        )
        self.extractor = Extractor(loaded, truncate=truncate, verbose=verbose)

    @classmethod
    def load(
        cls,
        model: str | os.PathLike[str] | None = None,
        *,
        device: str = "auto",
        dtype: str = "auto",
        revision: str | None = None,
        trust_remote_code: bool = False,
        verbose: bool = False,
        **options: Any,
    ) -> Attributor:
        """:func:`attnviz.models.load_model` plus the output head; ``options`` as for
        the constructor (``output_kind``, ``target_token``, ``class_index``, ``steps``...)."""
        from attnviz.models import load_model

        loaded = load_model(
            model, device=device, dtype=dtype, revision=revision, trust_remote_code=trust_remote_code, verbose=verbose
        )
        return cls(loaded, revision=revision, verbose=verbose, **options)

    def encode(self, text: str, target: str | None = None, pair: str | None = None) -> EncodedInput:
        """``text`` tokenized (with ``pair``, the second sentence of an encoder's pair, and
        ``target``, an encoder-decoder's target)."""
        from attnviz.extraction import TextInput

        return self.extractor.encode(TextInput(text, pair, target))

    def encoded_input(self, item: Any) -> EncodedInput:
        """Tokenize a :class:`~attnviz.extraction.TextInput` (text and, for
        encoder-decoders, target)."""
        return self.extractor.encode(item)

    def choose_methods(self, requested: Sequence[str] | None, length: int) -> tuple[list[str], list[str]]:
        """(methods to run, notes on those left out). Asked-for methods that do not apply
        are a :class:`SelectionError` naming why; by default all that apply run."""
        from attnviz.attribution.methods import unavailable

        if requested:
            chosen: list[str] = []
            for name in requested:
                method = name.lower()
                if method not in METHODS:
                    raise SelectionError(f"unknown method '{name}'", hint=f"use one of: {', '.join(METHODS)}")
                reason = unavailable(method, self.loaded, self.kind, length)
                if reason:
                    raise SelectionError(f"{method} cannot run on '{self.loaded.name}': {reason}")
                if method not in chosen:
                    chosen.append(method)
            return chosen, []
        chosen, notes = [], []
        for method in METHODS:
            reason = unavailable(method, self.loaded, self.kind, length)
            if reason:
                # AttnLRP never runs here (lxt does not import under transformers 5): a note
                # on every run would be noise; asked for explicitly, it is the error above
                if method != "attnlrp":
                    notes.append(f"{method} left out: {reason}")
            else:
                chosen.append(method)
        return chosen, notes

    def target(self, encoded: EncodedInput) -> Target:
        self.scorer.bind(encoded)
        return self.scorer.target(encoded)

    def attribute(
        self, text: str, *, target: str | None = None, pair: str | None = None, methods: Sequence[str] | None = None
    ) -> Attribution:
        """Scores of every chosen method for ``text`` (``target``: encoder-decoder target;
        ``pair``: the second sentence of an encoder's pair, whose tokens are scored too)."""
        encoded = self.encode(text, target, pair)
        chosen, notes = self.choose_methods(methods, len(encoded.ids))
        return self.attribute_encoded(encoded, chosen, notes)

    def attribute_encoded(
        self, encoded: EncodedInput, methods: Sequence[str], notes: Sequence[str] = (), fixed: Target | None = None
    ) -> Attribution:
        from attnviz.attribution import methods as run

        output = fixed or self.target(encoded)
        self.scorer.bind(encoded)
        rows: dict[str, np.ndarray] = {}
        seconds: dict[str, float] = {}
        views = [m for m in methods if m in run.VIEW_METHODS]
        if views:
            started = time.perf_counter()
            rows.update(run.attention_views(self.loaded, encoded, output, views, verbose=self.verbose))
            share = (time.perf_counter() - started) / len(views)  # one forward pass serves them all
            seconds.update({m: share for m in views})
        for method in methods:
            if method in rows:
                continue
            started = time.perf_counter()
            if method == "ablation":
                rows[method] = run.ablation(self.scorer, encoded, output)
            elif method in ("grad-x-input", "integrated-gradients"):
                rows[method] = run.gradients(self.scorer, encoded, output, method, self.steps)
            elif method == "grad-rollout":
                rows[method] = run.grad_rollout(self.scorer, encoded, output)
            else:  # pragma: no cover - choose_methods refuses the rest
                raise SelectionError(f"{method} cannot run here")
            seconds[method] = time.perf_counter() - started
        tokens = encoded.tokens
        return Attribution(
            model=self.loaded.name,
            text=encoded.item.text,
            pair=encoded.item.pair,
            tokens=tuple(tokens.display),
            special=np.asarray(tokens.special_mask, dtype=bool),
            methods=tuple(methods),
            scores=np.stack([rows[m] for m in methods]).astype(np.float32)
            if methods
            else np.zeros((0, len(tokens)), np.float32),
            output=output.describe(),
            seconds=seconds,
            notes=tuple(notes),
            truncated_tokens=encoded.truncated,
        )
