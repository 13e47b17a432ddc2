"""`attnviz show` and `attnviz info` through Typer's CliRunner and a real subprocess."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from helpers import invoke


def test_show_json_summary(tiny_models):
    result = invoke("show", "the cats playing", "-m", tiny_models["bert"], "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["tokens"] == ["[CLS]", "the", "cat", "s", "play", "ing", "[SEP]"]
    assert document["shape"] == {"encoder": [3, 4, 7, 7]}
    assert document["layers"] == [0, 1, 2] and document["heads"] == [0, 1, 2, 3]
    assert len(document["top_keys"]) == 12
    assert document["view"] == "grid"


def test_show_terminal_default_prints_summary_heatmap_and_top_tokens(tiny_models):
    result = invoke("show", "the cat sat", "-m", tiny_models["bert"], "--layer", "1", "--head", "2")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "3 layers x 4 heads" not in out  # selection applied
    assert "1 layer x 1 head x 5 queries x 5 keys" in out
    assert "layer 1 · head 2" in out
    assert "what the heads do" in out
    # one head, one pattern: '(1, → KEY): L1 H2', or '(1): L1 H2' for a positional pattern
    assert re.search(r"\(1(, → [^)]+)?\): L1 H2", out), out


@pytest.mark.parametrize("suffix,magic", [(".png", b"\x89PNG"), (".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_show_writes_images_by_extension(tiny_models, tmp_path, suffix, magic):
    out = tmp_path / f"map{suffix}"
    result = invoke("show", "the cat sat", "-m", tiny_models["bert"], "-l", "0", "-o", out)
    assert result.exit_code == 0, result.output
    assert out.read_bytes().startswith(magic)
    assert out.stat().st_size > 1000
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".part")]


def test_show_writes_npz_with_selection_recorded(tiny_models, tmp_path):
    out = tmp_path / "a.npz"
    result = invoke("show", "the cat", "-m", tiny_models["bert"], "--layer", "1-2", "--words", "-o", out)
    assert result.exit_code == 0, result.output
    with np.load(out) as data:
        assert data["encoder"].shape == (2, 4, 4, 4)
        meta = json.loads(str(data["meta"]))
    assert meta["layers"] == {"encoder": [1, 2]}
    # selection happens during extraction, so it is recorded first
    assert meta["transforms"] == ["select(layers=1-2,heads=all)", "merge_words"]


def test_show_encoder_decoder_with_target_and_cross_kind(tiny_models, tmp_path):
    result = invoke("show", "the cat sat", "-m", tiny_models["t5"], "--target", "a dog", "--kind", "cross", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["kinds"] == ["encoder", "decoder", "cross"]
    assert document["kind"] == "cross"
    assert document["shape"]["cross"][2:] == [len(document["target_tokens"]), len(document["tokens"])]


def _error_line(result):
    lines = [line for line in result.stderr.splitlines() if line.strip() and not line.startswith("note: ")]
    assert lines and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.parametrize("text", ["", "   "])
def test_empty_text_exits_2(tiny_models, text):
    result = invoke("show", text, "-m", tiny_models["bert"])
    assert result.exit_code == 2
    assert "empty" in _error_line(result)


def test_long_text_warns_how_many_tokens_were_cut(tiny_models):
    result = invoke("show", " ".join(["cat"] * 60), "-m", tiny_models["bert"], "--json")
    assert result.exit_code == 0
    assert "14 tokens dropped" in result.stderr
    assert json.loads(result.stdout)["truncated_tokens"] == 14


def test_long_text_with_no_truncate_exits_2(tiny_models):
    result = invoke("show", " ".join(["cat"] * 60), "-m", tiny_models["bert"], "--no-truncate")
    assert result.exit_code == 2
    assert "62 tokens" in _error_line(result)


def test_layer_out_of_range_states_the_valid_range(tiny_models):
    result = invoke("show", "the cat", "-m", tiny_models["bert"], "--layer", "7")
    assert result.exit_code == 2
    assert "this model has 3 layers (0-2)" in _error_line(result)


def test_head_out_of_range(tiny_models):
    result = invoke("show", "the cat", "-m", tiny_models["bert"], "--head", "4")
    assert result.exit_code == 2
    assert "4 heads (0-3)" in _error_line(result)


def test_unknown_output_extension_exits_2_before_loading(tmp_path):
    result = invoke("show", "the cat", "-m", "no/such-model", "-o", tmp_path / "x.bmp")
    assert result.exit_code == 2
    assert "'.bmp'" in _error_line(result)
    assert not (tmp_path / "x.bmp").exists()
    bare = invoke("show", "the cat", "-m", "no/such-model", "-o", tmp_path / "x")
    assert bare.exit_code == 2 and _error_line(bare).endswith("x has no extension")


def test_unwritable_output_exits_1_with_no_file(tiny_models, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = blocker / "map.png"
    result = invoke("show", "the cat", "-m", tiny_models["bert"], "-o", out)
    assert result.exit_code == 1
    assert "cannot" in _error_line(result)
    assert list(tmp_path.iterdir()) == [blocker]


def test_directory_that_is_not_a_model(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    result = invoke("show", "the cat", "-m", tmp_path)
    assert result.exit_code == 1
    assert "not a model directory" in _error_line(result)


def test_missing_local_path():
    result = invoke("show", "the cat", "-m", "./no/such/dir")
    assert result.exit_code == 1
    assert "no such model directory" in _error_line(result)


def test_unknown_hub_id_without_network_fails_fast(monkeypatch, tmp_path):
    """HF_HUB_OFFLINE unset: the reachability probe answers in seconds, not a minute."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens there
    result = invoke("show", "the cat", "-m", "someone/not-a-real-model-xyz")
    assert result.exit_code == 1
    assert "not reachable" in _error_line(result)  # the probe's answer, not 50 s of retries


def test_hub_that_accepts_but_never_answers_fails_within_seconds(monkeypatch, tmp_path):
    """Sandboxes accept TCP connections and then stay silent: the probe must time out."""
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    try:
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
        monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{listener.getsockname()[1]}")
        result = invoke("show", "the cat", "-m", "someone/not-a-real-model-xyz")
    finally:
        listener.close()
    assert result.exit_code == 1
    assert "not reachable" in _error_line(result)  # the probe timed out: it did not hang


def test_unknown_hub_id_with_hf_hub_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    result = invoke("show", "the cat", "-m", "someone/not-a-real-model-xyz")
    assert result.exit_code == 1
    assert "HF_HUB_OFFLINE" in _error_line(result)


def test_model_without_attention_exits_1(tiny_models, loaded_models, monkeypatch):
    from dataclasses import replace

    import torch
    from transformers.modeling_outputs import BaseModelOutput

    class Silent(torch.nn.Module):
        config = loaded_models["bert"].model.config

        def forward(self, **kwargs):
            return BaseModelOutput(last_hidden_state=torch.zeros(1), attentions=None)

    monkeypatch.setattr("attnviz.models.load_model", lambda *a, **k: replace(loaded_models["bert"], model=Silent()))
    result = invoke("show", "the cat", "-m", tiny_models["bert"])
    assert result.exit_code == 1
    assert "returned no encoder attention" in _error_line(result)


def test_info_json(tiny_models):
    result = invoke("info", tiny_models["bart"], "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["family"] == "encoder-decoder"
    assert document["attention_kinds"] == ["encoder", "decoder", "cross"]
    assert document["layers"] == {"encoder": 2, "decoder": 2, "cross": 2}
    assert document["max_length"] == 64


def test_info_bundled_default():
    result = invoke("info", "--json")
    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["family"], document["layers"], document["heads"], document["max_length"]) == (
        "encoder",
        {"encoder": 6},
        {"encoder": 12},
        512,
    )


def test_debug_variable_shows_the_traceback(tiny_models, monkeypatch):
    monkeypatch.setenv("ATTNVIZ_DEBUG", "1")
    result = invoke("show", "", "-m", tiny_models["bert"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr


@pytest.mark.slow
def test_installed_entry_point_runs_the_bundled_model(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", NO_COLOR="1")
    command = [os.path.join(os.path.dirname(sys.executable), "attnviz"), "show", "AI changes everything", "--json"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["tokens"] == ["[CLS]", "ai", "changes", "everything", "[SEP]"]
    assert document["shape"] == {"encoder": [6, 12, 5, 5]}
    assert done.stderr.strip() == ""  # the libraries' chatter is kept off stderr


@pytest.mark.slow
def test_python_dash_m_and_error_exit_code(tmp_path):
    done = subprocess.run([sys.executable, "-m", "attnviz", "show", "  "], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr.startswith("error: the text is empty")


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_a_reader_that_closes_the_pipe_early_is_not_an_error(tiny_models, json_flag):
    """`attnviz show ... | head -1`: exit 0, nothing on stderr (the terminal view and a
    large JSON document both outlive the reader)."""
    script = (
        "import os, sys, subprocess\n"
        "r, w = os.pipe()\n"
        f"p = subprocess.Popen([sys.executable, '-m', 'attnviz', 'show', ' '.join(['cat'] * 40), '-m', "
        f"{str(tiny_models['bert'])!r}, *{json_flag!r}], stdout=w, stderr=subprocess.PIPE)\n"
        "os.close(w)\n"
        "os.close(r)\n"  # the reader is gone before the first byte is written
        "err = p.stderr.read().decode()\n"
        "print(p.wait(), repr(err))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    code, err = done.stdout.split(" ", 1)
    assert code == "0", err
    assert "Traceback" not in err and "Broken" not in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer", "9"], "--layer 9 is out of range: this model has 3 layers (0-2)"),
        (["--head", "4"], "--head 4 is out of range"),
        (["--view", "head"], "the head view shows one head, but 3 layers x 4 heads are selected"),
        (["--view", "layer", "--head", "1"], "the layer view shows one layer, but 3 layers are selected"),
    ],
)
def test_selection_errors_are_refused_from_config_json_without_torch(tiny_models, args, message):
    """The refusal comes before torch or transformers is imported (reading config.json
    only), so it takes a fraction of a second instead of a model load."""
    script = (
        "import sys\n"
        "from attnviz.cli import app\n"
        "try:\n"
        f"    app(['show', 'the cat', '-m', {str(tiny_models['bert'])!r}, *{args!r}])\n"
        "except SystemExit as exit:\n"
        "    print('exit', exit.code, 'torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.stdout.split() == ["exit", "2", "False", "False"], done.stdout + done.stderr
    assert message in done.stderr.splitlines()[0]


def test_positional_patterns_name_no_key(monkeypatch):
    """A previous-token head attends to each query's neighbour: naming the key it attends
    to most over all queries ('previous (1, → [CLS])') would mislead (new-user review)."""
    import io

    from rich.console import Console

    from attnviz.render import roles

    fake = [
        {"layer": 0, "head": 2, "label": "previous", "top": {"token": "[CLS]"}},
        {"layer": 1, "head": 0, "label": "vertical", "top": {"token": "[CLS]"}},
        {"layer": 1, "head": 1, "label": "vertical", "top": {"token": "[SEP]"}},
    ]
    monkeypatch.setattr(roles, "head_roles", lambda result, kind: fake)
    out = io.StringIO()
    roles.print_head_roles(None, "encoder", Console(file=out, width=100), lambda token, width: token)  # type: ignore[arg-type]
    lines = out.getvalue().splitlines()
    assert "previous (1): L0 H2" in lines and "vertical (2, mostly → [CLS]): L1 H0,H1" in lines
