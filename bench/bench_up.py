"""Time to a working multi-node cluster: `kemu up --nodes 3` until every node is Ready and
the cluster DNS answers, with the images already built.

The reference is minikube's time-to-k8s benchmark (REFERENCE.md): k3d 33 s and kind 47 s to
a working cluster. Those tools cannot run offline here, so the ratio is against their
published figures, not a run in this process. Each round uses its own KEMU_HOME and cluster
name and ends with `kemu down`, which removes everything the round made.

Prints `up nodes=3 seconds ... (median of N); k3d 33 s ratio R; kind 47 s ratio R` and writes
bench/results/up.json. Target: under 30 s.

    .venv/bin/python bench/bench_up.py [--rounds 3] [--nodes 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support import processes  # noqa: E402

K3D, KIND = 33.0, 47.0


def one_round(nodes: int, index: int) -> float:
    with tempfile.TemporaryDirectory(prefix="kemu-bench-up-") as home:
        env = {**os.environ, "KEMU_HOME": home, "KEMU_CONFIG": f"{home}/config"}
        name = f"bu{os.getpid() % 10000}{index}"
        ports = ["--store-port", str(processes.free_port()), "--apiserver-port",
                 str(processes.free_port()), "--scheduler-port", str(processes.free_port()),
                 "--controller-manager-port", str(processes.free_port())]
        cmd = [sys.executable, "-m", "kemu.cli.kemu_main"]
        started = time.monotonic()
        try:
            up = subprocess.run([*cmd, "up", "--name", name, "--nodes", str(nodes), *ports],
                                env=env, capture_output=True, text=True, timeout=300)
            seconds = time.monotonic() - started
            if up.returncode != 0:
                raise SystemExit(f"kemu up failed:\n{up.stdout}\n{up.stderr}")
        finally:
            subprocess.run([*cmd, "down", "--name", name], env=env, capture_output=True,
                           timeout=300)
        return seconds


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--nodes", type=int, default=3)
    args = p.parse_args()
    if os.geteuid() != 0:
        print("bench_up needs root (network namespaces)", file=sys.stderr)
        return 2
    times = [one_round(args.nodes, i) for i in range(args.rounds)]
    median = statistics.median(times)
    load = os.getloadavg()[0]
    print(f"up nodes={args.nodes} seconds {median:.1f} (median of {args.rounds}: "
          f"{', '.join(f'{t:.1f}' for t in times)}); k3d {K3D:.0f} s ratio "
          f"{median / K3D:.2f}; kind {KIND:.0f} s ratio {median / KIND:.2f}; target < 30 s: "
          f"{'met' if median < 30 else 'missed'} (load {load:.2f})")
    out = ROOT / "bench" / "results" / "up.json"
    out.write_text(json.dumps({"nodes": args.nodes, "seconds": times, "median": median,
                               "k3d_ratio": median / K3D, "kind_ratio": median / KIND,
                               "load": load}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
