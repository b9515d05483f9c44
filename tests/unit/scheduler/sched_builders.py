"""Builders for scheduler unit tests: nodes and pods in a line, and a fake API client."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kemu.api.v1 import api_pb2, core_pb2
from kemu.client.errors import AlreadyExists, ClientError, Conflict, NotFound
from kemu.services.scheduler.nodeinfo import NodeInfo, PodInfo


def node(name: str = "n1", *, cpu: str = "4", memory: str = "8Gi", pods: str = "110",
         labels: Mapping[str, str] | None = None,
         taints: Iterable[tuple[str, str, str]] = (), unschedulable: bool = False,
         ready: str | None = "True", allocatable: Mapping[str, str] | None = None
         ) -> core_pb2.Node:
    n = core_pb2.Node()
    n.metadata.name = n.metadata.uid = name
    n.metadata.labels.update(labels or {})
    if allocatable is None:
        allocatable = {k: v for k, v in (("cpu", cpu), ("memory", memory), ("pods", pods)) if v}
    n.status.allocatable.update(allocatable)
    for key, value, effect in taints:
        n.spec.taints.add(key=key, value=value, effect=effect)
    n.spec.unschedulable = unschedulable
    if ready is not None:
        n.status.conditions.add(type="Ready", status=ready)
    return n


def container(name: str = "c", *, cpu: str | None = None, memory: str | None = None,
              extra: Mapping[str, str] | None = None,
              host_ports: Iterable[int | tuple[int, str, str]] = (),
              restart_policy: str | None = None) -> core_pb2.Container:
    c = core_pb2.Container(name=name, image="busybox")
    if cpu is not None:
        c.resources.requests["cpu"] = cpu
    if memory is not None:
        c.resources.requests["memory"] = memory
    c.resources.requests.update(extra or {})
    for hp in host_ports:
        port, protocol, ip = (hp, "", "") if isinstance(hp, int) else hp
        c.ports.add(container_port=port, host_port=port, protocol=protocol, host_ip=ip)
    if restart_policy is not None:
        c.restart_policy = restart_policy
    return c


def pod(name: str = "p", *, namespace: str = "default", cpu: str | None = None,
        memory: str | None = None, containers: Sequence[core_pb2.Container] | None = None,
        init: Sequence[core_pb2.Container] = (), node_selector: Mapping[str, str] | None = None,
        tolerations: Iterable[Mapping[str, str]] = (),
        host_ports: Iterable[int | tuple[int, str, str]] = (),
        labels: Mapping[str, str] | None = None, owner: str | None = None,
        node_name: str = "", uid: str | None = None) -> core_pb2.Pod:
    p = core_pb2.Pod()
    p.metadata.name, p.metadata.namespace = name, namespace
    p.metadata.uid = uid or f"uid-{namespace}-{name}"
    p.metadata.resource_version = "1"
    p.metadata.labels.update(labels or {})
    if owner is not None:
        p.metadata.owner_references.add(api_version="apps/v1", kind="ReplicaSet", name=owner,
                                         uid=f"rs-{owner}", controller=True)
    if containers is None:
        containers = [container(cpu=cpu, memory=memory, host_ports=host_ports)]
    p.spec.containers.extend(containers)
    p.spec.init_containers.extend(init)
    p.spec.node_selector.update(node_selector or {})
    for t in tolerations:
        p.spec.tolerations.add(**t)
    p.spec.scheduler_name = "default-scheduler"
    p.spec.node_name = node_name
    p.status.phase = "Pending"
    return p


def node_info(n: core_pb2.Node, pods: Iterable[core_pb2.Pod] = ()) -> NodeInfo:
    info = NodeInfo(n.metadata.name)
    info.set_node(n)
    for p in pods:
        info.add_pod(PodInfo.of(p))
    return info


def wrap_pod(p: core_pb2.Pod) -> api_pb2.Object:
    o = api_pb2.Object()
    o.pod.CopyFrom(p)
    return o


def wrap_node(n: core_pb2.Node) -> api_pb2.Object:
    o = api_pb2.Object()
    o.node.CopyFrom(n)
    return o


@dataclass
class FakeClient:
    """Records binds, status updates and events; `bind_delay` makes binds slow,
    `bind_errors` (pod name -> error) makes them fail."""

    bind_delay: float = 0.0
    bind_errors: dict[str, ClientError] = field(default_factory=dict)
    binds: list[tuple[str, str, str]] = field(default_factory=list)
    bind_attempts: int = 0
    statuses: list[core_pb2.Pod] = field(default_factory=list)
    events: dict[tuple[str, str], api_pb2.Object] = field(default_factory=dict)
    event_writes: list[tuple[str, str, int]] = field(default_factory=list)
    pods: dict[tuple[str, str], core_pb2.Pod] = field(default_factory=dict)
    _rv: int = 100

    def _next_rv(self) -> str:
        self._rv += 1
        return str(self._rv)

    async def bind(self, namespace: str, name: str, node_name: str,
                   uid: str = "") -> api_pb2.Object:
        self.bind_attempts += 1
        if self.bind_delay:
            await asyncio.sleep(self.bind_delay)
        err = self.bind_errors.get(name)
        if err is not None:
            raise err
        self.binds.append((namespace, name, node_name))
        out = api_pb2.Object()
        out.pod.metadata.name, out.pod.metadata.namespace = name, namespace
        out.pod.spec.node_name = node_name
        return out

    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object:
        await asyncio.sleep(0)
        self.statuses.append(obj.pod)
        return obj

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object:
        await asyncio.sleep(0)
        if resource == "events" and (namespace, name) in self.events:
            out = api_pb2.Object()
            out.CopyFrom(self.events[(namespace, name)])
            return out
        if resource == "pods" and (namespace, name) in self.pods:
            return wrap_pod(self.pods[(namespace, name)])
        raise NotFound(f'{resource} "{name}" not found')

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object:
        await asyncio.sleep(0)
        e = obj.event
        k = (e.metadata.namespace, e.metadata.name)
        if k in self.events:
            raise AlreadyExists(f'events "{e.metadata.name}" already exists')
        stored = api_pb2.Object()
        stored.CopyFrom(obj)
        stored.event.metadata.resource_version = self._next_rv()
        self.events[k] = stored
        self.event_writes.append(("create", e.metadata.name, e.count))
        return stored

    async def update(self, obj: api_pb2.Object) -> api_pb2.Object:
        await asyncio.sleep(0)
        e = obj.event
        k = (e.metadata.namespace, e.metadata.name)
        current = self.events.get(k)
        if current is None:
            raise NotFound(f'events "{e.metadata.name}" not found')
        if current.event.metadata.resource_version != e.metadata.resource_version:
            raise Conflict("the object has been modified")
        stored = api_pb2.Object()
        stored.CopyFrom(obj)
        stored.event.metadata.resource_version = self._next_rv()
        self.events[k] = stored
        self.event_writes.append(("update", e.metadata.name, e.count))
        return stored
