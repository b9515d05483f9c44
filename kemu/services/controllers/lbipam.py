"""The load-balancer address controller: LoadBalancer Services get an address from a pool.

In Kubernetes a cloud provider or MetalLB does this; kemu has a pool of addresses on the
nodes' network (`--load-balancer-pool`), as MetalLB's layer-2 mode does. The controller
writes the address to `status.loadBalancer.ingress`; each node's proxy then has rules for it
and one node (elected by the agents) answers for it on the network. Without a pool
LoadBalancer Services stay `<pending>`, as on a cluster with no load-balancer provider.

Rules, as MetalLB's: an address a Service already has in its status is kept (a restart
rebuilds the used set from the Services first, so nothing is handed out twice);
`spec.loadBalancerIP` is honoured when it lies in the pool and is free; otherwise the
lowest free address; a Service that stops being a LoadBalancer, or is deleted, frees it.
"""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Mapping
from typing import Protocol

from kemu.api.v1 import api_pb2
from kemu.client.errors import ClientError, Conflict, NotFound
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue, run_workers

log = logging.getLogger("kemu.controllers.lbipam")

NAME = "service-lb"
INFORMERS = ("services",)
EXHAUSTED_RETRY_SECONDS = 30.0


class PoolError(ValueError):
    """The --load-balancer-pool text is not a usable pool."""


def parse_pool(text: str) -> list[str]:
    """`CIDR` (every usable host address) or `FIRST-LAST` (inclusive), IPv4."""
    try:
        if "-" in text:
            first_s, last_s = text.split("-", 1)
            first, last = ipaddress.IPv4Address(first_s.strip()), ipaddress.IPv4Address(
                last_s.strip())
            if last < first:
                raise PoolError(f"--load-balancer-pool: {text!r} ends before it starts")
            return [str(ipaddress.IPv4Address(i)) for i in range(int(first), int(last) + 1)]
        net = ipaddress.IPv4Network(text, strict=False)
    except ValueError as e:
        if isinstance(e, PoolError):
            raise
        raise PoolError(f"--load-balancer-pool: expected CIDR or FIRST-LAST, got {text!r}"
                        ) from e
    hosts = [str(h) for h in net.hosts()] if net.prefixlen < 31 else [str(h) for h in net]
    if not hosts:
        raise PoolError(f"--load-balancer-pool: {text!r} holds no address")
    return hosts


class LBClient(Protocol):
    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object: ...


class LoadBalancerIPController:
    """Keeps `status.loadBalancer.ingress` of LoadBalancer Services filled from the pool."""

    def __init__(self, client: LBClient, informers: Mapping[str, Informer], pool: list[str],
                 *, workers: int = 1) -> None:
        self.client = client
        self.services = informers["services"]
        self.pool = pool
        self._in_pool = set(pool)
        self.owner: dict[str, str] = {}  # address -> service key
        self.workers = workers
        self.queue: WorkQueue[str] = WorkQueue()
        self.services.add_handler(self._on_service)

    def _on_service(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _pool_ips(self, obj: api_pb2.Object) -> list[str]:
        return [i.ip for i in obj.service.status.load_balancer.ingress if i.ip in self._in_pool]

    def rebuild(self) -> None:
        for obj in self.services.list():
            if obj.service.spec.type == "LoadBalancer":
                for ip in self._pool_ips(obj):
                    self.owner.setdefault(ip, key_of(obj))
        log.info("lbipam rebuilt pool=%d used=%d", len(self.pool), len(self.owner))

    async def run(self) -> None:
        self.rebuild()
        for obj in self.services.list():
            self.queue.add(key_of(obj))
        await run_workers(self.queue, self.reconcile, self.workers, on_error=self._on_error)

    def _on_error(self, key: str, e: Exception) -> None:
        message = e.message if isinstance(e, ClientError) else repr(e)
        log.warning("service=%s load-balancer address sync failed: %s", key, message)

    def _release(self, key: str) -> None:
        for ip in [ip for ip, k in self.owner.items() if k == key]:
            del self.owner[ip]
            log.info("service=%s load-balancer address %s released", key, ip)

    def _choose(self, key: str, obj: api_pb2.Object) -> str | None:
        held = [ip for ip, k in self.owner.items() if k == key]
        if held:
            return held[0]
        for ip in self._pool_ips(obj):
            if ip not in self.owner:
                return ip
        wanted = obj.service.spec.load_balancer_ip
        if wanted and wanted in self._in_pool and wanted not in self.owner:
            return str(wanted)
        return next((ip for ip in self.pool if ip not in self.owner), None)

    async def reconcile(self, key: str) -> None:
        obj = self.services.get(key)
        if obj is None:
            self._release(key)
            return
        if obj.service.spec.type != "LoadBalancer":
            self._release(key)
            if self._pool_ips(obj):
                await self._write(key, None)
            return
        ip = self._choose(key, obj)
        if ip is None:
            log.warning("service=%s gets no load-balancer address: the pool of %d is used up",
                        key, len(self.pool))
            self.queue.add_after(key, EXHAUSTED_RETRY_SECONDS)
            return
        self.owner[ip] = key
        if [i.ip for i in obj.service.status.load_balancer.ingress] != [ip]:
            await self._write(key, ip)
            log.info("service=%s load-balancer address %s", key, ip)

    async def _write(self, key: str, ip: str | None) -> None:
        ns, _, name = key.partition("/")
        for _attempt in range(5):
            try:
                current = await self.client.get("services", name, ns)
            except NotFound:
                self._release(key)
                return
            lb = current.service.status.load_balancer
            del lb.ingress[:]
            if ip is not None:
                lb.ingress.add(ip=ip)
            try:
                await self.client.update_status(current)
                return
            except Conflict:
                continue
        raise Conflict(f"service {key} kept changing")
