"""What the lesson needs from inside one forward pass (the lesson's only torch module).

Forward hooks on each transformer layer record the hidden states around its sub-layers;
a capture sink (the :class:`~attnviz.capture.Sink` protocol, with ``wants_vectors``) keeps
every head's attention weights and value vectors of the same pass. Layers are recognised
by their sub-module names, one recipe per family shape:

* ``bert``: BERT, RoBERTa, the BERT halves of bert2bert (post-norm);
* ``distilbert``: DistilBERT (post-norm);
* ``bart``: BART encoder and decoder layers (post-norm);
* ``llama``: Llama, Mistral, Qwen 2/3, Phi-3, gpt-oss (pre-norm, RMSNorm);
* ``gpt2``: GPT-2 (pre-norm, LayerNorm);
* ``t5``: T5 (pre-norm, RMSNorm).

Other shapes (Gemma's sandwich norms, GPT-NeoX's parallel residual, ModernBERT,
DeBERTa) get no per-layer states: the residual, feed-forward and normalization steps say
so in one line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from attnviz.lesson.model import LayerStates, ModelFacts, PositionFacts

#: role -> (path under the layer module, "in" or "out"); "" is the layer itself. A path
#: segment "-1" is the last child of a ModuleList (T5's feed-forward sub-layer).
Recipe = dict[str, tuple[str, str]]

RECIPES: dict[str, tuple[str, Recipe]] = {
    "bert": (
        "post",
        {
            "layer_in": ("", "in"),
            "attn_update": ("attention.output.dense", "out"),
            "attn_norm_in": ("attention.output.LayerNorm", "in"),
            "attn_norm_out": ("attention.output.LayerNorm", "out"),
            "ffn_act": ("intermediate", "out"),
            "ffn_update": ("output.dense", "out"),
            "ffn_norm_in": ("output.LayerNorm", "in"),
            "ffn_norm_out": ("output.LayerNorm", "out"),
            "layer_out": ("", "out"),
        },
    ),
    "distilbert": (
        "post",
        {
            "layer_in": ("", "in"),
            "attn_update": ("attention", "out"),
            "attn_norm_in": ("sa_layer_norm", "in"),
            "attn_norm_out": ("sa_layer_norm", "out"),
            "ffn_act": ("ffn.lin2", "in"),
            "ffn_update": ("ffn", "out"),
            "ffn_norm_in": ("output_layer_norm", "in"),
            "ffn_norm_out": ("output_layer_norm", "out"),
            "layer_out": ("", "out"),
        },
    ),
    "bart": (
        "post",
        {
            "layer_in": ("", "in"),
            "attn_update": ("self_attn", "out"),
            "attn_norm_in": ("self_attn_layer_norm", "in"),
            "attn_norm_out": ("self_attn_layer_norm", "out"),
            "ffn_act": ("fc2", "in"),
            "ffn_update": ("fc2", "out"),
            "ffn_norm_in": ("final_layer_norm", "in"),
            "ffn_norm_out": ("final_layer_norm", "out"),
            "layer_out": ("", "out"),
        },
    ),
    "llama": (
        "pre",
        {
            "layer_in": ("", "in"),
            "attn_norm_in": ("input_layernorm", "in"),
            "attn_norm_out": ("input_layernorm", "out"),
            "attn_update": ("self_attn", "out"),
            "ffn_norm_in": ("post_attention_layernorm", "in"),
            "ffn_norm_out": ("post_attention_layernorm", "out"),
            "ffn_act": ("mlp.down_proj", "in"),
            "ffn_update": ("mlp", "out"),
            "layer_out": ("", "out"),
        },
    ),
    "gpt2": (
        "pre",
        {
            "layer_in": ("", "in"),
            "attn_norm_in": ("ln_1", "in"),
            "attn_norm_out": ("ln_1", "out"),
            "attn_update": ("attn", "out"),
            "ffn_norm_in": ("ln_2", "in"),
            "ffn_norm_out": ("ln_2", "out"),
            "ffn_act": ("mlp.c_proj", "in"),
            "ffn_update": ("mlp", "out"),
            "layer_out": ("", "out"),
        },
    ),
    "t5": (
        "pre",
        {
            "layer_in": ("", "in"),
            "attn_norm_in": ("layer.0.layer_norm", "in"),
            "attn_norm_out": ("layer.0.layer_norm", "out"),
            "attn_update": ("layer.0.SelfAttention", "out"),
            "ffn_norm_in": ("layer.-1.layer_norm", "in"),
            "ffn_norm_out": ("layer.-1.layer_norm", "out"),
            "ffn_act": ("layer.-1.DenseReluDense.wo", "in"),
            "ffn_update": ("layer.-1.DenseReluDense", "out"),
            "layer_out": ("", "out"),
        },
    ),
}

#: sub-modules that mark a recipe's layers (checked in this order); a layer with any of
#: ``_EXCLUDE`` (sandwich norms) is not a ``llama`` layer.
_MARKERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("bert", ("attention.output.LayerNorm", "intermediate", "output.dense")),
    ("distilbert", ("sa_layer_norm", "ffn", "output_layer_norm")),
    ("bart", ("self_attn", "self_attn_layer_norm", "fc2", "final_layer_norm")),
    ("llama", ("input_layernorm", "self_attn", "post_attention_layernorm", "mlp")),
    ("gpt2", ("ln_1", "attn", "ln_2", "mlp")),
    ("t5", ("layer.0.SelfAttention", "layer.0.layer_norm", "layer.-1.layer_norm")),
)
_EXCLUDE = ("pre_feedforward_layernorm", "post_feedforward_layernorm")


def submodule(module: Any, path: str) -> Any:
    """``module`` at dotted ``path`` (``-1``: the last child), or None."""
    current = module
    for part in filter(None, path.split(".")):
        if part.lstrip("-").isdigit():
            try:
                current = current[int(part)]
            except (TypeError, IndexError, KeyError):
                return None
        else:
            current = getattr(current, part, None)
        if current is None:
            return None
    return current


def recipe_of(layer: Any) -> str | None:
    """Which recipe fits ``layer`` (by its sub-modules), or None."""
    import torch

    if any(submodule(layer, name) is not None for name in _EXCLUDE):
        return None
    for name, marks in _MARKERS:
        if all(isinstance(submodule(layer, m), torch.nn.Module) for m in marks):
            return name
    return None


def find_layers(model: Any, kinds: dict[str, int], family: str) -> tuple[str | None, dict[str, list[Any]]]:
    """The recipe and the layer modules per attention kind (``encoder``/``decoder``), in
    forward order; ``(None, {})`` when the layers are not a shape we know or their count
    differs from the config's."""
    found: list[tuple[str, Any, str]] = []
    claimed: set[int] = set()
    for name, module in model.named_modules():
        if any(id(p) in claimed for p in _ancestors(model, name)):
            continue
        recipe = recipe_of(module)
        if recipe is not None:
            found.append((name, module, recipe))
            claimed.add(id(module))
    recipes = {r for _, _, r in found}
    if len(recipes) != 1:
        return None, {}
    layers: dict[str, list[Any]] = {}
    for name, module, _ in found:
        if family == "encoder-decoder":
            kind = "decoder" if "decoder" in name.split(".") else "encoder"
        else:
            kind = "decoder" if family == "decoder" else "encoder"
        layers.setdefault(kind, []).append(module)
    wanted = {k: n for k, n in kinds.items() if k != "cross"}
    if {k: len(v) for k, v in layers.items()} != wanted:
        return None, {}
    return recipes.pop(), layers


def _ancestors(model: Any, name: str) -> list[Any]:
    parts = name.split(".") if name else []
    out, current = [], model
    for part in parts[:-1]:
        current = getattr(current, part, None) if not part.isdigit() else current[int(part)]
        if current is None:
            break
        out.append(current)
    return out


def _first_tensor(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    import torch

    if args and isinstance(args[0], torch.Tensor):
        return args[0]
    value = kwargs.get("hidden_states")
    if isinstance(value, torch.Tensor):
        return value
    for value in list(args) + list(kwargs.values()):
        if isinstance(value, torch.Tensor) and value.is_floating_point():
            return value
    return None


def _output_tensor(output: Any) -> Any:
    import torch

    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and output and isinstance(output[0], torch.Tensor):
        return output[0]
    return getattr(output, "last_hidden_state", None)


@dataclass
class AttentionSink:
    """What each query token gives itself, ``[heads, queries]`` per self-attention (kind,
    layer): the diagonal of every head's weights (all the mixing ratio needs, so no
    ``[heads, T, T]`` is kept); and the value vectors ``[heads, keys, head_dim]`` (for GQA,
    each head's group) and the output projection, for one input."""

    layers: dict[str, int]
    heads: dict[str, int]
    weights: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    values: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    projections: dict[tuple[str, int], np.ndarray] = field(default_factory=dict)
    model: Any = None
    wants_vectors: bool = True

    def begin(self, encoded: list[Any]) -> None:
        self.weights.clear()
        self.values.clear()

    def heads_for(self, kind: str, layer: int) -> tuple[int, ...]:
        return tuple(range(self.heads[kind])) if kind in self.heads and kind != "cross" else ()

    def add(self, item: int, kind: str, layer: int, heads: tuple[int, ...], row_start: int, block: np.ndarray) -> None:
        if item:
            return
        rows = block.shape[1]
        diagonal = block[:, np.arange(rows), row_start + np.arange(rows)].astype(np.float32)  # [heads, rows]
        key = (kind, layer)
        self.weights[key] = diagonal if key not in self.weights else np.concatenate([self.weights[key], diagonal], 1)

    def add_vectors(
        self,
        item: int,
        kind: str,
        layer: int,
        heads: tuple[int, ...],
        module: Any,
        parts: dict[str, Any],
        extras: dict[str, Any],
    ) -> None:
        from attnviz.sinks import output_projection

        if item:
            return
        self.values[(kind, layer)] = parts["value"].float().cpu().numpy()
        weight = output_projection(self.model, module) if self.model is not None else None
        if weight is not None:
            self.projections[(kind, layer)] = weight.detach().float().cpu().numpy()


def record_layers(
    layers: dict[str, list[Any]], recipe: str
) -> tuple[dict[tuple[str, int], dict[str, Any]], Callable[[], None]]:
    """Install the hooks; returns the store (``(kind, layer) -> role -> [T, D]`` arrays,
    filled during the forward pass) and the function that removes the hooks."""
    _, roles = RECIPES[recipe]
    store: dict[tuple[str, int], dict[str, Any]] = {}
    handles = []
    for kind, modules in layers.items():
        for index, layer in enumerate(modules):
            slot = store.setdefault((kind, index), {})
            for role, (path, side) in roles.items():
                target = submodule(layer, path)
                if target is None:
                    continue
                if side == "in":

                    def pre(module: Any, args: Any, kwargs: Any, slot: dict[str, Any] = slot, role: str = role) -> None:
                        tensor = _first_tensor(args, kwargs)
                        if tensor is not None and role not in slot:
                            slot[role] = tensor.detach().float().cpu().numpy()[0]

                    handles.append(target.register_forward_pre_hook(pre, with_kwargs=True))
                else:

                    def post(
                        module: Any, args: Any, output: Any, slot: dict[str, Any] = slot, role: str = role
                    ) -> None:
                        tensor = _output_tensor(output)
                        if tensor is not None and role not in slot:
                            slot[role] = tensor.detach().float().cpu().numpy()[0]

                    handles.append(target.register_forward_hook(post))

    def remove() -> None:
        for handle in handles:
            handle.remove()

    return store, remove


def layer_states(
    store: dict[tuple[str, int], dict[str, Any]], layers: dict[str, list[Any]], recipe: str, sink: AttentionSink
) -> dict[str, list[LayerStates]]:
    """Per kind, one :class:`LayerStates` per layer (with the attention output bias)."""
    placement, roles = RECIPES[recipe]
    out: dict[str, list[LayerStates]] = {}
    for kind, modules in layers.items():
        for index, layer in enumerate(modules):
            slot = store.get((kind, index), {})
            norm = submodule(layer, roles["attn_norm_in"][0])
            gamma = getattr(norm, "weight", None)
            eps = getattr(norm, "eps", None) or getattr(norm, "variance_epsilon", None) or 1e-12
            out.setdefault(kind, []).append(
                LayerStates(
                    placement=placement,
                    states={k: np.asarray(v, np.float64) for k, v in slot.items()},
                    weights=sink.weights.get((kind, index)),
                    values=sink.values.get((kind, index)),
                    projection=sink.projections.get((kind, index)),
                    output_bias=_output_bias(layer, recipe),
                    norm_weight=None if gamma is None else gamma.detach().float().cpu().numpy().astype(np.float64),
                    norm_eps=float(eps),
                )
            )
    return out


def _output_bias(layer: Any, recipe: str) -> np.ndarray | None:
    path = {
        "bert": "attention.output.dense",
        "distilbert": "attention.out_lin",
        "bart": "self_attn.out_proj",
        "llama": "self_attn.o_proj",
        "gpt2": "attn.c_proj",
        "t5": "layer.0.SelfAttention.o",
    }[recipe]
    linear = submodule(layer, path)
    bias = getattr(linear, "bias", None)
    return None if bias is None else bias.detach().float().cpu().numpy().astype(np.float64)


# -- facts read from the weights ---------------------------------------------------------
def model_facts(loaded: Any) -> ModelFacts:
    """The embedding table, the kind of positions, and the sizes the lesson names."""
    model = loaded.model
    config = model.config
    table = model.get_input_embeddings().weight.detach().float().cpu().numpy()
    return ModelFacts(
        model_type=str(getattr(config, "model_type", "")),
        family=loaded.family,
        embeddings=table,
        special_ids=sorted(int(i) for i in (getattr(loaded.tokenizer, "all_special_ids", None) or [])),
        positions=position_facts(model),
        vocabulary=[str(t) for t in loaded.tokenizer.convert_ids_to_tokens(list(range(table.shape[0])))],
    )


def position_facts(model: Any, count: int = 64) -> PositionFacts:
    """Which position scheme the model uses, read from its modules and config, with the
    numbers the lesson draws: learned/sinusoidal tables (first ``count`` rows, after any
    offset), rotary frequencies, or T5's bias by distance per head."""
    import torch

    config = model.config
    model_type = str(getattr(config, "model_type", ""))
    for name, module in model.named_modules():
        if hasattr(module, "relative_attention_bias") and hasattr(module, "compute_bias"):
            with torch.no_grad():
                bias = module.compute_bias(count, count)[0].float().cpu().numpy()  # [heads, q, k]
            middle = count // 2
            return PositionFacts(
                "relative bias",
                f"a learned bias per head and distance bucket ({name}.relative_attention_bias)",
                bias_by_distance=bias[:, middle, :],
                distances=np.arange(count) - middle,
            )
    if "deberta" in model_type:
        return PositionFacts("relative (disentangled)", "DeBERTa's content-to-position attention")
    for name, module in model.named_modules():
        if "rotary" not in name.split(".")[-1]:
            continue
        # one table, or one per layer type (full_attention_inv_freq, sliding_attention_...:
        # Gemma 3, ModernBERT); the full-attention one is drawn
        buffers = dict(module.named_buffers(recurse=False))
        inv_freq = buffers.get("inv_freq", buffers.get("full_attention_inv_freq"))
        if inv_freq is None:
            inv_freq = next((b for n, b in buffers.items() if n.endswith("inv_freq") and "original" not in n), None)
        if isinstance(inv_freq, torch.Tensor):
            head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads)
            return PositionFacts(
                "rotary",
                f"rotary embedding of queries and keys ({2 * inv_freq.numel()} of {head_dim} dims rotate)",
                frequencies=inv_freq.float().cpu().numpy().astype(np.float64),
                head_dim=head_dim,
            )
    table_module = None
    for name, module in model.named_modules():
        if name.split(".")[-1] in ("position_embeddings", "wpe", "embed_positions") and hasattr(module, "weight"):
            table_module = (name, module)
            break
    if table_module is not None:
        name, module = table_module
        weight = module.weight.detach().float().cpu().numpy()
        offset = int(getattr(module, "offset", 0) or 0)
        if model_type in ("roberta", "xlm-roberta", "camembert") and getattr(config, "pad_token_id", None) is not None:
            offset = int(config.pad_token_id) + 1
        sinusoidal = "sinusoid" in type(module).__name__.lower() or bool(getattr(config, "sinusoidal_pos_embds", False))
        kind = "sinusoidal" if sinusoidal else "learned absolute"
        return PositionFacts(
            kind,
            f"a {'fixed sinusoidal' if sinusoidal else 'learned'} vector per position added to each token ({name})",
            table=weight[offset : offset + count],
        )
    return PositionFacts("none found", "no position table, rotary embedding or relative bias was found")
