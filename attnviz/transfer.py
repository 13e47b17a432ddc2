"""Device-to-host copies of attention chunks at the bus's speed (runs torch).

Measured on an H200: one layer's maps at 8,192 tokens (8 GiB float32) take 6.2 s to copy
into pageable host memory (what ``tensor.cpu()`` does) and 0.16 s into pinned memory. So a
capture on a GPU copies each chunk of probabilities

* into **reused pinned host buffers** (a ring of ``buffers``; pinning is slow, so buffers
  are allocated once and grown, never freed per chunk),
* with **non-blocking copies on a side stream**: the side stream waits for the chunk to be
  computed, and the next chunk is computed while the last one crosses the bus;
* or, for arrays the caller already holds pinned (the final result arrays), **straight into
  them** (:meth:`ChunkCopier.copy_into`), with no second host copy.

A consumer of a staged chunk runs only once its copy has completed: :meth:`ChunkCopier.stage`
defers it until its buffer is needed again or :meth:`ChunkCopier.flush`. The consumer gets
a NumPy view of the pinned buffer, valid only during the call.

Everything that touches CUDA goes through a :class:`CopyBackend`: :class:`CudaBackend` on a
GPU, :class:`SyncBackend` elsewhere (plain synchronous copies, the numbers and behaviour of
``.cpu().numpy()``). Tests inject their own backend to check the ordering logic on CPU.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

#: The chunk size on devices whose free memory is not known (CPU, MPS): 64 MiB of float32.
DEFAULT_CHUNK_BYTES = 64 * 2**20
#: On a GPU: this fraction of the free device memory per chunk (the eager function holds
#: a few temporaries of the chunk's size: logits, float32 softmax, the float32 copy) ...
FREE_MEMORY_FRACTION = 1 / 8
#: ... within these bounds (the upper one also bounds each pinned host buffer).
MIN_CHUNK_BYTES = 64 * 2**20
MAX_CHUNK_BYTES = 2 * 2**30


def chunk_bytes_for(
    device: torch.device | str, *, mem_get_info: Callable[[torch.device], tuple[int, int]] | None = None
) -> int:
    """Bytes of float32 probabilities to compute at once on ``device``: a fixed 64 MiB off
    CUDA; on CUDA :data:`FREE_MEMORY_FRACTION` of the free memory, clamped to
    [:data:`MIN_CHUNK_BYTES`, :data:`MAX_CHUNK_BYTES`]. ``mem_get_info(device)`` returns
    ``(free, total)`` bytes (``torch.cuda.mem_get_info`` unless injected)."""
    device = torch.device(device)
    if device.type != "cuda":
        return DEFAULT_CHUNK_BYTES
    query = mem_get_info if mem_get_info is not None else torch.cuda.mem_get_info
    free, _ = query(device)
    return int(min(MAX_CHUNK_BYTES, max(MIN_CHUNK_BYTES, free * FREE_MEMORY_FRACTION)))


class CopyBackend(Protocol):
    """What :class:`ChunkCopier` needs from a device."""

    def empty_host(self, numel: int) -> torch.Tensor:
        """A flat float32 host tensor of ``numel`` elements (pinned where that helps)."""
        ...

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        """Enqueue ``dst.copy_(src)`` (may return before the copy is done)."""
        ...

    def record(self) -> Any:
        """A marker of every copy enqueued so far."""
        ...

    def wait(self, marker: Any) -> None:
        """Block until the copies before ``marker`` are done."""
        ...


class SyncBackend:
    """Synchronous copies into ordinary memory: the CPU path, exactly ``.cpu()``."""

    def empty_host(self, numel: int) -> torch.Tensor:
        return torch.empty(numel, dtype=torch.float32)

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        dst.copy_(src)

    def record(self) -> Any:
        return None

    def wait(self, marker: Any) -> None:
        return None


class CudaBackend:
    """Pinned host buffers and non-blocking copies on a side stream of ``device``.

    Before each copy the side stream waits for the compute stream (the chunk must be
    finished), and the source is recorded on the side stream so the caching allocator
    does not hand its memory to the next chunk while the copy still reads it."""

    def __init__(self, device: torch.device | str) -> None:
        self.device = torch.device(device)
        self.stream = torch.cuda.Stream(device=self.device)

    def empty_host(self, numel: int) -> torch.Tensor:
        return torch.empty(numel, dtype=torch.float32, pin_memory=True)

    def copy(self, dst: torch.Tensor, src: torch.Tensor) -> None:
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        src.record_stream(self.stream)
        with torch.cuda.stream(self.stream):
            dst.copy_(src, non_blocking=True)

    def record(self) -> Any:
        event = torch.cuda.Event()
        event.record(self.stream)
        return event

    def wait(self, marker: Any) -> None:
        marker.synchronize()


def backend_for(device: torch.device | str) -> CopyBackend:
    """:class:`CudaBackend` for a CUDA device, :class:`SyncBackend` otherwise."""
    device = torch.device(device)
    return CudaBackend(device) if device.type == "cuda" else SyncBackend()


class ChunkCopier:
    """Copies chunks of probabilities from the device to the host (see the module docstring).

    ``backend``: how to allocate and copy (:func:`backend_for` the device unless given);
    ``buffers``: pinned buffers in the ring (2: one being filled while the other is read).
    ``allocations`` counts host buffer allocations (the tests check the reuse)."""

    def __init__(self, backend: CopyBackend | None = None, *, device: torch.device | str = "cpu", buffers: int = 2):
        self.backend = backend if backend is not None else backend_for(device)
        self.slots: list[torch.Tensor | None] = [None] * max(1, int(buffers))
        self.next_slot = 0
        self.pending: deque[tuple[int, Any, Callable[[np.ndarray], None], tuple[int, ...]]] = deque()
        self.direct: list[Any] = []
        self.allocations = 0

    # -- staged: through the ring of pinned buffers --------------------------------------
    def stage(self, chunk: torch.Tensor, consumer: Callable[[np.ndarray], None]) -> None:
        """Copy ``chunk`` (any float dtype, any shape) as float32 into the next buffer of
        the ring; ``consumer(array)`` is called with the host copy, of ``chunk``'s shape,
        once the copy is complete: at the latest by :meth:`flush`, in staging order."""
        slot = self.next_slot
        self.next_slot = (slot + 1) % len(self.slots)
        self._release(slot)
        source = chunk.detach().to(torch.float32).contiguous()
        numel = source.numel()
        buffer = self.slots[slot]
        if buffer is None or buffer.numel() < numel:
            buffer = self.slots[slot] = self.backend.empty_host(numel)
            self.allocations += 1
        target = buffer[:numel].view(source.shape)
        self.backend.copy(target, source)
        self.pending.append((slot, self.backend.record(), consumer, tuple(source.shape)))

    def _release(self, slot: int) -> None:
        """Complete and consume every pending chunk up to the one in ``slot``."""
        while any(pending[0] == slot for pending in self.pending):
            self._consume_oldest()

    def _consume_oldest(self) -> None:
        slot, marker, consumer, shape = self.pending.popleft()
        self.backend.wait(marker)
        buffer = self.slots[slot]
        assert buffer is not None
        size = int(np.prod(shape)) if shape else 1
        consumer(buffer[:size].view(shape).numpy())

    # -- direct: into arrays the caller holds ----------------------------------------------
    def copy_into(self, target: torch.Tensor, source: torch.Tensor) -> None:
        """Copy ``source`` into ``target`` (a host tensor of the same shape, pinned for a
        non-blocking copy, typically a view of the final result array). ``target`` may be
        read only after :meth:`flush`."""
        # made contiguous on the compute stream, so the side stream copies one dense block
        self.backend.copy(target, source.detach().to(target.dtype).contiguous())
        self.direct.append(self.backend.record())

    def flush(self) -> None:
        """Wait for every copy and run every pending consumer, in order."""
        while self.pending:
            self._consume_oldest()
        for marker in self.direct:
            self.backend.wait(marker)
        self.direct.clear()

    def discard(self) -> None:
        """Forget pending chunks without consuming them (a pass abandoned after an error);
        their copies are still waited for, so the buffers can be reused."""
        while self.pending:
            _, marker, _, _ = self.pending.popleft()
            self.backend.wait(marker)
        for marker in self.direct:
            self.backend.wait(marker)
        self.direct.clear()


def result_array(shape: tuple[int, ...], device: torch.device | str) -> np.ndarray:
    """A float32 array for results copied from ``device``: on CUDA backed by pinned host
    memory, so :meth:`ChunkCopier.copy_into` is a direct, non-blocking copy, and left
    uninitialised (zeroing 8 GiB costs more than the copy; a capture pass overwrites every
    element); elsewhere ordinary NumPy zeros."""
    if torch.device(device).type == "cuda":
        return torch.empty(shape, dtype=torch.float32, pin_memory=True).numpy()
    return np.zeros(shape, dtype=np.float32)
