"""Control plane memory holding a large cluster: 1,000 simulated nodes and 10,000 pods.

Real processes on loopback: kemu store, kemu apiserver, kemu scheduler and kemu
controller-manager (every controller), with `kemu simulate nodes --count 1000` (pods made
Running as they are bound, Leases renewed). The pods come from Deployments (10 of 1,000
replicas by default, one container requesting cpu 10m and memory 16Mi), created through
the ReplicaSet controller and placed by the scheduler. RSS (psutil, children included) of
every process is sampled every 0.25 s from start to the end of a settle period after all
pods are Running; the control plane figure is the peak of the sum of store, apiserver,
scheduler and controller-manager sampled at the same instants (the simulator stands for
the nodes and is reported apart).

Reference: a k3s server with a workload, about 1.6 GB (docs.k3s.io resource profiling);
target: under 500 MB. MB here are MiB. One line:

    memory 1000 nodes 10000 pods: control plane peak 450 MB (store 90 apiserver 200 ...),
    ratio 0.28 to k3s' 1600 MB; settled 430 MB

Results go to bench/results/memory.json (`--quick`: 100 nodes and 1,000 pods, to
bench/results/memory-quick.json unless --results says where). Schema:

    {"benchmark": "memory", "date": ISO 8601 UTC, "commit": git HEAD, "cpus": int,
     "loadavg": [1, 5, 15 min load averages at the end: other work on the machine],
     "quick": bool, "nodes": int, "pods": int, "deployments": int,
     "reference": {"name": str, "mb": 1600}, "target_mb": 500,
     "control_plane_peak_mb": float, "control_plane_settled_mb": float,
     "ratio": float (control_plane_peak_mb / 1600),
     "peak_rss_mb": {"store", "apiserver", "scheduler", "controller-manager",
                     "simulator": float (each one's own peak)},
     "settled_rss_mb": {same names: RSS after the settle period},
     "all_running_s": float (first Deployment created to all pods Running),
     "node_not_ready_events": int (NodeNotReady events up to the settle period's end: live nodes
                               marked NotReady by a lagging controller manager; 0 expected),
     "lines": [str]}

    .venv/bin/python bench/bench_memory.py [--quick] [--nodes 1000] [--pods 10000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _simcluster import (
    MB,
    ROOT,
    RssSampler,
    apiserver,
    controller_manager,
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

REFERENCE_MB = 1600.0
REFERENCE = "k3s server footprint with a workload (docs.k3s.io resource profiling)"
TARGET_MB = 500.0
NAMESPACE = "mem-bench"
CONTROL_PLANE = ("store", "apiserver", "scheduler", "controller-manager")


def deployment(name: str, replicas: int) -> Any:
    return manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                 "template": {"metadata": {"labels": {"app": name}}, "spec": {
                     "containers": [{"name": "app", "image": "kemu/bootcamp:v1",
                                     "resources": {"requests": {"cpu": "10m",
                                                                "memory": "16Mi"}}}]}}}})


async def fill(api: str, deployments: int, pods: int, deadline: float, settle: float,
               not_ready: list[str]) -> float:
    """Create the Deployments and wait until `pods` pods are Running, then `settle` seconds
    more (steady state: heartbeats, resyncs, no more creation); seconds taken to Running.
    Progress comes from a watch of the namespace's pods, as an informer follows them:
    listing all 10,000 pods every few seconds would measure the bench's own lists (a
    transient ~90 MB in the apiserver each), not the cluster it holds. A second watch
    collects the node lifecycle controller's NodeNotReady events into `not_ready`, until
    the settle period ends (a node silent during the burst is found 40 s later): a
    controller manager that falls behind its Lease informer under the burst marks live
    nodes NotReady, which the memory figure alone would not show."""
    async with AsyncClient(api, timeout=120) as client:
        ns = await client.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}}))
        phases: dict[str, str] = {}

        async def follow() -> None:
            async for event in client.watch("pods", NAMESPACE, allow_bookmarks=False,
                                            resource_version=ns.namespace.metadata
                                            .resource_version):
                name = event.object.pod.metadata.name
                if event.type == api_pb2.WatchEvent.DELETED:
                    phases.pop(name, None)
                else:
                    phases[name] = event.object.pod.status.phase

        async def follow_not_ready() -> None:
            async for event in client.watch("events", "", allow_bookmarks=False,
                                            field_selector="reason=NodeNotReady",
                                            resource_version=ns.namespace.metadata
                                            .resource_version):
                if event.type == api_pb2.WatchEvent.ADDED:
                    not_ready.append(event.object.event.involved_object.name)

        watching = asyncio.create_task(follow())
        flapping = asyncio.create_task(follow_not_ready())
        try:
            started = time.monotonic()
            per = pods // deployments
            for i in range(deployments):
                await client.create(deployment(f"d{i}", per + (1 if i < pods % deployments
                                                              else 0)))
            while True:
                running = sum(1 for phase in phases.values() if phase == "Running")
                if running >= pods:
                    took = time.monotonic() - started
                    await asyncio.sleep(settle)
                    return took
                if watching.done():
                    watching.result()  # the watch failed: say why
                    raise RuntimeError("the pod watch ended")
                if time.monotonic() - started > deadline:
                    raise TimeoutError(f"{running}/{pods} pods Running after {deadline:.0f}s")
                await asyncio.sleep(1.0)
        finally:
            watching.cancel()
            flapping.cancel()


def run(nodes: int, pods: int, deployments: int, settle: float, tmp: Path
        ) -> dict[str, Any]:
    store = processes.kemu_store(tmp, extra=("--insecure",))
    api = apiserver(tmp, store.address)
    sampler = RssSampler()
    sampler.group = CONTROL_PLANE
    with processes.running(store, api), sampler:
        sampler.watch("store", store.pid)
        sampler.watch("apiserver", api.pid)
        sched, cm = scheduler(tmp, api.address), controller_manager(tmp, api.address)
        with processes.running(sched, cm):
            sampler.watch("scheduler", sched.pid)
            sampler.watch("controller-manager", cm.pid)
            sim = simulator(tmp, api.address, nodes).start()
            with stopping(sim):
                sampler.watch("simulator", sim.pid)
                asyncio.run(wait_nodes_ready(api.address, nodes, 60 + nodes / 20, sim))
                not_ready: list[str] = []
                took = asyncio.run(fill(api.address, deployments, pods, 120 + pods / 10,
                                        settle, not_ready))
                sampler.sample()
                settled = dict(sampler.last)
                for p in (sched, cm, sim):
                    if not p.alive():
                        raise RuntimeError(f"{p.name} died:\n{p.tail()}")
    return {"nodes": nodes, "pods": pods, "deployments": deployments,
            "control_plane_peak_mb": round(sampler.group_peak / MB, 1),
            "control_plane_settled_mb": round(sum(settled.get(n, 0)
                                                  for n in CONTROL_PLANE) / MB, 1),
            "peak_rss_mb": sampler.peak_mb(),
            "settled_rss_mb": {k: round(v / MB, 1) for k, v in settled.items()},
            "cpu_s": sampler.cpu_s(), "all_running_s": round(took, 1),
            "node_not_ready_events": len(not_ready)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="100 nodes, 1,000 pods: a smoke run")
    p.add_argument("--nodes", type=int, default=None, help="default 1000")
    p.add_argument("--pods", type=int, default=None, help="default 10000")
    p.add_argument("--deployments", type=int, default=10)
    p.add_argument("--settle", type=float, default=45.0,
                   help="seconds to keep sampling once every pod is Running (default 45: "
                        "past the 40 s grace in which a node silent during the burst is "
                        "found NotReady)")
    p.add_argument("--results", type=Path, default=None, help="where to write the JSON")
    args = p.parse_args(argv)
    nodes = args.nodes or (100 if args.quick else 1000)
    pods = args.pods or (1000 if args.quick else 10_000)
    results = args.results or ROOT / "bench" / "results" / (
        "memory-quick.json" if args.quick else "memory.json")
    with tempfile.TemporaryDirectory(prefix="kemu-bench-mem-") as tmp:
        got = run(nodes, pods, args.deployments, args.settle, Path(tmp))
    ratio = got["control_plane_peak_mb"] / REFERENCE_MB
    rss = got["peak_rss_mb"]
    line = (f"memory {nodes} nodes {pods} pods: control plane peak "
            f"{got['control_plane_peak_mb']:.0f} MB ("
            + " ".join(f"{n} {rss.get(n, 0):.0f}" for n in CONTROL_PLANE)
            + f"), ratio {ratio:.2f} to k3s' {REFERENCE_MB:.0f} MB; settled "
            f"{got['control_plane_settled_mb']:.0f} MB; simulator {rss.get('simulator', 0):.0f}"
            f" MB; all Running in {got['all_running_s']:.0f} s; NodeNotReady events "
            f"{got['node_not_ready_events']}")
    print(line, flush=True)
    met = got["control_plane_peak_mb"] < TARGET_MB
    print(f"target under {TARGET_MB:.0f} MB: {'yes' if met else 'NO'}; results in {results}")
    write_results(results, {"benchmark": "memory", "quick": args.quick, **got,
                            "reference": {"name": REFERENCE, "mb": REFERENCE_MB},
                            "target_mb": TARGET_MB, "ratio": ratio, "lines": [line]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
