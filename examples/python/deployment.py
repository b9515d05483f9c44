"""A Deployment's life through the Python client: create it, watch its pods until they are
Running, scale it, read a pod's logs, delete it and watch its pods go.

    KEMU_SERVER=127.0.0.1:6443 python examples/python/deployment.py      # after `make up`

KEMU_SERVER defaults to the current cluster in ~/.kemu/config; KEMU_TOKEN, when set, is
sent as `authorization: Bearer ...`. It prints one line per step and per pod change, and
exits 1 with one line if anything fails.
"""

from __future__ import annotations

import sys
import time

from kemu.api.v1 import api_pb2, apps_pb2, core_pb2
from kemu.client import Client, ClientError, NotFound, config, typed

NAME, NAMESPACE, LABELS = "hello-python", "default", {"app": "hello-python"}


def deployment(replicas: int) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name, d.metadata.namespace = NAME, NAMESPACE
    d.spec.replicas = replicas
    d.spec.selector.match_labels.update(LABELS)
    d.spec.template.metadata.labels.update(LABELS)
    c = d.spec.template.spec.containers.add(name="web", image="kemu/bootcamp:v1")
    c.ports.add(container_port=8080)
    return d


def wait_pods(pods: typed.Resource[core_pb2.Pod], want_running: int,
              timeout: float = 120.0) -> list[str]:
    """Follow the pods with list_and_watch until exactly `want_running` exist, all Running;
    print each change. Returns their names."""
    deadline = time.monotonic() + timeout
    phases: dict[str, str] = {}
    selector = ",".join(f"{k}={v}" for k, v in LABELS.items())
    for event, pod in pods.list_and_watch(NAMESPACE, label_selector=selector,
                                          stream_seconds=5):
        name, phase = pod.metadata.name, pod.status.phase or "Pending"
        if event == "DELETED":
            phases.pop(name, None)
            print(f"  pod {name} deleted")
        elif phases.get(name) != phase:
            phases[name] = phase
            print(f"  pod {name} {phase}")
        if len(phases) == want_running and set(phases.values()) <= {"Running"}:
            return sorted(phases)
        if time.monotonic() > deadline:
            raise TimeoutError(f"pods not {want_running} Running within {timeout:.0f}s: "
                               f"{phases}")
    raise AssertionError("unreachable")


def first_log_lines(client: Client, pod: str, count: int, timeout: float = 15.0) -> list[str]:
    """Up to `count` lines of the pod's log. A container that has just started may not have
    written its first line yet, so ask again (briefly) until there is one."""
    request = api_pb2.LogsRequest(namespace=NAMESPACE, name=pod)
    deadline = time.monotonic() + timeout
    while True:
        lines = b"".join(client.logs(request)).decode().splitlines()
        if lines or time.monotonic() > deadline:
            return lines[:count]
        time.sleep(0.2)


def wait_gone(deployments: typed.Resource[apps_pb2.Deployment], timeout: float = 60.0) -> None:
    """A foreground delete keeps the Deployment (with its deletionTimestamp) until the
    garbage collector has removed its ReplicaSet and pods; wait until it is gone too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            deployments.get(NAME, NAMESPACE)
        except NotFound:
            return
        time.sleep(0.2)
    raise TimeoutError(f"deployment {NAME} still there {timeout:.0f}s after its pods went")


def main() -> int:
    server = config.resolve_server(None)  # KEMU_SERVER, else ~/.kemu/config
    with Client(server, timeout=15, read_retry_seconds=10,
                token=config.resolve_token(None)) as client:
        deployments = typed.resource(client, apps_pb2.Deployment)
        pods = typed.resource(client, core_pb2.Pod)
        print(f"creating deployment {NAME} (2 replicas) on {server}")
        deployments.create(deployment(2))
        wait_pods(pods, 2)
        print("scaling to 3")
        deployments.scale(NAME, 3, NAMESPACE)
        names = wait_pods(pods, 3)
        print(f"logs of {names[0]}:")
        for line in first_log_lines(client, names[0], 5):
            print(f"  | {line}")
        print(f"deleting deployment {NAME}")
        deployments.delete(NAME, NAMESPACE,
                           propagation_policy=api_pb2.FOREGROUND)
        wait_pods(pods, 0)
        wait_gone(deployments)
        print("done: the deployment and its pods are gone")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (ClientError, TimeoutError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
