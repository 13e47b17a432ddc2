"""`attnviz attribute` and `attnviz faithfulness` on tiny models: files, terminal, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pytest
from helpers import invoke

TEXT = "the cat sat on the mat"


@pytest.fixture(scope="module")
def bert(tiny_models):
    return str(tiny_models["bert"])


@pytest.fixture(scope="module")
def masked(tmp_path_factory):
    import torch
    import transformers as tf
    from conftest import bert_vocab

    torch.manual_seed(2)
    path = tmp_path_factory.mktemp("mlm") / "mlm"
    tokenizer = tf.BertTokenizer(vocab=bert_vocab())
    config = tf.BertConfig(
        vocab_size=len(tokenizer), hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=16
    )
    tf.BertForMaskedLM(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)


def _embedding_scores(path, rows):
    """Cosine of each id row's sentence embedding to the first row's, computed here."""
    import torch
    import transformers as tf

    model = tf.AutoModel.from_pretrained(path, attn_implementation="eager").eval()
    with torch.no_grad():
        pooled = model(input_ids=torch.as_tensor(np.asarray(rows))).last_hidden_state.mean(dim=1)
    pooled = pooled / pooled.norm(dim=-1, keepdim=True)
    return (pooled @ pooled[0]).numpy()


def _ids(path, text):
    from transformers import AutoTokenizer

    return list(AutoTokenizer.from_pretrained(path)(text)["input_ids"])


def test_json_npz_and_terminal_carry_the_same_scores(bert, tmp_path):
    done = invoke("attribute", TEXT, "-m", bert, "--method", "ablation", "--method", "attention", "--json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["methods"] == ["ablation", "attention"]
    assert data["tokens"] == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]
    assert data["special"] == [True] + [False] * 6 + [True]
    assert data["meta"]["output"]["kind"] == "embedding" and data["meta"]["output"]["score"] == pytest.approx(1.0)
    assert [m["signed"] for m in data["meta"]["methods"]] == [True, False]
    scores = data["scores"]
    assert scores[0][0] is None and scores[0][-1] is None and all(v is not None for v in scores[0][1:-1])
    assert sum(scores[1][1:-1]) > 0

    npz = tmp_path / "scores.npz"
    assert (
        invoke("attribute", TEXT, "-m", bert, "--method", "ablation", "--method", "attention", "-o", npz).exit_code == 0
    )
    with np.load(npz, allow_pickle=False) as saved:
        assert saved["scores"].shape == (2, 8)
        assert saved["methods"].tolist() == ["ablation", "attention"]
        np.testing.assert_allclose(saved["scores"][:, 1:-1], np.asarray(scores, dtype=float)[:, 1:-1], atol=1e-6)
        assert json.loads(str(saved["meta"]))["schema"] == "attnviz-attribution/1"

    # ablation by hand: each of the 6 words replaced by [MASK] (id 4): the cosine drop
    ids = _ids(bert, TEXT)
    assert ids[0] == 2 and ids[-1] == 3 and len(ids) == 8  # [CLS] ... [SEP] of bert_vocab()
    rows = [ids] + [ids[:i] + [4] + ids[i + 1 :] for i in range(1, 7)]
    expected = 1 - _embedding_scores(bert, rows)[1:]
    np.testing.assert_allclose(np.asarray(scores[0][1:-1], dtype=float), expected, atol=1e-4)

    text_out = invoke("attribute", TEXT, "-m", bert, "--method", "ablation")
    assert text_out.exit_code == 0
    line = next(row for row in text_out.stdout.splitlines() if row.startswith("ablation"))
    assert f"cat[{scores[0][2]:+.2g}]" in line  # no colour in a pipe: the value is written out


class _Spans(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[tuple[str, dict]]] = []
        self._span: dict | None = None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self.rows.append([])
        if tag == "span":
            self._span = dict(attrs)

    def handle_data(self, data):
        if self._span is not None:
            self.rows[-1].append((data, self._span))
            self._span = None


def test_images_and_the_html_section(bert, tmp_path):
    for suffix, magic in ((".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")):
        path = tmp_path / f"a{suffix}"
        done = invoke("attribute", TEXT, "-m", bert, "--method", "ablation", "--method", "rollout", "-o", path)
        assert done.exit_code == 0, done.output
        assert path.read_bytes().startswith(magic)
    page = tmp_path / "a.html"
    assert invoke("attribute", "the <cat> sat", "-m", bert, "--method", "ablation", "-o", page).exit_code == 0
    source = page.read_text()
    assert 'class="attnviz-attribution"' in source and "<script" not in source
    parser = _Spans()
    parser.feed(source)
    (row,) = parser.rows
    assert [text for text, _ in row][0] == "[CLS]"
    assert "background" not in row[0][1].get("style", "") and "background" in row[1][1]["style"]


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--method", "saliency"], "unknown method 'saliency'"),
        (["--method", "attnlrp"], "lxt"),
        (["--class", "1"], "--class chooses"),
        (["--target-token", "cat"], "--target-token chooses"),
        (["--output-kind", "next-token"], "needs a decoder model"),
        (["--output-kind", "logits"], "unknown output kind"),
        (["-o", "x.txt"], "unknown output type"),
        (["-o", "x"], "x has no extension"),  # the one wording of show, render and attribute
    ],
)
def test_bad_options_are_one_line_errors(bert, args, needle):
    done = invoke("attribute", TEXT, "-m", bert, *args)
    assert done.exit_code == 2
    assert needle in done.stderr and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[0].startswith("error: ")


def test_a_masked_lm_needs_a_mask_token(masked):
    done = invoke("attribute", TEXT, "-m", masked, "--method", "ablation")
    assert done.exit_code == 2 and "[MASK]" in done.stderr
    done = invoke("attribute", "the cat [MASK] on the mat", "-m", masked, "--method", "ablation", "--json")
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["meta"]["output"]["position"] == 3


def test_faithfulness_json_sorted_table_and_a_bad_line_lost_alone(bert, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_bytes(b"the cat sat on the mat\n\xff\xfe broken\nthe dog ran fast\nthe bird is slow\n")
    curves = tmp_path / "curves.png"
    done = invoke(
        "faithfulness", "-f", texts, "-m", bert, "--limit", "2", "--json", "-o", curves,
        "--method", "attention", "--method", "rollout", "--method", "grad-x-input",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert "line 2" in done.stderr  # the undecodable line is reported, the others still count
    report = json.loads(done.stdout)
    assert report["texts"] == 2
    summary = report["summary"]
    assert summary[0]["method"] == "ablation" and summary[0]["agreement"] is None
    agreements = [row["agreement"] for row in summary[1:]]
    assert sorted(agreements, reverse=True) == agreements and len(agreements) == 3
    for row in summary[1:]:
        low, high = row["agreement_ci95"]
        assert low <= row["agreement"] + 1e-9 and row["agreement"] <= high + 1e-9
    assert curves.read_bytes().startswith(b"\x89PNG")

    # ablation's comprehensiveness at 10% on "the cat sat on the mat" (n = 6: top 1 token) by hand,
    # averaged with "the dog ran fast" (n = 4: top 1 token)
    def comp10(ids):
        rows = [ids] + [ids[:i] + [4] + ids[i + 1 :] for i in range(1, len(ids) - 1)]
        drops = 1 - _embedding_scores(bert, rows)[1:]
        top = 1 + int(np.argmax(drops))
        removed = ids[:top] + [4] + ids[top + 1 :]
        return 1 - _embedding_scores(bert, [ids, removed])[1]

    expected = (comp10(_ids(bert, "the cat sat on the mat")) + comp10(_ids(bert, "the dog ran fast"))) / 2
    assert summary[0]["comprehensiveness_10"] == pytest.approx(expected, abs=1e-4)


def test_faithfulness_table_in_the_terminal(bert, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat sat on the mat\nthe dog ran fast\n")
    done = invoke("faithfulness", "-f", texts, "-m", bert, "--method", "attention")
    assert done.exit_code == 0, done.output
    lines = done.stdout.splitlines()
    assert any(line.startswith("ablation (reference)") for line in lines)
    assert any(line.startswith("attention") for line in lines)
    assert "Spearman with ablation" in done.stdout


def test_empty_file_is_an_error(bert, tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("\n")
    done = invoke("faithfulness", "-f", empty, "-m", bert)
    assert done.exit_code == 2 and "has no text" in done.stderr


def test_help_of_both_commands_imports_nothing_heavy():
    code = (
        "import json, sys, io, contextlib\n"
        "from attnviz.cli import app\n"
        "for command in ('attribute', 'faithfulness'):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        try:\n"
        "            app([command, '--help'])\n"
        "        except SystemExit:\n"
        "            pass\n"
        "print(json.dumps([m for m in ('torch', 'transformers', 'matplotlib', 'scipy', 'captum') if m in sys.modules]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def test_default_methods_say_nothing_of_attnlrp(bert):
    done = invoke("attribute", TEXT, "-m", bert)
    assert done.exit_code == 0, done.output
    assert "attnlrp" not in done.output and "lxt" not in done.output
    assert "each row on its own scale" in done.stdout


def test_a_sentence_pair_scores_both_sentences(bert):
    """--pair: the second sentence's tokens are scored too, with its token type ids: the
    ablation of each word equals the cosine drop computed here with the pair's own
    token_type_ids."""
    import torch
    import transformers as tf

    done = invoke("attribute", TEXT, "-m", bert, "--pair", "a dog ran", "--method", "ablation", "--json")
    assert done.exit_code == 0, done.output
    data = json.loads(done.stdout)
    assert data["tokens"] == ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]", "a", "dog", "ran", "[SEP]"]
    assert data["meta"]["text"] == TEXT and data["meta"]["pair"] == "a dog ran"
    encoded = tf.AutoTokenizer.from_pretrained(bert)(TEXT, "a dog ran")
    ids, types = list(encoded["input_ids"]), list(encoded["token_type_ids"])
    assert types == [0] * 8 + [1] * 4
    words = [i for i, special in enumerate(data["special"]) if not special]
    rows = [ids] + [ids[:i] + [4] + ids[i + 1 :] for i in words]  # [MASK] is id 4
    model = tf.AutoModel.from_pretrained(bert, attn_implementation="eager").eval()
    with torch.no_grad():
        hidden = model(
            input_ids=torch.as_tensor(rows), token_type_ids=torch.as_tensor([types] * len(rows))
        ).last_hidden_state
    pooled = hidden.mean(dim=1)
    pooled = pooled / pooled.norm(dim=-1, keepdim=True)
    expected = 1 - (pooled @ pooled[0]).numpy()[1:]
    np.testing.assert_allclose([data["scores"][0][i] for i in words], expected, atol=1e-4)
