"""Cache.confirm: a bound pod the cache already counts on its node is confirmed without a
new PodInfo, and the cache then holds the informer's copy of the pod, not the older one."""

from __future__ import annotations

from kemu.services.scheduler.cache import Cache
from kemu.services.scheduler.nodeinfo import PodInfo
from tests.unit.scheduler.sched_builders import node, pod


def test_confirm_keeps_the_count_and_the_newest_pod() -> None:
    cache = Cache()
    cache.set_node(node("a"))
    pending = pod("p", cpu="1")
    pending.metadata.uid = "u1"
    cache.assume(PodInfo.of(pending), "a")
    bound = pod("p", cpu="1", node_name="a")
    bound.metadata.uid = "u1"
    assert cache.confirm(bound, "default/p")
    assert not cache.is_assumed("default/p")
    info = cache.nodes["a"].pods["default/p"]
    assert info.pod is bound
    assert cache.nodes["a"].usage.requested["cpu"] == 1000
    assert cache.nodes["a"].usage.pods == 1


def test_confirm_refuses_another_node_or_another_pod_of_that_name() -> None:
    cache = Cache()
    cache.set_node(node("a"))
    cache.set_node(node("b"))
    first = pod("p", cpu="1")
    first.metadata.uid = "u1"
    cache.assume(PodInfo.of(first), "a")
    elsewhere = pod("p", cpu="1", node_name="b")
    elsewhere.metadata.uid = "u1"
    assert not cache.confirm(elsewhere, "default/p")
    replaced = pod("p", cpu="1", node_name="a")
    replaced.metadata.uid = "u2"
    assert not cache.confirm(replaced, "default/p")
    assert not cache.confirm(pod("q", node_name="a"), "default/q")
    assert cache.is_assumed("default/p")
