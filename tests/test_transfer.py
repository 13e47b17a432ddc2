"""The pinned-buffer chunk copier's logic, on CPU, with the copy backend injected."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from attnviz.transfer import (
    DEFAULT_CHUNK_BYTES,
    MAX_CHUNK_BYTES,
    MIN_CHUNK_BYTES,
    ChunkCopier,
    SyncBackend,
    chunk_bytes_for,
    result_array,
)


class DeferredBackend:
    """Copies happen only when someone waits for a marker recorded after them, as on a
    side stream: reading a buffer before waiting sees stale contents."""

    def __init__(self) -> None:
        self.queue: list[tuple[int, torch.Tensor, torch.Tensor]] = []
        self.done = 0
        self.enqueued = 0
        self.log: list[str] = []

    def empty_host(self, numel: int) -> torch.Tensor:
        self.log.append(f"alloc {numel}")
        return torch.full((numel,), -1.0)

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        self.enqueued += 1
        self.queue.append((self.enqueued, dst, src.clone()))
        self.log.append(f"copy {self.enqueued}")

    def record(self) -> int:
        return self.enqueued

    def wait(self, marker: int) -> None:
        self.log.append(f"wait {marker}")
        while self.queue and self.queue[0][0] <= marker:
            _, dst, src = self.queue.pop(0)
            dst.copy_(src)


def chunks(count: int, shape: tuple[int, ...] = (2, 3, 4)) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return [torch.rand(shape, generator=generator, dtype=torch.float64) for _ in range(count)]


def test_every_consumer_sees_its_own_chunk_in_order_after_its_copy() -> None:
    backend = DeferredBackend()
    copier = ChunkCopier(backend, buffers=2)
    seen: list[tuple[int, np.ndarray]] = []
    data = chunks(7)
    for number, chunk in enumerate(data):
        copier.stage(chunk, lambda array, number=number: seen.append((number, array.copy())))
    copier.flush()
    assert [number for number, _ in seen] == list(range(7))
    for (_, array), chunk in zip(seen, data):
        assert array.dtype == np.float32
        np.testing.assert_array_equal(array, chunk.numpy().astype(np.float32))


def test_the_next_chunk_is_enqueued_before_the_last_one_is_waited_for() -> None:
    backend = DeferredBackend()
    copier = ChunkCopier(backend, buffers=2)
    for chunk in chunks(3):
        copier.stage(chunk, lambda array: None)
    # with two buffers, chunk 1's copy is enqueued while chunk 0's is still in flight,
    # and chunk 0 is waited for only when its buffer is needed for chunk 2
    assert backend.log.index("copy 2") < backend.log.index("wait 1") < backend.log.index("copy 3")


def test_buffers_are_reused_and_grown_only_for_a_larger_chunk() -> None:
    backend = DeferredBackend()
    copier = ChunkCopier(backend, buffers=2)
    for chunk in chunks(10, (4, 8)):
        copier.stage(chunk, lambda array: None)
    assert copier.allocations == 2
    for chunk in chunks(3, (2, 8)):  # smaller: the same buffers
        copier.stage(chunk, lambda array: None)
    assert copier.allocations == 2
    copier.stage(torch.ones(5, 8), lambda array: None)  # larger: that slot grows
    copier.flush()
    assert copier.allocations == 3


def test_a_consumer_never_reads_a_buffer_before_its_copy_completed() -> None:
    backend = DeferredBackend()
    copier = ChunkCopier(backend, buffers=1)
    sums: list[float] = []
    data = chunks(4)
    for chunk in data:
        copier.stage(chunk, lambda array: sums.append(float(array.sum())))
    copier.flush()
    assert -1.0 not in sums
    np.testing.assert_allclose(sums, [float(c.float().sum()) for c in data], rtol=1e-6)


def test_direct_copies_land_in_the_final_array_after_flush() -> None:
    backend = DeferredBackend()
    copier = ChunkCopier(backend)
    final = np.zeros((3, 5, 6), dtype=np.float32)
    source = torch.rand(3, 5, 6, dtype=torch.bfloat16)
    view = torch.from_numpy(final)
    copier.copy_into(view[:, 1:4], source[:, :3])
    assert not final.any()  # still in flight
    copier.flush()
    np.testing.assert_array_equal(final[:, 1:4], source[:, :3].float().numpy())
    assert not final[:, 0].any() and not final[:, 4].any()


def test_discard_waits_for_copies_but_consumes_nothing() -> None:
    backend = DeferredBackend()
    copier = ChunkCopier(backend)
    called: list[int] = []
    for chunk in chunks(2):
        copier.stage(chunk, lambda array: called.append(1))
    copier.discard()
    assert called == [] and not backend.queue and not copier.pending


def test_the_cpu_backend_is_plain_cpu_numpy() -> None:
    copier = ChunkCopier(SyncBackend())
    chunk = torch.rand(2, 3, 5)
    seen: list[np.ndarray] = []
    copier.stage(chunk, lambda array: seen.append(array.copy()))
    copier.flush()
    np.testing.assert_array_equal(seen[0], chunk.cpu().numpy())
    assert isinstance(result_array((2, 2), "cpu"), np.ndarray)


@pytest.mark.parametrize(
    ("free", "expected"),
    [
        (80 * 2**30, MAX_CHUNK_BYTES),  # a big, empty GPU: capped
        (8 * 2**30, 2**30),  # an eighth of what is free
        (100 * 2**20, MIN_CHUNK_BYTES),  # nearly full: never below the floor
    ],
)
def test_chunk_size_follows_free_memory_on_cuda(free: int, expected: int) -> None:
    asked: list[torch.device] = []

    def info(device: torch.device) -> tuple[int, int]:
        asked.append(device)
        return free, 141 * 2**30

    assert chunk_bytes_for("cuda:1", mem_get_info=info) == expected
    assert asked == [torch.device("cuda:1")]


def test_chunk_size_off_cuda_is_fixed() -> None:
    def info(device: torch.device) -> tuple[int, int]:
        raise AssertionError("not asked off CUDA")

    assert chunk_bytes_for("cpu", mem_get_info=info) == DEFAULT_CHUNK_BYTES
