"""The endpoints controller: one Endpoints object per Service, from the pods it selects.

The proxy and cluster DNS read Endpoints, not pods, so this is what makes a Service reach
anything. It follows kube-controller-manager's endpoints controller: pods with an IP that
match the selector, in the Service's namespace, not terminating and not finished; ready
ones (Ready condition True) under `addresses`, the rest under `notReadyAddresses` (all
under `addresses` with publishNotReadyAddresses); a named targetPort is looked up in each
pod's container ports, so pods that name the port differently land in different subsets,
grouped by their resolved port set as `RepackSubsets` does.

The computation is a pure function (`desired_subsets`) over typed messages; the
controller only maps watch events to Service keys and writes the difference. A write
happens only when the computed object differs from the stored one, so pod status
heartbeats cause no write storms. Selector-less Services (and their hand-written
Endpoints) are left alone; the controller labels what it writes so that, once the
Service is gone, it deletes only Endpoints it manages, also after a restart.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Protocol

from kemu.api import labels as labelsel
from kemu.api.v1 import api_pb2, core_pb2, meta_pb2
from kemu.client.errors import AlreadyExists, NotFound
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue, run_workers

log = logging.getLogger("kemu.controllers.endpoints")

NAME = "endpoints"
INFORMERS = ("services", "pods", "endpoints")
MANAGED_BY_LABEL = "endpoints.kemu.io/managed-by"
MANAGED_BY = "endpoint-controller"
HEADLESS_LABEL = "service.kubernetes.io/headless"
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})


# ---- pure computation -------------------------------------------------------------------


class PortNotFound(LookupError):
    """The pod has no container port of the Service port's targetPort name."""


def pod_is_ready(pod: core_pb2.Pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions)


def resolve_target_port(pod: core_pb2.Pod, port: core_pb2.ServicePort) -> int:
    """The pod's port number for a Service port (Kubernetes' podutil.FindPort)."""
    target = port.target_port
    kind = target.WhichOneof("kind")
    if kind == "number_value":
        return int(target.number_value) or port.port
    if kind != "string_value" or not target.string_value:
        return port.port
    name, protocol = target.string_value, port.protocol or "TCP"
    for container in pod.spec.containers:
        for cp in container.ports:
            if cp.name == name and (cp.protocol or "TCP") == protocol:
                return cp.container_port
    raise PortNotFound(f"no container port named {name!r} ({protocol})")


def pod_address(pod: core_pb2.Pod, service: core_pb2.Service) -> core_pb2.EndpointAddress:
    addr = core_pb2.EndpointAddress(ip=pod.status.pod_ip)
    if pod.spec.node_name:
        addr.node_name = pod.spec.node_name
    ref = addr.target_ref
    ref.kind, ref.namespace, ref.name, ref.uid = ("Pod", pod.metadata.namespace,
                                                  pod.metadata.name, pod.metadata.uid)
    if pod.spec.hostname and pod.spec.subdomain == service.metadata.name \
            and pod.metadata.namespace == service.metadata.namespace:
        addr.hostname = pod.spec.hostname
    return addr


def _port_key(p: core_pb2.EndpointPort) -> tuple[str, int, str]:
    return (p.name, p.port, p.protocol)


def _addr_key(a: core_pb2.EndpointAddress) -> tuple[tuple[int, ...], str, str]:
    ip: tuple[int, ...]
    try:
        ip = tuple(ipaddress.ip_address(a.ip).packed)
    except ValueError:
        ip = ()
    return (ip, a.ip, a.target_ref.uid)


@dataclass
class _Entry:
    address: core_pb2.EndpointAddress
    ready: bool
    ports: dict[tuple[str, int, str], core_pb2.EndpointPort]


def selects(service: core_pb2.Service, pod: core_pb2.Pod) -> bool:
    """Whether the Service's selector picks the pod (same namespace, non-empty selector)."""
    return (bool(service.spec.selector)
            and pod.metadata.namespace == service.metadata.namespace
            and labelsel.from_map(service.spec.selector).matches(pod.metadata.labels))


def desired_subsets(service: core_pb2.Service, pods: Iterable[core_pb2.Pod]
                    ) -> list[core_pb2.EndpointSubset]:
    """The Endpoints subsets for a Service from the pods its selector matches.

    Pods not in the Service's namespace or not matching the selector are ignored, so the
    caller may pass any superset. Subsets are ordered by their ports, addresses by IP.
    """
    tolerate_unready = service.spec.publish_not_ready_addresses
    headless_no_ports = service.spec.cluster_ip == "None" and not service.spec.ports
    entries: dict[str, _Entry] = {}
    for pod in pods:
        if not selects(service, pod) or not pod.status.pod_ip:
            continue
        if pod.status.phase in TERMINAL_PHASES:
            continue
        if pod.metadata.HasField("deletion_timestamp") and not tolerate_unready:
            continue
        ready = tolerate_unready or pod_is_ready(pod)
        resolved: dict[tuple[str, int, str], core_pb2.EndpointPort] = {}
        for sp in service.spec.ports:
            try:
                number = resolve_target_port(pod, sp)
            except PortNotFound as e:
                log.debug("service=%s/%s pod=%s port=%s skipped: %s",
                          service.metadata.namespace, service.metadata.name,
                          pod.metadata.name, sp.name, e)
                continue
            ep = core_pb2.EndpointPort(name=sp.name, port=number, protocol=sp.protocol or "TCP")
            if sp.HasField("app_protocol"):
                ep.app_protocol = sp.app_protocol
            resolved[_port_key(ep)] = ep
        if not resolved and not headless_no_ports:
            continue
        entries[pod.metadata.uid or f"{pod.metadata.namespace}/{pod.metadata.name}"] = \
            _Entry(pod_address(pod, service), ready, resolved)

    groups: dict[tuple[tuple[str, int, str], ...], core_pb2.EndpointSubset] = {}
    for entry in entries.values():
        key = tuple(sorted(entry.ports))
        subset = groups.get(key)
        if subset is None:
            subset = groups[key] = core_pb2.EndpointSubset(
                ports=[entry.ports[k] for k in key])
        (subset.addresses if entry.ready else subset.not_ready_addresses).append(entry.address)
    result = []
    for key in sorted(groups):
        subset = groups[key]
        result.append(core_pb2.EndpointSubset(
            addresses=sorted(subset.addresses, key=_addr_key),
            not_ready_addresses=sorted(subset.not_ready_addresses, key=_addr_key),
            ports=subset.ports))
    return result


def desired_labels(service: core_pb2.Service) -> dict[str, str]:
    """The Service's labels (as Kubernetes copies them), the headless mark and ours."""
    out = dict(service.metadata.labels)
    if service.spec.cluster_ip == "None":
        out[HEADLESS_LABEL] = ""
    out[MANAGED_BY_LABEL] = MANAGED_BY
    return out


def is_managed(ep: core_pb2.Endpoints) -> bool:
    return ep.metadata.labels.get(MANAGED_BY_LABEL) == MANAGED_BY


def needs_write(current: core_pb2.Endpoints, subsets: list[core_pb2.EndpointSubset],
                labels: Mapping[str, str]) -> bool:
    return list(current.subsets) != subsets or dict(current.metadata.labels) != dict(labels)


# ---- the controller ---------------------------------------------------------------------


class EndpointsClient(Protocol):
    """The API calls the controller makes (AsyncClient has them)."""

    async def create(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object: ...
    async def update(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, uid: str = "",
                     propagation_policy: int = 0) -> api_pb2.DeleteResponse: ...


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


class EndpointsController:
    """Keeps `Endpoints/<ns>/<name>` equal to what `desired_subsets` says for each Service."""

    def __init__(self, client: EndpointsClient, informers: Mapping[str, Informer], *,
                 workers: int = 4) -> None:
        self.client = client
        self.services = informers["services"]
        self.pods = informers["pods"]
        self.endpoints = informers["endpoints"]
        self.workers = workers
        self.queue: WorkQueue[str] = WorkQueue()
        self.writes = 0
        self.services.add_handler(self.on_service)
        self.pods.add_handler(self.on_pod)
        self.endpoints.add_handler(self.on_endpoints)

    # ---- event handlers: only turn events into Service keys ------------------------------

    def on_service(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def on_endpoints(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def on_pod(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        pods = [o.pod for o in (old, new) if o is not None]
        if not pods:
            return
        namespace = pods[0].metadata.namespace
        for svc_obj in self.services.list():
            svc = svc_obj.service
            if svc.metadata.namespace == namespace and any(selects(svc, p) for p in pods):
                self.queue.add(key_of(svc_obj))

    # ---- reconcile --------------------------------------------------------------------

    async def run(self) -> None:
        for obj in self.services.list():
            self.queue.add(key_of(obj))
        # Leftovers: Endpoints we manage whose Service went away while we were down.
        for obj in self.endpoints.list():
            if self.services.get(key_of(obj)) is None and is_managed(obj.endpoints):
                self.queue.add(key_of(obj))
        await run_workers(self.queue, self.reconcile, self.workers, on_error=self._on_error)

    def _on_error(self, key: str, e: Exception) -> None:
        message = getattr(e, "message", None) or repr(e)
        log.warning("endpoints=%s sync failed, retrying requeues=%d: %s", key,
                    self.queue.num_requeues(key), message)

    async def reconcile(self, key: str) -> None:
        """Make the Endpoints named `key` match its Service; idempotent."""
        started = time.perf_counter()
        namespace, _, name = key.partition("/")
        svc_obj = self.services.get(key)
        ep_obj = self.endpoints.get(key)
        current = ep_obj.endpoints if ep_obj is not None else None
        if svc_obj is None or svc_obj.service.spec.type == "ExternalName":
            if current is not None and is_managed(current):
                with contextlib.suppress(NotFound):
                    await self.client.delete("endpoints", name, namespace)
                log.info("endpoints=%s deleted reason=%s duration_ms=%.2f", key,
                         "service-gone" if svc_obj is None else "external-name", _ms(started))
            return
        service = svc_obj.service
        if not service.spec.selector:
            return  # endpoints are managed by hand
        pods = [o.pod for o in self.pods.list() if o.pod.metadata.namespace == namespace]
        subsets = desired_subsets(service, pods)
        labels = desired_labels(service)
        if current is not None and not needs_write(current, subsets, labels):
            return
        await self._write(key, current, subsets, labels)
        self.writes += 1
        ready = sum(len(s.addresses) for s in subsets)
        not_ready = sum(len(s.not_ready_addresses) for s in subsets)
        log.info("endpoints=%s %s subsets=%d ready=%d not_ready=%d duration_ms=%.2f", key,
                 "created" if current is None else "updated", len(subsets), ready, not_ready,
                 _ms(started))

    async def _write(self, key: str, current: core_pb2.Endpoints | None,
                     subsets: list[core_pb2.EndpointSubset], labels: Mapping[str, str]
                     ) -> None:
        namespace, _, name = key.partition("/")
        if current is None:
            obj = api_pb2.Object()
            obj.endpoints.metadata.CopyFrom(meta_pb2.ObjectMeta(name=name, namespace=namespace))
            obj.endpoints.metadata.labels.update(labels)
            obj.endpoints.subsets.extend(subsets)
            try:
                await self.client.create(obj)
                return
            except AlreadyExists:
                # Our cache is behind; continue from the stored object.
                current = (await self.client.get("endpoints", name, namespace)).endpoints
                if not needs_write(current, subsets, labels):
                    return
        obj = api_pb2.Object()
        obj.endpoints.CopyFrom(current)
        obj.endpoints.metadata.labels.clear()
        obj.endpoints.metadata.labels.update(labels)
        del obj.endpoints.subsets[:]
        obj.endpoints.subsets.extend(subsets)
        # A Conflict propagates: the queue retries once the cache has the newer object.
        await self.client.update(obj)
