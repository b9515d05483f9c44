"""`bench/bench_scheduler.py --quick` end to end (100 simulated nodes, 500 pods): it runs,
prints its line and writes its JSON with the documented fields. A smoke test of the
benchmark, not a performance check (it passes at any throughput)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support import processes

pytestmark = pytest.mark.integration


def test_quick_scheduler_benchmark(tmp_path: Path) -> None:
    out = tmp_path / "scheduler.json"
    done = subprocess.run([processes.PYTHON, "bench/bench_scheduler.py", "--quick",
                           "--results", str(out)], cwd=processes.ROOT, capture_output=True,
                          text=True, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "scheduler 100 nodes 500 pods: " in done.stdout
    assert "pods/s, ratio " in done.stdout
    result = json.loads(out.read_text())
    assert result["benchmark"] == "scheduler" and result["quick"] is True
    assert result["reference"]["pods_per_s"] == 270
    (run,) = result["runs"]
    assert (run["nodes"], run["pods"]) == (100, 500)
    assert run["pods_per_s"] > 0 and run["latency_s"]["p99"] >= run["latency_s"]["p50"]
    assert set(run["peak_rss_mb"]) == {"store", "apiserver", "scheduler", "simulator"}
    assert isinstance(result["commit"], str) and result["date"]
