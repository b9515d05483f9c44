"""Helpers of the node agent e2e tests: pods from manifest dicts, polling with deadlines,
and the NodeAgent gRPC calls (logs, exec) made directly against the agent."""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import docker
import grpc

from kemu.api import manifest
from kemu.api.v1 import api_pb2, nodeagent_pb2_grpc
from kemu.client import Client
from kemu.client.errors import AlreadyExists, NotFound
from tests.conftest import Cluster
from tests.support import processes

PAUSE_IMAGE = os.environ.get("KEMU_E2E_PAUSE_IMAGE", "kemu/pause:3.9")
TOOLS_IMAGE = os.environ.get("KEMU_E2E_TOOLS_IMAGE", "kemu/tools:1")
APP_IMAGE = os.environ.get("KEMU_E2E_APP_IMAGE", "kemu/bootcamp:v1")
APP_IMAGE_V2 = os.environ.get("KEMU_E2E_APP_IMAGE_V2", "kemu/bootcamp:v2")
IMAGES = (PAUSE_IMAGE, TOOLS_IMAGE, APP_IMAGE, APP_IMAGE_V2)


def docker_from_env() -> docker.DockerClient:
    return docker.DockerClient(base_url=os.environ.get("DOCKER_HOST") or None, timeout=60)


@dataclass
class AgentHandle:
    """A running agent process and what tests need to reach it."""

    node: str
    proc: processes.Proc
    cluster: Cluster
    data_dir: Path
    port: int
    args: list[str]

    @property
    def grpc_address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def client(self) -> Client:
        return Client(self.cluster.server, read_retry_seconds=10)

    def restart(self) -> None:
        """Start the same agent again (after kill -9 or a stop)."""
        self.proc = processes.Proc(self.proc.name, self.args, self.proc.log, self.grpc_address)
        self.proc.start().wait_ready(timeout=30)


def cleanup_node(client: docker.DockerClient, node: str) -> None:
    """Remove every container and the network of one node (by label and name)."""
    for c in client.containers.list(all=True, filters={"label": f"io.kemu.node={node}"}):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            c.remove(force=True)
    for n in client.networks.list(names=[f"kemu-{node}"]):
        with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
            n.remove()


def agent_args(cluster: Cluster, node: str, port: int, data_dir: Path,
               *extra: str) -> list[str]:
    return [sys.executable, "-m", "kemu.nodeagent", "--insecure", "--apiserver", cluster.server,
            "--node-name", node, "--node-ip", "127.0.0.1", "--port", str(port),
            "--address", "127.0.0.1", "--data-dir", str(data_dir),
            "--pause-image", PAUSE_IMAGE, "--backoff-initial", "1", "--backoff-max", "8",
            "--resync-interval", "2", "--proxy-mode", "none", "--network-plugin", "none",
            *extra]


@contextlib.contextmanager
def running_agent(cluster: Cluster, docker_client: docker.DockerClient, tmp: Path,
                  prefix: str, *extra: str, exact_name: bool = False) -> Iterator[AgentHandle]:
    node = prefix if exact_name else f"{prefix}-{secrets.token_hex(3)}"
    port = processes.free_port()
    data_dir = tmp / f"agent-{node}"
    args = agent_args(cluster, node, port, data_dir, *extra)
    proc = processes.Proc(f"agent-{node}", args, tmp / f"agent-{node}.log",
                          f"127.0.0.1:{port}")
    handle = AgentHandle(node, proc, cluster, data_dir, port, args)
    try:
        proc.start().wait_ready(timeout=30)
        yield handle
    finally:
        handle.proc.stop(grace=10)
        cleanup_node(docker_client, node)


def create_namespace(api: Client, name: str) -> None:
    with contextlib.suppress(AlreadyExists):
        api.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                       "metadata": {"name": name}}))


def create(api: Client, doc: dict[str, Any]) -> api_pb2.Object:
    return api.create(manifest.from_dict(doc))


def pod_doc(name: str, namespace: str, node: str, containers: list[dict[str, Any]],
            **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"nodeName": node, "terminationGracePeriodSeconds": 2,
                     "containers": containers, **spec}}


def create_pod(api: Client, name: str, namespace: str, node: str,
               containers: list[dict[str, Any]], **spec: Any) -> Any:
    return create(api, pod_doc(name, namespace, node, containers, **spec)).pod


def wait_for(fn: Callable[[], Any], timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll `fn()` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}; last: {last!r}")


def get_pod(api: Client, namespace: str, name: str) -> Any | None:
    try:
        return api.get("pods", name, namespace).pod
    except NotFound:
        return None


def condition(pod: Any, type_: str) -> str:
    return next((c.status for c in pod.status.conditions if c.type == type_), "")


def is_ready(pod: Any) -> bool:
    return pod is not None and pod.status.phase == "Running" and condition(pod, "Ready") == "True"


def wait_pod(api: Client, namespace: str, name: str, predicate: Callable[[Any], bool],
             timeout: float, what: str) -> Any:
    def check() -> Any:
        pod = get_pod(api, namespace, name)
        return pod if pod is not None and predicate(pod) else None
    try:
        return wait_for(check, timeout, f"pod {namespace}/{name}: {what}")
    except AssertionError as e:
        pod = get_pod(api, namespace, name)
        raise AssertionError(f"{e}\nstatus: {pod.status if pod else None}") from None


def wait_ready(api: Client, namespace: str, name: str, timeout: float = 30) -> Any:
    return wait_pod(api, namespace, name, is_ready, timeout, "Running and Ready")


def wait_gone(api: Client, namespace: str, name: str, timeout: float = 30) -> None:
    wait_for(lambda: get_pod(api, namespace, name) is None, timeout,
             f"pod {namespace}/{name} to be deleted")


def status_of(pod: Any, container: str, *, init: bool = False) -> Any:
    statuses = pod.status.init_container_statuses if init else pod.status.container_statuses
    return next((s for s in statuses if s.name == container), None)


def waiting_reason(pod: Any, container: str) -> str:
    s = status_of(pod, container)
    return str(s.state.waiting.reason) if s is not None else ""


def events(api: Client, namespace: str, pod: str) -> list[Any]:
    return [o.event for o in api.list("events", namespace).items
            if o.event.involved_object.name == pod]


def logs(address: str, namespace: str, pod: str, container: str = "", **kw: Any) -> bytes:
    with grpc.insecure_channel(address) as ch:
        stub = nodeagent_pb2_grpc.NodeAgentStub(ch)
        req = api_pb2.LogsRequest(namespace=namespace, name=pod, container=container, **kw)
        return b"".join(c.data for c in stub.Logs(req, timeout=30))


def follow_logs(address: str, namespace: str, pod: str, container: str = ""
                ) -> tuple[grpc.Channel, Iterator[api_pb2.LogChunk]]:
    ch = grpc.insecure_channel(address)
    stub = nodeagent_pb2_grpc.NodeAgentStub(ch)
    req = api_pb2.LogsRequest(namespace=namespace, name=pod, container=container, follow=True)
    return ch, stub.Logs(req, timeout=60)


def exec_(address: str, namespace: str, pod: str, command: list[str], *, container: str = "",
          stdin: bytes | None = None, tty: bool = False,
          resize: tuple[int, int] | None = None) -> tuple[int, bytes, bytes]:
    """Run a command through the NodeAgent service: (exit code, stdout, stderr)."""
    start = api_pb2.ExecRequest.Start(namespace=namespace, name=pod, container=container,
                                      command=command, stdin=stdin is not None, tty=tty)

    def requests() -> Iterator[api_pb2.ExecRequest]:
        yield api_pb2.ExecRequest(start=start)
        if resize is not None:
            yield api_pb2.ExecRequest(resize=api_pb2.ExecRequest.Resize(width=resize[0],
                                                                        height=resize[1]))
        if stdin is not None:
            yield api_pb2.ExecRequest(stdin=stdin)
            yield api_pb2.ExecRequest(close_stdin=True)

    out, err, code = b"", b"", None
    with grpc.insecure_channel(address) as ch:
        stub = nodeagent_pb2_grpc.NodeAgentStub(ch)
        for resp in stub.Exec(requests(), timeout=30):
            which = resp.WhichOneof("output")
            if which == "stdout":
                out += resp.stdout
            elif which == "stderr":
                err += resp.stderr
            elif which == "exit_code":
                code = resp.exit_code
    assert code is not None, "exec ended without an exit code"
    return code, out, err
