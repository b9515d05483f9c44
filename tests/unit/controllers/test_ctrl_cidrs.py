"""The pod CIDR allocator: sequential, never twice, release and reuse, pre-assigned, full."""

from __future__ import annotations

import pytest

from kemu.services.controllers.cidrs import CIDRAllocator, CIDRExhausted, CIDROutOfRange


def test_sequential_from_the_start() -> None:
    a = CIDRAllocator.parse("10.244.0.0/16", 24)
    assert [a.allocate() for _ in range(3)] == ["10.244.0.0/24", "10.244.1.0/24",
                                                "10.244.2.0/24"]
    assert a.size == 256 and a.used == 3


def test_never_twice_over_the_whole_range() -> None:
    a = CIDRAllocator.parse("10.244.0.0/16", 24)
    got = [a.allocate() for _ in range(256)]
    assert len(set(got)) == 256
    with pytest.raises(CIDRExhausted):
        a.allocate()


def test_release_and_reuse_after_wrapping() -> None:
    a = CIDRAllocator.parse("10.0.0.0/30", 32)
    got = [a.allocate() for _ in range(4)]
    assert a.release("10.0.0.1/32")
    assert not a.release("10.0.0.1/32")
    assert a.allocate() == "10.0.0.1/32"
    assert got[1] == "10.0.0.1/32"


def test_release_scans_on_before_reusing() -> None:
    a = CIDRAllocator.parse("10.244.0.0/16", 24)
    first = a.allocate()
    a.allocate()
    a.release(first)
    assert a.allocate() == "10.244.2.0/24"


@pytest.mark.parametrize(("cidr", "ok"), [
    pytest.param("10.244.0.0/24", True, id="first"),
    pytest.param("10.244.255.0/24", True, id="last"),
    pytest.param("10.245.0.0/24", False, id="outside"),
    pytest.param("10.244.0.0/25", False, id="wrong-size"),
    pytest.param("not-a-cidr", False, id="garbage"),
    pytest.param("fd00::/64", False, id="other-family"),
])
def test_occupy_pre_assigned(cidr: str, ok: bool) -> None:
    a = CIDRAllocator.parse("10.244.0.0/16", 24)
    if not ok:
        with pytest.raises(CIDROutOfRange):
            a.occupy(cidr)
        return
    assert a.occupy(cidr)
    assert not a.occupy(cidr)
    assert a.in_use(cidr)
    assert cidr not in [a.allocate() for _ in range(255)]
    with pytest.raises(CIDRExhausted):
        a.allocate()


def test_pre_assigned_are_skipped() -> None:
    a = CIDRAllocator.parse("10.244.0.0/16", 24)
    a.occupy("10.244.0.0/24")
    a.occupy("10.244.1.0/24")
    assert a.allocate() == "10.244.2.0/24"


@pytest.mark.parametrize(("cidr", "mask", "needle"), [
    pytest.param("10.244.0.0/16", 8, "between", id="mask-too-small"),
    pytest.param("10.244.0.0/16", 33, "between", id="mask-too-big"),
    pytest.param("10.244.0.1/16", 24, "--cluster-cidr", id="host-bits"),
    pytest.param("nope", 24, "--cluster-cidr", id="garbage"),
])
def test_parse_rejects(cidr: str, mask: int, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        CIDRAllocator.parse(cidr, mask)
