"""Benchmark kemu's store against a real etcd 3.4 on the same machine.

Both servers start fresh (tmp data dirs, both fsyncing every commit) and get
the same client workload from the same code: grpc.aio clients in separate
worker processes, so the client is not the only bottleneck. Lines:

    put c=1 / c=64        Put throughput (256 B values)
    range c=1 / c=64      single-key Range throughput
    watch p50 / p99       put acknowledged -> event received, in ms
    store rss 100k keys   RSS of the kemu store holding 100,000 keys of 256 B
    @100k lines           with those 100,000 keys in: range c=64 throughput, and a watch
                          fan-out to 1,000 concurrent watch streams (put sent -> event
                          received at each watcher, p50/p99 ms, events/s)
    reference             range c=64 against a grpc.aio handler that does nothing:
                          the ceiling any Python grpc.aio server has on this machine

Ratios are kemu/etcd for throughput and etcd/kemu for latency, so the target
(>= 0.5) reads the same way on every line. Everything is bounded in count and
time; the whole run takes under two minutes. Results go to bench/results/store.json.

    .venv/bin/python bench/bench_store.py [--seconds 3] [--no-etcd]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import grpc
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kemu.api.etcd import rpc_pb2, rpc_pb2_grpc  # noqa: E402

VALUE = b"v" * 256
CLIENT_PROCS = 2  # worker processes for the concurrent lines (the machine has 2 cores)


# ---------------------------------------------------------------- servers


@dataclass
class Proc:
    name: str
    endpoint: str
    proc: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(endpoint: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server on {endpoint} exited with {proc.returncode}")
        try:
            with grpc.insecure_channel(endpoint) as ch:
                rpc_pb2_grpc.KVStub(ch).Range(rpc_pb2.RangeRequest(key=b"x"), timeout=1)
            return
        except grpc.RpcError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {endpoint} not ready after {timeout}s")


def start_kemu(data_dir: Path) -> Proc:
    endpoint = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "kemu.services.store",
            "--listen",
            endpoint,
            "--data-dir",
            str(data_dir),
            "--fsync",
            "--insecure",
            "--log-level",
            "WARNING",
        ],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(endpoint, proc)
    return Proc("kemu", endpoint, proc)


def start_etcd(data_dir: Path) -> Proc:
    port, peer = free_port(), free_port()
    endpoint = f"127.0.0.1:{port}"
    proc = subprocess.Popen(
        [
            shutil.which("etcd") or "/usr/bin/etcd",
            "--data-dir",
            str(data_dir),
            "--listen-client-urls",
            f"http://{endpoint}",
            "--advertise-client-urls",
            f"http://{endpoint}",
            "--listen-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-advertise-peer-urls",
            f"http://127.0.0.1:{peer}",
            "--initial-cluster",
            f"default=http://127.0.0.1:{peer}",
            "--log-level",
            "error",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(endpoint, proc)
    return Proc("etcd", endpoint, proc)


class _EmptyKV(rpc_pb2_grpc.KVServicer):
    """Answers without doing anything: the ceiling of a Python grpc.aio server."""

    async def Range(self, request: Any, context: Any) -> rpc_pb2.RangeResponse:
        return rpc_pb2.RangeResponse()

    async def Put(self, request: Any, context: Any) -> rpc_pb2.PutResponse:
        return rpc_pb2.PutResponse()


async def _serve_empty(endpoint: str) -> None:
    server = grpc.aio.server()
    rpc_pb2_grpc.add_KVServicer_to_server(_EmptyKV(), server)
    server.add_insecure_port(endpoint)
    await server.start()
    await server.wait_for_termination()


def start_empty() -> Proc:
    endpoint = f"127.0.0.1:{free_port()}"
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve-empty", endpoint],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_ready(endpoint, proc)
    return Proc("empty", endpoint, proc)


# ---------------------------------------------------------------- client workers


def _worker(endpoint: str, op: str, concurrency: int, seconds: float, tag: int) -> int:
    """Runs in a worker process: as many ops as possible for `seconds`."""
    return asyncio.run(_worker_async(endpoint, op, concurrency, seconds, tag))


async def _worker_async(endpoint: str, op: str, concurrency: int, seconds: float, tag: int) -> int:
    count = 0
    async with grpc.aio.insecure_channel(endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        await kv.Put(rpc_pb2.PutRequest(key=b"bench/get", value=VALUE))
        deadline = time.monotonic() + seconds

        async def loop(c: int) -> None:
            nonlocal count
            i = 0
            get = rpc_pb2.RangeRequest(key=b"bench/get")
            while time.monotonic() < deadline:
                if op == "put":
                    key = b"bench/put/%d/%d/%d" % (tag, c, i % 1000)
                    await kv.Put(rpc_pb2.PutRequest(key=key, value=VALUE))
                else:
                    await kv.Range(get)
                i += 1
                count += 1

        await asyncio.gather(*(loop(c) for c in range(concurrency)))
    return count


def throughput(
    pool: ProcessPoolExecutor, endpoint: str, op: str, clients: int, seconds: float
) -> float:
    procs = 1 if clients == 1 else CLIENT_PROCS
    per = clients // procs
    started = time.monotonic()
    futures = [pool.submit(_worker, endpoint, op, per, seconds, t) for t in range(procs)]
    total = sum(f.result() for f in futures)
    return total / max(time.monotonic() - started - 0.0, seconds)


# ---------------------------------------------------------------- watch latency


async def watch_latency(endpoint: str, n: int = 300) -> list[float]:
    """ms from a put's acknowledgement to the watcher receiving its event."""
    latencies: list[float] = []
    async with (
        grpc.aio.insecure_channel(endpoint) as wch,
        grpc.aio.insecure_channel(endpoint) as pch,
    ):
        kv = rpc_pb2_grpc.KVStub(pch)
        requests: asyncio.Queue[rpc_pb2.WatchRequest] = asyncio.Queue()
        await requests.put(
            rpc_pb2.WatchRequest(
                create_request=rpc_pb2.WatchCreateRequest(
                    key=b"bench/watch/", range_end=b"bench/watch0"
                )
            )
        )

        async def gen() -> Any:
            while True:
                yield await requests.get()

        call = rpc_pb2_grpc.WatchStub(wch).Watch(gen())
        it = call.__aiter__()
        created = await it.__anext__()
        assert created.created
        for i in range(n):
            await kv.Put(rpc_pb2.PutRequest(key=b"bench/watch/%d" % i, value=VALUE))
            acked = time.perf_counter()
            while True:
                resp = await asyncio.wait_for(it.__anext__(), 10)
                if resp.events:
                    break
            latencies.append(max(0.0, time.perf_counter() - acked) * 1000)
        call.cancel()
    return latencies


async def fanout(endpoint: str, watchers: int = 1000, puts: int = 50,
                 channels: int = 10) -> dict[str, float]:
    """`watchers` watch streams (spread over `channels` connections) on one prefix; one
    writer puts `puts` keys one at a time: ms from each put being sent to each watcher's
    event (an event may come in before the put's answer), and events delivered per
    second."""
    latencies: list[float] = []
    sent: dict[bytes, float] = {}
    chans = [grpc.aio.insecure_channel(endpoint) for _ in range(channels)]
    seen = [0] * watchers
    calls: list[Any] = []

    async def watch(n: int, created: asyncio.Event) -> None:
        req = rpc_pb2.WatchRequest(create_request=rpc_pb2.WatchCreateRequest(
            key=b"bench/fan/", range_end=b"bench/fan0"))

        async def gen() -> Any:
            yield req
            await asyncio.Event().wait()  # keep the request side open

        call = rpc_pb2_grpc.WatchStub(chans[n % channels]).Watch(gen())
        calls.append(call)
        with contextlib.suppress(asyncio.CancelledError, grpc.aio.AioRpcError):
            async for resp in call:
                if resp.created:
                    created.set()
                for ev in resp.events:
                    t = sent.get(ev.kv.key)
                    if t is not None:
                        latencies.append(max(0.0, time.perf_counter() - t) * 1000)
                    seen[n] += 1

    try:
        created = [asyncio.Event() for _ in range(watchers)]
        tasks = [asyncio.create_task(watch(n, created[n])) for n in range(watchers)]
        await asyncio.wait_for(asyncio.gather(*(e.wait() for e in created)), 60)
        async with grpc.aio.insecure_channel(endpoint) as pch:
            kv = rpc_pb2_grpc.KVStub(pch)
            started = time.perf_counter()
            for i in range(puts):
                key = b"bench/fan/%d" % i
                sent[key] = time.perf_counter()
                await kv.Put(rpc_pb2.PutRequest(key=key, value=VALUE))
            deadline = time.monotonic() + 120
            while min(seen) < puts and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            elapsed = time.perf_counter() - started
        for call in calls:
            call.cancel()
        await asyncio.gather(*tasks)
    finally:
        for ch in chans:
            await ch.close()
    if min(seen) < puts:
        raise RuntimeError(f"fan-out: {watchers * puts - sum(seen)} events never arrived")
    latencies.sort()
    return {"fanout p50": statistics.median(latencies),
            "fanout p99": latencies[int(len(latencies) * 0.99) - 1],
            "fanout events/s": sum(seen) / elapsed}


# ---------------------------------------------------------------- memory


async def load_keys(endpoint: str, n: int = 100_000, per_txn: int = 100) -> None:
    async with grpc.aio.insecure_channel(endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)
        sem = asyncio.Semaphore(16)

        async def txn(start: int) -> None:
            async with sem:
                ops = [
                    rpc_pb2.RequestOp(
                        request_put=rpc_pb2.PutRequest(key=b"bench/mem/%08d" % i, value=VALUE)
                    )
                    for i in range(start, start + per_txn)
                ]
                await kv.Txn(rpc_pb2.TxnRequest(success=ops), timeout=60)

        await asyncio.gather(*(txn(s) for s in range(0, n, per_txn)))
        resp = await kv.Range(
            rpc_pb2.RangeRequest(key=b"bench/mem/", range_end=b"bench/mem0", count_only=True)
        )
        assert resp.count == n, resp.count


def rss_mb(pid: int) -> float:
    return float(psutil.Process(pid).memory_info().rss) / 1e6


# ---------------------------------------------------------------- main


def measure_all(
    servers: list[Proc], pool: ProcessPoolExecutor, seconds: float, rounds: int
) -> dict[str, dict[str, float]]:
    """Every line for every server, interleaved and repeated; best of the rounds.

    The machine may be shared, so the servers take turns line by line (both
    stay up, the idle one costs nothing) and each keeps its best round.
    """
    out: dict[str, dict[str, float]] = {s.name: {} for s in servers}
    for server in servers:
        throughput(pool, server.endpoint, "put", 8, 0.5)  # warm up connections and caches
    for r in range(rounds):
        order = servers if r % 2 == 0 else servers[::-1]
        for op in ("put", "range"):
            for clients in (1, 64):
                key = f"{op} c={clients}"
                for server in order:
                    value = throughput(pool, server.endpoint, op, clients, seconds)
                    out[server.name][key] = max(out[server.name].get(key, 0.0), value)
        for server in order:
            lat = asyncio.run(watch_latency(server.endpoint))
            p50, p99 = statistics.median(lat), statistics.quantiles(lat, n=100)[98]
            res = out[server.name]
            res["watch p50"] = min(res.get("watch p50", p50), p50)
            res["watch p99"] = min(res.get("watch p99", p99), p99)
    for server in servers:
        started = time.monotonic()
        asyncio.run(load_keys(server.endpoint))
        out[server.name]["load 100k s"] = time.monotonic() - started
        out[server.name]["rss MB"] = rss_mb(server.proc.pid)
    for r in range(rounds):  # with the 100,000 keys in
        for server in (servers if r % 2 == 0 else servers[::-1]):
            res = out[server.name]
            value = throughput(pool, server.endpoint, "range", 64, seconds)
            res["range c=64 @100k"] = max(res.get("range c=64 @100k", 0.0), value)
            fan = asyncio.run(fanout(server.endpoint))
            res["watch 1000 p50 @100k"] = min(res.get("watch 1000 p50 @100k", 1e9),
                                              fan["fanout p50"])
            res["watch 1000 p99 @100k"] = min(res.get("watch 1000 p99 @100k", 1e9),
                                              fan["fanout p99"])
            res["watch 1000 events/s"] = max(res.get("watch 1000 events/s", 0.0),
                                             fan["fanout events/s"])
        if r + 1 < rounds:  # a fresh prefix for the next round's fan-out
            for server in servers:
                asyncio.run(_delete_prefix(server.endpoint, b"bench/fan/"))
    return out


async def _delete_prefix(endpoint: str, prefix: bytes) -> None:
    async with grpc.aio.insecure_channel(endpoint) as ch:
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        await rpc_pb2_grpc.KVStub(ch).DeleteRange(
            rpc_pb2.DeleteRangeRequest(key=prefix, range_end=end))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="seconds per throughput line")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds (best kept)")
    parser.add_argument("--no-etcd", action="store_true", help="measure kemu only")
    parser.add_argument("--out", type=Path, default=REPO / "bench/results/store.json")
    parser.add_argument("--serve-empty", metavar="HOST:PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_empty:
        asyncio.run(_serve_empty(args.serve_empty))
        return 0
    results: dict[str, dict[str, float]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="bench-store-") as tmp,
        ProcessPoolExecutor(CLIENT_PROCS, mp_context=get_context("spawn")) as pool,
    ):
        servers: list[Proc] = []
        try:
            servers.append(start_kemu(Path(tmp) / "kemu"))
            if not args.no_etcd:
                servers.append(start_etcd(Path(tmp) / "etcd"))
            results = measure_all(servers, pool, args.seconds, args.rounds)
            # Reference: the same range load against a handler that does nothing.
            empty = start_empty()
            servers.append(empty)
            throughput(pool, empty.endpoint, "range", 8, 0.5)
            ceiling = max(
                throughput(pool, empty.endpoint, "range", 64, args.seconds)
                for _ in range(args.rounds)
            )
        finally:
            for server in servers:
                server.stop()
    kemu, etcd = results["kemu"], results.get("etcd", {})
    lines = []
    for key in ("put c=1", "put c=64", "range c=1", "range c=64", "watch p50", "watch p99",
                "range c=64 @100k", "watch 1000 p50 @100k", "watch 1000 p99 @100k",
                "watch 1000 events/s"):
        k, e = kemu[key], etcd.get(key)
        latency = key.startswith("watch") and not key.endswith("/s")
        unit = "ms" if latency else "/s"
        ratio = None if e is None else (e / k if latency else k / e) if k else 0.0
        fmt = "{:.2f}{}" if latency else "{:.0f}{}"
        line = f"{key:<20} kemu {fmt.format(k, unit):>9}"
        if e is not None:
            line += f"  etcd {fmt.format(e, unit):>9}  ratio {ratio:.2f}"
        print(line)
        lines.append({"name": key, "kemu": k, "etcd": e, "ratio": ratio, "unit": unit})
    print(
        f"store rss 100k keys: {kemu['rss MB']:.1f} MB (target < 100 MB)"
        + (f"  [etcd {etcd['rss MB']:.1f} MB]" if etcd else "")
    )
    print(
        f"load 100k keys (txns of 100): kemu {kemu['load 100k s']:.1f}s"
        + (f"  etcd {etcd['load 100k s']:.1f}s" if etcd else "")
    )
    print(
        f"reference: range c=64 against an empty grpc.aio handler {ceiling:.0f}/s"
        f" (kemu reaches {kemu['range c=64'] / ceiling:.0%} of it)"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "lines": lines,
        "store_rss_mb_100k_keys": kemu["rss MB"],
        "etcd_rss_mb_100k_keys": etcd.get("rss MB"),
        "raw": results,
        "empty_grpc_aio_handler_range_c64": ceiling,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "seconds_per_line": args.seconds,
        "rounds": args.rounds,
        "client_processes": CLIENT_PROCS,
    }
    tmp_out = args.out.with_suffix(".json.tmp")
    tmp_out.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp_out, args.out)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
