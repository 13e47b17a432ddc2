"""Word merging (--words) time against the text length, side by side with the extraction.

    python benchmarks/bench_words.py

Bundled model, texts of about 200 and 500 words (every layer and head). The merge was
quadratic in the attention size before (np.einsum without optimize: 132 s at 198 words,
over 300 s at 510); it is one gather and one np.add.reduceat per axis now.
"""

from __future__ import annotations

import statistics
import time

WORDS = (
    "the committee reviewed unbelievably complicated proposals while representatives discussed "
    "infrastructure maintenance, environmental sustainability and internationalization strategies"
).split()


def main() -> None:
    import attnviz
    from attnviz.transforms import merge_words

    model = attnviz.load_model("minilm", device="cpu")
    for count in (200, 500):
        text = " ".join(WORDS[i % len(WORDS)] for i in range(count))
        start = time.perf_counter()
        result = attnviz.extract(text, model=model, truncate=True)
        extract_s = time.perf_counter() - start
        times = []
        for _ in range(3):
            start = time.perf_counter()
            merged = merge_words(result)
            times.append(time.perf_counter() - start)
        tokens = len(result.tokens)
        print(
            f"{count} words ({tokens} tokens -> {len(merged.tokens)} words, 6 x 12 heads): "
            f"extract {extract_s:.2f} s, merge_words {statistics.median(times):.3f} s (median of 3)"
        )


if __name__ == "__main__":
    main()
