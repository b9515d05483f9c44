"""describe: the lines a user looks for, per kind, and the Events section."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemu.client import Client
from tests.integration.kemuctl.conftest import Kemuctl, make_pod

pytestmark = pytest.mark.integration
WEB = (Path(__file__).resolve().parents[3] / "examples" / "web.yaml").read_text()


def test_describe_deployment(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=WEB)
    lines = ctl.ok("describe", "deployment", "web", "-n", ns).lines
    for expected in (
        "Name:                   web",
        f"Namespace:              {ns}",
        "Labels:                 app=web",
        "Selector:               app=web",
        "Replicas:               2 desired | 0 updated | 0 total | 0 available | 0 unavailable",
        "StrategyType:           RollingUpdate",
        "RollingUpdateStrategy:  25% max unavailable, 25% max surge",
        "Pod Template:",
        "    Image:         kemu/bootcamp:1",
        "    Port:          8080/TCP",
        "    Readiness:     http-get http://:http/ delay=1s timeout=1s period=5s #success=1 "
        "#failure=3",
        "Events:            <none>",
    ):
        assert expected in lines, "\n".join(lines)
    assert not any("last-applied-configuration" in line for line in lines)


def test_describe_service_and_endpoints(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=WEB + "---\napiVersion: v1\nkind: Endpoints\n"
           "metadata: {name: web}\nsubsets:\n- addresses: [{ip: 10.244.1.5}, {ip: 10.244.2.7}]\n"
           "  ports: [{name: http, port: 8080}]\n")
    text = ctl.ok("describe", "svc", "web", "-n", ns).out
    node_port = ctl.ok("get", "svc", "web", "-n", ns, "-o",
                       "jsonpath={.spec.ports[0].nodePort}").out
    for expected in ("Type:                     NodePort",
                     "Port:                     http  80/TCP",
                     "TargetPort:               http/TCP",
                     f"NodePort:                 http  {node_port}/TCP",
                     "Endpoints:                10.244.1.5:8080,10.244.2.7:8080",
                     "Session Affinity:         None"):
        assert expected in text.splitlines(), text


def test_describe_pod_with_events(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: solo, labels: {app: solo}}\n"
        "spec: {containers: [{name: app, image: busybox, env: [{name: A, value: '1'}]}]}\n"))
    uid = ctl.ok("get", "pod", "solo", "-n", ns, "-o", "jsonpath={.metadata.uid}").out
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=(
        "apiVersion: v1\nkind: Event\nmetadata: {name: solo.1}\n"
        f"involvedObject: {{kind: Pod, name: solo, namespace: {ns}, uid: {uid}}}\n"
        "reason: Scheduled\nmessage: Successfully assigned to node-1\ntype: Normal\n"
        "source: {component: default-scheduler}\n---\n"
        "apiVersion: v1\nkind: Event\nmetadata: {name: other.1}\n"
        "involvedObject: {kind: Pod, name: solo, uid: some-older-pod}\n"
        "reason: Stale\nmessage: about an older pod of that name\ntype: Warning\n"))
    text = ctl.ok("describe", "pod", "solo", "-n", ns).out
    assert "Status:           Pending" in text
    assert any(line.startswith("      A:") and line.split() == ["A:", "1"]
               for line in text.splitlines()), text
    events = text[text.index("Events:"):].splitlines()
    assert events[1].split() == ["Type", "Reason", "Age", "From", "Message"]
    assert events[3].split()[:2] == ["Normal", "Scheduled"]
    assert "Stale" not in text


def test_describe_by_prefix_and_all(ctl: Kemuctl, ns: str) -> None:
    for name in ("web-a", "web-b", "db"):
        ctl.ok("create", "cm", name, "-n", ns, "--from-literal=k=v")
    by_prefix = ctl.ok("describe", "cm", "web", "-n", ns).out
    assert "Name:         web-a" in by_prefix and "Name:         web-b" in by_prefix
    assert "Name:         db" not in by_prefix
    everything = ctl.ok("describe", "cm", "-n", ns).out
    assert everything.count("\nData\n====\n") == 3
    missing = ctl("describe", "cm", "nope", "-n", ns)
    assert missing.code == 1
    assert missing.err_lines == ['Error from server (NotFound): configmaps "nope" not found']


def test_describe_namespace_and_generic(ctl: Kemuctl, ns: str) -> None:
    text = ctl.ok("describe", "ns", ns).out
    assert text.splitlines()[:2] == [f"Name:         {ns}", "Labels:       <none>"]
    assert "Status:       Active" in text
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=(
        "apiVersion: coordination.k8s.io/v1\nkind: Lease\nmetadata: {name: lock}\n"
        "spec: {holderIdentity: me, leaseDurationSeconds: 15}\n"))
    lease = ctl.ok("describe", "lease", "lock", "-n", ns).out
    assert "  Holder Identity:         me" in lease.splitlines()
    assert "API Version:  coordination.k8s.io/v1" in lease.splitlines()


def test_describe_pod_with_a_terminated_container(ctl: Kemuctl, ns: str, api: Client) -> None:
    make_pod(api, ns, "crashy", node="node-1", status={
        "phase": "Running", "hostIP": "10.0.0.2", "podIP": "10.244.1.9",
        "podIPs": [{"ip": "10.244.1.9"}], "startTime": "2024-01-02T03:04:05Z",
        "conditions": [{"type": "Initialized", "status": "True"},
                       {"type": "Ready", "status": "False"},
                       {"type": "PodScheduled", "status": "True"}],
        "containerStatuses": [{
            "name": "c", "ready": False, "restartCount": 4, "image": "kemu/tools:1",
            "containerID": "docker://abc",
            "state": {"waiting": {"reason": "CrashLoopBackOff"}},
            "lastState": {"terminated": {"exitCode": 3, "reason": "Error",
                                         "startedAt": "2024-01-02T03:05:00Z",
                                         "finishedAt": "2024-01-02T03:05:01Z"}}}]})
    lines = ctl.ok("describe", "pod", "crashy", "-n", ns).lines
    strip = [" ".join(line.split()) for line in lines]
    for expected in ("Node: node-1/10.0.0.2", "Status: Running", "IP: 10.244.1.9",
                     "Container ID: docker://abc", "State: Waiting", "Reason: CrashLoopBackOff",
                     "Last State: Terminated", "Reason: Error", "Exit Code: 3",
                     "Ready: False", "Restart Count: 4", "Conditions:", "Type Status",
                     "Initialized True", "Ready False", "PodScheduled True", "Events: <none>"):
        assert expected in strip, "\n".join(lines)
    assert strip.index("State: Waiting") < strip.index("Last State: Terminated") < \
        strip.index("Exit Code: 3") < strip.index("Restart Count: 4")
