"""Corpus scale: one process against Ray workers (CPU), and capture/stats against the
forward pass alone (GPU).

    python benchmarks/bench_scale.py                 # CPU: stats of 2,000 texts, 1 process vs --ray, 2 workers
    python benchmarks/bench_scale.py --texts 500     # fewer texts
    python benchmarks/bench_scale.py --gpu           # GPU: Llama-3-8B config, bf16 (no Ray needed)
    python benchmarks/bench_scale.py --gpu --dry-run # the same steps at tiny sizes on CPU (seconds)

CPU: head statistics of every head of the bundled model (MiniLM, 6 x 12 heads) over
``--texts`` generated sentences, in this process (``stats -f``) and then on a local Ray
instance with ``--workers`` actors (``stats -f --ray local``), in the same run; both
totals include loading the model (the actors each load their own) and the Ray total
includes starting the instance. The two results are checked equal (sums within 1e-9,
same labels).

GPU (one call, well under 8 minutes on an H200): the model of ``bench_capture.py --gpu``
(random weights, Llama-3-8B's configuration, bf16). Printed as JSON lines, each next to
the forward pass alone, measured in the same run:

* capture every head of one layer at 8,192 tokens (target: at most 3x the forward pass;
  "cold" includes allocating the pinned result array, "warm" reuses it);
* ``stats`` over every head of 2,048-token texts (target: at least half the throughput of
  forward passes alone);
* ``compare`` of two such models (the second one's queries nudged) over every head, streamed
  (only the per-head sums leave the GPU), next to two forward passes;
* the bus: one 1 GiB copy into pageable and into pinned host memory.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import numpy as np

WORDS = (
    "the a model attention head layer token word sentence reads writes looks inside every small large "
    "quick brown fox jumps over lazy dog cat sat on mat river bank money flows through city night "
    "students learn transformers researchers measure heads engineers ship checks"
).split()


def corpus(count: int, seed: int = 0) -> list[str]:
    """``count`` sentences of 6 to 40 words, the same for a given seed."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        words = rng.choice(WORDS, size=int(rng.integers(6, 41)))
        out.append(" ".join(words).capitalize() + ".")
    return out


def cpu_comparison(count: int, workers: int, batch_size: int) -> None:
    import ray
    import torch

    from attnviz.analysis.stats import stream_statistics
    from attnviz.distributed.engine import ModelSpec, RayOptions
    from attnviz.distributed.stats import distributed_statistics
    from attnviz.extraction import Extractor
    from attnviz.models import load_model

    texts = corpus(count)
    cores = os.cpu_count() or 1
    start = time.perf_counter()
    loaded = load_model("minilm", device="cpu")
    single = stream_statistics(Extractor(loaded), texts, batch_size=batch_size)
    one_process = time.perf_counter() - start

    start = time.perf_counter()
    ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    started = time.perf_counter() - start
    try:
        spread = distributed_statistics(
            texts, ModelSpec("minilm", device="cpu"), RayOptions(workers=workers), batch_size=batch_size
        )
    finally:
        total = time.perf_counter() - start
        ray.shutdown()
    difference = max(float(np.abs(spread.sums[name] - single.sums[name]).max()) for name in single.sums)
    relative = max(
        float((np.abs(spread.sums[name] - single.sums[name]) / np.maximum(np.abs(single.sums[name]), 1e-300)).max())
        for name in single.sums
    )
    threads = torch.get_num_threads()
    same_labels = bool((spread.labels() == single.labels()).all())
    print(f"stats of {count} texts, every head of MiniLM (6 x 12), batch size {batch_size}, {cores} cores")
    print(f"{'run':<34} {'seconds':>8} {'texts/s':>8}")
    print(
        f"{'one process (' + str(torch.get_num_threads()) + ' torch threads)':<34} {one_process:8.1f} {count / one_process:8.1f}"
    )
    print(f"{'--ray local, ' + str(workers) + ' workers':<34} {total:8.1f} {count / total:8.1f}")
    print(f"  of which starting Ray: {started:.1f} s")
    print(f"ray / one process: {one_process / total:.2f}x the throughput")
    print(f"same result: max |sum difference| {difference:.1e}, relative {relative:.1e}, same labels: {same_labels}")
    if threads != 1:
        print(
            f"  (one process ran {threads} torch threads, each worker 1: float32 matrix products summed in "
            "another order; with equal thread counts the sums agree to 1e-9, tests/test_ray.py)"
        )
    print(
        json.dumps(
            {
                "texts": count,
                "one_process_s": round(one_process, 2),
                "ray_s": round(total, 2),
                "ray_start_s": round(started, 2),
                "workers": workers,
                "max_sum_difference": difference,
                "max_relative_difference": relative,
                "torch_threads": threads,
                "same_labels": same_labels,
            }
        )
    )


class Scale:
    """The sizes of one GPU check: the issue's (``full``) or a tiny one (``--dry-run``, any
    device, seconds) that runs every line of the script before a device is spent on it."""

    def __init__(self, full: bool) -> None:
        if full:
            self.model = dict(layers=32, heads=32, kv_heads=8, hidden=4096, intermediate=14336, vocab=128256)
            self.long, self.text, self.texts, self.per_batch, self.compare_texts = 8192, 2048, 8, 4, 4
        else:
            self.model = dict(layers=4, heads=8, kv_heads=2, hidden=64, intermediate=128, vocab=1000)
            self.long, self.text, self.texts, self.per_batch, self.compare_texts = 256, 64, 4, 2, 2
        self.layer = self.model["layers"] // 2


def _timed(function: Any, repeat: int = 1, *, cuda: bool = True) -> float:
    """The fastest of ``repeat`` runs, in seconds, the GPU synchronised around each."""
    import torch

    def sync() -> None:
        if cuda:
            torch.cuda.synchronize()

    best = float("inf")
    for _ in range(repeat):
        sync()
        start = time.perf_counter()
        function()
        sync()
        best = min(best, time.perf_counter() - start)
    return best


def gpu_check(*, dry_run: bool = False, only: set[str] | None = None) -> None:
    """The GPU figures (see the module's docstring). ``dry_run``: tiny sizes on this
    machine's device, with the capture forced onto its device path (blocks handed to the
    sinks as tensors, as on CUDA), so the script's every step runs here first."""
    import contextlib

    import torch

    from attnviz.analysis.compare import compare_models
    from attnviz.analysis.stats import HeadStatistics
    from attnviz.capture import device_reductions
    from attnviz.extraction import Extractor
    from attnviz.sinks import StatisticsSink
    from attnviz.transfer import ChunkCopier, SyncBackend
    from benchmarks.bench_capture import build_llama

    cuda = not dry_run
    device = "cuda" if cuda else "cpu"
    scale = Scale(full=cuda)
    wanted = only or {"capture", "stats", "compare", "bus"}
    path = contextlib.nullcontext if cuda else (lambda: device_reductions(ChunkCopier(SyncBackend())))
    dtype = torch.bfloat16 if cuda else torch.float32

    built = time.perf_counter()
    loaded = build_llama(**scale.model, dtype=dtype, device=device)  # type: ignore[arg-type]
    model = loaded.model
    name = torch.cuda.get_device_name() if cuda else "CPU (dry run)"
    print(f"{name}: model built in {time.perf_counter() - built:.1f} s", flush=True)
    rng = np.random.default_rng(0)
    vocab = scale.model["vocab"]

    def ids(tokens: int) -> list[int]:
        return rng.integers(3, vocab - 1, size=tokens).tolist()

    def forward(batch: torch.Tensor) -> None:
        with torch.inference_mode():
            model(input_ids=batch, return_dict=True)

    def timed(function: Any, repeat: int = 1) -> float:
        with path():
            return _timed(function, repeat, cuda=cuda)

    texts = [ids(scale.text) for _ in range(scale.texts)]
    stacked = [
        torch.tensor(texts[i : i + scale.per_batch], device=device) for i in range(0, len(texts), scale.per_batch)
    ]
    forward(stacked[0][:, :64])  # warm-up
    forward_all = _timed(lambda: [forward(b) for b in stacked], repeat=2, cuda=cuda)

    # 1. one layer's heads at 8,192 tokens, next to the forward pass
    if "capture" in wanted:
        long_ids = ids(scale.long)
        batch = torch.tensor([long_ids], device=device)
        forward_s = _timed(lambda: forward(batch), repeat=3, cuda=cuda)
        extractor = Extractor(loaded, layers=str(scale.layer))
        encoded = [extractor.encode_ids(long_ids)]
        with path():
            extractor.run_batch([extractor.encode_ids(long_ids[:64])])  # warm-up: probe, kernels
        cold = timed(lambda: extractor.run_batch(encoded))
        warm = timed(lambda: extractor.run_batch(encoded))
        with path():
            result = extractor.run_batch(encoded)[0].attentions["decoder"]
        row_error = float(np.abs(result[0, :2].astype(np.float64).sum(-1) - 1).max())  # two heads: 1 GiB at 8k
        del result
        print(json.dumps({"check": f"capture one layer ({scale.model['heads']} heads), {scale.long} tokens",
                          "forward_s": round(forward_s, 3), "capture_cold_s": round(cold, 3),
                          "capture_warm_s": round(warm, 3), "warm_over_forward": round(warm / forward_s, 2),
                          "target_over_forward": 3.0, "row_sum_error": row_error}), flush=True)  # fmt: skip

    # 2. stats over every head of 2,048-token texts (4 per batch: 8,192 tokens)
    everything = Extractor(loaded)
    layers, heads = list(everything.selection.layers["decoder"]), list(everything.selection.heads["decoder"])
    if "stats" in wanted:

        def statistics() -> HeadStatistics:
            stats = HeadStatistics(loaded.name, "decoder", layers, heads)
            sink = StatisticsSink(stats)
            for i in range(0, len(texts), scale.per_batch):
                everything.reduce_batch([everything.encode_ids(t) for t in texts[i : i + scale.per_batch]], sink)
            return stats

        statistics_s = timed(statistics)
        with path():
            stats = statistics()
        per_text = stats.sums["self"] / stats.counts["self"]
        print(json.dumps({"check": f"stats, all {len(layers) * len(heads)} heads, {len(texts)} texts of {scale.text} tokens",
                          "forward_texts_per_s": round(len(texts) / forward_all, 2),
                          "stats_texts_per_s": round(len(texts) / statistics_s, 2),
                          "throughput_ratio": round(forward_all / statistics_s, 3), "target_ratio": 0.5,
                          "mean_self_attention": round(float(per_text.mean()), 5)}), flush=True)  # fmt: skip

    # 3. compare every head of two models (the second one's queries nudged), streamed
    if "compare" in wanted:
        other = build_llama(**scale.model, dtype=dtype, device=device)  # type: ignore[arg-type]
        generator = torch.Generator(device=device).manual_seed(1)
        with torch.no_grad():
            for module in other.model.modules():
                q_proj = getattr(module, "q_proj", None)
                if q_proj is not None:
                    noise = torch.randn(q_proj.weight.shape, generator=generator, device=device, dtype=torch.float32)
                    q_proj.weight.add_((0.02 * noise).to(dtype))
        chosen = texts[: scale.compare_texts]
        extractors = []
        for built_model in (loaded, other):
            extractor = Extractor(built_model)
            extractor.encode = lambda item, extractor=extractor: extractor.encode_ids(chosen[int(item.text)])  # type: ignore[method-assign]
            extractors.append(extractor)
        items = [str(i) for i in range(len(chosen))]

        def comparison() -> Any:
            return compare_models(items, *extractors, batch_size=scale.per_batch, streamed=True)

        compare_s = timed(comparison)
        with path():
            result = comparison()
        forward_pairs = _timed(lambda: [forward(b) for b in stacked[: len(chosen) // scale.per_batch or 1]], cuda=cuda)
        print(json.dumps({"check": f"compare two models, all {len(layers) * len(heads)} heads, {len(chosen)} texts of "
                          f"{scale.text} tokens", "compare_texts_per_s": round(len(chosen) / compare_s, 2),
                          "one_model_forward_texts_per_s": round(len(chosen) / forward_pairs, 2),
                          "over_two_forwards": round(compare_s / (2 * forward_pairs), 2),
                          "max_js": round(float(result.js.max()), 6), "texts": result.texts}), flush=True)  # fmt: skip
        del other, extractors

    # 4. the bus, for reference
    if "bus" in wanted and cuda:
        block = torch.empty(2**28, dtype=torch.float32, device="cuda")
        pageable = torch.empty(2**28, dtype=torch.float32)
        pinned = torch.empty(2**28, dtype=torch.float32, pin_memory=True)
        to_pageable = _timed(lambda: pageable.copy_(block), repeat=2)
        to_pinned = _timed(lambda: pinned.copy_(block, non_blocking=True), repeat=2)
        print(json.dumps({"check": "copy 1 GiB to the host", "pageable_gb_s": round(2**30 / to_pageable / 1e9, 1),
                          "pinned_gb_s": round(2**30 / to_pinned / 1e9, 1)}), flush=True)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--texts", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--dry-run", action="store_true", help="with --gpu: tiny sizes on CPU, every step once")
    parser.add_argument("--only", help="with --gpu: some of capture,stats,compare,bus (a rerun's time)")
    args = parser.parse_args()
    if args.gpu:
        gpu_check(dry_run=args.dry_run, only=set(args.only.split(",")) if args.only else None)
    else:
        cpu_comparison(args.texts, args.workers, args.batch_size)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
