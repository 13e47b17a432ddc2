"""Hostile inputs: no text stops an export, bad bytes give one-line errors, one export per
directory, and word merging that stays linear."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import invoke, manifest


def test_a_lone_surrogate_fails_its_line_and_the_rest_are_exported(tiny_models, tmp_path):
    source = tmp_path / "in.jsonl"
    lines = [json.dumps({"text": f"the cat sat {i}"}) for i in range(6)]
    lines[2] = '{"text": "poison \\udc80 line"}'  # valid JSON, not valid Unicode
    source.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    args = ["export", source, "-o", out, "-m", tiny_models["bert"], "--format", "npz", "--workers", "0"]
    result = invoke(*args)
    assert result.exit_code == 1, result.output
    records = {r["line"]: r for r in manifest(out)}
    assert len(records) == 6
    assert records[3]["status"] == "failed" and "lone surrogate U+DC80" in records[3]["error"]
    assert all(records[i]["status"] == "ok" for i in (1, 2, 4, 5, 6))
    again = invoke(*args, "--resume")  # resume finishes: the poisoned line fails again, alone
    assert again.exit_code == 1 and "Traceback" not in again.output
    assert sorted(r["line"] for r in manifest(out)) == [1, 2, 3, 4, 5, 6]


def test_show_with_invalid_utf8_argument_or_stdin_exits_2(tiny_models):
    # Python hands undecodable argv bytes over as lone surrogates (surrogateescape)
    result = invoke("show", "bad \udcff byte", "-m", tiny_models["bert"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: the text is not valid Unicode")
    piped = subprocess.run(
        [sys.executable, "-m", "attnviz", "show", "-", "-m", str(tiny_models["bert"])],
        input=b"caf\xe9 au lait\n",
        capture_output=True,
    )
    assert piped.returncode == 2
    assert piped.stderr.decode().startswith("error: standard input is not valid UTF-8")
    assert b"Traceback" not in piped.stderr


def test_stats_with_invalid_unicode_text_exits_2(tiny_models):
    result = invoke("stats", "bad \udcff byte", "-m", tiny_models["bert"])
    assert result.exit_code == 2, result.output
    assert "not valid Unicode" in result.stderr


def test_a_nul_byte_near_the_top_fails_only_its_line(tiny_models, tmp_path):
    source = tmp_path / "in.txt"
    source.write_bytes(b"the cat sat\nbad \x00 line\nthe dog ran\n")
    out = tmp_path / "out"
    result = invoke("export", source, "-o", out, "-m", tiny_models["bert"], "--format", "npz", "--workers", "0")
    assert result.exit_code == 1, result.output
    status = {r["line"]: r["status"] for r in manifest(out)}
    assert status == {1: "ok", 2: "failed", 3: "ok"}


def test_a_second_export_into_a_held_directory_is_refused(tiny_models, tmp_path):
    from attnviz.io import DirectoryLock

    source = tmp_path / "in.txt"
    source.write_text("the cat sat\n")
    out = tmp_path / "out"
    out.mkdir()
    args = ["export", source, "-o", out, "-m", tiny_models["bert"], "--format", "npz", "--workers", "0"]
    with DirectoryLock(out):  # a live run holds it
        refused = invoke(*args)
        assert refused.exit_code == 1
        assert refused.stderr.startswith("error: another attnviz export is writing to")
        assert not (out / "manifest.jsonl").exists()
    assert invoke(*args).exit_code == 0  # released: the next run goes ahead


@pytest.mark.slow
def test_a_killed_export_leaves_no_stuck_lock(tiny_models, tmp_path):
    """The OS drops the lock when the holder dies: a SIGKILLed holder blocks nothing."""
    out = tmp_path / "out"
    out.mkdir()
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time; from attnviz.io import DirectoryLock; "
            f"lock = DirectoryLock({str(out)!r}).acquire(); print('held', flush=True); time.sleep(60)",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout.readline().strip() == "held"
    from attnviz.errors import OutputWriteError
    from attnviz.io import DirectoryLock

    with pytest.raises(OutputWriteError):
        DirectoryLock(out).acquire()
    holder.kill()
    holder.wait()
    DirectoryLock(out).acquire().release()


def _dense_merge(array, groups_q, groups_k):
    """Clark et al. with explicit 0/1 matrices, the straightforward way."""
    n_q, n_k = array.shape[-2], array.shape[-1]
    mean_q = np.zeros((len(groups_q), n_q))
    for row, group in enumerate(groups_q):
        mean_q[row, group] = 1.0 / len(group)
    sum_k = np.zeros((len(groups_k), n_k))
    for row, group in enumerate(groups_k):
        sum_k[row, group] = 1.0
    return mean_q @ array.astype(np.float64) @ sum_k.T


def test_word_merging_of_500_tokens_is_fast_and_exact():
    from attnviz.result import AttentionResult, TokenSequence
    from attnviz.transforms import merge_words

    rng = np.random.default_rng(0)
    n = 500
    word_ids = np.repeat(np.arange(n // 2), 2)[:n].astype(np.int32)  # two pieces per word
    word_ids[0] = word_ids[-1] = -1
    special = word_ids < 0
    tokens = TokenSequence.from_tokens([f"t{i}" for i in range(n)], word_ids, special)
    raw = rng.random((6, 12, n, n)).astype(np.float32)
    raw /= raw.sum(-1, keepdims=True)
    result = AttentionResult(
        model="m",
        family="encoder",
        text="t",
        tokens=tokens,
        attentions={"encoder": raw},
        layer_ids={"encoder": tuple(range(6))},
        head_ids={"encoder": tuple(range(12))},
    )
    merged = merge_words(result)  # its speed: benchmarks/bench_words.py
    groups: list[list[int]] = []
    for position, word in enumerate(word_ids.tolist()):
        if word < 0 or not groups or word_ids[groups[-1][0]] != word:
            groups.append([position])
        else:
            groups[-1].append(position)
    expected = _dense_merge(raw[:1, :2], groups, groups)
    np.testing.assert_allclose(merged.attentions["encoder"][:1, :2], expected, atol=1e-5)
    np.testing.assert_allclose(merged.attentions["encoder"].sum(-1), 1.0, atol=1e-4)


HOSTILE = "evil \x1b]0;pwned\x07 \x1b[2J [red]markup[/red] \u202egnp.exe"


def _assert_harmless(output: str) -> None:
    assert "\x1b]0;" not in output and "\x1b[2J" not in output and "\x07" not in output
    assert "\u202e" not in output


def test_printable_escapes_controls_bidi_and_surrogates():
    from attnviz.safety import printable

    assert printable("a\x1b[2Jb\x07") == "a\\x1b[2Jb\\x07"
    assert printable("abc\u202edef") == "abc\\u202edef"
    assert printable("lone \udc80") == "lone \\udc80"
    assert printable("café ünïcode 日本") == "café ünïcode 日本"


def test_show_prints_hostile_text_and_tokens_escaped(tiny_models):
    result = invoke("show", HOSTILE, "-m", tiny_models["gpt2"])
    assert result.exit_code == 0, result.output
    _assert_harmless(result.stdout)
    assert "\\x1b]0;pwned\\x07" in result.stdout
    assert "[red]markup[/red]" in result.stdout  # shown literally, not read as rich markup


def test_errors_repeating_hostile_options_are_escaped(tiny_models, tmp_path):
    for args in (
        ["show", "x", "--layer", HOSTILE],
        ["show", "x", "--view", HOSTILE],
        ["show", "x", "-m", HOSTILE],
        ["show", "x", "-o", str(tmp_path / "a\x1b[2J.xyz")],
        ["render", str(tmp_path / "n\x07pe.npz")],
    ):
        result = invoke(*args)
        assert result.exit_code != 0
        assert result.stderr.startswith("error: "), result.stderr
        _assert_harmless(result.stderr)


# -- bounded batches and out-of-memory retries ----------------------------------------------
def test_batches_are_bounded_by_tokens_whatever_the_batch_size(loaded_models, monkeypatch):
    from attnviz.extraction import Extractor

    texts = [" ".join(["cat"] * n) for n in (2, 3, 5, 8, 9, 12, 20, 3, 4)]
    reference = list(Extractor(loaded_models["bert"]).outcomes(texts, batch_size=1))
    extractor = Extractor(loaded_models["bert"], max_batch_tokens=40)
    seen = []
    original = Extractor.run_batch

    def spy(self, encoded):
        seen.append((len(encoded), max(len(e.ids) for e in encoded)))
        return original(self, encoded)

    monkeypatch.setattr(Extractor, "run_batch", spy)
    results = list(extractor.outcomes(texts, batch_size=1000))
    assert all(count == 1 or count * width <= 40 for count, width in seen), seen
    assert sum(count for count, _ in seen) == len(texts) and len(seen) > 1
    for got, want in zip(results, reference):
        np.testing.assert_allclose(got.attentions["encoder"], want.attentions["encoder"], atol=1e-6)


def test_out_of_memory_retries_smaller_batches_then_fails_that_text_alone(loaded_models, monkeypatch):
    from attnviz.errors import InputError
    from attnviz.extraction import Extractor

    texts = ["the cat sat", "a dog ran", "poison pill text", "birds sing", "the end"]
    original = Extractor.run_batch
    calls = []

    def flaky(self, encoded):
        calls.append(len(encoded))
        if len(encoded) > 2 or any("poison" in e.item.text for e in encoded):
            raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return original(self, encoded)

    monkeypatch.setattr(Extractor, "run_batch", flaky)
    results = list(Extractor(loaded_models["bert"]).outcomes(texts, batch_size=16))
    assert [r.text if not isinstance(r, InputError) else None for r in results] == [
        "the cat sat", "a dog ran", None, "birds sing", "the end",
    ]  # fmt: skip
    assert "ran out of memory on this text" in results[2].message
    assert calls[0] == 5 and 1 in calls  # halved down to single texts


def test_streamed_statistics_restore_their_sums_when_a_batch_is_retried(loaded_models, monkeypatch):
    from attnviz.analysis.stats import stream_statistics
    from attnviz.extraction import Extractor

    texts = ["the cat sat on the mat", "a dog ran", "birds sing loudly", "the end"]
    expected = stream_statistics(Extractor(loaded_models["bert"]), texts)
    original = Extractor.reduce_batch

    def flaky(self, encoded, sink):
        original(self, encoded, sink)  # the sums of this pass are added, then it "fails"
        if len(encoded) > 1:
            raise MemoryError

    monkeypatch.setattr(Extractor, "reduce_batch", flaky)
    got = stream_statistics(Extractor(loaded_models["bert"]), texts)
    assert got.texts == expected.texts == 4
    for name in expected.sums:
        np.testing.assert_allclose(got.sums[name], expected.sums[name], atol=1e-9)
        np.testing.assert_array_equal(got.counts[name], expected.counts[name])


def test_other_errors_are_not_mistaken_for_out_of_memory(loaded_models, monkeypatch):
    from attnviz.extraction import Extractor

    def broken(self, encoded):
        raise RuntimeError("shape mismatch")

    monkeypatch.setattr(Extractor, "run_batch", broken)
    with pytest.raises(RuntimeError, match="shape mismatch"):
        list(Extractor(loaded_models["bert"]).outcomes(["a b", "c d"]))


def test_stats_compare_export_and_info_escape_a_hostile_model_path(tiny_models, tmp_path):
    """Every command's own output (tables, titles, summaries), not just errors."""
    import shutil

    hostile = tmp_path / "m\x1b]0;pwned\x07[red]x[/red]\u202e"
    shutil.copytree(tiny_models["bert"], hostile)
    texts = tmp_path / "t.txt"
    texts.write_text("the cat sat\n")
    outputs = [
        invoke("stats", "the cat sat", "-m", hostile),
        invoke("compare", "the cat sat", "-m", hostile, "-m", hostile),
        invoke("info", hostile),
        invoke("export", texts, "-o", tmp_path / "o\x1b[2J", "-m", hostile, "--format", "npz"),
    ]
    for result in outputs:
        assert result.exit_code == 0, result.output
        _assert_harmless(result.stdout + result.stderr)
    assert "[red]x[/red]" in outputs[0].stdout.replace("\n", "")  # shown literally, not read as markup


@pytest.mark.parametrize("command", ["show", "export", "render"])
def test_an_unknown_colour_map_is_one_line_exit_2_before_any_work(command, tiny_models, tmp_path):
    source = tmp_path / "t.txt"
    source.write_text("the cat\n")
    saved = tmp_path / "s.npz"
    args = {
        "show": ["show", "the cat", "-m", tiny_models["bert"], "-o", tmp_path / "x.png"],
        "export": ["export", source, "-o", tmp_path / "out", "-m", tiny_models["bert"]],
        "render": ["render", saved, "-o", tmp_path / "x.png"],
    }[command]
    if command == "render":
        assert invoke("show", "the cat", "-m", tiny_models["bert"], "-o", saved).exit_code == 0
    result = invoke(*args, "--cmap", "notacmap")
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: unknown colour map 'notacmap'") and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "x.png").exists()


def test_render_of_a_saved_hostile_text_is_escaped(tiny_models, tmp_path):
    """The text and tokens inside a saved file are untrusted too: render draws them escaped,
    in the terminal, the neuron view and --json."""
    saved = tmp_path / "h.npz"
    assert invoke("show", HOSTILE, "-m", tiny_models["gpt2"], "-o", saved).exit_code == 0
    terminal = invoke("render", saved)
    assert terminal.exit_code == 0, terminal.output
    _assert_harmless(terminal.stdout)
    assert "\\x1b]0;pwned\\x07" in terminal.stdout
    vectors = tmp_path / "v.npz"
    assert (
        invoke(
            "show", HOSTILE, "-m", tiny_models["gpt2"], "--view", "neuron", "-l", "0", "-H", "0", "-o", vectors
        ).exit_code
        == 0
    )
    neuron = invoke("render", vectors, "--view", "neuron")
    assert neuron.exit_code == 0, neuron.output
    _assert_harmless(neuron.stdout)
