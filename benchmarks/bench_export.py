"""Export speed and memory, side by side with the baselines, in one run.

    python benchmarks/bench_export.py            # about 3 minutes on a 2-core machine
    python benchmarks/bench_export.py --quick    # fewer texts, about a minute

Bundled model (MiniLM, 6 layers x 12 heads), the sentences of samples/sentences.txt repeated.
It times, per text:
  (a) the naive tutorial loop: one seaborn heatmap figure per layer and head, saved, closed;
  (b) `attnviz export` for the same texts and views (--view head, --view grid, --format npz),
      from the summary export prints (pipeline time: forward passes + rendering + writing);
  (c) the floor: batched forward passes plus encoding the same number of PNGs directly
      (raw arrays, no labels), in one process;
and peak memory (max RSS) of `attnviz export --view grid` for 100 and for 2,000 lines.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples" / "sentences.txt"
ATTNVIZ = [sys.executable, "-m", "attnviz"]


def sentences() -> list[str]:
    return [line for line in SAMPLES.read_text().splitlines() if line.strip()]


def corpus(path: Path, count: int) -> Path:
    lines = sentences()
    path.write_text("".join(lines[i % len(lines)] + "\n" for i in range(count)))
    return path


def naive_loop(text: str, out_dir: Path) -> float:
    """The tutorial approach: seaborn heatmap per head, savefig, close. Seconds for one text."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import seaborn as sns

    import attnviz

    result = attnviz.extract(text)
    tokens = list(result.tokens.display)
    array = result.attentions["encoder"]
    start = time.perf_counter()
    for layer in range(array.shape[0]):
        for head in range(array.shape[1]):
            fig, ax = plt.subplots(figsize=(8, 7))
            sns.heatmap(array[layer, head], xticklabels=tokens, yticklabels=tokens, cmap="viridis", ax=ax)
            ax.set_title(f"layer {layer} head {head}")
            fig.savefig(out_dir / f"naive_L{layer}H{head}.png")
            plt.close(fig)
    return time.perf_counter() - start


def run_export(source: Path, out_dir: Path, *options: str) -> dict:
    command = [*ATTNVIZ, "export", str(source), "-o", str(out_dir), "--quiet", "--json", *options]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def floor(texts: list[str], images_per_text: int) -> float:
    """Batched forward passes + plain PNG encoding of as many images. Seconds per text."""
    import numpy as np
    from PIL import Image

    from attnviz.extraction import Extractor
    from attnviz.models import load_model

    extractor = Extractor(load_model("minilm", device="cpu"))
    list(extractor.outcomes(texts[:16], batch_size=16))  # warm-up, as export's own run is warm after its first batch
    start = time.perf_counter()
    for result in extractor.outcomes(texts, batch_size=16):
        array = result.attentions["encoder"].reshape(-1, *result.attentions["encoder"].shape[2:])
        for index in range(images_per_text):
            matrix = array[index % len(array)]
            pixels = (matrix / max(float(matrix.max()), 1e-6) * 255).astype(np.uint8)
            pixels = np.repeat(np.repeat(pixels, 24, 0), 24, 1)
            buffer = io.BytesIO()
            Image.fromarray(pixels, "L").save(buffer, format="PNG", compress_level=1)
    return (time.perf_counter() - start) / len(texts)


def peak_rss_mb(source: Path, out_dir: Path) -> float:
    """Max RSS of an export run (its largest process), measured from a fresh wrapper."""
    code = (
        "import resource, subprocess, sys\n"
        "subprocess.run(sys.argv[1:], check=True, capture_output=True)\n"
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
    )
    command = [sys.executable, "-c", code, *ATTNVIZ, "export", str(source), "-o", str(out_dir), "--quiet"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer texts and repeats")
    parser.add_argument("--device", default="cpu", help="device for attnviz export (e.g. cuda)")
    parser.add_argument("--repeats", type=int, default=3, help="export runs per measurement (median)")
    args = parser.parse_args()
    repeats = 1 if args.quick else args.repeats
    counts = {"head": 12 if args.quick else 30, "grid": 100 if args.quick else 300, "npz": 300 if args.quick else 1000}
    device = ["--device", args.device]
    report: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        lines = sentences()
        sixteen = lines[1]  # "The quick brown fox ... riverbank." : 16 tokens with [CLS] and [SEP]
        (tmp / "naive").mkdir()
        naive = [naive_loop(sixteen, tmp / "naive") for _ in range(1 if args.quick else 2)]
        report["naive_head_s_per_text"] = statistics.median(naive)

        for view, options in (("head", ["--view", "head"]), ("grid", ["--view", "grid"]), ("npz", ["--format", "npz"])):
            source = corpus(tmp / f"{view}.txt", counts[view])
            rates = []
            for repeat in range(repeats):
                summary = run_export(source, tmp / f"out-{view}-{repeat}", *options, *device)
                rates.append(summary["seconds"] / summary["exported"])
            report[f"export_{view}_s_per_text"] = statistics.median(rates)

        report["floor_head_s_per_text"] = floor(lines * (4 if args.quick else 10), 72)
        report["floor_grid_s_per_text"] = floor(lines * (34 if args.quick else 100), 1)

        small, large = (50, 500) if args.quick else (100, 2000)
        report[f"peak_rss_mb_{small}_lines"] = peak_rss_mb(corpus(tmp / "small.txt", small), tmp / "mem-small")
        report[f"peak_rss_mb_{large}_lines"] = peak_rss_mb(corpus(tmp / "large.txt", large), tmp / "mem-large")

    naive_s = report["naive_head_s_per_text"]
    head_s = report["export_head_s_per_text"]
    print(f"naive seaborn loop, 72 heads:   {naive_s:8.3f} s/text")
    print(
        f"attnviz export --view head:     {head_s:8.3f} s/text   {naive_s / head_s:6.1f}x faster than naive "
        f"(target >= 30x); floor {report['floor_head_s_per_text']:.3f} s/text ({head_s / report['floor_head_s_per_text']:.1f}x the floor)"
    )
    grid_s = report["export_grid_s_per_text"]
    print(
        f"attnviz export --view grid:     {1 / grid_s:8.1f} texts/s (target >= 10); floor {1 / report['floor_grid_s_per_text']:.1f} texts/s"
    )
    print(f"attnviz export --format npz:    {1 / report['export_npz_s_per_text']:8.1f} texts/s (target >= 100)")
    small_rss, large_rss = (v for k, v in report.items() if k.startswith("peak_rss"))
    print(
        f"peak memory, grid export:       {small_rss:.0f} MB for {small} lines, {large_rss:.0f} MB for {large} lines "
        f"({(large_rss / small_rss - 1) * 100:+.1f}%; target within 10%)"
    )
    results = ROOT / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "bench_export.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
