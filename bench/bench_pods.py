"""Pod start latency through kemu against the same Docker work done directly.

kemu: a real store, apiserver and node agent (processes, as in production); each pod is
created with spec.nodeName set (no scheduler) and timed from the Create RPC to the moment a
watch shows it Running with Ready=True. Reference: the same containers made by this script
with the docker SDK in the same run: a pause sandbox on a bridge network, then the app
container joined to its network namespace, timed to the app's start returning. Both run
one pod at a time (`--single` times) and a burst of `--burst` pods at once.

Prints one line per measure with the ratio kemu / raw Docker and writes
bench/results/pods.json. Target: pod start p50 at most 1.3x raw Docker; burst p99 < 5 s.
Bounded in count and time; removes every container and network it made, by label.

    .venv/bin/python bench/bench_pods.py [--single 10] [--burst 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import secrets
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import docker

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kemu.api import manifest  # noqa: E402
from kemu.api.v1 import api_pb2  # noqa: E402
from kemu.client.aio import AsyncClient  # noqa: E402
from tests.support import processes  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "pods.json"
PAUSE = "kemu/pause:3.9"
APP = "kemu/bootcamp:v1"
BENCH_LABEL = "io.kemu.bench"
DEADLINE = 120.0  # seconds for any one measure


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "p50": pct(values, 0.5), "p99": pct(values, 0.99),
            "mean": statistics.fmean(values), "max": max(values)}


# ---- raw Docker -----------------------------------------------------------------------

class RawDocker:
    """The reference: the two containers of a pod, made directly."""

    def __init__(self, run_id: str) -> None:
        self.api = docker.APIClient(version="auto", timeout=120, max_pool_size=64)
        self.run_id = run_id
        self.network = f"kemu-bench-raw-{run_id}"
        self.api.create_network(self.network, driver="bridge", labels={BENCH_LABEL: run_id})
        self.pool = ThreadPoolExecutor(max_workers=64)
        self.n = 0

    def _pod(self) -> float:
        self.n += 1
        name = f"kemu-bench-{self.run_id}-{self.n}"
        labels = {BENCH_LABEL: self.run_id}
        t0 = time.perf_counter()
        sb = self.api.create_container(
            PAUSE, name=f"{name}-pause", labels=labels, hostname=name,
            host_config=self.api.create_host_config(network_mode=self.network,
                                                    ipc_mode="shareable"),
            networking_config=self.api.create_networking_config(
                {self.network: self.api.create_endpoint_config()}))
        self.api.start(sb["Id"])
        app = self.api.create_container(
            APP, name=f"{name}-app", labels=labels,
            host_config=self.api.create_host_config(network_mode=f"container:{sb['Id']}",
                                                    ipc_mode=f"container:{sb['Id']}"))
        self.api.start(app["Id"])
        return time.perf_counter() - t0

    async def pods(self, count: int, concurrent: bool) -> list[float]:
        loop = asyncio.get_running_loop()
        if concurrent:
            return list(await asyncio.gather(*(loop.run_in_executor(self.pool, self._pod)
                                               for _ in range(count))))
        return [await loop.run_in_executor(self.pool, self._pod) for _ in range(count)]

    def cleanup(self) -> None:
        for c in self.api.containers(all=True, filters={"label": f"{BENCH_LABEL}={self.run_id}"}):
            with contextlib.suppress(docker.errors.APIError):
                self.api.remove_container(c["Id"], force=True)
        with contextlib.suppress(docker.errors.APIError):
            self.api.remove_network(self.network)
        self.pool.shutdown(wait=False)


# ---- kemu -----------------------------------------------------------------------------

def pod(name: str, ns: str, node: str) -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
        "spec": {"nodeName": node, "terminationGracePeriodSeconds": 0,
                 "containers": [{"name": "app", "image": APP}]}})


def ready(obj: api_pb2.Object) -> bool:
    st = obj.pod.status
    return st.phase == "Running" and any(c.type == "Ready" and c.status == "True"
                                         for c in st.conditions)


class Kemu:
    def __init__(self, client: AsyncClient, node: str) -> None:
        self.client = client
        self.node = node
        self.n = 0

    async def pods(self, count: int, concurrent: bool, ns: str) -> list[float]:
        names = [f"p{self.n + i}" for i in range(count)]
        self.n += count
        started: dict[str, float] = {}
        done: dict[str, float] = {}
        all_ready = asyncio.Event()
        listed = await self.client.list("pods", ns)

        async def watch() -> None:
            async for ev in self.client.watch("pods", ns,
                                              resource_version=listed.resource_version):
                name = ev.object.pod.metadata.name
                if name in started and name not in done and ready(ev.object):
                    done[name] = time.perf_counter() - started[name]
                    if len(done) == count:
                        all_ready.set()
                        return

        watcher = asyncio.create_task(watch())

        async def create(name: str) -> None:
            started[name] = time.perf_counter()
            await self.client.create(pod(name, ns, self.node))

        try:
            if concurrent:
                await asyncio.gather(*(create(n) for n in names))
                await asyncio.wait_for(all_ready.wait(), DEADLINE)
            else:
                for name in names:
                    await create(name)
                    deadline = time.monotonic() + DEADLINE
                    while name not in done:
                        if time.monotonic() > deadline:
                            raise TimeoutError(f"pod {name} not ready in {DEADLINE:.0f}s")
                        await asyncio.sleep(0.005)
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await watcher
        return [done[n] for n in names]

    async def delete_all(self, ns: str) -> None:
        for obj in (await self.client.list("pods", ns)).items:
            with contextlib.suppress(Exception):
                await self.client.delete("pods", obj.pod.metadata.name, ns,
                                         grace_period_seconds=0)


def cleanup_node(node: str) -> None:
    api = docker.APIClient(version="auto")
    for c in api.containers(all=True, filters={"label": f"io.kemu.node={node}"}):
        with contextlib.suppress(docker.errors.APIError):
            api.remove_container(c["Id"], force=True)
    with contextlib.suppress(docker.errors.APIError):
        api.remove_network(f"kemu-{node}")


async def run(single: int, burst: int, server: str, node: str, run_id: str
              ) -> dict[str, Any]:
    raw = RawDocker(run_id)
    results: dict[str, Any] = {}
    try:
        async with AsyncClient(server) as client:
            kemu = Kemu(client, node)
            for ns in ("bench-warm", "bench-single", "bench-burst"):
                await client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                                        "metadata": {"name": ns}}))
            # Warm both paths once (image layers in the page cache, connections open).
            await raw.pods(2, concurrent=False)
            await kemu.pods(2, concurrent=False, ns="bench-warm")
            raw_single: list[float] = []
            kemu_single: list[float] = []
            for _ in range(single):  # interleaved, so drift hits both alike
                raw_single += await raw.pods(1, concurrent=False)
                kemu_single += await kemu.pods(1, concurrent=False, ns="bench-single")
            results["single"] = {"kemu": summary(kemu_single), "raw": summary(raw_single)}
            raw.cleanup()
            raw = RawDocker(run_id + "b")
            await kemu.delete_all("bench-warm")
            await kemu.delete_all("bench-single")
            results["burst"] = {"raw": summary(await raw.pods(burst, concurrent=True))}
            raw.cleanup()
            raw = RawDocker(run_id + "c")
            results["burst"]["kemu"] = summary(await kemu.pods(burst, concurrent=True,
                                                               ns="bench-burst"))
            await kemu.delete_all("bench-burst")
    finally:
        raw.cleanup()
    return results


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--single", type=int, default=10, help="pods started one at a time")
    p.add_argument("--burst", type=int, default=30, help="pods started at once")
    args = p.parse_args()
    run_id = secrets.token_hex(3)
    node = f"bench-{run_id}"
    with tempfile.TemporaryDirectory(prefix="kemu-bench-pods-") as tmpdir:
        tmp = Path(tmpdir)
        store = processes.kemu_store(tmp)
        api = processes.kemu_apiserver(tmp, store.address)
        port = processes.free_port()
        agent = processes.Proc(
            "agent", [processes.PYTHON, "-m", "kemu.nodeagent", "--insecure", "--apiserver", "",
                      "--node-name", node, "--node-ip", "127.0.0.1", "--port", str(port),
                      "--address", "127.0.0.1", "--data-dir", str(tmp / "agent"),
                      "--pause-image", PAUSE, "--workers", "32"],
            tmp / "agent.log", f"127.0.0.1:{port}")
        try:
            with processes.running(store, api):
                agent.args[agent.args.index("--apiserver") + 1] = api.address
                with processes.running(agent):
                    results = asyncio.run(run(args.single, args.burst, api.address, node,
                                              run_id))
        finally:
            cleanup_node(node)
    lines = []
    for name, label in (("single", "pod start"), ("burst", f"burst of {args.burst} pods")):
        k, r = results[name]["kemu"], results[name]["raw"]
        for q in ("p50", "p99"):
            ratio = k[q] / r[q] if r[q] else float("inf")
            results[name][f"ratio_{q}"] = ratio
            lines.append(f"{label} {q} kemu {k[q]:.2f}s raw docker {r[q]:.2f}s "
                         f"ratio {ratio:.2f}")
    for line in lines:
        print(line)
    verdict = {"single_p50_within_1.3x": results["single"]["ratio_p50"] <= 1.3,
               "burst_p99_under_5s": results["burst"]["kemu"]["p99"] < 5.0}
    print("targets: " + ", ".join(f"{k}={'yes' if v else 'NO'}" for k, v in verdict.items()))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps({"single": results["single"], "burst": results["burst"],
                                   "targets": verdict, "pause": PAUSE, "app": APP,
                                   "lines": lines}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
