"""Hostile or broken model directories: one line each, exit 1, never a traceback; pickles
are never loaded unless the user opts in."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from helpers import invoke


@pytest.fixture(scope="module")
def base(tiny_models):
    return tiny_models["bert"]


def _variant(base, tmp_path, change):
    folder = tmp_path / "model"
    shutil.copytree(base, folder)
    change(folder)
    return folder


def _config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def _pickle_only(folder):
    import torch
    from safetensors.torch import load_file

    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")


def _no_tokenizer(folder):
    for path in folder.iterdir():
        if "token" in path.name or path.name in ("vocab.txt", "vocab.json", "merges.txt"):
            path.unlink()


def _vocab_without_unk(folder):
    """Issue #21, item 19: WordPiece raises a bare Exception on the first unknown character."""
    vocab = json.loads((folder / "tokenizer.json").read_text())["model"]["vocab"]
    (folder / "tokenizer.json").unlink()  # transformers 5 saves only this; the tokenizer now reads vocab.txt
    (folder / "vocab.txt").write_text("".join(f"{t}\n" for t in sorted(vocab, key=vocab.get) if t != "[UNK]"))


BROKEN = {
    "truncated safetensors": (
        lambda f: (f / "model.safetensors").write_bytes((f / "model.safetensors").read_bytes()[:100]),
        "cannot load the weights",
    ),
    "garbage safetensors": (
        lambda f: (f / "model.safetensors").write_bytes(os.urandom(4096)),
        "cannot load the weights",
    ),
    "pickle only": (_pickle_only, "has only pickle weights (pytorch_model.bin)"),
    "zero heads": (lambda f: _config(f, num_attention_heads=0), "num_attention_heads is 0, not a positive integer"),
    "heads as a string": (lambda f: _config(f, num_attention_heads="12"), "num_attention_heads"),
    "no tokenizer files": (_no_tokenizer, "turns every word into [UNK]"),
    "config not json": (lambda f: (f / "config.json").write_text("{oops"), "cannot load the config"),
    "vocab.txt without [UNK]": (_vocab_without_unk, "fails on a character outside its vocabulary"),
    # issue #21, item 1: counts from an untrusted config, refused from the safetensors header
    "a billion layers": (lambda f: _config(f, num_hidden_layers=10**9), "says 1000000000 encoder layers"),
    "a billion heads": (lambda f: _config(f, num_attention_heads=10**9), "says 1000000000 encoder heads"),
    "a billion-wide hidden size": (lambda f: _config(f, hidden_size=10**9), "says hidden_size 1000000000"),
}


@pytest.mark.parametrize("name", list(BROKEN))
@pytest.mark.parametrize("command", ["show", "info"])
def test_a_broken_model_directory_is_one_line_exit_1(name, command, base, tmp_path):
    change, message = BROKEN[name]
    folder = _variant(base, tmp_path, change)
    args = ["show", "the cat", "-m", folder, "--json"] if command == "show" else ["info", folder, "--json"]
    result = invoke(*args)
    if command == "info" and name in (
        "vocab.txt without [UNK]",
        "a billion layers",  # info reads the config only and prints what it says
        "a billion heads",
        "a billion-wide hidden size",
        "truncated safetensors",
        "garbage safetensors",
        "pickle only",
        "no tokenizer files",
    ):
        assert result.exit_code == 0  # info reads the config only: the weights and vocabulary are not its business
        return
    assert result.exit_code == 1, (result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: ") and message in lines[0], lines
    assert len(lines) <= 2 and "Traceback" not in result.stderr
    if name == "config not json":  # a directory of the user's: the hint names its file, not the hub
        assert "config.json" in lines[1] and "hf auth login" not in lines[1], lines


def test_a_pickle_checkpoint_loads_only_when_the_user_opts_in(base, tmp_path):
    folder = _variant(base, tmp_path, _pickle_only)
    refused = invoke("show", "the cat", "-m", folder, "--json")
    assert refused.exit_code == 1 and "unpickling a file can run code" in refused.stderr
    assert "ATTNVIZ_ALLOW_PICKLE=1" in refused.stderr
    allowed = invoke("show", "the cat", "-m", folder, "--json", env={"ATTNVIZ_ALLOW_PICKLE": "1"})
    assert allowed.exit_code == 0, allowed.output


def test_custom_code_that_was_not_run_is_said(base, tmp_path):
    folder = _variant(base, tmp_path, lambda f: _config(f, auto_map={"AutoModel": "modeling_evil.EvilModel"}))
    result = invoke("show", "the cat", "-m", folder, "--json")
    assert result.exit_code == 0
    assert "auto_map: AutoModel" in result.stderr and "--trust-remote-code would run that code" in result.stderr
    info = invoke("info", folder, "--json")
    assert "--trust-remote-code would run" in json.loads(info.stdout)["notes"][0]


def test_without_weights_only_config_and_tokenizer_are_read(base, tmp_path):
    """load_model(weights=False), what export --ray's driver loads: the same description of
    the model as a full load, its tokenizer, and no weights read (a damaged weights file
    does not matter there; the workers that load it report it)."""
    import dataclasses

    from attnviz.models import load_model

    folder = _variant(base, tmp_path, lambda path: (path / "model.safetensors").write_bytes(b"not safetensors"))
    described = load_model(str(folder), device="cpu", weights=False)
    full = load_model(str(base), device="cpu")
    assert described.model is None and described.device == "cpu"
    same_place = dataclasses.replace(described.info, name=full.info.name, source=full.info.source)
    assert same_place == full.info and described.max_length == full.max_length
    assert described.tokenizer("the cat")["input_ids"] == full.tokenizer("the cat")["input_ids"]
    broken = invoke("show", "the cat", "-m", folder)
    assert broken.exit_code == 1 and "cannot load the weights" in broken.stderr
