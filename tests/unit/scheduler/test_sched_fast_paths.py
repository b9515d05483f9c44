"""The scheduler's fast paths give the same answers as the plain functions they replace.

NodeResourcesFit's Filter reads the node's running `free` amounts and both it and
SelectorSpread score all feasible nodes in one call; these run hundreds of times per pod,
so they are written for speed. Here they are checked against `insufficient_reasons`,
`least_allocated_score` and the per-node `score` on random nodes, pods and churn.
"""

from __future__ import annotations

import random

from kemu.api.v1 import core_pb2
from kemu.services.scheduler import resources
from kemu.services.scheduler.framework import SUCCESS, CycleState, Unschedulable
from kemu.services.scheduler.nodeinfo import NodeInfo, PodInfo
from kemu.services.scheduler.plugins import node_resources_fit, selector_spread
from tests.unit.scheduler.sched_builders import container, node, pod

RESOURCES = ("cpu", "memory", "ephemeral-storage", "example.com/gpu", "pods")


def random_node(rng: random.Random, name: str) -> core_pb2.Node:
    """Allocatable with some resources missing, some zero, some tiny."""
    alloc: dict[str, str] = {}
    for r in RESOURCES:
        if rng.random() < 0.8:
            value = rng.choice([0, 1, 2, 3, 4, 8, 110])
            alloc[r] = f"{value}" if r != "memory" else f"{value}Gi"
    return node(name, allocatable=alloc)


def random_pod(rng: random.Random, name: str) -> core_pb2.Pod:
    containers = []
    for i in range(rng.randint(1, 2)):
        extra = {"example.com/gpu": str(rng.randint(0, 2))} if rng.random() < 0.3 else {}
        if rng.random() < 0.2:
            extra["ephemeral-storage"] = f"{rng.randint(0, 3)}"
        containers.append(container(
            f"c{i}", cpu=rng.choice([None, "100m", "500m", "1", "3"]),
            memory=rng.choice([None, "128Mi", "1Gi", "3Gi"]), extra=extra))
    return pod(name, containers=containers, owner=rng.choice([None, "web", "api"]),
               labels=rng.choice([None, {"app": "db"}]))


def test_fit_filter_and_scores_match_the_plain_functions() -> None:
    rng = random.Random(20261122)
    fit = node_resources_fit.NodeResourcesFit()
    spread = selector_spread.SelectorSpread()
    infos: list[NodeInfo] = []
    for i in range(40):
        info = NodeInfo(f"n{i}")
        if rng.random() < 0.2:  # pods known before the node itself
            info.add_pod(PodInfo.of(random_pod(rng, f"early{i}")))
        info.set_node(random_node(rng, f"n{i}"))
        infos.append(info)
    placed: list[tuple[NodeInfo, str]] = []
    for step in range(300):
        candidate = PodInfo.of(random_pod(rng, f"p{step}"))
        state: CycleState = {}
        assert fit.pre_filter(state, candidate).ok
        for info in infos:
            usage, allocatable = info.usage, info.allocatable
            assert info.free_pods == allocatable.get(resources.PODS, 0) - usage.pods
            assert (info.allocatable_cpu, info.allocatable_memory) == \
                (allocatable.get(resources.CPU, 0), allocatable.get(resources.MEMORY, 0))
            for name in RESOURCES:
                assert info.free.get(name, 0) == \
                    allocatable.get(name, 0) - usage.requested.get(name, 0)
            reasons = node_resources_fit.insufficient_reasons(candidate.requests, usage,
                                                              allocatable)
            expected = Unschedulable(*reasons) if reasons else SUCCESS
            assert fit.filter(state, candidate, info) == expected
        assert fit.pre_score(state, candidate, infos).ok
        per_node = [fit.score(state, candidate, n) for n in infos]
        assert per_node == [node_resources_fit.least_allocated_score(
            candidate.non_zero_requests, n.usage, n.allocatable) for n in infos]
        assert fit.score_nodes(state, candidate, infos) == per_node
        assert spread.score_nodes(state, candidate, infos) == \
            [spread.score(state, candidate, n) for n in infos]
        # Churn: place the pod somewhere, sometimes remove one, sometimes update a node.
        target = rng.choice(infos)
        target.add_pod(candidate)
        placed.append((target, candidate.key))
        if placed and rng.random() < 0.3:
            where, key = placed.pop(rng.randrange(len(placed)))
            where.remove_pod(key)
        if rng.random() < 0.1:
            changed = rng.choice(infos)
            changed.set_node(random_node(rng, changed.name))
