"""Peak memory of a huge --batch-size, with batches bounded by tokens and without, in one run.

    python benchmarks/bench_batches.py [--texts 1000]

Bundled model, texts of about 125 tokens, batch_size 1000, every result discarded as it
comes (as export does). Each measurement runs in a fresh process (its own ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

SENTENCE = (
    "The quick brown fox jumps over the lazy dog while the company reported strong earnings in the third "
    "quarter of the year, and analysts expected the stock price to climb further next week despite "
    "uncertain conditions everywhere in the markets of the world today; the board said on Tuesday that "
    "it would keep its forecast for the full year unchanged and pay a larger dividend than last year, "
    "while its chief executive told reporters that demand for the new products had been stronger than "
    "expected in every region and that hiring would continue through the winter months; text number"
)


def measure(texts: int, max_batch_tokens: int) -> dict[str, float]:
    from attnviz.extraction import Extractor
    from attnviz.models import load_model

    extractor = Extractor(load_model("minilm", device="cpu"), max_batch_tokens=max_batch_tokens)
    tokens = len(extractor.encode(__import__("attnviz.extraction", fromlist=["TextInput"]).TextInput(SENTENCE)).ids)
    start = time.perf_counter()
    done = 0
    # batch_size 1000 with export's window of 256 texts
    for _ in extractor.outcomes((f"{SENTENCE} {i}" for i in range(texts)), batch_size=1000, window=256):
        done += 1
    return {
        "max_batch_tokens": max_batch_tokens,
        "texts": done,
        "tokens_per_text": tokens,
        "seconds": round(time.perf_counter() - start, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=1000)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        print(json.dumps(measure(args.texts, args.one)))
        return
    for budget, label in ((10**9, "unbounded (the old behaviour)"), (8192, "bounded (default 8,192 tokens)")):
        out = subprocess.run(
            [sys.executable, __file__, "--texts", str(args.texts), "--one", str(budget)], capture_output=True, text=True
        )
        row = json.loads(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 else {"error": out.stderr[-300:]}
        print(f"{label}: {row}", flush=True)


if __name__ == "__main__":
    main()
