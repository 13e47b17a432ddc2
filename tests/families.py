"""Tiny models of every family the capture supports, built from configs with a byte-level
BPE tokenizer trained offline (no network), saved with save_pretrained.

``build(name, root)`` returns the directory of one model. Each model is small (a few
layers, 4-8 heads, hidden size 32) but keeps its family's distinguishing mechanics:
GQA, sliding windows, soft-capping, local/global layers, partial rotary, relative
position bias, attention sinks.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

CORPUS = [
    "the cat sat on the mat",
    "AI changes everything",
    "attention looks inside the model",
    "a dog ran fast and the bird sang a song",
    "didn't she write to jane.doe@example.com?",
] * 10


def bpe_tokenizer(specials: list[str], template: tuple[str, str] | None = None, **roles: str) -> Any:
    """A byte-level BPE tokenizer (300 tokens) with the family's special tokens."""
    import transformers as tf
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    if template is not None:
        single, pair = template
        used = [s for s in specials if s in f"{single} {pair}".split()]
        tokenizer.post_processor = processors.TemplateProcessing(
            single=single, pair=pair, special_tokens=[(s, tokenizer.token_to_id(s)) for s in used]
        )
    return tf.PreTrainedTokenizerFast(tokenizer_object=tokenizer, **roles)


def _decoder_tokenizer() -> Any:
    return bpe_tokenizer(
        ["<s>", "</s>", "<pad>"], ("<s> $A", "<s> $A $B"), bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


def _encoder_tokenizer() -> Any:
    return bpe_tokenizer(
        ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        ("[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1"),
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def _seq2seq_tokenizer() -> Any:
    return bpe_tokenizer(
        ["<pad>", "</s>", "<unk>", "<s>"],
        ("$A </s>", "$A </s> $B </s>"),
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
        bos_token="<s>",
    )


_ROPE = dict(
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=8,
    num_key_value_heads=2,
    max_position_embeddings=4096,
    vocab_size=300,
    bos_token_id=0,
    eos_token_id=1,
    pad_token_id=2,
)


def _gpt_oss() -> tuple[Any, Any]:
    """Attention sinks: each head has a learned logit that takes part in the softmax and is
    dropped afterwards, so rows sum to less than 1. Sinks start at zero; randomise them."""
    import torch
    import transformers as tf

    config = tf.GptOssConfig(
        **{**_ROPE, "intermediate_size": 32, "max_position_embeddings": 256},
        head_dim=8,
        num_local_experts=2,
        num_experts_per_tok=1,
        sliding_window=4,
        layer_types=["sliding_attention", "full_attention"],
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
    )
    model = tf.GptOssForCausalLM(config)
    with torch.no_grad():
        for module in model.modules():
            if getattr(module, "sinks", None) is not None:
                module.sinks.normal_(mean=1.0)
    return model, _decoder_tokenizer()


def _decoders() -> dict[str, Callable[[], tuple[Any, Any]]]:
    import transformers as tf

    return {
        "llama": lambda: (tf.LlamaForCausalLM(tf.LlamaConfig(**_ROPE)), _decoder_tokenizer()),
        "mistral": lambda: (tf.MistralForCausalLM(tf.MistralConfig(**_ROPE, sliding_window=4)), _decoder_tokenizer()),
        "qwen2": lambda: (tf.Qwen2ForCausalLM(tf.Qwen2Config(**_ROPE)), _decoder_tokenizer()),
        "qwen3": lambda: (tf.Qwen3ForCausalLM(tf.Qwen3Config(**_ROPE, head_dim=8)), _decoder_tokenizer()),
        "gemma2": lambda: (
            tf.Gemma2ForCausalLM(
                tf.Gemma2Config(
                    **_ROPE,
                    head_dim=8,
                    sliding_window=4,
                    attn_logit_softcapping=5.0,
                    final_logit_softcapping=30.0,
                    query_pre_attn_scalar=8,
                )
            ),
            _decoder_tokenizer(),
        ),
        "gemma3": lambda: (
            tf.Gemma3ForCausalLM(
                tf.Gemma3TextConfig(
                    **{**_ROPE, "num_hidden_layers": 3},
                    head_dim=8,
                    sliding_window=4,
                    sliding_window_pattern=2,
                    query_pre_attn_scalar=8,
                )
            ),
            _decoder_tokenizer(),
        ),
        "phi3": lambda: (tf.Phi3ForCausalLM(tf.Phi3Config(**_ROPE, sliding_window=6)), _decoder_tokenizer()),
        "gpt_neox": lambda: (
            tf.GPTNeoXForCausalLM(
                tf.GPTNeoXConfig(
                    hidden_size=32,
                    intermediate_size=64,
                    num_hidden_layers=2,
                    num_attention_heads=4,
                    rotary_pct=0.25,
                    vocab_size=300,
                    max_position_embeddings=256,
                    bos_token_id=0,
                    eos_token_id=1,
                )
            ),
            _decoder_tokenizer(),
        ),
        "gpt_oss": _gpt_oss,
        "gpt2": lambda: (
            tf.GPT2LMHeadModel(
                tf.GPT2Config(
                    n_embd=32, n_layer=2, n_head=4, n_positions=256, vocab_size=300, bos_token_id=0, eos_token_id=1
                )
            ),
            _decoder_tokenizer(),
        ),
    }


def _encoders() -> dict[str, Callable[[], tuple[Any, Any]]]:
    import transformers as tf

    common = dict(
        vocab_size=300,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=256,
        pad_token_id=0,
    )
    return {
        "bert": lambda: (tf.BertModel(tf.BertConfig(**common)), _encoder_tokenizer()),
        "distilbert": lambda: (
            tf.DistilBertModel(
                tf.DistilBertConfig(
                    vocab_size=300,
                    dim=32,
                    n_layers=2,
                    n_heads=4,
                    hidden_dim=64,
                    max_position_embeddings=256,
                    pad_token_id=0,
                )
            ),
            _encoder_tokenizer(),
        ),
        "roberta": lambda: (
            tf.RobertaModel(tf.RobertaConfig(**{**common, "max_position_embeddings": 258})),
            _encoder_tokenizer(),
        ),
        "modernbert": lambda: (
            tf.ModernBertModel(
                tf.ModernBertConfig(
                    vocab_size=300,
                    hidden_size=32,
                    num_hidden_layers=3,
                    num_attention_heads=4,
                    intermediate_size=64,
                    max_position_embeddings=256,
                    local_attention=4,
                    global_attn_every_n_layers=2,
                    pad_token_id=0,
                    cls_token_id=2,
                    sep_token_id=3,
                    bos_token_id=2,
                    eos_token_id=3,
                )
            ),
            _encoder_tokenizer(),
        ),
        "deberta_v2": lambda: (
            tf.DebertaV2Model(
                tf.DebertaV2Config(**common, relative_attention=True, position_buckets=16, pos_att_type=["p2c", "c2p"])
            ),
            _encoder_tokenizer(),
        ),
    }


def _encoder_decoders() -> dict[str, Callable[[], tuple[Any, Any]]]:
    import transformers as tf

    def bert2bert() -> tuple[Any, Any]:
        encoder = tf.BertConfig(
            vocab_size=300,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=256,
        )
        decoder = tf.BertConfig(
            vocab_size=300,
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=64,
            max_position_embeddings=256,
            is_decoder=True,
            add_cross_attention=True,
        )
        config = tf.EncoderDecoderConfig.from_encoder_decoder_configs(encoder, decoder)
        config.decoder_start_token_id = 2
        config.pad_token_id = 0
        return tf.EncoderDecoderModel(config=config), _encoder_tokenizer()

    return {
        "t5": lambda: (
            tf.T5Model(
                tf.T5Config(
                    vocab_size=300,
                    d_model=32,
                    d_kv=8,
                    d_ff=64,
                    num_layers=2,
                    num_decoder_layers=2,
                    num_heads=4,
                    decoder_start_token_id=0,
                    pad_token_id=0,
                    eos_token_id=1,
                )
            ),
            _seq2seq_tokenizer(),
        ),
        "bart": lambda: (
            tf.BartModel(
                tf.BartConfig(
                    vocab_size=300,
                    d_model=32,
                    encoder_layers=2,
                    decoder_layers=2,
                    encoder_attention_heads=4,
                    decoder_attention_heads=4,
                    encoder_ffn_dim=64,
                    decoder_ffn_dim=64,
                    max_position_embeddings=256,
                    pad_token_id=0,
                    bos_token_id=3,
                    eos_token_id=1,
                    decoder_start_token_id=1,
                    forced_eos_token_id=None,
                )
            ),
            _seq2seq_tokenizer(),
        ),
        "bert2bert": bert2bert,
    }


def builders() -> dict[str, Callable[[], tuple[Any, Any]]]:
    return {**_decoders(), **_encoders(), **_encoder_decoders()}


DECODERS = ("llama", "mistral", "qwen2", "qwen3", "gemma2", "gemma3", "phi3", "gpt_neox", "gpt_oss", "gpt2")
ENCODERS = ("bert", "distilbert", "roberta", "modernbert", "deberta_v2")
ENCODER_DECODERS = ("t5", "bart", "bert2bert")
ALL = DECODERS + ENCODERS + ENCODER_DECODERS


def build(name: str, root: Path) -> Path:
    """Build, save and return the directory of the tiny ``name`` model."""
    import torch

    torch.manual_seed(sum(map(ord, name)))
    model, tokenizer = builders()[name]()
    path = root / name
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
