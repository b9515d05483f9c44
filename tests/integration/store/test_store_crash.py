"""Crash safety: every acknowledged write survives kill -9, and bad start-ups fail cleanly."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from store_procs import REPO, etcdctl, free_port, start_kemu

from kemu.api.etcd import rpc_pb2, rpc_pb2_grpc

pytestmark = pytest.mark.integration


async def _burst(endpoint: str, pid: int, *, kill_after: int) -> dict[bytes, int]:
    """Concurrent puts; kill -9 the store once kill_after are acknowledged.

    Returns key -> revision of every acknowledged put.
    """
    acked: dict[bytes, int] = {}
    killed = asyncio.Event()
    async with grpc.aio.insecure_channel(endpoint) as ch:
        kv = rpc_pb2_grpc.KVStub(ch)

        async def worker(w: int) -> None:
            i = 0
            while not killed.is_set():
                key = b"crash/%02d/%06d" % (w, i)
                i += 1
                try:
                    resp = await kv.Put(rpc_pb2.PutRequest(key=key, value=key * 8), timeout=5)
                except grpc.aio.AioRpcError:
                    return
                acked[key] = resp.header.revision
                if len(acked) >= kill_after and not killed.is_set():
                    os.kill(pid, signal.SIGKILL)
                    killed.set()

        await asyncio.wait_for(asyncio.gather(*(worker(w) for w in range(32))), timeout=60)
    return acked


def test_acknowledged_writes_survive_kill9(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_kemu(data)
    etcdctl(first.endpoint, "put", "before", "crash")
    acked = asyncio.run(_burst(first.endpoint, first.proc.pid, kill_after=600))
    first.proc.wait(timeout=10)
    assert first.proc.returncode == -signal.SIGKILL
    assert len(acked) >= 600
    assert len(set(acked.values())) == len(acked), "two puts acknowledged with one revision"

    second = start_kemu(data)
    try:
        with grpc.insecure_channel(second.endpoint) as ch:
            kv = rpc_pb2_grpc.KVStub(ch)
            resp = kv.Range(rpc_pb2.RangeRequest(key=b"crash/", range_end=b"crash0"), timeout=10)
            stored = {item.key: item for item in resp.kvs}
            for key, rev in acked.items():
                assert key in stored, f"acknowledged {key!r} lost"
                item = stored[key]
                assert item.mod_revision == rev == item.create_revision
                assert item.version == 1
                assert item.value == key * 8, "torn record"
            for key, item in stored.items():  # unacknowledged but committed: also whole
                assert item.value == key * 8
            top = max(item.mod_revision for item in stored.values())
            assert resp.header.revision == top
            revs = sorted(item.mod_revision for item in stored.values())
            assert revs == list(range(revs[0], revs[0] + len(revs))), "revision gap"
            after = kv.Put(rpc_pb2.PutRequest(key=b"after", value=b"x"), timeout=10)
            assert after.header.revision == top + 1
        assert etcdctl(second.endpoint, "get", "before", "--print-value-only").stdout == "crash\n"
    finally:
        second.stop()


def test_lease_survives_restart_with_full_ttl(tmp_path: Path) -> None:
    data = tmp_path / "data"
    first = start_kemu(data)
    lease = etcdctl(first.endpoint, "lease", "grant", "100").stdout.split()[1]
    etcdctl(first.endpoint, "put", "lk", "v", "--lease", lease)
    first.kill9()
    second = start_kemu(data)
    try:
        out = etcdctl(second.endpoint, "lease", "timetolive", lease, "--keys").stdout
        assert "granted with TTL(100s)" in out
        assert "attached keys([lk])" in out
    finally:
        second.stop()


def _run_store(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kemu.services.store", "--insecure", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        pytest.param(["--listen", "nonsense"], "invalid listen address", id="bad-listen"),
        pytest.param(["--listen", "127.0.0.1:99999"], "invalid listen address", id="bad-port"),
        pytest.param([], "--data-dir", id="missing-data-dir"),
    ],
)
def test_bad_arguments_print_one_line(tmp_path: Path, args: list[str], needle: str) -> None:
    if "--data-dir" not in args and needle != "--data-dir":
        args = [*args, "--data-dir", str(tmp_path / "d")]
    res = _run_store(*args)
    assert res.returncode != 0
    assert "Traceback" not in res.stderr
    assert needle in res.stderr


def test_unusable_data_dir_prints_one_line(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    res = _run_store("--listen", f"127.0.0.1:{free_port()}", "--data-dir", str(blocker / "sub"))
    assert res.returncode == 1
    assert "Traceback" not in res.stderr
    lines = [line for line in res.stderr.splitlines() if "kemu store: error:" in line]
    assert len(lines) == 1, res.stderr


def test_port_in_use_prints_one_line(tmp_path: Path) -> None:
    server = start_kemu(tmp_path / "a")
    try:
        res = _run_store("--listen", server.endpoint, "--data-dir", str(tmp_path / "b"))
        assert res.returncode == 1
        assert "Traceback" not in res.stderr
        assert "cannot listen on" in res.stderr
    finally:
        server.stop()


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    server = start_kemu(tmp_path / "d")
    etcdctl(server.endpoint, "put", "k", "v")
    assert server.stop(signal.SIGTERM) == 0
    assert "Traceback" not in server.log()
