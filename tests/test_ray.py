"""Distributed runs on a local Ray instance with 2 workers (marked ``ray``; one instance
for the module)."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("ray")

pytestmark = pytest.mark.ray

TEXTS = [
    "the cat sat on the mat.",
    "a dog ran in the park, and the cat watched.",
    "   ",  # fails alone: an empty text
    "hello world",
    "the quick brown fox jumps over the lazy dog.",
    "one two three",
    "attention is all you need, they said.",
    "short",
    "the mat was on the cat, which was odd.",
    "is this the real life? is this just fantasy?",
]


@pytest.fixture(scope="module")
def ray_instance() -> Any:
    import ray
    import ray.cloudpickle

    # the test's own job classes travel by value: the workers cannot import tests/
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


def single_process_statistics(model: Path, items: list[Any], window: int, batch_size: int) -> Any:
    """Today's pipeline in this process: one sink over every window."""
    from attnviz.analysis.stats import HeadStatistics, StatisticsSink
    from attnviz.extraction import Extractor
    from attnviz.models import load_model

    extractor = Extractor(load_model(str(model), device="cpu"))
    kind = next(iter(extractor.selection.layers))
    stats = HeadStatistics(
        extractor.loaded.name, kind, list(extractor.selection.layers[kind]), list(extractor.selection.heads[kind])
    )
    sink = StatisticsSink(stats)
    list(extractor.reduce(items, sink, batch_size=batch_size, window=window))
    return stats


def options() -> Any:
    from attnviz.distributed.engine import RayOptions

    return RayOptions(workers=2)


def test_statistics_on_two_workers_equal_the_single_process_run(
    ray_instance: Any, tiny_models: dict[str, Path]
) -> None:
    from attnviz.distributed.engine import ModelSpec
    from attnviz.distributed.stats import distributed_statistics

    seen: dict[int, Any] = {}
    stats = distributed_statistics(
        TEXTS,
        ModelSpec(str(tiny_models["bert"]), device="cpu"),
        options(),
        batch_size=2,
        window=3,
        on_input=lambda index, error, cut: seen.setdefault(index, error),
    )
    expected = single_process_statistics(tiny_models["bert"], TEXTS, window=3, batch_size=2)
    assert stats.texts == expected.texts == len(TEXTS) - 1
    assert sorted(seen) == list(range(len(TEXTS)))  # every input reported once
    assert [i for i, error in seen.items() if error] == [2] and "empty" in seen[2]
    assert set(stats.sums) == set(expected.sums)
    for name in expected.sums:
        np.testing.assert_allclose(stats.sums[name], expected.sums[name], rtol=0, atol=1e-9, err_msg=name)
        np.testing.assert_array_equal(stats.counts[name], expected.counts[name])
    assert (stats.labels() == expected.labels()).all()
    assert (stats.model, stats.kind, stats.layer_ids, stats.head_ids) == (
        expected.model,
        expected.kind,
        expected.layer_ids,
        expected.head_ids,
    )


def test_a_worker_error_is_one_typed_error_on_the_driver(ray_instance: Any, tiny_models: dict[str, Path]) -> None:
    from attnviz.distributed.engine import ModelSpec
    from attnviz.distributed.stats import distributed_statistics
    from attnviz.errors import AttnvizError, SelectionError

    with pytest.raises(SelectionError) as caught:
        distributed_statistics(TEXTS[:2], ModelSpec(str(tiny_models["bert"]), device="cpu"), options(), kind="cross")
    assert "cross" in caught.value.message
    with pytest.raises(AttnvizError):
        distributed_statistics(TEXTS[:2], ModelSpec(str(tiny_models["bert"] / "nowhere"), device="cpu"), options())


class KilledOnce:
    """Mixed into a job: the first window that finds ``flag`` deletes it and SIGKILLs its
    own actor process (a worker lost mid-run)."""

    flag: str

    def run(self, window: list[Any]) -> dict[str, Any]:
        try:
            os.remove(self.flag)
        except FileNotFoundError:
            return super().run(window)  # type: ignore[misc, no-any-return]
        os.kill(os.getpid(), signal.SIGKILL)
        raise AssertionError("unreachable")


def test_a_killed_worker_loses_and_duplicates_nothing(
    ray_instance: Any, tiny_models: dict[str, Path], tmp_path: Path
) -> None:
    from attnviz.distributed import stats as module
    from attnviz.distributed.engine import ModelSpec

    flag = tmp_path / "kill-once"
    flag.write_text("")

    class Job(KilledOnce, module.StatisticsJob):
        pass

    Job.flag = str(flag)
    original = module.StatisticsJob
    module.StatisticsJob = Job  # type: ignore[misc]
    try:
        stats = module.distributed_statistics(
            TEXTS, ModelSpec(str(tiny_models["bert"]), device="cpu"), options(), batch_size=2, window=3
        )
    finally:
        module.StatisticsJob = original  # type: ignore[misc]
    assert not flag.exists()  # a worker did die
    expected = single_process_statistics(tiny_models["bert"], TEXTS, window=3, batch_size=2)
    assert stats.texts == expected.texts
    for name in expected.sums:
        np.testing.assert_allclose(stats.sums[name], expected.sums[name], rtol=0, atol=1e-9, err_msg=name)
