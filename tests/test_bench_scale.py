"""The GPU check of ``benchmarks/bench_scale.py`` runs whole, at tiny sizes on CPU with the
capture forced onto its device path, so the one call a lent GPU gets is not its first run."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_the_gpu_check_runs_every_step_on_a_dry_run(capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
    monkeypatch.syspath_prepend(str(ROOT))
    from benchmarks.bench_scale import gpu_check

    gpu_check(dry_run=True)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    checks = {line["check"].split(" ")[0].rstrip(","): line for line in lines}
    assert set(checks) == {"capture", "stats", "compare"}  # the bus is CUDA's only
    assert checks["capture"]["row_sum_error"] < 1e-5  # the captured rows are probabilities
    assert checks["capture"]["forward_s"] > 0 and checks["capture"]["warm_over_forward"] > 0
    assert 0 < checks["stats"]["mean_self_attention"] < 1
    assert checks["compare"]["texts"] == 2 and 0 < checks["compare"]["max_js"] < 1  # nudged queries: some divergence
    assert all(np.isfinite(v) for line in lines for v in line.values() if isinstance(v, float))
    assert "benchmarks.bench_scale" in sys.modules
