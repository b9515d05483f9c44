"""Malformed and truncated protobuf frames to every method of every gRPC service: the
apiserver's (Resources, Discovery, Metrics), the store's etcd v3 API (KV, Watch, Lease,
Cluster, Maintenance), the node agent's NodeAgent, and health.

An undecodable frame is refused as grpc refuses it (INTERNAL "Exception deserializing
request!", or INVALID_ARGUMENT); a frame that decodes into something odd gets the
service's own answer. Never UNKNOWN (an unhandled exception in a servicer) and never an
INTERNAL of the service's own making; after the barrage the process is alive and its
health check still says SERVING.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2

from kemu.api.etcd import rpc_pb2
from kemu.api.v1 import api_pb2, metrics_pb2
from tests.fuzz import corpus, frames
from tests.support import processes

pytestmark = pytest.mark.integration

RANDOM_PER_METHOD = 6  # x3 frames (random bytes, a random request, it truncated) + 14 fixed
ANSWERS = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
           grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION,
           grpc.StatusCode.OUT_OF_RANGE, grpc.StatusCode.ABORTED,
           grpc.StatusCode.UNIMPLEMENTED, grpc.StatusCode.RESOURCE_EXHAUSTED,
           grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAVAILABLE}
STREAM_ENDINGS = {grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED}
GRPC_DECODE_FAILURE = "Exception deserializing request"
HEALTH = health_pb2.DESCRIPTOR.services_by_name["Health"]


def health_methods() -> list[frames.Method]:
    """Check and Watch: grpcio-health-checking's aio servicer leaves List to the generated
    base, which answers UNIMPLEMENTED and logs a traceback per call (not ours to fix)."""
    return [m for m in frames.methods(HEALTH) if not m.path.endswith("/List")]


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory
            ) -> Iterator[tuple[processes.Proc, processes.Proc]]:
    tmp: Path = tmp_path_factory.mktemp("fuzz-frames")
    store = processes.kemu_store(tmp)
    apiserver = processes.kemu_apiserver(tmp, store.address)
    with processes.running(store, apiserver):
        yield store, apiserver


def barrage(address: str, methods: list[frames.Method], seed: int, *,
            extra: list[bytes] | None = None) -> Counter[str]:
    """Every frame to every method, eight calls at a time; what each ended with. `extra`:
    frames of the caller's sent to every method instead of the generated ones."""
    rng = random.Random(seed)
    work = [(m, f) for m in methods
            for f in (extra if extra is not None else frames.frames(m, rng, RANDOM_PER_METHOD))]
    seen: Counter[str] = Counter()
    bad: list[str] = []
    with grpc.insecure_channel(address) as channel, futures.ThreadPoolExecutor(8) as pool:
        timeouts = [1.0 if m.client_streaming or m.server_streaming else 10.0 for m, _ in work]
        results = pool.map(lambda w: frames.call(channel, w[0], w[1], timeout=w[2]),
                           [(m, f, t) for (m, f), t in zip(work, timeouts, strict=True)])
        for (method, frame), err in zip(work, results, strict=True):
            code = grpc.StatusCode.OK if err is None else err.code()
            seen[code.name] += 1
            details = "" if err is None else (err.details() or "")
            streaming = method.client_streaming or method.server_streaming
            fine = (err is None or code in ANSWERS
                    or (streaming and code in STREAM_ENDINGS)
                    or (code == grpc.StatusCode.INTERNAL and GRPC_DECODE_FAILURE in details))
            if not fine:
                bad.append(f"{method.path} {frame[:40]!r}: {code.name} {details[:200]}")
    assert not bad, "\n".join(bad[:20])
    seen["total"] = len(work)
    return seen


def test_store_survives_malformed_frames(servers: tuple[processes.Proc, processes.Proc],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    store, _ = servers
    services = [rpc_pb2.DESCRIPTOR.services_by_name[s]
                for s in ("KV", "Watch", "Lease", "Cluster", "Maintenance")]
    seen = barrage(store.address, frames.methods(*services) + health_methods(), seed=7)
    corpus.report(capsys, f"store frames {dict(seen)}", seen["total"])
    assert store.alive(), store.tail()
    assert processes.grpc_serving(store.address)
    assert "Traceback" not in store.log.read_text(errors="replace"), store.tail(60)


def test_apiserver_survives_malformed_frames(servers: tuple[processes.Proc, processes.Proc],
                                             capsys: pytest.CaptureFixture[str]) -> None:
    _, apiserver = servers
    services = [api_pb2.DESCRIPTOR.services_by_name["Resources"],
                api_pb2.DESCRIPTOR.services_by_name["Discovery"],
                metrics_pb2.DESCRIPTOR.services_by_name["Metrics"]]
    seen = barrage(apiserver.address, frames.methods(*services) + health_methods(), seed=11)
    corpus.report(capsys, f"apiserver frames {dict(seen)}", seen["total"])
    assert apiserver.alive(), apiserver.tail()
    assert processes.grpc_serving(apiserver.address)
    log = apiserver.log.read_text(errors="replace")
    # A method declared in the proto and not implemented answers UNIMPLEMENTED, logged.
    expected = log.count("Unexpected [NotImplementedError] raised by servicer")
    assert log.count("Traceback") == expected, apiserver.tail(60)


def test_apiserver_refuses_undecodable_requests_as_invalid_argument(
        servers: tuple[processes.Proc, processes.Proc]) -> None:
    _, apiserver = servers
    create = frames.methods(api_pb2.DESCRIPTOR.services_by_name["Resources"])[0]
    with grpc.insecure_channel(apiserver.address) as channel:
        err = frames.call(channel, create, b"\x0f")
    assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT, err


def test_store_refuses_undecodable_requests_as_invalid_argument(
        servers: tuple[processes.Proc, processes.Proc]) -> None:
    """grpc.aio alone answers UNKNOWN (a server bug's code) for a frame it cannot parse."""
    store, _ = servers
    for method in frames.methods(rpc_pb2.DESCRIPTOR.services_by_name["KV"],
                                 rpc_pb2.DESCRIPTOR.services_by_name["Watch"]):
        with grpc.insecure_channel(store.address) as channel:
            err = frames.call(channel, method, b"\x0f")
        assert err is not None and err.code() == grpc.StatusCode.INVALID_ARGUMENT, method
        assert "could not decode the request" in (err.details() or "")
