"""Apiserver throughput and latency: create, update, get, list and watch fan-out, on kemu's
store and on etcd.

The same apiserver binary runs twice in one run, once on `kemu store` and once on a real
etcd 3.4 started here; the same asyncio gRPC client load drives both, so the ratio
isolates the store. Each line is bounded in time and count. Results go to
bench/results/apiserver.json. Reference: Kubernetes' API SLO, p99 <= 1 s for
single-object mutating calls.

Watch fan-out: 100 watchers of one namespace and one writer creating objects one at a
time; a line's latency is from the writer sending a create to a watcher receiving its
ADDED event (every watcher, every event), its rate the events delivered per second. The
watchers live in this process, so its own decoding is part of the figure (as it is for
any client).

Results file: {backend: {line: {"ops", "per_s", "p50_ms", "p99_ms"}}}, backend
"kemu-store" or "etcd" (the reference); bench/report.py reads it.

    .venv/bin/python bench/bench_apiserver.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kemu.api.v1 import api_pb2, api_pb2_grpc  # noqa: E402
from tests.support import processes  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "apiserver.json"
LIST_SIZE = 1000
WATCHERS = 100


def configmap(name: str, ns: str) -> api_pb2.Object:
    obj = api_pb2.Object()
    cm = obj.config_map
    cm.metadata.name, cm.metadata.namespace = name, ns
    cm.metadata.labels["bench"] = "yes"
    cm.data["payload"] = "x" * 200
    return obj


async def measure(op: Callable[[int], Awaitable[object]], concurrency: int, seconds: float,
                  max_ops: int) -> dict[str, float]:
    latencies: list[float] = []
    counter = iter(range(max_ops))
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        for i in counter:
            if time.monotonic() > deadline:
                return
            t0 = time.perf_counter()
            await op(i)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"ops": len(latencies), "per_s": len(latencies) / elapsed,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


async def run_suite(address: str, seconds: float) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    async with grpc.aio.insecure_channel(address) as ch:
        stub = api_pb2_grpc.ResourcesStub(ch)
        for ns in ("bench-c", "bench-l"):
            ns_obj = api_pb2.Object()
            ns_obj.namespace.metadata.name = ns
            await stub.Create(api_pb2.CreateRequest(object=ns_obj))
        for conc in (1, 16):
            async def create(i: int, conc: int = conc) -> object:
                return await stub.Create(api_pb2.CreateRequest(
                    object=configmap(f"c{conc}-{i}", "bench-c")))
            out[f"create c={conc}"] = await measure(create, conc, seconds, 20_000)

        async def update(i: int) -> object:
            key = api_pb2.ObjectKey(resource="configmaps", namespace="bench-c",
                                    name=f"c16-{i % 200}")
            for _ in range(20):  # a conflict with another worker on the same object: again
                got = await stub.Get(api_pb2.GetRequest(key=key))
                got.config_map.data["payload"] = f"v{i}"
                try:
                    return await stub.Update(api_pb2.UpdateRequest(object=got))
                except grpc.aio.AioRpcError as e:
                    if e.code() != grpc.StatusCode.ABORTED:
                        raise
            raise RuntimeError(f"update of {key.name} kept conflicting")
        out["update c=16"] = await measure(update, 16, seconds, 20_000)

        async def get(i: int) -> object:
            key = api_pb2.ObjectKey(resource="configmaps", namespace="bench-c",
                                    name=f"c16-{i % 200}")
            return await stub.Get(api_pb2.GetRequest(key=key))
        out["get c=16"] = await measure(get, 16, seconds, 50_000)

        for i in range(LIST_SIZE):
            await stub.Create(api_pb2.CreateRequest(object=configmap(f"l{i}", "bench-l")))

        async def list_(i: int) -> object:
            resp = await stub.List(api_pb2.ListRequest(resource="configmaps",
                                                       namespace="bench-l"))
            assert len(resp.items) == LIST_SIZE
            return resp
        out[f"list {LIST_SIZE} c=4"] = await measure(list_, 4, seconds, 2_000)
        out[f"watch {WATCHERS} watchers"] = await watch_fanout(stub, seconds)
    return out


async def watch_fanout(stub: api_pb2_grpc.ResourcesStub, seconds: float,
                       max_writes: int = 400) -> dict[str, float]:
    """One writer, WATCHERS watchers: latency from create sent to each ADDED received."""
    ns = "bench-w"
    ns_obj = api_pb2.Object()
    ns_obj.namespace.metadata.name = ns
    await stub.Create(api_pb2.CreateRequest(object=ns_obj))
    rv = (await stub.List(api_pb2.ListRequest(resource="configmaps", namespace=ns))
          ).resource_version
    sent: dict[str, float] = {}
    latencies: list[float] = []
    seen = [0] * WATCHERS
    opened = [asyncio.Event() for _ in range(WATCHERS)]
    calls = [stub.Watch(api_pb2.WatchRequest(resource="configmaps", namespace=ns,
                                             resource_version=rv)) for _ in range(WATCHERS)]

    async def watcher(n: int) -> None:
        opened[n].set()
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            async for ev in calls[n]:
                if ev.type == api_pb2.WatchEvent.ADDED:
                    name = ev.object.config_map.metadata.name
                    latencies.append(time.perf_counter() - sent[name])
                    seen[n] += 1

    tasks = [asyncio.create_task(watcher(n)) for n in range(WATCHERS)]
    await asyncio.gather(*(ev.wait() for ev in opened))
    started = time.perf_counter()
    deadline = time.monotonic() + seconds
    for i in range(max_writes):
        if time.monotonic() > deadline:
            break
        name = f"w{i}"
        sent[name] = time.perf_counter()
        await stub.Create(api_pb2.CreateRequest(object=configmap(name, ns)))
    delivered_by = time.monotonic() + 120
    while min(seen) < len(sent) and time.monotonic() < delivered_by:
        await asyncio.sleep(0.01)
    missing = WATCHERS * len(sent) - sum(seen)
    for call in calls:
        call.cancel()
    await asyncio.gather(*tasks)
    if missing:
        raise RuntimeError(f"watch fan-out: {missing} events never arrived")
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"ops": len(latencies), "per_s": len(latencies) / elapsed,
            "p50_ms": statistics.median(latencies) * 1000,
            "p99_ms": latencies[int(len(latencies) * 0.99) - 1] * 1000}


def run_backend(backend: str, seconds: float) -> dict[str, dict[str, float]]:
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        store = processes.kemu_store(tmp) if backend == "kemu-store" else processes.etcd(tmp)
        # The per-client rate limit off: one benchmark client would hit its 1,000/s.
        api = processes.kemu_apiserver(tmp, store.address,
                                       extra=("--max-requests-per-second", "0"))
        with processes.running(store, api):
            return asyncio.run(run_suite(api.address, seconds))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each line")
    args = parser.parse_args()
    results = {b: run_backend(b, args.seconds) for b in ("kemu-store", "etcd")}
    print(f"apiserver benchmark ({args.seconds:.0f}s per line; reference: the same apiserver "
          "on etcd 3.4; SLO p99 <= 1000 ms for mutating calls)")
    for line, ours in results["kemu-store"].items():
        ref = results["etcd"][line]
        print(f"  {line:<22} kemu-store {ours['per_s']:7.0f}/s p50 {ours['p50_ms']:6.1f} ms "
              f"p99 {ours['p99_ms']:6.1f} ms | on etcd {ref['per_s']:7.0f}/s p99 "
              f"{ref['p99_ms']:6.1f} ms | ratio {ours['per_s'] / ref['per_s']:.2f}")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(f"  results: {RESULTS.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
