"""How fast a bad selection is refused, against a successful `show`, in one run.

    python benchmarks/bench_refusal.py

Bundled model; each command in a fresh process, median of 5. `--layer 9` and `--view head`
(over every head) are refused from config.json alone; target: at most 0.35x the time of a
successful `show`.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time

ATTNVIZ = [sys.executable, "-m", "attnviz", "show", "AI changes everything"]


def seconds(*args: str, expect: int) -> float:
    times = []
    for _ in range(5):
        start = time.perf_counter()
        done = subprocess.run([*ATTNVIZ, *args], capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        assert done.returncode == expect, done.stderr
    return statistics.median(times)


def main() -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    success = seconds("--json", expect=0)
    print(f"show (success, --json):     {success:.2f} s")
    for args in (["--layer", "9"], ["--view", "head"]):
        refused = seconds(*args, expect=2)
        print(f"show {' '.join(args):<20}   {refused:.2f} s  = {refused / success:.2f}x the success (target <= 0.35x)")


if __name__ == "__main__":
    main()
