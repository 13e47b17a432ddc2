"""Hostile inputs, round 3, part B (issue #21): untrusted config counts, saved files that
passed the checks and crashed later, absurd numbers, odd vocabularies. Each is one line
``error: ...`` and the documented exit code, never a traceback."""

from __future__ import annotations

import json
import shutil
import zipfile

import numpy as np
import pytest
from helpers import invoke, random_result


def _one_error_line(result, code: int = 2) -> str:
    assert result.exit_code == code, (result.output, result.exception)
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def huge_config(tiny_models, tmp_path_factory):
    """The tiny BERT (3 layers, 4 heads) with config.json claiming 10**9 layers."""
    folder = tmp_path_factory.mktemp("huge") / "bert"
    shutil.copytree(tiny_models["bert"], folder)
    config = json.loads((folder / "config.json").read_text())
    config["num_hidden_layers"] = 10**9
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_billion_layers_with_one_layer_chosen_is_refused_before_anything_is_built(huge_config, monkeypatch):
    import attnviz.models.loading as loading

    def never(*args, **kwargs):
        raise AssertionError("the config reached transformers")

    monkeypatch.setattr(loading, "load_config", never)
    line = _one_error_line(invoke("show", "the cat", "-m", huge_config, "-l", "0", "-H", "0"), code=1)
    # the header of the tiny checkpoint lists 3 layers' tensors plus embeddings and pooler: far under 10**9
    assert "says 1000000000 encoder layers" in line and "model.safetensors" in line


def test_load_model_refuses_the_count_from_the_header_too(huge_config, monkeypatch):
    import attnviz.models.loading as loading
    from attnviz.errors import ModelLoadError

    monkeypatch.setattr(loading, "load_config", lambda *a, **k: pytest.fail("the config reached transformers"))
    with pytest.raises(ModelLoadError, match="1000000000 encoder layers"):
        loading.load_model(huge_config)


def test_weight_bounds_read_the_header_only(tiny_models):
    from safetensors import safe_open

    from attnviz.models.weights import weight_bounds

    path = tiny_models["bert"] / "model.safetensors"
    with safe_open(str(path), "np") as handle:  # independently: the library's own reader
        names = list(handle.keys())
        largest = max(max(handle.get_slice(n).get_shape() or [0]) for n in names)
    bounds = weight_bounds(tiny_models["bert"])
    assert bounds is not None and (bounds.tensors, bounds.largest_dimension) == (len(names), largest)


def test_a_count_is_checked_arithmetically_never_enumerated():
    from attnviz.transforms import count_index_spec, parse_index_spec

    assert count_index_spec("all", 10**12) == 10**12
    assert count_index_spec(slice(0, None, 2), 10**12) == 5 * 10**11
    assert count_index_spec("2-4,7", 10) == 4
    with pytest.raises(Exception, match="1000 is out of range"):
        parse_index_spec("0-10000000000000000", 1000)  # would be 10**16 indices if enumerated


# -- saved files (items 3 and 20; the field-by-field cases are in test_saved.py's MUTATIONS) ---
def _saved(tmp_path, **meta_changes):
    result = random_result(["[CLS]", "the", "cat", "[SEP]"], text="the cat")
    path = tmp_path / "saved.npz"
    result.to_npz(path)
    if meta_changes:
        fields = dict(np.load(path))
        meta = json.loads(str(fields["meta"]))
        meta.update(meta_changes)
        fields["meta"] = np.array(json.dumps(meta))
        np.savez(path, **fields)
    return path


def test_a_corrupt_deflate_stream_is_one_line(tmp_path):
    source = _saved(tmp_path)
    fields = dict(np.load(source))
    path = tmp_path / "deflated.npz"
    np.savez_compressed(path, **fields)
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        member = archive.getinfo("encoder.npy")
    start = member.header_offset + 30 + len(member.filename) + len(member.extra)
    for offset in range(start + 40, start + member.compress_size - 8, 7):  # the stream, not the zip's own records
        data[offset] ^= 0x5A
    path.write_bytes(bytes(data))
    line = _one_error_line(invoke("render", path, "-o", tmp_path / "x.png"))
    assert "'encoder' is not a readable NumPy array" in line
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("output", ["page.html", "--json"])
def test_a_lone_surrogate_in_the_text_never_reaches_a_page_or_json(tmp_path, output):
    path = _saved(tmp_path, text="the \udc80 cat")
    args = ["--json"] if output == "--json" else ["-o", tmp_path / output]
    result = invoke("render", path, *args)
    assert "lone surrogate U+DC80" in _one_error_line(result)
    assert result.stdout == "" and not (tmp_path / "page.html").exists()


def test_pair_nan_never_renders_a_page(tmp_path):
    path = _saved(tmp_path, pair=float("nan"))
    assert "'pair' must be a string or null" in _one_error_line(invoke("render", path, "-o", tmp_path / "p.html"))
    assert not (tmp_path / "p.html").exists()


# -- absurd numbers (item 18) ---------------------------------------------------------------
DIGITS = "9" * 5000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-bytes", "inf"], "--max-bytes 'inf' is not a size a file can have"),
        (["--max-bytes", "1e400"], "is not a size a file can have"),
        (["--max-bytes", DIGITS], "(5000 characters)' is not a size a file can have"),
        (["--max-bytes", "nan"], "must be positive"),
        (["--layer", DIGITS], "--layer '999999999999999999999999999999... (5000 characters)' is not an index"),
        (["--head", "0-" + DIGITS], "is not an index, a range or 'all'"),
        (["--layer", "1-99999999999999999"], "--layer 2 is out of range"),
        (["--view", "neuron", "-l", "0", "-H", "0", "--query", DIGITS], "--query"),
    ],
)
def test_absurd_numbers_are_one_line(tmp_path, args, message):
    path = _saved(tmp_path)
    result = invoke("render", path, *args)
    line = _one_error_line(result) if result.stderr.count("error:") == 1 else result.output
    assert message in line, line
    assert len(line) < 300


# -- stats --merge shards (item 5) ------------------------------------------------------------
@pytest.fixture(scope="module")
def shard(tmp_path_factory):
    """A real shard: the statistics of 2 layers x 3 heads of random attention over 4 tokens."""
    from attnviz.analysis.stats import head_statistics

    return head_statistics([random_result(["[CLS]", "the", "cat", "[SEP]"], text="the cat")]).to_dict()


def _set(document, path, value):
    document = json.loads(json.dumps(document))
    *parents, last = path
    target = document
    for key in parents:
        target = target[key]
    if value is _DELETE:
        del target[last]
    else:
        target[last] = value
    return document


_DELETE = object()
SHARDS = {
    "sums of the wrong shape": (
        ("sums", "entropy"),
        [[1.0, 2.0]],
        "'sums.entropy' is 1x2, but the shard lists 2 layers x 3 heads",
    ),
    "a statistic missing": (("counts", "self"), _DELETE, "'counts' has no 'self'"),
    "sums not numbers": (("sums", "first"), [["a", "b", "c"], ["d", "e", "f"]], "'sums.first' is not a table"),
    "sums ragged": (("sums", "first"), [[1, 2, 3], [4]], "'sums.first' is not a table"),
    "NaN sums": (("sums", "local"), [[float("nan")] * 3] * 2, "'sums.local' holds NaN"),
    "layers not integers": (("layers",), ["0", "1"], "'layers' must be a non-empty list"),
    "repeated heads": (("head_ids",), [0, 0, 1], "'head_ids' must be a non-empty list of distinct"),
    "texts infinite": (("texts",), float("inf"), "'texts' must be a whole number"),
    "kind unknown": (("kind",), "sideways", "'kind' must be one of"),
    "sums a list": (("sums",), [1, 2], "'sums' must map each statistic"),
}


@pytest.mark.parametrize("name", list(SHARDS))
def test_a_crafted_shard_is_one_line_and_never_merged(shard, tmp_path, name):
    path, value, message = SHARDS[name]
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(shard))
    bad.write_text(json.dumps(_set(shard, path, value)))
    result = invoke("stats", "--merge", good, "--merge", bad, "--json")
    line = _one_error_line(result)
    assert message in line and "bad.json" in line, line
    assert result.stdout == ""


def test_two_good_shards_merge_to_the_sum_of_their_sums(shard, tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(shard))
    result = invoke("stats", "--merge", tmp_path / "a.json", "--merge", tmp_path / "a.json", "--json")
    assert result.exit_code == 0, result.output
    merged = json.loads(result.stdout)
    assert merged["texts"] == 2
    assert np.allclose(merged["sums"]["entropy"], 2 * np.asarray(shard["sums"]["entropy"]))


# -- vocabularies (item 19 is in test_model_dirs.py; the protein bullet here) -----------------
AMINO_ACIDS = "LAGVSERTIDPKQNFYMHWCXBUZO"


@pytest.fixture(scope="module")
def protein_model(tmp_path_factory):
    """A tiny ESM-2-like model (2 layers x 2 heads) with the amino-acid vocabulary."""
    import torch
    import transformers as tf

    folder = tmp_path_factory.mktemp("esm")
    vocab = ["<cls>", "<pad>", "<eos>", "<unk>", *AMINO_ACIDS, ".", "-", "<null_1>", "<mask>"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = tf.EsmTokenizer(vocab_file=str(folder / "vocab.txt"))
    config = tf.EsmConfig(
        vocab_size=len(vocab),
        hidden_size=16,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        pad_token_id=1,
        mask_token_id=len(vocab) - 1,
        position_embedding_type="rotary",
    )
    torch.manual_seed(0)
    tf.EsmModel(config, add_pooling_layer=False).save_pretrained(folder / "model")
    tokenizer.save_pretrained(folder / "model")
    return folder / "model"


def test_a_protein_model_shows_its_own_sequence(protein_model):
    result = invoke("show", "MKTAYIAKQR", "-m", protein_model, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    document = json.loads(result.stdout)
    assert document["tokens"] == ["<cls>", *"MKTAYIAKQR", "<eos>"]
    assert "warning" not in result.stderr


def test_english_on_a_protein_model_is_a_warning_naming_the_count(protein_model):
    result = invoke("show", "the cat sat", "-m", protein_model, "--json")
    assert result.exit_code == 0, (result.output, result.exception)
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "all 3 tokens of the text are <unk>" in warnings[0]


def test_a_tokenizer_with_only_special_tokens_is_refused():
    from attnviz.errors import ModelLoadError
    from attnviz.models.loading import _check_tokenizer
    from attnviz.models.spec import ModelSpec

    class OnlySpecials:
        unk_token = "[UNK]"
        all_special_tokens = ["[UNK]", "[CLS]", "[SEP]"]

        def get_vocab(self):
            return {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2}

        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": [0] * len(text.split())}

    with pytest.raises(ModelLoadError, match="holds only its 3 special tokens"):
        _check_tokenizer(ModelSpec(name="x", source="x", is_local=True), OnlySpecials())


# -- the stats table in 80 and 160 columns (bullet "stats ... unreadable") ----------------------
@pytest.fixture(scope="module")
def twelve_layers():
    """Statistics of 12 layers x 12 heads of random attention over 6 tokens, and the attention."""
    from attnviz.analysis.stats import head_statistics

    result = random_result(["[CLS]", "a", "b", "c", "d", "[SEP]"], layers=12, heads=12, text="a b c d")
    return head_statistics([result]), result.attentions["encoder"].astype(np.float64)


def _table_text(stats, width, **options):
    import io

    from rich.console import Console

    from attnviz.render.stats_table import print_stats_table

    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=True, color_system=None)
    print_stats_table(console, stats, **options)
    return buffer.getvalue()


@pytest.mark.parametrize("width", [80, 160])
def test_the_stats_table_fits_its_width_without_cutting_a_number(twelve_layers, width):
    stats, attention = twelve_layers
    text = _table_text(stats, width)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= width and "…" not in text
    header = next(line for line in lines if line.split()[:2] == ["L", "H"])
    shown = header.split()[2:-1]
    if width == 160:
        assert len(shown) == 9
    from attnviz.render.stats_table import ABBREVIATIONS, PRIORITY

    kept = [name for name in PRIORITY if ABBREVIATIONS[name][0] in shown]
    assert kept == list(PRIORITY[: len(kept)])  # the later statistics give way first
    entropy = -(attention * np.log(attention)).sum(-1).mean(-1)  # [layers, heads], independently
    rows = {tuple(line.split()[:2]): line.split() for line in lines if line.split()[:1] and line.split()[0].isdigit()}
    assert len(rows) == 144 and ("11", "11") in rows and ("10", "0") in rows
    for (layer, head), cells in rows.items():
        assert cells[2] == f"{entropy[int(layer), int(head)]:.2f}"
    assert "ent entropy (nats)" in text and ("Left out:" in text) == (len(shown) < 9)


def test_chosen_columns_are_drawn_whole_even_when_wider(twelve_layers):
    stats, _ = twelve_layers
    text = _table_text(stats, 40, columns=("entropy", "self", "local"))
    header = next(line for line in text.splitlines() if line.split()[:2] == ["L", "H"])
    assert header.split() == ["L", "H", "ent", "self", "loc", "pattern"] and "…" not in text


def test_columns_option_chooses_and_refuses(shard, tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(shard))
    result = invoke("stats", "--merge", tmp_path / "a.json", "--columns", "ent,prev")
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if line.split()[:2] == ["L", "H"])
    assert header.split() == ["L", "H", "ent", "prev", "pattern"]
    line = _one_error_line(invoke("stats", "--merge", tmp_path / "a.json", "--columns", "ent,bogus"))
    assert "--columns 'bogus' is not a statistic" in line


# -- help (bullet "Help") -------------------------------------------------------------------------
def test_show_help_lists_every_view_and_reads_text_in_capitals():
    from attnviz.render import VIEWS

    result = invoke("show", "-h")
    assert result.exit_code == 0
    flat = " ".join(result.stdout.split())
    view_help = flat[flat.index("--view") : flat.index("--query")]
    assert all(name in view_help for name in VIEWS)
    assert "TEXT" in result.stdout.splitlines()[0] and "{text}" not in result.stdout
    assert "text <str>" not in result.stdout and "TEXT <str>" in result.stdout
