"""A text the vocabulary does not cover (every token the unknown token) is one warning per
text, in the same words, from every command that runs a text: show, stats, compare, export,
attribute, faithfulness, lesson, render (saved data) and serve's attribution notes."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import invoke

from attnviz.models import unknown_token_warning
from attnviz.result import TokenSequence

# The tiny BERT's vocabulary (tests/conftest.py) has neither word, nor their letters: each
# becomes [UNK]. The covered text is made of its words.
UNKNOWN, OTHER_UNKNOWN, COVERED = "xyzzy plugh", "qwfp zxcv vbnm", "the cat sat"
TAIL = " (outside the model's vocabulary)"


def said(count: int, which: str = "the text", unk: str = "[UNK]") -> str:
    return f"warning: all {count} tokens of {which} are {unk}{TAIL}"


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning:")]


class Tokenizer:
    unk_token = "<unk>"


def test_the_warning_counts_the_unknown_tokens_and_ignores_the_special_ones():
    tokens = ["<s>", "<unk>", "<unk>", "<unk>", "</s>"]
    special = [True, True, True, True, True]  # a tokenizer's own mask marks <unk> special too
    assert "warning: " + unknown_token_warning(Tokenizer(), tokens, special) == said(3, unk="<unk>")
    # one known token among them: the text is (partly) covered, no warning
    assert unknown_token_warning(Tokenizer(), ["<s>", "<unk>", "cat", "</s>"], [True, True, False, True]) is None
    # only special tokens and no unknown one: nothing to say
    assert unknown_token_warning(Tokenizer(), ["<s>", "</s>"], [True, True]) is None


def test_a_token_sequence_a_named_text_and_saved_data_without_a_tokenizer():
    sequence = TokenSequence.from_tokens(["[CLS]", "[UNK]", "[SEP]"], special_mask=np.array([True, True, True]))
    assert unknown_token_warning(None, sequence) == f"the only token of the text is [UNK]{TAIL}"
    long_text = "z" * 50
    named = unknown_token_warning(Tokenizer(), ["<unk>", "<unk>"], [True, True], text=long_text)
    assert named is not None and named.startswith(f"all 2 tokens of '{'z' * 40}…' are <unk>")


@pytest.fixture(scope="module")
def bert(tiny_models):
    return str(tiny_models["bert"])


@pytest.fixture(scope="module")
def texts(tmp_path_factory):
    path = tmp_path_factory.mktemp("texts") / "texts.txt"
    path.write_text(f"{UNKNOWN}\n{COVERED}\n{OTHER_UNKNOWN}\n")
    return path


def test_single_text_commands_warn_once(bert, tmp_path):
    saved = tmp_path / "saved.json"
    runs = {
        "show": invoke("show", UNKNOWN, "-m", bert, "-o", saved),
        "attribute": invoke("attribute", UNKNOWN, "-m", bert, "--method", "attention", "--json"),
        "lesson": invoke("lesson", UNKNOWN, "-m", bert, "--json"),
    }
    runs["render"] = invoke("render", saved, "--json")  # saved data: no tokenizer, [UNK] is known
    runs["stats"] = invoke("stats", UNKNOWN, "-m", bert, "--json")
    for name, result in runs.items():
        assert result.exit_code == 0, (name, result.output)
        which = f"'{UNKNOWN}'" if name == "stats" else "the text"
        assert warnings(result.stderr) == [said(2, which)], name
    covered = invoke("attribute", COVERED, "-m", bert, "--method", "attention", "--json")
    assert covered.exit_code == 0 and warnings(covered.stderr) == []


def test_commands_over_a_file_warn_once_per_uncovered_text(bert, texts, tmp_path):
    runs = {
        "stats": invoke("stats", "-f", texts, "-m", bert, "--json"),
        "compare": invoke("compare", "-f", texts, "-m", bert, "-m", bert, "--json"),
        "faithfulness": invoke("faithfulness", "-f", texts, "-m", bert, "--method", "attention", "--json"),
    }
    for name, result in runs.items():
        assert result.exit_code == 0, (name, result.output)
        assert warnings(result.stderr) == [said(2, f"'{UNKNOWN}'"), said(3, f"'{OTHER_UNKNOWN}'")], name
    out = tmp_path / "export"
    exported = invoke("export", texts, "-o", out, "-m", bert, "--format", "npz", "--workers", "0")
    assert exported.exit_code == 0, exported.output
    expected = [
        said(2).replace("warning: ", "warning: line 1: "),
        said(3).replace("warning: ", "warning: line 3: "),
    ]
    assert warnings(exported.stderr) == expected


def test_serve_puts_the_warning_in_the_attribution_notes(bert):
    from attnviz.models import load_model
    from attnviz.serve.pool import Query, WarmModel

    warm = WarmModel(load_model(bert))
    notes = warm.compute(Query(UNKNOWN, task="attribution"))["meta"]["notes"]
    assert said(2).removeprefix("warning: ") in notes
    covered = warm.compute(Query(COVERED, task="attribution"))["meta"]["notes"]
    assert not any("[UNK]" in note for note in covered)
    json.dumps(notes)  # the reply stays JSON
