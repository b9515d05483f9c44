"""`kemuctl run`: the Pod it creates, --dry-run, its refusals, and attached runs
(`run -it --rm --restart=Never`) against a real apiserver, with a thread standing in for
the scheduler and the node agent's status updates, and the stand-in agent serving the
container's log."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
import yaml

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client import Client, NotFound
from tests.integration.kemuctl.agent import StandInAgent
from tests.integration.kemuctl.conftest import Kemuctl

pytestmark = pytest.mark.integration


def test_run_creates_a_bare_pod(ctl: Kemuctl, ns: str, api: Client) -> None:
    assert ctl.ok("run", "web", "--image=nginx:1", "--port=80", "--env=MODE=prod", "-n",
                  ns).lines == ["pod/web created"]
    pod = api.get("pods", "web", ns).pod
    c = pod.spec.containers[0]
    assert dict(pod.metadata.labels) == {"run": "web"}
    assert (c.name, c.image, c.ports[0].container_port, c.env[0].name, c.env[0].value) == (
        "web", "nginx:1", 80, "MODE", "prod")
    assert (pod.spec.restart_policy, list(c.args), list(c.command)) == ("Always", [], [])


def test_command_flag_and_labels(ctl: Kemuctl, ns: str, api: Client) -> None:
    ctl.ok("run", "a", "--image=busybox", "--restart=Never", "-l", "app=x,tier=y", "-n", ns,
           "--", "nslookup", "web")
    ctl.ok("run", "b", "--image=busybox", "--command", "--image-pull-policy=Never", "-n", ns,
           "--", "sh", "-c", "exit 3")
    a, b = api.get("pods", "a", ns).pod, api.get("pods", "b", ns).pod
    assert (dict(a.metadata.labels), a.spec.restart_policy) == ({"app": "x", "tier": "y"},
                                                                "Never")
    assert (list(a.spec.containers[0].args), list(a.spec.containers[0].command)) == (
        ["nslookup", "web"], [])
    assert list(b.spec.containers[0].command) == ["sh", "-c", "exit 3"]
    assert b.spec.containers[0].image_pull_policy == "Never"


def test_dry_run_prints_and_creates_nothing(ctl: Kemuctl, ns: str) -> None:
    out = ctl.ok("run", "web", "--image=nginx:1", "--port=80", "--expose", "--dry-run=client",
                 "-o", "yaml", "-n", ns).out
    docs = list(yaml.safe_load_all(out))
    assert [d["kind"] for d in docs] == ["Service", "Pod"]
    assert docs[1]["spec"]["containers"] == [{"name": "web", "image": "nginx:1",
                                              "ports": [{"containerPort": 80}]}]
    assert docs[0]["spec"]["selector"] == {"run": "web"}
    assert ctl("get", "pods", "-n", ns).err_lines == [f"No resources found in {ns} namespace."]
    assert ctl.ok("run", "web", "--image=nginx:1", "--dry-run=client", "-n", ns).lines == [
        "pod/web created (dry run)"]


def test_expose_creates_the_service_too(ctl: Kemuctl, ns: str, api: Client) -> None:
    assert ctl.ok("run", "web", "--image=nginx:1", "--port=8080", "--expose", "-n",
                  ns).lines == ["service/web created", "pod/web created"]
    svc = api.get("services", "web", ns).service
    assert (dict(svc.spec.selector), svc.spec.ports[0].port) == ({"run": "web"}, 8080)


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(["web"], "error: --image is required", id="no-image"),
    pytest.param(["web", "--image=x", "--restart=Sometimes"],
                 "error: invalid restart policy: Sometimes", id="bad-restart"),
    pytest.param(["web", "--image=x", "-t"],
                 "error: -i/--stdin is required for containers with -t/--tty=true",
                 id="tty-without-stdin"),
    pytest.param(["web", "--image=x", "--rm"],
                 "error: --rm should only be used for attached containers", id="rm-detached"),
    pytest.param(["web", "--image=x", "--expose"],
                 "error: --port must be set when exposing a service", id="expose-no-port"),
    pytest.param(["web", "--image=x", "--port=http"],
                 "error: invalid --port 'http': expected a number from 1 to 65535",
                 id="bad-port"),
])
def test_refusals(ctl: Kemuctl, ns: str, args: list[str], expected: str) -> None:
    result = ctl.process("run", *args, "-n", ns)
    assert result.code == 1 and "Traceback" not in result.err
    assert result.err_lines[0] == expected


class FakeKubelet:
    """Plays scheduler and node agent for one pod: binds it to the node when it appears,
    reports it Running, and (when `finish` is called, from the agent's log script once
    the output is served) reports the container terminated with `exit_code`."""

    def __init__(self, client: Client, namespace: str, name: str, node: str) -> None:
        self.client, self.namespace, self.name, self.node = client, namespace, name, node
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> FakeKubelet:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(30)
        if self.error is not None:
            raise self.error

    def _set_status(self, status: dict[str, Any]) -> None:
        pod = self.client.get("pods", self.name, self.namespace)
        pod.pod.status.CopyFrom(manifest.from_dict({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": self.name},
            "status": status}).pod.status)
        self.client.update_status(pod)

    def _run(self) -> None:
        try:
            for ev in self.client.watch("pods", self.namespace,
                                        field_selector=f"metadata.name={self.name}",
                                        timeout=30):
                if ev.type == api_pb2.WatchEvent.ADDED:
                    self.client.bind(self.namespace, self.name, self.node)
                    self._set_status({"phase": "Running", "containerStatuses": [{
                        "name": self.name, "state": {"running": {}}}]})
                    return
        except BaseException as e:  # reported by __exit__
            self.error = e

    def finish(self, exit_code: int) -> None:
        self._set_status({
            "phase": "Succeeded" if exit_code == 0 else "Failed",
            "containerStatuses": [{"name": self.name, "state": {"terminated": {
                "exitCode": exit_code, "reason": "Completed" if exit_code == 0 else "Error"}}}]})


def serve_then_finish(kubelet: Callable[[], FakeKubelet], output: list[bytes],
                      exit_code: int) -> Callable[[api_pb2.LogsRequest, grpc.ServicerContext],
                                                  Iterator[bytes]]:
    def script(req: api_pb2.LogsRequest, context: grpc.ServicerContext) -> Iterator[bytes]:
        yield from output
        kubelet().finish(exit_code)  # the container exits: its log stream ends
    return script


def test_run_it_rm_restart_never(ctl: Kemuctl, ns: str, api: Client, agent: StandInAgent,
                                 agent_node: str) -> None:
    kubelet = FakeKubelet(api, ns, "tmp", agent_node)
    agent.logs_scripts["tmp"] = serve_then_finish(
        lambda: kubelet, [b"Server:\t\t10.96.0.10\n", b"Name:\tweb.default.svc.cluster.local\n"],
        exit_code=3)
    with kubelet:
        result = ctl("run", "-it", "--rm", "--restart=Never", "tmp", "--image=kemu/tools:1",
                     "-n", ns, "--", "nslookup", "web")
    assert result.code == 3
    assert result.lines == ["Server:\t\t10.96.0.10", "Name:\tweb.default.svc.cluster.local",
                            'pod "tmp" deleted']
    # stdin is no terminal here: kubectl's warning, then it goes on without a TTY.
    assert result.err_lines == ["Unable to use a TTY - input is not a terminal or the right "
                                "kind of file",
                                "If you don't see a command prompt, try pressing enter.",
                                f"pod {ns}/tmp terminated (Error)"]
    req = agent.logs_requests[-1]
    assert (req.name, req.container, req.follow) == ("tmp", "tmp", True)
    with pytest.raises(NotFound):
        api.get("pods", "tmp", ns)


def test_run_i_succeeds_and_keeps_the_pod(ctl: Kemuctl, ns: str, api: Client,
                                          agent: StandInAgent, agent_node: str) -> None:
    kubelet = FakeKubelet(api, ns, "job", agent_node)
    agent.logs_scripts["job"] = serve_then_finish(lambda: kubelet, [b"done\n"], exit_code=0)
    with kubelet:
        result = ctl("run", "-i", "--restart=Never", "job", "--image=kemu/tools:1", "-n", ns)
    assert (result.code, result.out, result.err) == (0, "done\n", "")
    pod = api.get("pods", "job", ns).pod
    assert (pod.spec.containers[0].stdin, pod.spec.containers[0].stdin_once,
            pod.spec.containers[0].tty) == (True, True, False)


def test_run_attached_gives_up_at_the_deadline_and_cleans_up(ctl: Kemuctl, ns: str,
                                                             api: Client) -> None:
    result = ctl("run", "-i", "--rm", "--pod-running-timeout=1s", "stuck", "--image=x", "-n",
                 ns)
    assert (result.code, result.lines, result.err_lines) == (
        1, ['pod "stuck" deleted'], ["error: timed out waiting for the condition"])
    with pytest.raises(NotFound):
        api.get("pods", "stuck", ns)
