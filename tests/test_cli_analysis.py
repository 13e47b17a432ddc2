"""`attnviz stats`, `compare`, `render` and the rollout/flow views, end to end."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import invoke


@pytest.fixture(scope="module")
def altered_bert(tiny_models, tmp_path_factory):
    """The tiny BERT with its last layer's query weights changed."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(tiny_models["bert"])
    with torch.no_grad():
        torch.manual_seed(1)
        model.encoder.layer[-1].attention.self.query.weight.normal_(0.0, 3.0)
        model.encoder.layer[-1].attention.self.key.weight.normal_(0.0, 3.0)
    path = tmp_path_factory.mktemp("altered")
    model.save_pretrained(path)
    AutoTokenizer.from_pretrained(tiny_models["bert"]).save_pretrained(path)
    return path


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("the cat sat on the mat\n\na dog ran fast\nthe bird is singing a song .\n")
    return path


def test_stats_json_has_every_head(tiny_models):
    result = invoke("stats", "the cat sat on the mat", "-m", tiny_models["bert"], "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert len(document["heads"]) == 3 * 4
    first = document["heads"][0]
    assert (first["layer"], first["head"]) == (0, 0)
    assert {"entropy", "distance", "first", "separator", "punctuation", "self", "previous", "next", "label"} <= set(
        first
    )


def test_stats_json_matches_npz_arrays(tiny_models, tmp_path):
    """Layer/head indices in stats JSON address the same maps as the npz arrays."""
    out = tmp_path / "a.npz"
    assert invoke("show", "a dog ran fast", "-m", tiny_models["bert"], "-o", out).exit_code == 0
    document = json.loads(invoke("stats", "a dog ran fast", "-m", tiny_models["bert"], "--json").stdout)
    with np.load(out) as data:
        encoder = data["encoder"].astype(np.float64)
    for row in document["heads"]:
        a = encoder[row["layer"], row["head"]]
        entropy = float(np.mean(-(a * np.log(a)).sum(-1)))
        assert row["entropy"] == pytest.approx(entropy, abs=1e-5)


def test_stats_file_shards_merge_to_the_whole(tiny_models, corpus, tmp_path):
    whole = json.loads(invoke("stats", "-f", corpus, "-m", tiny_models["bert"], "--json").stdout)
    lines = [line for line in corpus.read_text().splitlines() if line.strip()]
    shards = []
    for index, chunk in enumerate((lines[:1], lines[1:])):
        shard_file = tmp_path / f"part{index}.txt"
        shard_file.write_text("\n".join(chunk) + "\n")
        shard_json = tmp_path / f"part{index}.json"
        shard_json.write_text(invoke("stats", "-f", shard_file, "-m", tiny_models["bert"], "--json").stdout)
        shards.append(shard_json)
    merged = invoke("stats", "--merge", shards[0], "--merge", shards[1], "--json")
    assert merged.exit_code == 0, merged.output
    merged_doc = json.loads(merged.stdout)
    assert merged_doc["texts"] == whole["texts"] == 3
    for a, b in zip(merged_doc["heads"], whole["heads"]):
        for key in ("entropy", "distance", "first", "previous", "label"):
            assert a[key] == pytest.approx(b[key], abs=1e-6)


def test_stats_image_and_table(tiny_models, tmp_path):
    out = tmp_path / "entropy.png"
    result = invoke("stats", "the cat sat", "-m", tiny_models["bert"], "--stat", "distance", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:4] == b"\x89PNG"
    table = invoke("stats", "the cat sat", "-m", tiny_models["bert"])
    assert table.exit_code == 0 and "pattern" in table.stdout


def test_stats_merge_of_different_models_is_refused(tiny_models, tmp_path):
    a = tmp_path / "a.json"
    b = tmp_path / "b.json"
    a.write_text(invoke("stats", "the cat", "-m", tiny_models["bert"], "--json").stdout)
    b.write_text(invoke("stats", "the cat", "-m", tiny_models["distilbert"], "--json").stdout)
    result = invoke("stats", "--merge", a, "--merge", b)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: cannot merge")


def test_compare_a_model_with_itself_is_zero(tiny_models, corpus):
    result = invoke(
        "compare", "-f", corpus, "-m", tiny_models["bert"], "-m", tiny_models["bert"], "--json", "--fail-above", "0"
    )
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["texts"] == 3
    assert all(h["js"] == 0 and h["l1"] == 0 for h in document["heads"])


def test_compare_shows_change_only_in_the_altered_layer(tiny_models, altered_bert):
    result = invoke("compare", "the cat sat on the mat", "-m", tiny_models["bert"], "-m", altered_bert, "--json")
    assert result.exit_code == 0, result.output
    heads = json.loads(result.stdout)["heads"]
    assert all(h["js"] < 1e-9 for h in heads if h["layer"] < 2)
    assert all(h["js"] > 1e-4 for h in heads if h["layer"] == 2)


def test_compare_fail_above_exits_3(tiny_models, altered_bert, tmp_path):
    out = tmp_path / "drift.png"
    result = invoke(
        "compare", "the cat sat", "-m", tiny_models["bert"], "-m", altered_bert, "--fail-above", "1e-6", "-o", out
    )
    assert result.exit_code == 3
    assert "head(s) over --fail-above" in result.stderr
    assert out.exists()  # the report is written before the gate fails


def test_compare_different_tokenizers_is_a_clear_error_or_word_level(tiny_models):
    """DistilBERT (WordPiece) and RoBERTa (byte-level BPE), both 2 layers x 2 heads."""
    pair = ("-m", tiny_models["distilbert"], "-m", tiny_models["roberta"])
    result = invoke("compare", "the cat sat", *pair)
    assert result.exit_code == 2
    assert "tokenize" in result.stderr.splitlines()[0]
    words = invoke("compare", "the cat sat", *pair, "--words", "--json")
    assert words.exit_code == 0, words.output
    document = json.loads(words.stdout)
    assert len(document["heads"]) == 4 and document["max_js"] > 0


def test_compare_different_architectures_is_a_clear_error(tiny_models):
    result = invoke("compare", "the cat sat", "-m", tiny_models["bert"], "-m", tiny_models["distilbert"])
    assert result.exit_code == 2
    assert "differ in shape: 3x4 vs 2x2" in result.stderr


def test_compare_needs_two_models(tiny_models):
    result = invoke("compare", "the cat", "-m", tiny_models["bert"])
    assert result.exit_code == 2


def test_rollout_and_flow_views_as_data_and_images(tiny_models, tmp_path):
    out = tmp_path / "flow.npz"
    result = invoke("show", "the cat sat on the mat", "-m", tiny_models["bert"], "--view", "flow", "-o", out)
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        assert data["rollout"].shape == (3, 8, 8)
        assert data["flow"].shape == (8, 8)
        assert data["encoder"].shape == (3, 4, 8, 8)
        np.testing.assert_allclose(data["flow"].sum(-1), 1.0, atol=1e-5)
    image = tmp_path / "rollout.svg"
    assert invoke("show", "the cat", "-m", tiny_models["bert"], "--view", "rollout", "-o", image).exit_code == 0
    assert b"<svg" in image.read_bytes()[:400]


def test_rollout_of_cross_attention_is_refused(tiny_models):
    result = invoke(
        "show", "the cat", "-m", tiny_models["t5"], "--target", "a dog", "--kind", "cross", "--view", "rollout"
    )
    assert result.exit_code == 2
    assert "cross attention" in result.stderr


def test_render_saved_data_without_a_model(tiny_models, tmp_path):
    saved = tmp_path / "saved.npz"
    assert invoke("show", "the cats playing", "-m", tiny_models["bert"], "-o", saved).exit_code == 0
    code = (
        "import sys\n"
        "from attnviz.cli import app\n"
        f"try:\n    app(['render', {str(saved)!r}, '--layer', '1', '--head', '0', '--words', '-o', {str(tmp_path / 'r.png')!r}])\n"
        "except SystemExit as e:\n    code = e.code\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules, code)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.stdout.split()[-3:] == ["False", "False", "0"], done.stderr
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"
    result = invoke("render", saved, "--json", "--words")
    assert json.loads(result.stdout)["tokens"] == ["[CLS]", "the", "cats", "playing", "[SEP]"]


def test_render_a_file_that_is_not_attnviz_data(tmp_path):
    bogus = tmp_path / "x.npz"
    bogus.write_bytes(b"not a zip")
    result = invoke("render", bogus)
    assert result.exit_code == 2
    assert "is not an attnviz .npz file (not a zip archive)" in result.stderr
    assert "pickle" not in result.stderr


@pytest.mark.parametrize("view", ["rollout", "flow"])
def test_rollout_and_flow_with_no_special_follow_the_raw_attention(tiny_models, tmp_path, view):
    """Rollout/flow run on the attention with [CLS]/[SEP] (Abnar & Zuidema's definition);
    --no-special only hides those tokens from the map afterwards."""
    from attnviz.analysis.rollout import attention_flow, attention_rollout
    from attnviz.result import AttentionResult

    raw_path, shown_path = tmp_path / "raw.npz", tmp_path / "shown.npz"
    assert invoke("show", "the cat sat", "-m", tiny_models["bert"], "-o", raw_path).exit_code == 0
    result = invoke("show", "the cat sat", "-m", tiny_models["bert"], "--view", view, "--no-special", "-o", shown_path)
    assert result.exit_code == 0, result.output
    raw = AttentionResult.load(raw_path)
    shown = AttentionResult.load(shown_path)
    keep = ~raw.tokens.special_mask
    reference = (
        attention_rollout(raw.attentions["encoder"]) if view == "rollout" else attention_flow(raw.attentions["encoder"])
    )
    np.testing.assert_allclose(shown.derived[view], reference[..., keep, :][..., keep], atol=1e-5)
    assert shown.extra_meta["derived_from"].startswith("raw attention")
    assert list(shown.tokens.display) == ["the", "cat", "sat"]


def test_neuron_view_in_the_terminal_json_image_and_data(tiny_models, tmp_path):
    from attnviz.result import AttentionResult

    model = ("-m", tiny_models["gpt2"])
    args = ("show", "the cat sat on the mat", *model, "--view", "neuron", "--layer", "1", "--head", "1")
    terminal = invoke(*args, "--query", "3")
    assert terminal.exit_code == 0, terminal.output
    assert "layer 1 · head 1 · query 3" in terminal.stdout and "query x key" in terminal.stdout
    document = json.loads(invoke(*args, "--query", "3", "--json").stdout)
    data_path = tmp_path / "n.npz"
    assert invoke(*args, "-o", data_path).exit_code == 0
    saved = AttentionResult.load(data_path)
    q = saved.vectors["decoder"]["query"][0, 0, 3].astype(np.float64)
    k = saved.vectors["decoder"]["key"][0, 0].astype(np.float64)
    scaling = saved.extra_meta["vectors"]["decoder"]["scaling"][0]
    np.testing.assert_allclose(document["dot"], k @ q, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(document["score"], k @ q * scaling, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(document["weight"], saved.attentions["decoder"][0, 0, 3], atol=1e-5)
    assert document["weight"][4:] == [0.0] * (len(document["weight"]) - 4)  # causal: later keys are masked
    assert document["masked"] == [False] * 4 + [True] * (len(document["weight"]) - 4)
    assert document["window"] is None  # GPT-2 has no sliding window
    image = tmp_path / "n.png"
    assert invoke(*args, "-o", image).exit_code == 0 and image.read_bytes()[:4] == b"\x89PNG"
    # saved vectors re-render without the model
    again = invoke("render", data_path, "--view", "neuron", "--query", "3", "--json")
    assert again.exit_code == 0 and json.loads(again.stdout)["dot"] == document["dot"]


def test_neuron_view_needs_one_head_and_a_query_in_range(tiny_models):
    many = invoke("show", "the cat", "-m", tiny_models["bert"], "--view", "neuron")
    assert many.exit_code == 2 and "the neuron view shows one head" in many.stderr
    far = invoke(
        "show", "the cat", "-m", tiny_models["bert"], "--view", "neuron", "-l", "0", "-H", "0", "--query", "40"
    )
    assert far.exit_code == 2 and "--query 40 is out of range" in far.stderr


def test_norm_view_draws_norm_weights_and_saves_both(tiny_models, tmp_path):
    from attnviz.result import AttentionResult

    data = tmp_path / "n.npz"
    assert invoke("show", "the cat sat", "-m", tiny_models["bert"], "--view", "norm", "-o", data).exit_code == 0
    saved = AttentionResult.load(data)
    assert saved.derived["norm"].shape == saved.attentions["encoder"].shape
    shown = invoke("show", "the cat sat", "-m", tiny_models["bert"], "--view", "norm", "--json")
    assert shown.exit_code == 0 and "norm" in json.loads(shown.stdout)["transforms"]
    rollout = tmp_path / "r.npz"
    assert (
        invoke("show", "the cat sat", "-m", tiny_models["bert"], "--view", "rollout", "--norm", "-o", rollout).exit_code
        == 0
    )
    over_norms = AttentionResult.load(rollout)
    assert "norm" in over_norms.transforms and "Kobayashi" in over_norms.extra_meta["weights"]
    from attnviz.analysis.rollout import attention_rollout

    np.testing.assert_allclose(over_norms.derived["rollout"], attention_rollout(saved.derived["norm"]), atol=1e-5)
    png = tmp_path / "n.png"
    assert invoke("render", data, "--norm", "-o", png).exit_code == 0


def test_stats_cluster_draws_a_clustermap_and_gives_each_head_a_cluster(tiny_models, tmp_path):
    corpus = tmp_path / "texts.txt"
    corpus.write_text("the cat sat on the mat\na dog ran far\nthe bird sang\n")
    document = json.loads(
        invoke("stats", "-f", corpus, "-m", tiny_models["bert"], "--cluster", "--clusters", "3", "--json").stdout
    )
    assert sorted({head["cluster"] for head in document["heads"]}) == [1, 2, 3]
    assert len(document["distances"]["matrix"]) == 12
    image = tmp_path / "heads.png"
    result = invoke("stats", "-f", corpus, "-m", tiny_models["bert"], "--cluster", "-o", image)
    assert result.exit_code == 0 and image.read_bytes()[:4] == b"\x89PNG"
    table = invoke("stats", "-f", corpus, "-m", tiny_models["bert"], "--cluster")
    assert "cluster" in table.stdout
    merged = invoke("stats", "--merge", tmp_path / "x.json", "--cluster")
    assert merged.exit_code == 2 and "--cluster needs the attention itself" in merged.stderr


@pytest.mark.parametrize(
    ("args", "error", "hint"),
    [
        (["show", "the cat", "--query", "1"], "--query chooses the neuron view's query token", "add --view neuron"),
        (["stats", "the cat", "-o", "x"], "stats -o draws an image; x has no extension", "use .png, .svg or .pdf"),
        (["compare", "the cat", "-m", "a", "-m", "b", "-o", "s.html"], "'.html' is not one", "use .png, .svg or .pdf"),
    ],
)
def test_options_a_command_cannot_use_are_refused_with_what_it_takes(args, error, hint, tmp_path, monkeypatch):
    """Found by a new-user review: --query without the neuron view was ignored, and stats or
    compare -o x offered extensions they then refused."""
    monkeypatch.chdir(tmp_path)
    done = invoke(*args)
    lines = done.stderr.splitlines()
    assert done.exit_code == 2 and len(lines) == 2, done.stderr
    assert error in lines[0] and lines[1].startswith(f"hint: {hint}")


def test_attribute_methods_may_be_a_comma_list():
    from attnviz.cli.attribute import method_list

    assert method_list(["ablation,attention", " rollout "]) == ["ablation", "attention", "rollout"]
    assert method_list(None) is None and method_list([","]) is None


def test_the_export_summary_after_resume_says_what_this_run_did(tiny_models, tmp_path):
    texts = tmp_path / "texts.txt"
    texts.write_text("the cat sat\na dog ran\n")
    common = ("export", texts, "-m", tiny_models["bert"], "-o", tmp_path / "out", "--format", "npz")
    first = invoke(*common)
    assert first.exit_code == 0 and "exported 2 texts (2 files) in " in first.stderr
    again = invoke(*common, "--resume")
    assert again.exit_code == 0
    assert again.stderr.strip().endswith("nothing left to export: all 2 texts were done by an earlier run")
    texts.write_text("the cat sat\na dog ran\nthe end\n")
    third = invoke(*common, "--resume")
    summary = [line for line in third.stderr.splitlines() if line.startswith("exported")]
    assert summary and summary[0].startswith("exported 1 text (1 file) in ")
    assert summary[0].endswith("; 2 done by an earlier run")
