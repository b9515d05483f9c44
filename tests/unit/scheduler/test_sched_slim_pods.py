"""The scheduler's pod informer keeps a bound, unfinished pod without its status (half the
memory of a decoded pod) and every other pod whole: pending pods, whose PodScheduled
condition it writes, and finished ones, whose phase frees their node's resources."""

from __future__ import annotations

from kemu.api.v1 import api_pb2
from kemu.services.scheduler.scheduler import without_running_status
from tests.unit.scheduler.sched_builders import pod, wrap_pod


def with_status(phase: str, node_name: str = "") -> api_pb2.Object:
    p = pod("p", cpu="1", node_name=node_name)
    p.metadata.labels["app"] = "web"
    p.status.phase = phase
    p.status.conditions.add(type="Ready", status="True")
    p.status.pod_ip = "10.244.0.5"
    return wrap_pod(p)


def test_a_bound_running_pod_keeps_metadata_and_spec_but_no_status() -> None:
    obj = with_status("Running", node_name="a")
    expected = api_pb2.Object()
    expected.CopyFrom(obj)
    expected.pod.ClearField("status")
    slim = without_running_status(obj)
    assert slim == expected
    assert slim.pod.spec.node_name == "a"
    assert slim.pod.spec.containers[0].resources.requests["cpu"] == "1"
    assert slim.pod.metadata.labels["app"] == "web"
    assert not slim.pod.HasField("status")


def test_pending_and_finished_pods_are_kept_whole() -> None:
    for obj in (with_status("Pending"), with_status("Succeeded", node_name="a"),
                with_status("Failed", node_name="a")):
        before = obj.SerializeToString()
        kept = without_running_status(obj)
        assert kept.SerializeToString() == before
        assert kept.pod.status.conditions[0].type == "Ready"
