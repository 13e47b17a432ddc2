"""stats, compare and export with ``--ray local``: the same numbers, labels and files as a
single-process run, a worker killed mid-run, a worker's error as one line. One local Ray
instance (2 CPUs) for the module; marked ``ray``."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers import invoke, manifest

pytest.importorskip("ray")

pytestmark = pytest.mark.ray

WORDS = "the cat sat on mat a dog ran in park and watched hello world model token word".split()


def sentences(count: int) -> list[str]:
    rng = np.random.default_rng(0)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(2, 12)))) + "." for _ in range(count)]


@pytest.fixture(scope="module")
def ray_instance() -> Any:
    import ray
    import ray.cloudpickle

    # the test's job classes travel by value: the workers cannot import tests/
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        object_store_memory=80 * 2**20,
        logging_level="ERROR",
    )
    yield ray
    ray.shutdown()


#: Words the tiny BERT's vocabulary lacks: every token [UNK].
UNKNOWN = "xyzzy plugh"


def unknown_warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "outside the model's vocabulary" in line]


def document(stdout: str) -> Any:
    """The command's JSON line. The module's Ray instance lives across tests, and its driver
    threads may print a line of their own (a finished job's actors reported as died) into
    whatever ``sys.stdout`` is at that moment: here a one-process run's captured output."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1, stdout
    return json.loads(lines[0])


def run(*args: Any) -> Any:
    result = invoke(*args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def test_stats_on_ray_equal_one_process(ray_instance: Any, tiny_models: dict[str, Path], tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.txt"
    lines = sentences(300)  # two windows of 256 and 44 texts: both workers busy
    lines[7] = " ".join(["cat"] * 600)  # longer than the model takes: fails alone
    lines[270] = UNKNOWN  # counted, with the unknown-token warning (from the second window)
    corpus.write_text("\n".join(lines) + "\n")
    common = ("stats", "-f", corpus, "-m", tiny_models["bert"], "--json", "--batch-size", 4, "--no-truncate")
    one, spread = run(*common), run(*common, "--ray")  # bare: a local instance
    assert one.exit_code == spread.exit_code == 1
    assert one.stderr.count("skipped") == spread.stderr.count("skipped") == 1
    assert (
        unknown_warnings(one.stderr)
        == unknown_warnings(spread.stderr)
        == [f"warning: all 2 tokens of '{UNKNOWN}' are [UNK] (outside the model's vocabulary)"]
    )
    a, b = document(one.stdout), document(spread.stdout)
    assert b["texts"] == a["texts"] and (a["model"], a["kind"], a["layers"]) == (b["model"], b["kind"], b["layers"])
    for name, values in a["sums"].items():
        np.testing.assert_allclose(b["sums"][name], values, rtol=0, atol=1e-9, err_msg=name)
        assert b["counts"][name] == a["counts"][name]
    assert [row["label"] for row in b["heads"]] == [row["label"] for row in a["heads"]]


@pytest.fixture(scope="module")
def changed_bert(tiny_models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny BERT with its queries nudged: the same tokenizer, different attention."""
    import torch
    import transformers as tf

    model = tf.AutoModel.from_pretrained(tiny_models["bert"])
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "query.weight" in name:
                parameter.add_(0.5 * torch.randn(parameter.shape, generator=torch.Generator().manual_seed(1)))
    path = tmp_path_factory.mktemp("changed")
    model.save_pretrained(path)
    tf.AutoTokenizer.from_pretrained(tiny_models["bert"]).save_pretrained(path)
    return path


def test_compare_on_ray_equals_one_process(
    ray_instance: Any, tiny_models: dict[str, Path], changed_bert: Path, tmp_path: Path
) -> None:
    corpus = tmp_path / "texts.txt"
    corpus.write_text("\n".join([*sentences(11), UNKNOWN]) + "\n")
    common = ("compare", "-f", corpus, "-m", tiny_models["bert"], "-m", changed_bert, "--json", "--batch-size", 3)
    one, spread = run(*common), run(*common, "--ray", "local")
    assert unknown_warnings(one.stderr) == unknown_warnings(spread.stderr) and len(unknown_warnings(one.stderr)) == 1
    a, b = document(one.stdout), document(spread.stdout)
    assert a["texts"] == b["texts"] == 12 and not a["identical"]
    assert [(h["layer"], h["head"]) for h in a["heads"]] == [(h["layer"], h["head"]) for h in b["heads"]]
    np.testing.assert_allclose([h["js"] for h in b["heads"]], [h["js"] for h in a["heads"]], rtol=0, atol=1e-8)
    np.testing.assert_allclose([h["l1"] for h in b["heads"]], [h["l1"] for h in a["heads"]], rtol=0, atol=1e-8)


class KilledOnce:
    """Mixed into a job: the first window that finds ``flag`` deletes it and SIGKILLs its
    own actor process, after writing some of its files (a worker lost mid-run)."""

    flag = ""

    def run(self, window: list[Any]) -> dict[str, Any]:
        result = super().run(window)  # type: ignore[misc]
        try:
            os.remove(self.flag)
        except FileNotFoundError:
            return result  # type: ignore[no-any-return]
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


def test_export_on_ray_writes_the_same_files_and_survives_a_killed_worker(
    ray_instance: Any, tiny_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from attnviz.distributed import export as distributed

    texts = tmp_path / "texts.txt"
    lines = sentences(13)
    lines[4] = " ".join(["cat"] * 600)  # longer than the model takes: fails alone
    lines[6] = UNKNOWN  # exported, with the unknown-token warning naming line 7
    texts.write_text("\n".join(lines) + "\n")
    common = ("export", texts, "-m", tiny_models["bert"], "--view", "grid", "--format", "png,npz", "--batch-size", 2)
    common = (*common, "--no-truncate")
    one = run(*common, "-o", tmp_path / "one", "--workers", 0)

    flag = tmp_path / "kill-once"
    flag.write_text("")

    class Job(KilledOnce, distributed.ExportJob):
        pass

    Job.flag = str(flag)
    monkeypatch.setattr(distributed, "ExportJob", Job)
    spread = run(*common, "-o", tmp_path / "ray", "--ray", "local")
    assert not flag.exists()  # a worker did die, after writing files
    assert one.exit_code == spread.exit_code == 1  # the bad line fails, in both
    assert (
        unknown_warnings(one.stderr)
        == unknown_warnings(spread.stderr)
        == ["warning: line 7: all 2 tokens of the text are [UNK] (outside the model's vocabulary)"]
    )

    def records(directory: Path) -> list[tuple[Any, ...]]:
        return sorted((r["line"], r["status"], tuple(r["files"]), r["error"]) for r in manifest(directory))

    assert records(tmp_path / "ray") == records(tmp_path / "one")
    lines_recorded = [r["line"] for r in manifest(tmp_path / "ray")]
    assert len(lines_recorded) == len(set(lines_recorded)) == 13  # nothing lost, nothing twice
    names = sorted(p.name for p in (tmp_path / "one").iterdir() if p.suffix in (".png", ".npz"))
    assert names and names == sorted(p.name for p in (tmp_path / "ray").iterdir() if p.suffix in (".png", ".npz"))
    for name in names:
        if name.endswith(".png"):
            assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "one" / name).read_bytes(), name
        else:
            with np.load(tmp_path / "one" / name) as a, np.load(tmp_path / "ray" / name) as b:
                np.testing.assert_array_equal(a["encoder"], b["encoder"])

    again = run(*common, "-o", tmp_path / "ray", "--ray", "local", "--resume", "--json")
    summary = document(again.stdout)
    assert summary["resumed"] == 12 and summary["exported"] == 0


def test_a_worker_error_is_one_line(ray_instance: Any, tmp_path: Path) -> None:
    result = invoke("stats", "one short text", "-m", tmp_path / "no-model-here", "--ray", "local")
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines[0].startswith("error: ") and "Traceback" not in result.stderr
