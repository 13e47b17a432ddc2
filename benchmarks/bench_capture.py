"""Memory and time of selective capture against capturing everything and against all-eager.

    python benchmarks/bench_capture.py            # CPU table: 512-4k tokens, one head / one layer / everything
    python benchmarks/bench_capture.py --quick    # 512 and 1k tokens only
    python benchmarks/bench_capture.py --gpu      # 7B-size Llama config, bf16, 8,192 tokens, one layer's heads

CPU model: a random Llama with 8 layers x 16 heads (4 key-value heads, GQA-4), hidden size
128: small weights, many heads, so the attention maps dominate memory as they do in real
LLMs at long context. Each measurement runs in a fresh subprocess, so its peak RSS
(``ru_maxrss``) is its own. "all-eager" is the pre-capture path: eager attention with
``output_attentions=True`` on every layer.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from typing import Any

import numpy as np


def build_llama(
    layers: int = 8,
    heads: int = 16,
    kv_heads: int = 4,
    hidden: int = 128,
    *,
    intermediate: int | None = None,
    vocab: int = 1000,
    dtype: Any = None,
    device: str = "cpu",
    eager: bool = False,
) -> Any:
    """A random-weight Llama as a :class:`attnviz.models.LoadedModel` (no tokenizer)."""
    import torch
    import transformers as tf

    from attnviz.capture import register
    from attnviz.models import LoadedModel, ModelSpec, model_info_from_config

    torch.manual_seed(0)
    config = tf.LlamaConfig(
        hidden_size=hidden,
        intermediate_size=intermediate or 2 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=kv_heads,
        vocab_size=vocab,
        max_position_embeddings=16384,
    )
    with torch.device(device):
        model = tf.AutoModel.from_config(
            config, attn_implementation="eager" if eager else register(), dtype=dtype or torch.float32
        )
    model.eval()
    spec = ModelSpec(name=f"random-llama-{layers}x{heads}", source="", is_local=True)
    info = model_info_from_config(spec.name, "", config)
    return LoadedModel(spec=spec, tokenizer=None, model=model, info=info, device=device)


def capture_ids(loaded: Any, tokens: int, *, layers: Any = None, heads: Any = None) -> np.ndarray:
    """Attention of ``tokens`` random token ids through ``loaded``: [layers, heads, T, T]."""
    from attnviz.extraction import Extractor

    extractor = Extractor(loaded, layers=layers, heads=heads)
    ids = np.random.default_rng(0).integers(3, 1000, size=tokens).tolist()
    return extractor.run_batch([extractor.encode_ids(ids)])[0].attentions["decoder"]


def _statistics(loaded: Any, tokens: int, *, streamed: bool) -> np.ndarray:
    """Head statistics of every head: reduced as the rows pass (``stats`` today) or from
    the whole stored maps (``stats`` before); returns the entropy sums (nothing is kept)."""
    from attnviz.analysis.stats import HeadStatistics, StatisticsSink, head_statistics
    from attnviz.extraction import Extractor

    extractor = Extractor(loaded)
    ids = np.random.default_rng(0).integers(3, 1000, size=tokens).tolist()
    encoded = extractor.encode_ids(ids)
    if streamed:
        stats = HeadStatistics(loaded.name, "decoder", list(range(8)), list(range(16)))
        extractor.reduce_batch([encoded], StatisticsSink(stats))
    else:
        stats = head_statistics(extractor.run_batch([encoded]))
    return stats.sums["entropy"]


def _measure(tokens: int, selection: str) -> dict[str, Any]:
    """One measurement, in this (fresh) process."""
    eager = selection == "all-eager"
    loaded = build_llama(eager=eager)
    layers, heads = {"one head": ("3", "5"), "one layer": ("3", None)}.get(selection, (None, None))
    if eager:  # the pre-capture path: eager attention, output_attentions on every layer
        from attnviz.capture import CallLayout

        loaded.layout = CallLayout((), False, "all-eager baseline")
    start = time.perf_counter()
    if selection.startswith("stats"):
        array = _statistics(loaded, tokens, streamed=selection == "stats streamed")
    else:
        array = capture_ids(loaded, tokens, layers=layers, heads=heads)
    seconds = time.perf_counter() - start
    return {
        "tokens": tokens,
        "selection": selection,
        "seconds": round(seconds, 3),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "stored_mb": round(array.nbytes / 2**20, 1),
    }


def _run(tokens: int, selection: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--one", str(tokens), selection],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONWARNINGS": "ignore"},
    )
    if out.returncode != 0:
        return {"tokens": tokens, "selection": selection, "error": out.stderr.strip().splitlines()[-1:]}
    return json.loads(out.stdout.strip().splitlines()[-1])


def cpu_table(quick: bool) -> None:
    sizes = [512, 1024] if quick else [512, 1024, 2048, 4096]
    print("| tokens | selection | seconds | peak RSS (MB) | attention kept (MB) |")
    print("|---|---|---|---|---|")
    rows = []
    for tokens in sizes:
        for selection in ("one head", "one layer", "everything"):
            row = _run(tokens, selection)
            rows.append(row)
            print(
                f"| {tokens} | {selection} | {row.get('seconds', '-')} | {row.get('peak_rss_mb', '-')} | "
                f"{row.get('stored_mb', row.get('error'))} |",
                flush=True,
            )
    by = {(r["tokens"], r["selection"]): r for r in rows}
    if (2048, "one head") in by and "peak_rss_mb" in by[(2048, "one head")]:
        ratio = by[(2048, "one head")]["peak_rss_mb"] / by[(2048, "everything")]["peak_rss_mb"]
        print(f"\none head / everything peak RSS at 2,048 tokens: {ratio:.0%} (target <= 30%)")
    tokens = 1024 if quick else 2048
    print(f"\nhead statistics of all 128 heads at {tokens} tokens: reduced per row chunk against whole maps")
    stats = {selection: _run(tokens, selection) for selection in ("stats streamed", "stats whole")}
    for selection, row in stats.items():
        print(f"  {selection}: {row.get('seconds', '-')} s, peak RSS {row.get('peak_rss_mb', row.get('error'))} MB")
    if all("peak_rss_mb" in row for row in stats.values()):
        ratio = stats["stats streamed"]["peak_rss_mb"] / stats["stats whole"]["peak_rss_mb"]
        print(f"  streamed / whole peak RSS: {ratio:.0%}")
    print(f"\nforward at {tokens} tokens: sdpa + one captured layer against all-eager (median of 3 runs each)")
    speed = {}
    for selection in ("one layer", "all-eager"):
        speed[selection] = float(np.median([_run(tokens, selection)["seconds"] for _ in range(3)]))
        print(f"  {selection}: {speed[selection]:.2f} s")
    print(f"  speed-up: {speed['all-eager'] / speed['one layer']:.1f}x (target >= 2x)")


def gpu_check(tokens: int = 8192) -> None:
    """A Llama with Llama-3-8B's config (random weights, bf16, 32 layers x 32 heads, 8 KV
    heads, hidden 4096, MLP 14336, vocabulary 128,256), ``tokens`` tokens, capturing every
    head of one layer, then one head."""
    import torch

    loaded = build_llama(
        layers=32,
        heads=32,
        kv_heads=8,
        hidden=4096,
        intermediate=14336,
        vocab=128256,
        dtype=torch.bfloat16,
        device="cuda",
    )
    params = sum(p.numel() for p in loaded.model.parameters())
    torch.cuda.synchronize()
    weights = torch.cuda.memory_allocated()
    print(f"{torch.cuda.get_device_name()}: {params / 1e9:.2f} B parameters, weights {weights / 2**30:.1f} GiB")
    capture_ids(loaded, 128, layers="16")  # warm-up (kernels, probe)
    for layers, heads, label in (("16", None, "one layer (32 heads)"), ("16", "7", "one head")):
        torch.cuda.reset_peak_memory_stats()
        torch.cuda.synchronize()
        start = time.perf_counter()
        array = capture_ids(loaded, tokens, layers=layers, heads=heads)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated()
        sums = array.astype(np.float64).sum(-1)
        print(
            json.dumps(
                {
                    "tokens": tokens,
                    "capture": label,
                    "seconds": round(seconds, 2),
                    "peak_gpu_gib": round(peak / 2**30, 2),
                    "peak_over_weights_gib": round((peak - weights) / 2**30, 2),
                    "shape": list(array.shape),
                    "row_sum_error": float(np.abs(sums - 1).max()),
                    "causal_zero_above_diagonal": bool(np.all(np.triu(array[0, 0], 1) == 0)),
                }
            ),
            flush=True,
        )
    full = tokens * tokens * 32 * 32 * 4 / 2**30
    print(f"capturing everything would hold {full:.0f} GiB of float32 attention")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--gpu", action="store_true")
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--one", nargs=2, metavar=("TOKENS", "SELECTION"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(_measure(int(args.one[0]), args.one[1])))
    elif args.gpu:
        gpu_check(args.tokens)
    else:
        cpu_table(args.quick)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
