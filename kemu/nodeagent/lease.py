"""The node's Lease in kube-node-lease: the cheap heartbeat the node lifecycle controller
watches (a Lease renewal is much smaller than a Node status write).

Renewed every `renew_interval` seconds (the kubelet uses a quarter of the 40 s duration);
holderIdentity is the node name. The renewal is a conditional update: on a conflict the
Lease is read again and renewed on the next tick.
"""

from __future__ import annotations

import asyncio
import logging

from google.protobuf.timestamp_pb2 import Timestamp

from kemu.api.v1 import api_pb2, coordination_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import AlreadyExists, ClientError, NotFound
from kemu.nodeagent.clock import Clock

log = logging.getLogger(__name__)
NAMESPACE = "kube-node-lease"


def _micro(clock: Clock) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(clock.now())
    return t


class NodeLease:
    """Keeps the Lease named after the node renewed."""

    def __init__(self, client: AsyncClient, node_name: str, clock: Clock, *,
                 duration: int = 40, renew_interval: float = 4.0) -> None:
        self.client = client
        self.node_name = node_name
        self.clock = clock
        self.duration = duration
        self.renew_interval = renew_interval
        self._current: api_pb2.Object | None = None

    async def renew(self) -> None:
        obj = self._current
        if obj is None:
            try:
                obj = await self.client.get("leases", self.node_name, NAMESPACE)
            except NotFound:
                obj = await self._create()
                self._current = obj
                return
        lease = obj.lease
        lease.spec.holder_identity = self.node_name
        lease.spec.lease_duration_seconds = self.duration
        lease.spec.renew_time.CopyFrom(_micro(self.clock))
        try:
            self._current = await self.client.update(obj)
        except Exception:
            self._current = None
            raise

    async def _create(self) -> api_pb2.Object:
        lease = coordination_pb2.Lease()
        lease.metadata.name = self.node_name
        lease.metadata.namespace = NAMESPACE
        lease.spec.holder_identity = self.node_name
        lease.spec.lease_duration_seconds = self.duration
        lease.spec.acquire_time.CopyFrom(_micro(self.clock))
        lease.spec.renew_time.CopyFrom(_micro(self.clock))
        try:
            return await self.client.create(api_pb2.Object(lease=lease))
        except AlreadyExists:
            return await self.client.get("leases", self.node_name, NAMESPACE)

    async def run(self) -> None:
        while True:
            try:
                await self.renew()
            except ClientError as e:
                log.info("lease %s/%s not renewed: %s", NAMESPACE, self.node_name, e.message)
            await asyncio.sleep(self.renew_interval)
