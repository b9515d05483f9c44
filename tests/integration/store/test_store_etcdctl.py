"""The real etcdctl 3.4 against kemu's store, compared with a real etcd 3.4.

Outputs that should be identical (JSON with per-cluster IDs blanked, plain
text, error messages) are compared between the two servers, so compatibility
is proven rather than assumed.
"""

from __future__ import annotations

import json
import re

import pytest
from store_procs import Server, etcdctl, etcdctl_json, etcdctl_stream, normalize, wait_until

pytestmark = pytest.mark.integration

# One scenario, run command by command against both servers. "!" marks a
# command expected to fail (the error line is compared).
KV_SCENARIO: list[tuple[str, ...]] = [
    ("put", "a", "1", "-w", "json"),
    ("put", "b", "2", "-w", "json"),
    ("put", "a", "3", "--prev-kv", "-w", "json"),
    ("put", "c/x", "cx", "-w", "json"),
    ("put", "c/y", "cy", "-w", "json"),
    ("get", "a", "-w", "json"),
    ("get", "a"),
    ("get", "missing", "-w", "json"),
    ("get", "", "--prefix", "-w", "json"),
    ("get", "c/", "--prefix"),
    ("get", "", "--prefix", "--keys-only"),
    ("get", "", "--prefix", "--limit", "2", "-w", "json"),
    ("get", "", "--prefix", "--sort-by", "MODIFY", "--order", "DESCEND"),
    ("get", "", "--prefix", "--sort-by", "VALUE", "--order", "ASCEND", "-w", "json"),
    ("get", "", "--prefix", "--sort-by", "CREATE", "--order", "DESCEND", "--limit", "2"),
    ("get", "a", "c", "-w", "json"),
    ("get", "b", "--from-key", "--keys-only"),
    ("get", "a", "--rev", "2", "-w", "json"),
    ("get", "", "--prefix", "--rev", "3", "-w", "json"),
    ("del", "missing", "-w", "json"),
    ("del", "b", "--prev-kv", "-w", "json"),
    ("get", "b", "--rev", "3", "-w", "json"),
    ("put", "b", "again", "-w", "json"),
    ("get", "b", "-w", "json"),
    ("del", "c/", "--prefix", "--prev-kv"),
    ("!get", "a", "--rev", "1000"),
    ("compaction", "4"),
    ("!get", "a", "--rev", "3"),
    ("get", "a", "--rev", "4", "-w", "json"),
    ("!compaction", "4"),
    ("!compaction", "1000"),
    ("get", "", "--prefix", "-w", "json"),
]


def _run(server: Server, cmd: tuple[str, ...]) -> tuple[int, str]:
    expect_fail = cmd[0].startswith("!")
    args = (cmd[0].lstrip("!"), *cmd[1:])
    res = etcdctl(server.endpoint, *args, check=False)
    if expect_fail:
        assert res.returncode != 0, f"{args} unexpectedly succeeded on {server.kind}"
        return res.returncode, res.stderr.strip().splitlines()[-1]
    assert res.returncode == 0, f"{args} failed on {server.kind}: {res.stderr}"
    if "json" in args:
        return 0, json.dumps(normalize(json.loads(res.stdout)), sort_keys=True)
    return 0, res.stdout


def test_kv_commands_match_etcd(both: tuple[Server, Server]) -> None:
    kemu, etcd = both
    for cmd in KV_SCENARIO:
        assert _run(kemu, cmd) == _run(etcd, cmd), f"outputs differ for {cmd}"


TXN_SCENARIO = [
    # Compare on value, then a put and a get in success, a put in failure.
    'value("k") = "v1"\n\nput k v2\nget k\n\nput k nope\n\n',
    # version, create and mod revisions.
    'ver("k") = "2"\nmod("k") > "1"\ncreate("k") < "100"\n\nput other o\n\ndel k\n\n',
    # Comparing a missing key's value fails; its version is 0.
    'value("missing") = ""\n\nput x 1\n\nput y 1\n\n',
    'ver("missing") = "0"\n\nput z 1\ndel other\n\n\n',
    # Not equal and lease.
    'val("k") != "v2"\n\nput never 1\n\nget k --prefix\n\n',
]


def test_txn_matches_etcd(both: tuple[Server, Server]) -> None:
    kemu, etcd = both
    for server in both:
        etcdctl(server.endpoint, "put", "k", "v1")
    for stdin in TXN_SCENARIO:
        outs = []
        for server in (kemu, etcd):
            res = etcdctl(server.endpoint, "txn", "-w", "json", stdin=stdin)
            outs.append(normalize(json.loads(res.stdout)))
        assert outs[0] == outs[1], f"txn output differs for {stdin!r}"
    plain = [etcdctl(s.endpoint, "txn", stdin=TXN_SCENARIO[0]).stdout for s in both]
    assert plain[0] == plain[1]


def test_endpoint_status_health_member_list(backend: Server) -> None:
    ep = backend.endpoint
    status = etcdctl_json(ep, "endpoint", "status")[0]["Status"]
    assert status["leader"] == status["header"]["member_id"] != 0
    assert status["version"].startswith("3.4")
    assert status["dbSize"] > 0
    table = etcdctl(ep, "endpoint", "status", "-w", "table").stdout
    assert re.search(r"\|\s+true\s+\|\s+false\s+\|", table), table  # is leader, not learner
    health = etcdctl(ep, "endpoint", "health")
    assert f"{ep} is healthy" in health.stdout + health.stderr
    members = etcdctl_json(ep, "member", "list")
    assert len(members["members"]) == 1
    member = members["members"][0]
    assert member["name"] == "default"
    assert member["clientURLs"] == [f"http://{ep}"]
    assert member["ID"] == members["header"]["member_id"]
    text = etcdctl(ep, "member", "list").stdout
    assert ", started, default, " in text


def test_lease_commands(backend: Server) -> None:
    ep = backend.endpoint
    out = etcdctl(ep, "lease", "grant", "60").stdout
    m = re.match(r"lease ([0-9a-f]+) granted with TTL\(60s\)", out)
    assert m, out
    lease = m.group(1)
    etcdctl(ep, "put", "lk1", "v", "--lease", lease)
    etcdctl(ep, "put", "lk2", "v", "--lease", lease)
    ttl = etcdctl(ep, "lease", "timetolive", lease, "--keys").stdout
    m = re.match(
        rf"lease {lease} granted with TTL\(60s\), remaining\((5[0-9]|60)s\), "
        r"attached keys\(\[(\S+) (\S+)\]\)",
        ttl,
    )
    assert m, ttl
    assert {m.group(2), m.group(3)} == {"lk1", "lk2"}  # etcd lists them in any order
    once = etcdctl(ep, "lease", "keep-alive", "--once", lease).stdout
    assert once.strip() == f"lease {lease} keepalived with TTL(60)"
    assert lease in etcdctl(ep, "lease", "list").stdout
    key = etcdctl_json(ep, "get", "lk1")["kvs"][0]
    assert key["lease"] == int(lease, 16)
    assert etcdctl(ep, "lease", "revoke", lease).stdout.strip() == f"lease {lease} revoked"
    assert etcdctl_json(ep, "get", "lk", "--prefix").get("kvs") is None
    gone = etcdctl(ep, "lease", "timetolive", lease).stdout.strip()
    assert gone == f"lease {lease} already expired"
    bad = etcdctl(ep, "put", "x", "v", "--lease", "1234abcd", check=False)
    assert bad.returncode != 0
    assert "etcdserver: requested lease not found" in bad.stderr
    bad = etcdctl(ep, "lease", "revoke", "1234abcd", check=False)
    assert "etcdserver: requested lease not found" in bad.stderr


def test_lease_keep_alive_stream(backend: Server) -> None:
    ep = backend.endpoint
    lease = etcdctl(ep, "lease", "grant", "3").stdout.split()[1]
    proc = etcdctl_stream(ep, "lease", "keep-alive", lease)
    try:
        # etcdctl renews every TTL/3 s; two answers prove the stream keeps going.
        lines = proc.read(2, timeout=10)
        assert lines == [f"lease {lease} keepalived with TTL(3)"] * 2
        wait_until(
            lambda: "remaining" in etcdctl(ep, "lease", "timetolive", lease).stdout,
            timeout=5,
            what="lease alive",
        )
    finally:
        proc.close()


def test_watch_prefix(backend: Server) -> None:
    ep = backend.endpoint
    watch = etcdctl_stream(ep, "watch", "--prefix", "w/")
    try:
        # The watch is registered when a put under the prefix shows up; retry the
        # first put until it does, so there is no sleep-and-hope on start-up.
        def first_event() -> bool:
            etcdctl(ep, "put", "w/probe", "p")
            try:
                return watch.read(3, timeout=0.5) == ["PUT", "w/probe", "p"]
            except AssertionError:
                return False

        wait_until(first_event, timeout=10, what="watch to start")
        # Skip any late copies of the probe: everything up to a sync marker.
        etcdctl(ep, "put", "w/sync", "s")
        recent: list[str] = []
        while recent[-3:] != ["PUT", "w/sync", "s"]:
            recent += watch.read(1)
        etcdctl(ep, "put", "w/a", "1")
        etcdctl(ep, "put", "other", "x")
        etcdctl(ep, "put", "w/b", "2")
        etcdctl(ep, "del", "w/a")
        assert watch.read(9) == ["PUT", "w/a", "1", "PUT", "w/b", "2", "DELETE", "w/a", ""]
    finally:
        watch.close()


def test_watch_from_revision(backend: Server) -> None:
    ep = backend.endpoint
    for i in range(5):
        etcdctl(ep, "put", "r", f"v{i}")
    etcdctl(ep, "put", "s", "x")  # not watched
    watch = etcdctl_stream(ep, "watch", "r", "--rev", "3", "--prev-kv")
    try:
        # Revisions 3..6 hold v1..v4; with --prev-kv each event prints
        # type, previous key and value, key and value.
        expected: list[str] = []
        for i in range(1, 5):
            expected += ["PUT", "r", f"v{i - 1}", "r", f"v{i}"]
        assert watch.read(len(expected)) == expected
        etcdctl(ep, "put", "r", "live")
        assert watch.read(5) == ["PUT", "r", "v4", "r", "live"]
    finally:
        watch.close()


def test_watch_compacted_revision(backend: Server) -> None:
    ep = backend.endpoint
    for i in range(4):
        etcdctl(ep, "put", "c", f"v{i}")
    etcdctl(ep, "compaction", "4")
    res = etcdctl(ep, "watch", "c", "--rev", "2", check=False, timeout=10)
    assert "required revision has been compacted" in res.stdout + res.stderr


def test_lease_expiry_deletes_keys_seen_by_watch(backend: Server) -> None:
    ep = backend.endpoint
    lease = etcdctl(ep, "lease", "grant", "2").stdout.split()[1]
    etcdctl(ep, "put", "ek", "v", "--lease", lease)
    rev = etcdctl_json(ep, "get", "ek")["header"]["revision"]
    watch = etcdctl_stream(ep, "watch", "ek", "--rev", str(rev))
    try:
        assert watch.read(3) == ["PUT", "ek", "v"]
        assert watch.read(3, timeout=15) == ["DELETE", "ek", ""]
    finally:
        watch.close()
    after = etcdctl_json(ep, "get", "ek")
    assert "kvs" not in after
    assert after["header"]["revision"] == rev + 1
    gone = etcdctl(ep, "lease", "timetolive", lease).stdout.strip()
    assert gone == f"lease {lease} already expired"
