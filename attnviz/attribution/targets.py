"""The output an attribution explains, and the model head that computes it.

One number per input, by model kind (``OUTPUT_KINDS``):

* ``next-token`` (decoders): the logit of the next token after the text, at the last
  position; the token is the model's prediction on the unperturbed text, or ``--target-token``;
* ``target-token`` (encoder-decoders): the logit of one decoder token given the source; the
  decoder reads the decoder start token and the target tokens before the scored one. The
  scored token is ``--target-token``, else the last token of ``--target``, else the model's
  prediction after the start token;
* ``class`` (encoders with a classification head): the logit of the predicted class, or
  ``--class``;
* ``mask`` (masked-LM heads): the logit, at the first mask token, of the token predicted
  there on the unperturbed text (or ``--target-token``);
* ``embedding`` (encoders without a head, e.g. the bundled MiniLM): the sentence embedding
  as sentence-transformers computes it (mean over the real tokens, L2-normalised); the score
  of an input is its cosine to the unperturbed embedding (1 for the text itself).

The scored token, class and reference embedding are fixed on the unperturbed text, so every
perturbed variant is scored against the same output.

For gradients the embedding score is the projection of the *unnormalised* mean-pooled
embedding on the unit reference direction: the cosine itself has a zero gradient at the
unperturbed text (its maximum), so gradient x input of the cosine is only round-off.

The head is loaded as a second copy of the weights with ``attn_implementation="eager"``
(the attention views keep using :func:`attnviz.models.load_model`'s capture model): eager
keeps the attention probabilities in the autograd graph, which gradient rollout needs, and
works for every family.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnviz.errors import InputError, ModelLoadError, SelectionError

if TYPE_CHECKING:
    from attnviz.extraction import EncodedInput
    from attnviz.models import LoadedModel

OUTPUT_KINDS = ("next-token", "target-token", "class", "mask", "embedding")


def default_output_kind(loaded: LoadedModel) -> str:
    """The output a model explains by default: by family, then by its head (config
    ``architectures``)."""
    if loaded.family == "decoder":
        return "next-token"
    if loaded.family == "encoder-decoder":
        return "target-token"
    architectures = tuple(getattr(loaded.model.config, "architectures", None) or ())
    if any(a.endswith("ForSequenceClassification") for a in architectures):
        return "class"
    if any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in architectures):
        return "mask"
    return "embedding"


def check_output_kind(loaded: LoadedModel, kind: str) -> str:
    kind = kind.lower()
    if kind not in OUTPUT_KINDS:
        raise SelectionError(
            f"unknown output kind '{kind}'", hint=f"use one of: {', '.join(OUTPUT_KINDS)}", option="output_kind"
        )
    wanted = {"next-token": "decoder", "target-token": "encoder-decoder"}.get(kind, "encoder")
    if wanted != loaded.family:
        raise SelectionError(
            f"the output '{kind}' needs {'an' if wanted[0] in 'ae' else 'a'} {wanted} model; "
            f"'{loaded.name}' is a {loaded.family} model",
            hint="leave {output_kind} out to use '" + default_output_kind(loaded) + "'",
            option="output_kind",
        )
    return kind


def load_head(loaded: LoadedModel, kind: str, *, revision: str | None = None, verbose: bool = False) -> Any:
    """The model with the head that computes ``kind``, eager attention, eval mode, no
    parameter gradients (inputs get them)."""
    import transformers

    from attnviz.models import PICKLE_VARIABLE, quiet_libraries

    loader: Any = {
        "next-token": transformers.AutoModelForCausalLM,
        "target-token": transformers.AutoModelForSeq2SeqLM,
        "class": transformers.AutoModelForSequenceClassification,
        "mask": transformers.AutoModelForMaskedLM,
        "embedding": type(loaded.model),
    }[kind]
    pickle_ok = os.environ.get(PICKLE_VARIABLE, "").strip() not in {"", "0", "false", "no"}
    kwargs: dict[str, Any] = {"attn_implementation": "eager", "dtype": loaded.model.dtype}
    if not pickle_ok:
        kwargs["use_safetensors"] = True
    if revision is not None:
        kwargs["revision"] = revision
    try:
        with quiet_libraries(verbose):
            model = loader.from_pretrained(loaded.spec.source, **kwargs)
    except Exception as exc:  # noqa: BLE001 - transformers raises anything for a missing head
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ModelLoadError(
            f"cannot load the '{kind}' head of '{loaded.name}': {first}",
            hint="choose another output with {output_kind}",
            option="output_kind",
        ) from exc
    model.eval()
    model.to(loaded.device)
    model.requires_grad_(False)
    return model


def ablation_token_id(tokenizer: Any) -> int:
    """The id that stands in for a removed token: the mask token, else unk, else pad."""
    for name in ("mask_token_id", "unk_token_id", "pad_token_id"):
        value = getattr(tokenizer, name, None)
        if value is not None:
            return int(value)
    raise SelectionError(
        "the tokenizer has no mask, unknown or padding token to stand in for a removed token",
        hint="ablation and the faithfulness metrics need one of them",
    )


@dataclass
class Target:
    """The fixed output of one text: ``kind``, the scored ``token_id``/``class_index``, the
    query ``position`` (decoder position for encoder-decoders), the unit ``reference``
    embedding ``[hidden]``, and ``score``, the unperturbed score."""

    kind: str
    position: int
    token_id: int | None = None
    token: str | None = None
    class_index: int | None = None
    class_label: str | None = None
    reference: Any = None
    score: float = float("nan")
    decoder_ids: list[int] | None = None
    query_rows: list[int] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"kind": self.kind, "position": self.position, "score": self.score}
        if self.token_id is not None:
            out.update(token_id=self.token_id, token=self.token)
        if self.class_index is not None:
            out.update(class_index=self.class_index, class_label=self.class_label)
        if self.kind == "embedding":
            out["score_is"] = "cosine to the unperturbed sentence embedding (mean pooling, L2-normalised)"
        else:
            out["score_is"] = "logit"
        return out


class Scorer:
    """Scores token-id variants of one text against its fixed :class:`Target`, batched
    within ``max_batch_tokens`` padded tokens (all variants of a text have its length, so
    nothing is padded)."""

    def __init__(
        self,
        loaded: LoadedModel,
        model: Any,
        kind: str,
        *,
        target_token: str | None = None,
        class_index: int | None = None,
        max_batch_tokens: int = 8192,
    ) -> None:
        self.loaded = loaded
        self.model = model
        self.kind = kind
        self.target_token = target_token
        self.class_index = class_index
        self.max_batch_tokens = max(1, int(max_batch_tokens))
        self.ablation_id = ablation_token_id(loaded.tokenizer)

    # -- the output -------------------------------------------------------------------
    def _token_id(self, text: str) -> int:
        tokenizer = self.loaded.tokenizer
        vocab = tokenizer.get_vocab()
        if text in vocab:
            return int(vocab[text])
        for candidate in (text, " " + text):
            ids = tokenizer(candidate, add_special_tokens=False)["input_ids"]
            if len(ids) == 1:
                return int(ids[0])
        raise InputError(
            f"'{text}' is not one token of this tokenizer", hint="give a single token as the tokenizer writes it"
        )

    def target(self, encoded: EncodedInput) -> Target:
        """Fix the output of ``encoded`` on its unperturbed ids."""
        import torch

        tokenizer = self.loaded.tokenizer
        ids = list(encoded.ids)
        decoder_ids = None
        if self.kind == "target-token":
            decoder_ids = list(encoded.target_ids or [])
            fixed: int | None
            if self.target_token is None and encoded.item.target is not None:
                if len(decoder_ids) < 2:
                    raise InputError(
                        "the target text has no token to score", hint="give a longer {target}", option="target"
                    )
                fixed = decoder_ids[-1]
                decoder_ids = decoder_ids[:-1]
            else:
                fixed = self._token_id(self.target_token) if self.target_token is not None else None
            target = Target(self.kind, len(decoder_ids) - 1, decoder_ids=decoder_ids, token_id=fixed)
        elif self.kind == "next-token":
            fixed = self._token_id(self.target_token) if self.target_token is not None else None
            target = Target(self.kind, len(ids) - 1, token_id=fixed)
        elif self.kind == "mask":
            mask_id = getattr(tokenizer, "mask_token_id", None)
            if mask_id is None or mask_id not in ids:
                mask = getattr(tokenizer, "mask_token", None) or "[MASK]"
                raise InputError(
                    f"a masked-LM output needs a {mask} token in the text",
                    hint=f"put {mask} where the model should predict a word",
                )
            fixed = self._token_id(self.target_token) if self.target_token is not None else None
            target = Target(self.kind, ids.index(mask_id), token_id=fixed)
        elif self.kind == "class":
            target = Target(self.kind, 0, class_index=self.class_index)
        else:
            target = Target(self.kind, 0)
        target.query_rows = list(range(len(ids))) if self.kind == "embedding" else [target.position]
        with torch.no_grad():
            head = self._head(self._forward(np.asarray([ids]), target), target)
        if self.kind == "embedding":
            pooled = head[0]
            target.reference = (pooled / pooled.norm()).detach()
        elif self.kind == "class":
            labels = getattr(self.model.config, "id2label", None) or {}
            if target.class_index is None:
                target.class_index = int(head[0].argmax())
            if not 0 <= target.class_index < head.shape[-1]:
                raise SelectionError(
                    f"class {target.class_index} does not exist: the model has {head.shape[-1]} classes",
                    hint="use {class} 0 to " + str(head.shape[-1] - 1),
                    option="class",
                )
            target.class_label = str(labels.get(target.class_index, target.class_index))
        elif target.token_id is None:
            target.token_id = int(head[0].argmax())
        if target.token_id is not None:
            target.token = str(tokenizer.convert_ids_to_tokens(int(target.token_id)))
        target.score = float(self.scores(np.asarray([ids]), target)[0])
        return target

    # -- forward passes ---------------------------------------------------------------
    def _inputs(self, count: int, target: Target, *, ids: Any = None, embeds: Any = None) -> dict[str, Any]:
        import torch

        device = self.loaded.device
        length = ids.shape[1] if ids is not None else embeds.shape[1]
        kwargs: dict[str, Any] = {"attention_mask": torch.ones((count, length), dtype=torch.long, device=device)}
        if ids is not None:
            kwargs["input_ids"] = torch.as_tensor(ids, dtype=torch.long, device=device)
        else:
            kwargs["inputs_embeds"] = embeds
        names = set(getattr(self.loaded.tokenizer, "model_input_names", ()))
        if "token_type_ids" in names and self.kind != "target-token" and self.loaded.family == "encoder":
            types = self._token_types
            if types is not None:
                kwargs["token_type_ids"] = torch.as_tensor(types, device=device).expand(count, -1)
        if target.decoder_ids is not None:
            kwargs["decoder_input_ids"] = torch.as_tensor([target.decoder_ids], device=device).expand(count, -1)
        return kwargs

    _token_types: Any = None

    def bind(self, encoded: EncodedInput) -> None:
        """Use ``encoded``'s token type ids (sentence pairs) for the next forward passes."""
        types = encoded.extra.get("token_type_ids")
        self._token_types = [list(types)] if types is not None else None

    def _forward(self, ids: Any, target: Target, *, embeds: Any = None, attentions: bool = False) -> Any:
        count = ids.shape[0] if ids is not None else embeds.shape[0]
        kwargs = self._inputs(count, target, ids=ids, embeds=embeds)
        if attentions:
            kwargs["output_attentions"] = True
        return self.model(**kwargs)

    def _head(self, outputs: Any, target: Target) -> Any:
        """The output vector per input: logits ``[B, vocab|classes]`` or the mean-pooled
        embedding ``[B, hidden]``."""
        if self.kind == "embedding":
            return outputs.last_hidden_state.mean(dim=1)  # every position is real: nothing is padded
        if self.kind == "class":
            return outputs.logits
        return outputs.logits[:, target.position]

    def _score(self, head: Any, target: Target, *, differentiable: bool = False) -> Any:
        if self.kind == "embedding":
            if differentiable:
                return head @ target.reference
            return (head / head.norm(dim=-1, keepdim=True)) @ target.reference
        if self.kind == "class":
            return head[:, target.class_index]
        return head[:, target.token_id]

    def scores(self, variants: np.ndarray, target: Target) -> np.ndarray:
        """Scores ``[N]`` of token-id variants ``[N, T]`` (float64), in batches of at most
        ``max_batch_tokens`` tokens."""
        import torch

        variants = np.asarray(variants)
        width = variants.shape[1] + len(target.decoder_ids or [])
        step = max(1, self.max_batch_tokens // max(1, width))
        out = []
        with torch.no_grad():
            for start in range(0, len(variants), step):
                chunk = variants[start : start + step]
                head = self._head(self._forward(chunk, target), target)
                out.append(self._score(head, target).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros(0)

    def embed(self, ids: Any) -> Any:
        """Input embeddings ``[1, T, hidden]`` of token ids ``[T]`` (the model's own input
        embedding layer, scaling included)."""
        import torch

        tensor = torch.as_tensor([list(ids)], dtype=torch.long, device=self.loaded.device)
        with torch.no_grad():
            return self.model.get_input_embeddings()(tensor)

    def embedding_function(self, target: Target) -> Any:
        """``f(embeds [B, T, hidden]) -> scores [B]``, differentiable (for captum)."""

        def forward(embeds: Any) -> Any:
            outputs = self._forward(None, target, embeds=embeds)
            return self._score(self._head(outputs, target), target, differentiable=True)

        return forward

    def attention_gradients(self, ids: list[int], target: Target) -> tuple[list[Any], list[Any]]:
        """Eager self-attention probabilities of each layer, ``[heads, T, T]``, and the
        gradient of the (differentiable) score with respect to each."""
        import torch

        # the ids carry no gradient: start the graph at the input embeddings
        embeds = self.embed(ids).requires_grad_(True)
        with torch.enable_grad():
            outputs = self._forward(None, target, embeds=embeds, attentions=True)
            attentions = [a for a in (outputs.attentions or ()) if a is not None]
            if not attentions:
                raise SelectionError(
                    f"'{self.loaded.name}' returns no attention probabilities with eager attention",
                    hint="gradient rollout needs them; use the other methods",
                )
            score = self._score(self._head(outputs, target), target, differentiable=True)[0]
            grads = torch.autograd.grad(score, attentions)
        return [a[0].detach() for a in attentions], [g[0].detach() for g in grads]
