"""Resource arithmetic: effective pod requests (init containers, sidecars, overhead),
quantities, allocatable, the fit check and the LeastAllocated score."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from kemu.api.v1 import core_pb2
from kemu.services.scheduler import resources
from kemu.services.scheduler.plugins.node_resources_fit import (
    insufficient_reasons,
    least_allocated_score,
)
from tests.unit.scheduler.sched_builders import container, node, pod

MI = 1024 * 1024


@pytest.mark.parametrize(("resource", "text", "value"), [
    pytest.param("cpu", "500m", 500, id="cpu-milli"),
    pytest.param("cpu", "1", 1000, id="cpu-one"),
    pytest.param("cpu", "1.5", 1500, id="cpu-decimal"),
    pytest.param("cpu", "0.1", 100, id="cpu-tenth"),
    pytest.param("cpu", "0.0001", 1, id="cpu-rounds-up"),
    pytest.param("cpu", "2e3", 2_000_000, id="cpu-exponent"),
    pytest.param("memory", "128Mi", 128 * MI, id="mem-mebi"),
    pytest.param("memory", "1G", 10**9, id="mem-giga"),
    pytest.param("memory", "1.5Gi", 1536 * MI, id="mem-decimal-gibi"),
    pytest.param("memory", "100m", 1, id="mem-milli-rounds-up"),
    pytest.param("example.com/gpu", "2", 2, id="extended"),
])
def test_amount(resource: str, text: str, value: int) -> None:
    assert resources.amount(resource, text) == value


def _spec(containers: list[core_pb2.Container], init: Sequence[core_pb2.Container] = (),
          overhead: dict[str, str] | None = None, pod_level: dict[str, str] | None = None
          ) -> core_pb2.PodSpec:
    p = pod(containers=containers, init=init)
    p.spec.overhead.update(overhead or {})
    p.spec.resources.requests.update(pod_level or {})
    return p.spec


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param(_spec([container()]), {}, id="best-effort"),
    pytest.param(_spec([container(cpu="500m", memory="128Mi")]),
                 {"cpu": 500, "memory": 128 * MI}, id="one-container"),
    pytest.param(_spec([container(cpu="500m"), container("b", cpu="250m", memory="64Mi")]),
                 {"cpu": 750, "memory": 64 * MI}, id="containers-add-up"),
    pytest.param(_spec([container(cpu="500m")], [container("i", cpu="2")]),
                 {"cpu": 2000}, id="init-larger-wins"),
    pytest.param(_spec([container(cpu="500m", memory="1Gi")],
                       [container("i1", cpu="300m", memory="2Gi"), container("i2", cpu="1")]),
                 {"cpu": 1000, "memory": 2048 * MI}, id="init-max-per-resource"),
    pytest.param(_spec([container(cpu="1")], [container("i", cpu="200m")]),
                 {"cpu": 1000}, id="init-smaller-ignored"),
    pytest.param(_spec([container(cpu="1")],
                       [container("side", cpu="200m", restart_policy="Always")]),
                 {"cpu": 1200}, id="sidecar-adds"),
    pytest.param(_spec([container(cpu="100m")],
                       [container("side", cpu="500m", restart_policy="Always"),
                        container("i", cpu="1")]),
                 {"cpu": 1500}, id="init-after-sidecar-counts-it"),
    pytest.param(_spec([container(cpu="100m")],
                       [container("i", cpu="1"),
                        container("side", cpu="500m", restart_policy="Always")]),
                 {"cpu": 1000}, id="init-before-sidecar"),
    pytest.param(_spec([container(cpu="500m")], overhead={"cpu": "100m", "memory": "10Mi"}),
                 {"cpu": 600, "memory": 10 * MI}, id="overhead"),
    pytest.param(_spec([container(cpu="500m"), container("b", cpu="500m")],
                       pod_level={"cpu": "2"}), {"cpu": 2000}, id="pod-level-requests"),
    pytest.param(_spec([container(extra={"example.com/gpu": "1"}),
                        container("b", extra={"example.com/gpu": "2"})]),
                 {"example.com/gpu": 3}, id="extended-resources"),
])
def test_pod_requests(spec: core_pb2.PodSpec, expected: dict[str, int]) -> None:
    assert resources.pod_requests(spec) == expected


@pytest.mark.parametrize(("spec", "expected"), [
    pytest.param(_spec([container()]), {"cpu": 100, "memory": 200 * MI}, id="defaults"),
    pytest.param(_spec([container(cpu="1")]), {"cpu": 1000, "memory": 200 * MI},
                 id="memory-default-only"),
    pytest.param(_spec([container(), container("b")]), {"cpu": 200, "memory": 400 * MI},
                 id="per-container"),
])
def test_non_zero_requests_for_scoring(spec: core_pb2.PodSpec,
                                       expected: dict[str, int]) -> None:
    assert resources.pod_requests(spec, non_zero=True) == expected


def test_allocatable_falls_back_to_capacity_and_ignores_garbage() -> None:
    status = core_pb2.NodeStatus()
    status.capacity.update({"cpu": "8", "memory": "16Gi", "pods": "110"})
    status.allocatable.update({"cpu": "7500m", "memory": "lots"})
    assert resources.node_allocatable(status) == {"cpu": 7500, "memory": 0, "pods": 110}


def _usage(cpu: int = 0, memory: int = 0, pods: int = 0) -> resources.Usage:
    u = resources.Usage()
    u.add({"cpu": cpu, "memory": memory}, {"cpu": cpu, "memory": memory})
    u.pods = pods
    return u


ALLOC = {"cpu": 2000, "memory": 4096 * MI, "pods": 3}


@pytest.mark.parametrize(("requests", "usage", "reasons"), [
    pytest.param({"cpu": 1000}, _usage(1000, 0, 1), [], id="exactly-fits"),
    pytest.param({"cpu": 1001}, _usage(1000, 0, 1), ["Insufficient cpu"], id="cpu"),
    pytest.param({"memory": 5000 * MI}, _usage(), ["Insufficient memory"], id="memory"),
    pytest.param({"cpu": 3000, "memory": 5000 * MI}, _usage(), ["Insufficient cpu",
                                                               "Insufficient memory"],
                 id="both-in-order"),
    pytest.param({}, _usage(pods=3), ["Too many pods"], id="pods"),
    pytest.param({"cpu": 0}, _usage(5000, 0, 1), [], id="zero-request-always-fits"),
    pytest.param({"example.com/gpu": 1}, _usage(), ["Insufficient example.com/gpu"],
                 id="extended-missing"),
    pytest.param({"cpu": 3000}, _usage(pods=3), ["Too many pods", "Insufficient cpu"],
                 id="pods-first"),
])
def test_insufficient_reasons(requests: dict[str, int], usage: resources.Usage,
                              reasons: list[str]) -> None:
    assert insufficient_reasons(requests, usage, ALLOC) == reasons


@pytest.mark.parametrize(("requested", "allocatable", "score"), [
    pytest.param(0, 1000, 100, id="empty"),
    pytest.param(250, 1000, 75, id="quarter"),
    pytest.param(1000, 1000, 0, id="full"),
    pytest.param(1500, 1000, 0, id="over"),
    pytest.param(10, 0, 0, id="nothing-to-give"),
    pytest.param(1, 3, 66, id="integer-division"),
])
def test_least_allocated(requested: int, allocatable: int, score: int) -> None:
    assert resources.least_allocated(requested, allocatable) == score


def test_least_allocated_score_averages_cpu_and_memory() -> None:
    alloc = resources.node_allocatable(node(cpu="4", memory="8Gi").status)
    usage = _usage(1000, 2048 * MI, 1)
    # cpu: (4000-2000)/4000 -> 50; memory: (8Gi-4Gi)/8Gi -> 50
    assert least_allocated_score({"cpu": 1000, "memory": 2048 * MI}, usage, alloc) == 50
    # cpu 75, memory 100 -> 87
    assert least_allocated_score({"cpu": 1000, "memory": 0}, resources.Usage(), alloc) == 87
