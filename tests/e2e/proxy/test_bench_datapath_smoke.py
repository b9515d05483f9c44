"""bench/bench_datapath.py once, briefly: both paths carry traffic, nothing is left behind.

One round of one-second measures through the benchmark's own topology (a node namespace
routing between a client and a backend pod namespace, the Service programmed by the real
Proxier), plus two filler Services; then its namespaces and server processes must be gone.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

BENCH = Path(__file__).resolve().parents[3] / "bench"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_both_paths_carry_traffic_and_nothing_is_left(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("ip") is None or shutil.which("iptables-restore") is None:
        pytest.skip("needs root, iproute2 and iptables to make network namespaces")
    if shutil.which("iperf3") is None:
        pytest.skip("needs iperf3 (bench/bench_datapath.py installs it; this test does not)")
    sys.path.insert(0, str(BENCH))
    import bench_datapath as bench  # type: ignore[import-not-found]

    res = bench.run(1.0, 1, 2, shutil.which("wrk") is not None, tmp_path)

    for measure in ("tcp", "http", "http_close"):
        assert res[measure]["direct"] > 0, measure
        assert res[measure]["clusterip"] > 0, measure
        assert res[measure]["ratio"] is not None, measure
    # ClusterIP connections were DNATed by the Service's rules, not routed some other way.
    assert res["dnat_packets"] > 0
    assert res["leftover_netns"] == []
    assert not [pid for pid in res["server_pids"] if _pid_alive(pid)]
    lines, _ = bench.report(res)
    assert lines[0].startswith("datapath tcp_gbps clusterip ")
