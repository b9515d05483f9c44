"""Scheduler throughput on simulated nodes, as kube-scheduler's scheduler_perf
SchedulingBasic: N nodes, then M pods created at once (none pre-bound), timed from the
first Create call until every pod is bound.

Real processes on loopback: kemu store, kemu apiserver, kemu scheduler and `kemu simulate
nodes --count N` for the nodes. As scheduler_perf's nodes run nothing, the simulator runs
with `--no-run-pods --heartbeat-qps 50` (Nodes Ready, Leases renewed at 50/s at most,
bound pods left as they are); `--kubelets` runs it as a cluster would (pods made Running
as they are bound, Leases every 10 s up to 200/s), so the apiserver also carries the
simulated kubelets' writes.
Pods (one container, requests cpu 100m and memory 128Mi) are created by 32 concurrent
clients; a watch records when each pod shows spec.nodeName. Per-pod latency runs from the
start of its Create call to that watch event. Peak RSS of each process is sampled every
0.25 s (psutil, children included).

Reference: scheduler_perf's SchedulingBasic threshold of 270 pods/s at 5,000 nodes and
10,000 pods (target: at least that; stretch: 1,000 pods/s). One line per run:

    scheduler 5000 nodes 10000 pods: 312.4 pods/s, ratio 1.16 to the 270 pods/s threshold;
    latency p50 1.20 s p99 3.40 s; peak RSS MB store 80 apiserver 300 scheduler 200 ...

Results go to bench/results/scheduler.json (`--quick`: 100 nodes and 500 pods, for a smoke
run, written to bench/results/scheduler-quick.json unless --results says where). Schema:

    {"benchmark": "scheduler", "date": ISO 8601 UTC, "commit": git HEAD, "cpus": int,
     "loadavg": [1, 5, 15 min load averages at the end: other work on the machine],
     "quick": bool, "kubelets": bool, "simulator_flags": [str],
     "reference": {"name": str, "pods_per_s": 270},
     "runs": [{"nodes": int, "pods": int, "seconds": float (first create to last bind),
               "pods_per_s": float, "ratio": float (pods_per_s / 270),
               "latency_s": {"p50": float, "p99": float, "max": float},
               "nodes_ready_s": float (simulator start to all Nodes Ready),
               "peak_rss_mb": {"store": float, "apiserver": float, "scheduler": float,
                               "simulator": float},
               "cpu_s": {same names: CPU seconds each used from the scheduler's start to
                         the last bind},
               "cpu_bound_pods_per_s": float (pods / (sum of cpu_s / cpus): the rate if
                         these processes had every core to themselves)}],
     "lines": [str]}

    .venv/bin/python bench/bench_scheduler.py [--quick] [--nodes 1000,5000] [--pods 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil
from _simcluster import (
    ROOT,
    RssSampler,
    apiserver,
    pct,
    scheduler,
    simulator,
    stopping,
    wait_nodes_ready,
    write_results,
)

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client.aio import AsyncClient
from tests.support import processes

THRESHOLD = 270.0  # pods/s, scheduler_perf SchedulingBasic 5000 nodes / 10k pods
REFERENCE = "kube-scheduler scheduler_perf SchedulingBasic 5000 nodes / 10k pods threshold"
NAMESPACE = "sched-bench"
SCHEDULER_PERF_NODES = ("--no-run-pods", "--heartbeat-qps", "50")
CREATORS = 32


def pod_template() -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "x", "namespace": NAMESPACE, "labels": {"app": "bench"}},
        "spec": {"containers": [{"name": "app", "image": "kemu/bootcamp:v1", "resources": {
            "requests": {"cpu": "100m", "memory": "128Mi"}}}]}})


async def schedule_pods(api: str, count: int, deadline: float) -> dict[str, Any]:
    """Create `count` pods and wait until all are bound; timings in seconds."""
    template = pod_template()
    async with AsyncClient(api, timeout=120) as client:
        ns = api_pb2.Object()
        ns.namespace.metadata.name = NAMESPACE
        await client.create(ns)
        rv = (await client.list("pods", NAMESPACE)).resource_version
        created: dict[str, float] = {}
        bound: dict[str, float] = {}
        all_bound = asyncio.Event()

        async def watch() -> None:
            async for ev in client.watch("pods", NAMESPACE, resource_version=rv):
                pod = ev.object.pod
                if ev.type == api_pb2.WatchEvent.BOOKMARK or not pod.spec.node_name:
                    continue
                if pod.metadata.name not in bound:
                    bound[pod.metadata.name] = time.perf_counter()
                    if len(bound) >= count:
                        all_bound.set()
                        return

        names = iter(range(count))

        async def create() -> None:
            for i in names:
                obj = api_pb2.Object()
                obj.CopyFrom(template)
                obj.pod.metadata.name = name = f"pod-{i:05d}"
                created[name] = time.perf_counter()
                await client.create(obj)

        watcher = asyncio.create_task(watch())
        started = time.perf_counter()
        await asyncio.gather(*(create() for _ in range(CREATORS)))
        created_s = time.perf_counter() - started
        try:
            await asyncio.wait_for(all_bound.wait(), deadline)
        except TimeoutError:
            raise TimeoutError(f"{len(bound)}/{count} pods bound after {deadline:.0f}s"
                               ) from None
        finally:
            watcher.cancel()
        seconds = max(bound.values()) - min(created.values())
        latency = [bound[n] - created[n] for n in created]
        return {"seconds": seconds, "pods_per_s": count / seconds, "create_s": created_s,
                "latency_s": {"p50": pct(latency, 0.5), "p99": pct(latency, 0.99),
                              "max": max(latency)}}


def run_one(nodes: int, pods: int, tmp: Path, sim_flags: tuple[str, ...]) -> dict[str, Any]:
    store = processes.kemu_store(tmp, extra=("--insecure",))
    api = apiserver(tmp, store.address)
    sampler = RssSampler()
    with processes.running(store, api), sampler:
        sampler.watch("store", store.pid)
        sampler.watch("apiserver", api.pid)
        sim = simulator(tmp, api.address, nodes, *sim_flags).start()
        with stopping(sim):
            sampler.watch("simulator", sim.pid)
            nodes_ready = asyncio.run(wait_nodes_ready(api.address, nodes,
                                                       60 + nodes / 20, sim))
            sched = scheduler(tmp, api.address)
            with processes.running(sched):
                sampler.watch("scheduler", sched.pid)
                sampler.mark()
                result = asyncio.run(schedule_pods(api.address, pods, 60 + pods / 20))
                if not sched.alive() or not sim.alive():
                    raise RuntimeError(f"a component died:\n{sched.tail()}\n{sim.tail()}")
    cpu = sampler.cpu_s()
    # The machine is shared (see loadavg): what the same CPU work would take on all cores.
    cpu_bound = pods / (sum(cpu.values()) / (psutil.cpu_count() or 1))
    return {"nodes": nodes, "pods": pods, **result,
            "ratio": result["pods_per_s"] / THRESHOLD, "nodes_ready_s": nodes_ready,
            "peak_rss_mb": sampler.peak_mb(), "cpu_s": cpu,
            "cpu_bound_pods_per_s": cpu_bound}


def line(run: dict[str, Any]) -> str:
    lat, rss = run["latency_s"], run["peak_rss_mb"]
    return (f"scheduler {run['nodes']} nodes {run['pods']} pods: "
            f"{run['pods_per_s']:.1f} pods/s, ratio {run['ratio']:.2f} to the "
            f"{THRESHOLD:.0f} pods/s threshold; latency p50 {lat['p50']:.2f} s p99 "
            f"{lat['p99']:.2f} s; peak RSS MB "
            + " ".join(f"{k} {v:.0f}" for k, v in rss.items())
            + "; CPU s " + " ".join(f"{k} {v:.0f}" for k, v in run["cpu_s"].items())
            + f" ({run['cpu_bound_pods_per_s']:.0f} pods/s on idle cores)")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100 nodes, 500 pods: a smoke run")
    p.add_argument("--nodes", default=None, help="comma-separated node counts "
                   "(default 1000,5000)")
    p.add_argument("--pods", type=int, default=None, help="pods per run (default 10000)")
    p.add_argument("--kubelets", action="store_true",
                   help="simulated kubelets make bound pods Running (default: they do not, "
                        "as in scheduler_perf)")
    p.add_argument("--results", type=Path, default=None, help="where to write the JSON")
    args = p.parse_args(argv)
    scales = [int(n) for n in (args.nodes or ("100" if args.quick else "1000,5000")
                               ).split(",")]
    pods = args.pods or (500 if args.quick else 10_000)
    results = args.results or ROOT / "bench" / "results" / (
        "scheduler-quick.json" if args.quick else "scheduler.json")
    sim_flags = () if args.kubelets else SCHEDULER_PERF_NODES
    runs, lines = [], []
    for nodes in scales:
        with tempfile.TemporaryDirectory(prefix="kemu-bench-sched-") as tmp:
            run = run_one(nodes, pods, Path(tmp), sim_flags)
        runs.append(run)
        lines.append(line(run))
        print(lines[-1], flush=True)
    write_results(results, {"benchmark": "scheduler", "quick": args.quick,
                            "kubelets": args.kubelets, "simulator_flags": list(sim_flags),
                            "reference": {"name": REFERENCE, "pods_per_s": THRESHOLD},
                            "runs": runs, "lines": lines})
    met = all(r["pods_per_s"] >= THRESHOLD for r in runs)
    print(f"target >= {THRESHOLD:.0f} pods/s: {'yes' if met else 'NO'}; results in {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
