"""Tiny models built from configs in the test session, saved with save_pretrained and loaded
through the same code path users take. No network is needed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

WORDS = (
    "the a cat dog sat on mat and ran fast play slow bird sing song is was it this that "
    "ai changes everything attention look inside model token word . , ! ?"
).split()
PIECES = ["##s", "##ing", "##ed", "##er", "##ly"]


def bert_vocab() -> dict[str, int]:
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS + PIECES
    return {t: i for i, t in enumerate(tokens)}


def byte_level_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    from tokenizers.pre_tokenizers import ByteLevel

    vocab: dict[str, int] = {}
    for special in ("<s>", "<pad>", "</s>", "<unk>", "<mask>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    for char in sorted(ByteLevel.alphabet()):
        vocab[char] = len(vocab)
    merges: list[tuple[str, str]] = []
    for word in ("the", "cat", "sat", "on", "mat", "dog"):
        current = "Ġ"
        for char in word:
            merges.append((current, char))
            current += char
            vocab.setdefault(current, len(vocab))
    return vocab, merges


def t5_vocab() -> list[tuple[str, float]]:
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [(f"▁{w}", -1.0) for w in WORDS]
    pieces += [("▁", -2.0)] + [(c, -3.0) for c in "abcdefghijklmnopqrstuvwxyz.,!?"] + [("s", -1.5)]
    return pieces


def _save(model, tokenizer, path: Path) -> Path:
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Paths of tiny BERT, DistilBERT, RoBERTa, GPT-2, BART and T5 checkpoints."""
    import torch
    import transformers as tf

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("models")
    out: dict[str, Path] = {}

    bert_tok = tf.BertTokenizer(vocab=bert_vocab())
    size = len(bert_tok)
    config = tf.BertConfig(
        vocab_size=size,
        hidden_size=16,
        num_hidden_layers=3,
        num_attention_heads=4,
        intermediate_size=32,
        max_position_embeddings=48,
    )
    out["bert"] = _save(tf.BertModel(config), bert_tok, root / "bert")

    distil_tok = tf.DistilBertTokenizer(vocab=bert_vocab())
    config = tf.DistilBertConfig(
        vocab_size=size, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=48
    )
    out["distilbert"] = _save(tf.DistilBertModel(config), distil_tok, root / "distilbert")

    vocab, merges = byte_level_vocab()
    roberta_tok = tf.RobertaTokenizer(vocab=vocab, merges=merges)
    config = tf.RobertaConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=50,
        pad_token_id=vocab["<pad>"],
    )
    out["roberta"] = _save(tf.RobertaModel(config), roberta_tok, root / "roberta")

    gpt_tok = tf.GPT2Tokenizer(vocab=vocab, merges=merges)
    config = tf.GPT2Config(
        vocab_size=len(vocab),
        n_embd=16,
        n_layer=2,
        n_head=2,
        n_positions=64,
        bos_token_id=vocab["<|endoftext|>"],
        eos_token_id=vocab["<|endoftext|>"],
    )
    model = tf.GPT2LMHeadModel(config)
    out["gpt2"] = _save(model, gpt_tok, root / "gpt2")

    bart_tok = tf.BartTokenizer(vocab=vocab, merges=merges)
    config = tf.BartConfig(
        vocab_size=len(vocab),
        d_model=16,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        max_position_embeddings=64,
        pad_token_id=vocab["<pad>"],
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        decoder_start_token_id=vocab["</s>"],
        forced_eos_token_id=None,
    )
    out["bart"] = _save(tf.BartModel(config), bart_tok, root / "bart")

    t5_tok = tf.T5Tokenizer(vocab=t5_vocab(), extra_ids=0)
    config = tf.T5Config(
        vocab_size=len(t5_tok),
        d_model=16,
        d_kv=8,
        d_ff=32,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=2,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
    )
    out["t5"] = _save(tf.T5Model(config), t5_tok, root / "t5")
    return out


@pytest.fixture(scope="session")
def loaded_models(tiny_models):
    from attnviz.models import load_model

    return {name: load_model(str(path), device="cpu") for name, path in tiny_models.items()}


@pytest.fixture(scope="session")
def bundled():
    from attnviz.models import load_model

    return load_model("minilm", device="cpu")
