"""bench/report.py turns whatever results exist into REPORT.md with plots: each figure
against its reference in the summary, a section and PNG per benchmark, and the command
for each benchmark not run yet."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[3]


def _report_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_report", ROOT / "bench/report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_report"] = module
    spec.loader.exec_module(module)
    return module


def test_a_report_from_partial_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    report = _report_module()
    results = tmp_path / "results"
    results.mkdir()
    (results / "scheduler.json").write_text(json.dumps({
        "benchmark": "scheduler", "reference": {"name": "scheduler_perf SchedulingBasic",
                                                "pods_per_s": 270},
        "runs": [{"nodes": n, "pods": 10000, "pods_per_s": pps, "ratio": pps / 270,
                  "latency_s": {"p50": 1.0, "p99": 2.5, "max": 3.0},
                  "peak_rss_mb": {"apiserver": 300.0, "scheduler": 200.0}}
                 for n, pps in ((1000, 540.0), (5000, 405.0))]}))
    (results / "apiserver.json").write_text(json.dumps({
        b: {"create c=16": {"ops": 10, "per_s": rate, "p50_ms": 5.0, "p99_ms": p99}}
        for b, rate, p99 in (("kemu-store", 500.0, 40.0), ("etcd", 1000.0, 20.0))}))
    (results / "dns.json").write_text("{}")  # not the expected shape: named, not fatal
    monkeypatch.setattr(report, "RESULTS", results)
    monkeypatch.setattr(report, "PLOTS", tmp_path / "plots")
    monkeypatch.setattr(report, "REPORT", tmp_path / "REPORT.md")
    text = report.render()
    assert "| scheduler 5000 nodes / 10000 pods | 405 pods/s | 270 pods/s | 1.50 |" in text
    assert "| apiserver create c=16 | 500/s | 1000/s (on etcd) | 0.50 |" in text
    assert "| apiserver mutating p99 (SLO <= 1000 ms) | 40 ms | 1000 ms | 25.0 |" in text
    assert "not run yet (`python bench/bench_store.py`)" in text
    assert "bench/results/dns.json is not in the expected shape" in text
    assert "![scheduler throughput and latency against cluster size](plots/scheduler.png)" \
        in text
    for png in ("scheduler.png", "apiserver-p99.png"):
        assert (tmp_path / "plots" / png).read_bytes().startswith(b"\x89PNG")
