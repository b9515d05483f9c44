"""Service data path: TCP throughput and HTTP rate and latency, ClusterIP against pod IP.

Topology (bench/_netns_topology.py), built and removed here: a "node" network namespace
routes between a "client" pod namespace (10.244.0.2) and a "backend" pod namespace
(10.244.0.5), each joined to it by a veth pair, ptp style (as kind's kindnet). The real
`Proxier` programs, in the node namespace only (`SubprocessIptables(netns=node)`), one
Service with ClusterIP 10.96.7.7 and one endpoint, the backend: port 5201 -> 5201 (iperf3)
and port 80 -> 8080 (HTTP). Client traffic to the ClusterIP is therefore forwarded and
DNATed in the node's nat PREROUTING, as pod -> ClusterIP traffic is in Kubernetes; the
reference is the same traffic sent to the pod IP, forwarded by the same node (whose nat
table and conntrack are then the same, only the Service rules are not hit).
`--extra-services N` adds N other Services (with endpoints) that sort before the measured
one: each new ClusterIP connection then walks N more rules of the services chain (as does
each new direct one, which walks the whole chain without matching).

Measures, alternating the two targets round by round (direct, ClusterIP, then ClusterIP,
direct, ...) to cancel drift; reported are the median over rounds of each target and the
median of the per-round ratios clusterip/direct (the two runs of a round are back to back):
  - tcp: iperf3 (Debian's), one stream, `-t SECONDS -O 1`, received Gbit/s;
  - http: wrk (Debian's) against a small asyncio HTTP/1.1 server in the backend (a fixed
    22-byte body, keep-alive): requests/s with 16 keep-alive connections; requests/s with
    16 connections and `Connection: close` (one new connection, so one DNAT, per request);
    and p50/p99 latency with one connection (unloaded, so not the queue wrk keeps full).
    Without wrk, a sequential Python request loop on one connection measures instead.
The two pods keep no TIME_WAIT sockets (net.ipv4.tcp_max_tw_buckets=0 in their
namespaces): otherwise one client exhausts its ephemeral ports within seconds of
connection-per-request traffic, and both paths crawl at the pace ports free up.
iperf3 and wrk are installed with apt-get when missing. Results go to
bench/results/datapath.json. Target: ClusterIP at least 0.95x direct (tcp Gbit/s, http and
http_close requests/s); missing it is reported, not an error. Needs root (network namespaces).

    .venv/bin/python bench/bench_datapath.py [--seconds 1] [--rounds 11] [--extra-services 0]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from _netns_topology import GATEWAY, NodeTopology  # noqa: E402

from kemu.nodeagent.proxy import (  # noqa: E402
    EndpointInfo,
    Proxier,
    ProxyConfig,
    ServicePortInfo,
    SubprocessIptables,
)

RESULTS = ROOT / "bench" / "results" / "datapath.json"
CLIENT_IP = "10.244.0.2"
BACKEND_IP = "10.244.0.5"
CLUSTER_IP = "10.96.7.7"
IPERF_PORT = 5201
HTTP_PORT = 8080
SVC_HTTP_PORT = 80
TARGET = 0.95
CONNS = 16

IPERF_SVC = ServicePortInfo("default", "datapath", "iperf", "TCP", CLUSTER_IP, IPERF_PORT)
HTTP_SVC = ServicePortInfo("default", "datapath", "http", "TCP", CLUSTER_IP, SVC_HTTP_PORT)

# The backend's HTTP server: answers every request at once with a fixed body, honours
# keep-alive and `Connection: close`. One process, one core, as a small pod would be.
HTTP_SERVER = r"""
import asyncio, sys
BODY = b"hello from kemu bench\n"
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" % len(BODY)
KEEP, CLOSE = HEAD + b"\r\n" + BODY, HEAD + b"Connection: close\r\n\r\n" + BODY

class Http(asyncio.Protocol):
    def connection_made(self, transport):
        self.t, self.buf = transport, b""
    def data_received(self, data):
        self.buf += data
        while (i := self.buf.find(b"\r\n\r\n")) >= 0:
            req, self.buf = self.buf[:i], self.buf[i + 4:]
            if b"connection: close" in req.lower():
                self.t.write(CLOSE)
                self.t.close()
                return
            self.t.write(KEEP)

async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Http, sys.argv[1], int(sys.argv[2]), backlog=1024)
    await server.serve_forever()

asyncio.run(main())
"""

# The fallback client when wrk is missing: sequential GETs on one connection (or one
# connection per request) for a while; prints requests/s and latency percentiles as JSON.
PY_CLIENT = r"""
import json, socket, sys, time
host, port, seconds, close = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4] == "1"
req = b"GET / HTTP/1.1\r\nHost: bench\r\n" + (b"Connection: close\r\n" if close else b"") + b"\r\n"
lat, errors, sock = [], 0, None
start = time.monotonic()
end = start + seconds
while time.monotonic() < end:
    t0 = time.perf_counter()
    try:
        if sock is None:
            sock = socket.create_connection((host, port), timeout=5)
        sock.sendall(req)
        buf = b""
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("closed")
            buf += chunk
        head, body = buf.split(b"\r\n\r\n", 1)
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        while len(body) < length:
            chunk = sock.recv(65536)
            if not chunk:
                raise OSError("closed")
            body += chunk
        lat.append(time.perf_counter() - t0)
        if close:
            sock.close()
            sock = None
    except OSError:
        errors += 1
        if sock is not None:
            sock.close()
        sock = None
elapsed = time.monotonic() - start
lat.sort()
pick = lambda q: lat[min(len(lat) - 1, int(len(lat) * q))] * 1000 if lat else None
print(json.dumps({"rps": len(lat) / elapsed, "requests": len(lat), "errors": errors,
                  "p50_ms": pick(0.5), "p99_ms": pick(0.99)}))
"""


def ensure_tools() -> dict[str, bool]:
    """iperf3 (required) and wrk (else the Python loop) from Debian, installed when missing."""
    missing = [tool for tool in ("iperf3", "wrk") if shutil.which(tool) is None]
    if missing and shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *missing]
        if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
            # Package lists may be absent or stale: refresh once and retry.
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True,
                           check=False)
            subprocess.run(install, env=env, capture_output=True, check=False)
    if shutil.which("iperf3") is None:
        raise SystemExit("bench_datapath: iperf3 is missing and could not be installed")
    have_wrk = shutil.which("wrk") is not None
    if not have_wrk:
        print("bench_datapath: wrk is missing; HTTP is measured by a sequential Python loop",
              file=sys.stderr)
    return {"iperf3": True, "wrk": have_wrk}


# ---- the measures ---------------------------------------------------------------------

def iperf3(topo: NodeTopology, host: str, port: int, seconds: float) -> dict[str, Any]:
    """One iperf3 TCP run from the client pod: received Gbit/s and retransmits."""
    out = topo.run(topo.ns("client"), "iperf3", "-c", host, "-p", str(port), "-J",
                   "-t", str(seconds), "-O", "1", timeout=seconds + 60).stdout
    data = json.loads(out)
    if "error" in data:
        raise RuntimeError(f"iperf3 to {host}:{port}: {data['error']}")
    end = data["end"]
    return {"gbps": end["sum_received"]["bits_per_second"] / 1e9,
            "retransmits": end["sum_sent"].get("retransmits", 0)}


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _wrk_ms(out: str, pct: str) -> float | None:
    m = re.search(rf"^\s*{pct}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
    return float(m.group(1)) * _UNIT_MS[m.group(2)] if m else None


def wrk(topo: NodeTopology, host: str, port: int, seconds: float, conns: int,
        close: bool) -> dict[str, Any]:
    """One wrk run (one thread) from the client pod: requests/s, latency, errors."""
    argv = ["wrk", "-t", "1", "-c", str(conns), "-d", f"{seconds:g}s", "--latency",
            "--timeout", "5s"]
    if close:
        argv += ["-H", "Connection: close"]
    out = topo.run(topo.ns("client"), *argv, f"http://{host}:{port}/",
                   timeout=seconds + 60).stdout
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.M)
    total = re.search(r"^\s*(\d+) requests in", out, re.M)
    if not rps or not total or int(total.group(1)) == 0:
        raise RuntimeError(f"wrk to {host}:{port} carried no requests:\n{out}")
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     out)
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = sum(int(g) for g in sock.groups()) if sock else 0
    return {"rps": float(rps.group(1)), "requests": int(total.group(1)),
            "errors": errors + (int(non2xx.group(1)) if non2xx else 0),
            "p50_ms": _wrk_ms(out, "50"), "p99_ms": _wrk_ms(out, "99")}


def pyloop(topo: NodeTopology, host: str, port: int, seconds: float, close: bool
           ) -> dict[str, Any]:
    """The fallback HTTP client: a sequential request loop on one connection."""
    out = topo.run(topo.ns("client"), sys.executable, "-c", PY_CLIENT, host, str(port),
                   str(seconds), "1" if close else "0", timeout=seconds + 60).stdout
    result: dict[str, Any] = json.loads(out)
    if not result["requests"]:
        raise RuntimeError(f"python client to {host}:{port} carried no requests")
    return result


Measure = Callable[[str, int], dict[str, Any]]
Targets = dict[str, tuple[str, int]]


def alternate(rounds: int, targets: Targets, measure: Measure) -> dict[str, list[dict[str, Any]]]:
    """Measure each target `rounds` times, in the order AB BA AB ... to cancel drift."""
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in targets}
    names = list(targets)
    for r in range(rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            runs[name].append(measure(*targets[name]))
    return runs


def med(runs: list[dict[str, Any]], key: str) -> float | None:
    values = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(values) if values else None


def summarise(runs: dict[str, list[dict[str, Any]]], key: str) -> dict[str, Any]:
    """Medians of `key` per target, and the median of the per-round ratios clusterip/direct.

    The two targets of a round run back to back, so their ratio is the least exposed to
    drift and to other load on the machine; its median over rounds is the figure reported.
    """
    pairs = [c[key] / d[key] for d, c in zip(runs["direct"], runs["clusterip"], strict=True)
             if c.get(key) is not None and d.get(key)]
    return {"direct": med(runs["direct"], key), "clusterip": med(runs["clusterip"], key),
            "ratio": statistics.median(pairs) if pairs else None, "round_ratios": pairs}


# ---- the run ---------------------------------------------------------------------------

def filler_services(n: int) -> tuple[list[ServicePortInfo], dict[str, list[EndpointInfo]]]:
    """N other Services, each with one endpoint, sorting before the measured one."""
    svcs = [ServicePortInfo("bench-filler", f"svc-{i:05d}", "http", "TCP",
                            f"10.100.{i // 250}.{i % 250 + 1}", 80) for i in range(n)]
    eps = {s.key: [EndpointInfo(f"10.245.{i // 250}.{i % 250 + 1}", 8080)]
           for i, s in enumerate(svcs)}
    return svcs, eps


def dnat_packets(topo: NodeTopology) -> int:
    """Packets counted by the DNAT rules in the node (one per new ClusterIP connection)."""
    out = topo.run(topo.node, "iptables-save", "-c", "-t", "nat").stdout
    total = 0
    for line in out.splitlines():
        m = re.match(r"^\[(\d+):\d+\] -A \S+ .*-j DNAT", line)
        if m:
            total += int(m.group(1))
    return total


def run(seconds: float, rounds: int, extra_services: int, have_wrk: bool,
        log_dir: Path) -> dict[str, Any]:
    """Build the topology, program the Service, measure both paths, tear it all down."""
    with NodeTopology({"client": CLIENT_IP, "backend": BACKEND_IP}) as topo:
        backend = topo.ns("backend")
        for role in ("client", "backend"):
            # No TIME_WAIT sockets in the pods: with them one client runs out of its 28k
            # ephemeral ports within seconds of connection-per-request traffic, and both
            # paths then crawl at the pace ports free up (the node's conntrack still
            # tracks every connection through TIME_WAIT, as it would).
            topo.sysctl(topo.ns(role), "net.ipv4.tcp_max_tw_buckets", "0")
        topo.spawn(backend, ["iperf3", "-s", "-B", BACKEND_IP, "-p", str(IPERF_PORT)],
                   log_dir / "iperf3.log")
        topo.spawn(backend, [sys.executable, "-c", HTTP_SERVER, BACKEND_IP, str(HTTP_PORT)],
                   log_dir / "http.log")
        svcs, eps = filler_services(extra_services)
        eps[IPERF_SVC.key] = [EndpointInfo(BACKEND_IP, IPERF_PORT)]
        eps[HTTP_SVC.key] = [EndpointInfo(BACKEND_IP, HTTP_PORT)]
        cfg = ProxyConfig(cluster_cidr="10.244.0.0/16", node_ips=(GATEWAY,))
        t0 = time.monotonic()
        Proxier(SubprocessIptables(netns=topo.node), cfg).sync([*svcs, IPERF_SVC, HTTP_SVC], eps)
        sync_s = time.monotonic() - t0
        deadline = time.monotonic() + 15
        for port in (IPERF_PORT, HTTP_PORT):
            while not topo.listening(backend, port):
                for proc in topo.procs:
                    if proc.poll() is not None:
                        raise RuntimeError(f"backend server exited {proc.returncode}; "
                                           f"see {log_dir}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"nothing listens on {BACKEND_IP}:{port}; see {log_dir}")
                time.sleep(0.05)

        results: dict[str, Any] = {"proxier_sync_s": sync_s,
                                   "server_pids": [proc.pid for proc in topo.procs]}
        tcp_targets = {"direct": (BACKEND_IP, IPERF_PORT), "clusterip": (CLUSTER_IP, IPERF_PORT)}
        tcp = alternate(rounds, tcp_targets, lambda h, p: iperf3(topo, h, p, seconds))
        results["tcp"] = {"runs": tcp, **summarise(tcp, "gbps")}

        http_targets = {"direct": (BACKEND_IP, HTTP_PORT),
                        "clusterip": (CLUSTER_IP, SVC_HTTP_PORT)}
        if have_wrk:
            def keep(h: str, p: int) -> dict[str, Any]:
                return wrk(topo, h, p, seconds, CONNS, close=False)

            def close(h: str, p: int) -> dict[str, Any]:
                return wrk(topo, h, p, seconds, CONNS, close=True)

            def lat(h: str, p: int) -> dict[str, Any]:
                return wrk(topo, h, p, seconds, 1, close=False)
        else:
            def keep(h: str, p: int) -> dict[str, Any]:
                return pyloop(topo, h, p, seconds, close=False)

            def close(h: str, p: int) -> dict[str, Any]:
                return pyloop(topo, h, p, seconds, close=True)

            lat = keep
        http = alternate(rounds, http_targets, keep)
        http_close = alternate(rounds, http_targets, close)
        http_lat = http if lat is keep else alternate(rounds, http_targets, lat)
        results["http"] = {"runs": http, "connections": CONNS if have_wrk else 1,
                           **summarise(http, "rps")}
        results["http_close"] = {"runs": http_close, "connections": CONNS if have_wrk else 1,
                                 **summarise(http_close, "rps")}
        results["http_latency"] = {
            "runs": http_lat, "connections": 1,
            "p50_ms": summarise(http_lat, "p50_ms"), "p99_ms": summarise(http_lat, "p99_ms")}
        results["dnat_packets"] = dnat_packets(topo)
        errors = sum(r.get("errors", 0) for m in (http, http_close, http_lat)
                     for side in m.values() for r in side)
        results["http_errors"] = errors
    results["leftover_netns"] = topo.leftovers()
    return results


def _fmt(v: float | None, spec: str) -> str:
    return "n/a" if v is None else format(v, spec)


def report(res: dict[str, Any]) -> tuple[list[str], bool]:
    """The printed lines, and whether the target is met."""
    tcp, http, close = res["tcp"], res["http"], res["http_close"]
    p99 = res["http_latency"]["p99_ms"]
    lines = [
        f"datapath tcp_gbps clusterip {_fmt(tcp['clusterip'], '.2f')} "
        f"direct {_fmt(tcp['direct'], '.2f')} ratio {_fmt(tcp['ratio'], '.3f')}",
        f"datapath http rps clusterip {_fmt(http['clusterip'], '.0f')} "
        f"direct {_fmt(http['direct'], '.0f')} ratio {_fmt(http['ratio'], '.3f')}; "
        f"p99 clusterip {_fmt(p99['clusterip'], '.3f')} ms direct {_fmt(p99['direct'], '.3f')} ms"
        f" (1 connection)",
        f"datapath http_close rps clusterip {_fmt(close['clusterip'], '.0f')} "
        f"direct {_fmt(close['direct'], '.0f')} ratio {_fmt(close['ratio'], '.3f')} "
        f"(a new connection per request)",
    ]
    ratios = [tcp["ratio"], http["ratio"], close["ratio"]]
    met = all(r is not None and r >= TARGET for r in ratios)
    lines.append(f"datapath target ClusterIP >= {TARGET}x direct (tcp, http, http_close): "
                 f"{'met' if met else 'NOT met'}")
    return lines, met


def _terminate(signum: int, frame: FrameType | None) -> None:
    # SIGTERM unwinds like Ctrl-C, so that the topology's teardown runs.
    raise KeyboardInterrupt(f"signal {signum}")


def main() -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="length of each measure")
    ap.add_argument("--rounds", type=int, default=11, help="alternations of the two targets")
    ap.add_argument("--extra-services", type=int, default=0,
                    help="other Services in the rules, before the measured one")
    ap.add_argument("--no-write", action="store_true", help=f"do not write {RESULTS.name}")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_datapath: needs root (network namespaces)", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _terminate)
    tools = ensure_tools()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench-datapath-") as tmp:
        try:
            res = run(args.seconds, args.rounds, args.extra_services, tools["wrk"], Path(tmp))
        except RuntimeError as e:
            print(f"bench_datapath: {e}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("bench_datapath: interrupted; the topology has been removed", file=sys.stderr)
            return 130
    if res["leftover_netns"]:
        print(f"bench_datapath: namespaces left behind: {res['leftover_netns']}",
              file=sys.stderr)
        return 1
    lines, met = report(res)
    load = os.getloadavg()
    lines.append(f"datapath load {load_before[0]:.2f} before, {load[0]:.2f} after "
                 f"(1-min average, {os.cpu_count()} cpus); http errors {res['http_errors']}; "
                 f"dnat packets {res['dnat_packets']}")
    print("\n".join(lines))
    if not args.no_write:
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps({
            "seconds": args.seconds, "rounds": args.rounds,
            "extra_services": args.extra_services, "cpus": os.cpu_count(),
            "loadavg_before": load_before, "loadavg_after": load,
            "tools": {"tcp": "iperf3", "http": "wrk" if tools["wrk"] else "python loop",
                      "http_server": "python asyncio (bench_datapath.HTTP_SERVER)"},
            "topology": {"client": CLIENT_IP, "backend": BACKEND_IP, "cluster_ip": CLUSTER_IP,
                         "endpoints": 1},
            **res, "target_ratio_min": TARGET, "met": met}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
