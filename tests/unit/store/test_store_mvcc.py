"""Revision semantics, ranges, txns and compaction of the store, without gRPC."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemu.api.etcd import rpc_pb2
from kemu.services.store.errors import (
    Compacted,
    FutureRevision,
    InvalidRequest,
    KeyNotFound,
    LeaseNotFound,
)
from kemu.services.store.mvcc import prefix_end
from kemu.services.store.store import Store

Compare = rpc_pb2.Compare
RequestOp = rpc_pb2.RequestOp


async def put(store: Store, key: bytes, value: bytes = b"v", **kw: object) -> int:
    resp = await store.put(rpc_pb2.PutRequest(key=key, value=value, **kw))  # type: ignore[arg-type]
    return resp.header.revision


def get(store: Store, key: bytes, **kw: object) -> rpc_pb2.RangeResponse:
    return store.range(rpc_pb2.RangeRequest(key=key, **kw))  # type: ignore[arg-type]


# ------------------------------------------------------------------ revisions


async def test_empty_store_is_at_revision_one(store: Store) -> None:
    resp = get(store, b"a")
    assert resp.header.revision == 1
    assert list(resp.kvs) == []
    assert resp.count == 0


async def test_each_write_bumps_the_revision_and_tracks_versions(store: Store) -> None:
    assert await put(store, b"a", b"1") == 2
    assert await put(store, b"b", b"1") == 3
    assert await put(store, b"a", b"2") == 4
    kv = get(store, b"a").kvs[0]
    assert (kv.create_revision, kv.mod_revision, kv.version, kv.value) == (2, 4, 2, b"2")
    deleted = await store.delete_range(rpc_pb2.DeleteRangeRequest(key=b"a"))
    assert (deleted.deleted, deleted.header.revision) == (1, 5)
    assert await put(store, b"a", b"3") == 6
    kv = get(store, b"a").kvs[0]
    assert (kv.create_revision, kv.mod_revision, kv.version) == (6, 6, 1), "version resets"


async def test_delete_of_nothing_does_not_bump(store: Store) -> None:
    await put(store, b"a")
    resp = await store.delete_range(rpc_pb2.DeleteRangeRequest(key=b"zzz"))
    assert (resp.deleted, resp.header.revision) == (0, 2)
    assert await put(store, b"b") == 3


async def test_put_options(store: Store) -> None:
    await put(store, b"k", b"old")
    resp = await store.put(rpc_pb2.PutRequest(key=b"k", value=b"new", prev_kv=True))
    assert resp.prev_kv.value == b"old"
    await store.put(rpc_pb2.PutRequest(key=b"k", ignore_value=True))
    assert get(store, b"k").kvs[0].value == b"new"
    with pytest.raises(KeyNotFound):
        await store.put(rpc_pb2.PutRequest(key=b"absent", ignore_value=True))
    with pytest.raises(InvalidRequest, match="value is provided"):
        await store.put(rpc_pb2.PutRequest(key=b"k", value=b"x", ignore_value=True))
    with pytest.raises(InvalidRequest, match="key is not provided"):
        await store.put(rpc_pb2.PutRequest(key=b"", value=b"x"))
    with pytest.raises(LeaseNotFound):
        await store.put(rpc_pb2.PutRequest(key=b"k", value=b"x", lease=42))
    assert get(store, b"k").header.revision == 4, "rejected writes do not bump"


async def test_past_and_future_revisions(store: Store) -> None:
    for v in (b"1", b"2", b"3"):
        await put(store, b"k", v)
    resp = get(store, b"k", revision=3)
    assert resp.kvs[0].value == b"2"
    assert resp.header.revision == 4, "header carries the current revision, as etcd"
    assert list(get(store, b"k", revision=1).kvs) == []
    with pytest.raises(FutureRevision):
        get(store, b"k", revision=5)


# ------------------------------------------------------------------ ranges


@pytest.fixture
async def filled(store: Store) -> Store:
    # a:1@2 b:3@3 c/1:2@4 c/2:5@5 d:4@6, then a modified @7
    for key, value in [(b"a", b"1"), (b"b", b"3"), (b"c/1", b"2"), (b"c/2", b"5"), (b"d", b"4")]:
        await put(store, key, value)
    await put(store, b"a", b"9")
    return store


def keys(resp: rpc_pb2.RangeResponse) -> list[bytes]:
    return [kv.key for kv in resp.kvs]


@pytest.mark.parametrize(
    ("request_kw", "want_keys", "want_more", "want_count"),
    [
        pytest.param({"key": b"a"}, [b"a"], False, 1, id="single"),
        pytest.param(
            {"key": b"c/", "range_end": prefix_end(b"c/")}, [b"c/1", b"c/2"], False, 2, id="prefix"
        ),
        pytest.param(
            {"key": b"b", "range_end": b"d"}, [b"b", b"c/1", b"c/2"], False, 3, id="range"
        ),
        pytest.param(
            {"key": b"c", "range_end": b"\x00"}, [b"c/1", b"c/2", b"d"], False, 3, id="from-key"
        ),
        pytest.param(
            {"key": b"\x00", "range_end": b"\x00", "limit": 2}, [b"a", b"b"], True, 5, id="limit"
        ),
        pytest.param(
            {"key": b"\x00", "range_end": b"\x00", "limit": 5}, None, False, 5, id="limit-exact"
        ),
        pytest.param(
            {"key": b"\x00", "range_end": b"\x00", "sort_order": 2},
            [b"d", b"c/2", b"c/1", b"b", b"a"],
            False,
            5,
            id="key-descend",
        ),
        pytest.param(
            {"key": b"\x00", "range_end": b"\x00", "sort_target": 4},
            [b"c/1", b"b", b"d", b"c/2", b"a"],
            False,
            5,
            id="value-default-ascend",
        ),
        pytest.param(
            {"key": b"\x00", "range_end": b"\x00", "sort_target": 3, "sort_order": 2, "limit": 2},
            [b"a", b"d"],
            True,
            5,
            id="mod-descend-limit",
        ),
        pytest.param(
            {"key": b"\x00", "range_end": b"\x00", "sort_target": 2, "sort_order": 1},
            [b"a", b"b", b"c/1", b"c/2", b"d"],
            False,
            5,
            id="create-ascend",
        ),
        pytest.param(
            {"key": b"\x00", "range_end": b"\x00", "sort_target": 1, "sort_order": 2, "limit": 1},
            [b"a"],
            True,
            5,
            id="version-descend",
        ),
        pytest.param(
            {"key": b"\x00", "range_end": b"\x00", "min_mod_revision": 5},
            [b"a", b"c/2", b"d"],
            False,
            5,
            id="min-mod",
        ),
        pytest.param(
            {"key": b"\x00", "range_end": b"\x00", "max_create_revision": 3},
            [b"a", b"b"],
            False,
            5,
            id="max-create",
        ),
        pytest.param(
            {"key": b"\x00", "range_end": b"\x00", "count_only": True},
            [],
            False,
            5,
            id="count-only",
        ),
        pytest.param(
            {"key": b"\x00", "range_end": b"\x00", "revision": 4},
            [b"a", b"b", b"c/1"],
            False,
            3,
            id="at-revision",
        ),
        pytest.param(
            {"key": b"\x00", "range_end": b"\x00", "revision": 6, "limit": 1},
            [b"a"],
            True,
            5,
            id="at-revision-limit",
        ),
    ],
)
async def test_range_options(
    filled: Store,
    request_kw: dict[str, object],
    want_keys: list[bytes] | None,
    want_more: bool,
    want_count: int,
) -> None:
    resp = filled.range(rpc_pb2.RangeRequest(**request_kw))  # type: ignore[arg-type]
    if want_keys is not None:
        assert keys(resp) == want_keys
    assert resp.more is want_more
    assert resp.count == want_count
    assert resp.header.revision == 7


async def test_keys_only_and_history_values(filled: Store) -> None:
    resp = filled.range(rpc_pb2.RangeRequest(key=b"a", keys_only=True))
    assert resp.kvs[0].value == b""
    assert resp.kvs[0].mod_revision == 7
    old = filled.range(rpc_pb2.RangeRequest(key=b"a", revision=6))
    assert (old.kvs[0].value, old.kvs[0].version) == (b"1", 1)


# ------------------------------------------------------------------ txn


def cmp(target: str, key: bytes, result: int, value: object) -> rpc_pb2.Compare:
    c = Compare(key=key, result=result, target=getattr(Compare, target.upper()))  # type: ignore[arg-type]
    field = {
        "version": "version",
        "create": "create_revision",
        "mod": "mod_revision",
        "value": "value",
        "lease": "lease",
    }[target]
    setattr(c, field, value)
    return c


E, G, L, NE = Compare.EQUAL, Compare.GREATER, Compare.LESS, Compare.NOT_EQUAL


@pytest.mark.parametrize(
    ("compare", "succeeded"),
    [
        pytest.param(cmp("version", b"k", E, 2), True, id="version-eq"),
        pytest.param(cmp("version", b"k", G, 1), True, id="version-gt"),
        pytest.param(cmp("version", b"k", L, 2), False, id="version-lt-false"),
        pytest.param(cmp("version", b"k", NE, 2), False, id="version-ne-false"),
        pytest.param(cmp("create", b"k", E, 2), True, id="create-eq"),
        pytest.param(cmp("create", b"k", L, 3), True, id="create-lt"),
        pytest.param(cmp("mod", b"k", E, 3), True, id="mod-eq"),
        pytest.param(cmp("mod", b"k", G, 3), False, id="mod-gt-false"),
        pytest.param(cmp("value", b"k", E, b"v2"), True, id="value-eq"),
        pytest.param(cmp("value", b"k", G, b"v1"), True, id="value-gt"),
        pytest.param(cmp("value", b"k", L, b"v1"), False, id="value-lt-false"),
        pytest.param(cmp("value", b"k", NE, b"v1"), True, id="value-ne"),
        pytest.param(cmp("lease", b"k", E, 0), True, id="lease-eq"),
        pytest.param(cmp("lease", b"k", NE, 0), False, id="lease-ne-false"),
        pytest.param(cmp("version", b"missing", E, 0), True, id="missing-version-zero"),
        pytest.param(cmp("create", b"missing", E, 0), True, id="missing-create-zero"),
        pytest.param(cmp("value", b"missing", E, b""), False, id="missing-value-fails"),
    ],
)
async def test_txn_compares(store: Store, compare: rpc_pb2.Compare, succeeded: bool) -> None:
    await put(store, b"k", b"v1")
    await put(store, b"k", b"v2")
    resp = await store.txn(
        rpc_pb2.TxnRequest(
            compare=[compare],
            success=[RequestOp(request_put=rpc_pb2.PutRequest(key=b"then", value=b"1"))],
            failure=[RequestOp(request_put=rpc_pb2.PutRequest(key=b"else", value=b"1"))],
        )
    )
    assert resp.succeeded is succeeded
    assert resp.header.revision == 4
    assert len(get(store, b"then" if succeeded else b"else").kvs) == 1


async def test_compare_over_a_range(store: Store) -> None:
    await put(store, b"p/1", b"x")
    await put(store, b"p/2", b"x")
    c = cmp("value", b"p/", E, b"x")
    c.range_end = prefix_end(b"p/")
    assert (await store.txn(rpc_pb2.TxnRequest(compare=[c]))).succeeded
    await put(store, b"p/3", b"y")
    assert not (await store.txn(rpc_pb2.TxnRequest(compare=[c]))).succeeded


async def test_txn_writes_share_one_revision(store: Store) -> None:
    await put(store, b"gone", b"x")
    resp = await store.txn(
        rpc_pb2.TxnRequest(
            success=[
                RequestOp(request_put=rpc_pb2.PutRequest(key=b"a", value=b"1")),
                RequestOp(request_range=rpc_pb2.RangeRequest(key=b"a")),
                RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"gone")),
                RequestOp(request_put=rpc_pb2.PutRequest(key=b"b", value=b"2")),
            ]
        )
    )
    assert resp.succeeded
    assert resp.header.revision == 3
    assert resp.responses[0].response_put.header.revision == 3
    assert resp.responses[1].response_range.kvs[0].mod_revision == 3
    assert resp.responses[2].response_delete_range.deleted == 1
    assert get(store, b"b").kvs[0].mod_revision == 3
    assert await put(store, b"c") == 4


async def test_nested_txn_uses_compares_from_before_the_txn(store: Store) -> None:
    await put(store, b"k", b"1")
    inner = rpc_pb2.TxnRequest(
        compare=[cmp("value", b"k", E, b"1")],  # true before the txn, false after the put
        success=[RequestOp(request_put=rpc_pb2.PutRequest(key=b"inner", value=b"yes"))],
        failure=[RequestOp(request_put=rpc_pb2.PutRequest(key=b"inner", value=b"no"))],
    )
    resp = await store.txn(
        rpc_pb2.TxnRequest(
            success=[
                RequestOp(request_put=rpc_pb2.PutRequest(key=b"k", value=b"2")),
                RequestOp(request_txn=inner),
            ]
        )
    )
    assert resp.succeeded
    nested = resp.responses[1].response_txn
    assert nested.succeeded
    assert nested.responses[0].response_put.header.revision == 3
    assert get(store, b"inner").kvs[0].value == b"yes"
    assert get(store, b"inner").kvs[0].mod_revision == get(store, b"k").kvs[0].mod_revision


async def test_readonly_txn_does_not_bump(store: Store) -> None:
    await put(store, b"k")
    resp = await store.txn(
        rpc_pb2.TxnRequest(success=[RequestOp(request_range=rpc_pb2.RangeRequest(key=b"k"))])
    )
    assert resp.header.revision == 2
    assert resp.responses[0].response_range.kvs[0].key == b"k"
    empty = await store.txn(
        rpc_pb2.TxnRequest(
            success=[RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"none"))]
        )
    )
    assert empty.header.revision == 2


@pytest.mark.parametrize(
    "ops",
    [
        pytest.param(
            [
                RequestOp(request_put=rpc_pb2.PutRequest(key=b"a")),
                RequestOp(request_put=rpc_pb2.PutRequest(key=b"a")),
            ],
            id="put-put",
        ),
        pytest.param(
            [
                RequestOp(request_put=rpc_pb2.PutRequest(key=b"a/1")),
                RequestOp(
                    request_delete_range=rpc_pb2.DeleteRangeRequest(key=b"a/", range_end=b"a0")
                ),
            ],
            id="put-delete",
        ),
        pytest.param(
            [
                RequestOp(request_put=rpc_pb2.PutRequest(key=b"a")),
                RequestOp(
                    request_txn=rpc_pb2.TxnRequest(
                        success=[RequestOp(request_put=rpc_pb2.PutRequest(key=b"a"))]
                    )
                ),
            ],
            id="nested-put",
        ),
    ],
)
async def test_txn_duplicate_keys_rejected(store: Store, ops: list[rpc_pb2.RequestOp]) -> None:
    with pytest.raises(InvalidRequest, match="duplicate key given in txn request"):
        await store.txn(rpc_pb2.TxnRequest(success=ops))


async def test_txn_checks_are_atomic(store: Store) -> None:
    with pytest.raises(LeaseNotFound):
        await store.txn(
            rpc_pb2.TxnRequest(
                success=[
                    RequestOp(request_put=rpc_pb2.PutRequest(key=b"a", value=b"1")),
                    RequestOp(request_put=rpc_pb2.PutRequest(key=b"b", value=b"1", lease=7)),
                ]
            )
        )
    assert list(get(store, b"a").kvs) == []
    assert get(store, b"a").header.revision == 1
    with pytest.raises(InvalidRequest, match="too many operations"):
        await store.txn(
            rpc_pb2.TxnRequest(
                success=[RequestOp(request_range=rpc_pb2.RangeRequest(key=b"a"))] * 129
            )
        )


# ------------------------------------------------------------------ compaction


async def test_compaction_keeps_latest_version_at_the_revision(store: Store) -> None:
    await put(store, b"a", b"1")  # 2
    await put(store, b"a", b"2")  # 3
    await put(store, b"b", b"1")  # 4
    await store.delete_range(rpc_pb2.DeleteRangeRequest(key=b"b"))  # 5
    await put(store, b"a", b"3")  # 6
    await store.compact(rpc_pb2.CompactionRequest(revision=5))
    at5 = store.range(rpc_pb2.RangeRequest(key=b"\x00", range_end=b"\x00", revision=5))
    assert [(kv.key, kv.value) for kv in at5.kvs] == [(b"a", b"2")]
    with pytest.raises(Compacted):
        get(store, b"a", revision=4)
    with pytest.raises(Compacted):
        await store.compact(rpc_pb2.CompactionRequest(revision=5))
    with pytest.raises(Compacted):
        await store.compact(rpc_pb2.CompactionRequest(revision=3))
    with pytest.raises(FutureRevision):
        await store.compact(rpc_pb2.CompactionRequest(revision=7))
    assert get(store, b"a").kvs[0].value == b"3"
    await store.compact(rpc_pb2.CompactionRequest(revision=6))
    assert store.compact_revision == 6


async def test_state_survives_reopen(tmp_path: Path) -> None:
    s = Store(tmp_path / "d", fsync=True)
    await s.start()
    await s.put(rpc_pb2.PutRequest(key=b"k", value=b"v"))
    await s.compact(rpc_pb2.CompactionRequest(revision=2))
    ids = (s.cluster_id, s.member_id)
    await s.close()
    s = Store(tmp_path / "d", fsync=True)
    await s.start()
    try:
        assert (s.cluster_id, s.member_id) == ids
        assert s.revision == 2
        assert s.compact_revision == 2
        assert (await s.put(rpc_pb2.PutRequest(key=b"k", value=b"w"))).header.revision == 3
    finally:
        await s.close()
