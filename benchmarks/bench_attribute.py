"""Seconds per text of each attribution method at 16, 128 and 512 tokens, and the cost of
batched ablation against one forward pass.

    python benchmarks/bench_attribute.py [--lengths 16,128,512] [--device cpu]

Bundled MiniLM (6 layers x 12 heads, the sentence-embedding output), texts of exactly N
tokens ([CLS] and [SEP] included). Each method runs once to warm up, then the median of
``--repeats`` runs is printed (one warm run at 512 tokens). Flow is limited to 64 tokens, so it appears at 16 only.

Ablation check (issue #17): at 128 tokens, all 126 leave-one-out variants go through the
model in batches of at most 8,192 padded tokens; the script prints their time over the time
of ONE forward pass of the same padded batch ``[126, 128]`` (the ratio must stay <= 3), and
over 126 separate single-text passes for comparison.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

WORDS = "the cat sat on a mat and the dog ran to the park while birds sang in old trees".split()


def text_of(tokenizer, tokens: int) -> str:
    """A text of exactly ``tokens`` tokens with [CLS] and [SEP] (one token per word here)."""
    words = [WORDS[i % len(WORDS)] for i in range(tokens - 2)]
    text = " ".join(words)
    assert len(tokenizer(text)["input_ids"]) == tokens, "every benchmark word must be one token"
    return text


def timed(function, repeats: int, *, warm_up: bool = True) -> float:
    if warm_up:  # the first call imports captum and fills caches; a 512-token ablation is warm already
        function()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def ablation_ratio(attributor, tokenizer, repeats: int) -> None:
    import numpy as np
    import torch

    encoded = attributor.encode(text_of(tokenizer, 128))
    target = attributor.target(encoded)
    ids = np.asarray(encoded.ids)
    positions = np.flatnonzero(~np.asarray(encoded.tokens.special_mask))
    variants = np.repeat(ids[None], len(positions), axis=0)
    variants[np.arange(len(positions)), positions] = attributor.scorer.ablation_id
    model = attributor.head
    batch = torch.as_tensor(variants)
    mask = torch.ones_like(batch)

    def one_pass() -> None:
        with torch.no_grad():
            model(input_ids=batch, attention_mask=mask)

    def separate() -> None:
        with torch.no_grad():
            for row in batch:
                model(input_ids=row[None], attention_mask=mask[:1])

    ablation = timed(lambda: attributor.scorer.scores(variants, target), repeats)
    single = timed(one_pass, repeats)
    apart = timed(separate, 1)
    print(
        f"ablation at 128 tokens: {len(variants)} variants in batches of <= {attributor.max_batch_tokens} tokens "
        f"{ablation:.3f} s; one forward pass of the padded batch [{len(variants)}, 128] {single:.3f} s "
        f"(ratio {ablation / single:.2f}, must be <= 3); {len(variants)} separate passes {apart:.3f} s "
        f"(ratio {apart / single:.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="16,128,512")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from attnviz.attribution import Attributor

    attributor = Attributor.load("minilm", device=args.device)
    tokenizer = attributor.loaded.tokenizer
    print(f"minilm on {args.device}, output '{attributor.kind}', integrated gradients with {attributor.steps} steps")
    lengths = [int(v) for v in args.lengths.split(",")]
    print(f"{'method':<22}" + "".join(f"{f'{n} tokens':>14}" for n in lengths) + "   (seconds per text)")
    encoded = {n: attributor.encode(text_of(tokenizer, n)) for n in lengths}
    targets = {n: attributor.target(encoded[n]) for n in lengths}
    methods, _ = attributor.choose_methods(None, min(lengths))
    for method in methods:
        cells = []
        for n in lengths:
            chosen, _ = attributor.choose_methods(None, n)
            if method not in chosen:
                cells.append(f"{'—':>14}")
                continue
            repeats = args.repeats if n <= 128 else 1

            def run(n: int = n, method: str = method) -> None:
                attributor.attribute_encoded(encoded[n], [method], fixed=targets[n])

            cells.append(f"{timed(run, repeats, warm_up=n <= 128):>14.3f}")
            if sys.stdout.isatty():  # the row so far, overwritten when it is complete
                print(f"{method:<22}" + "".join(cells), end="\r", flush=True)
        print(f"{method:<22}" + "".join(cells), flush=True)
    if 128 in lengths:
        ablation_ratio(attributor, tokenizer, args.repeats)


if __name__ == "__main__":
    main()
