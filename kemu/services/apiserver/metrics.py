"""The Metrics service: pod and node resource usage for the cluster, as metrics-server
serves metrics.k8s.io.

There is no separate metrics-server to run: the apiserver asks the node agents directly,
the way it reaches them for logs and exec (InternalIP and kubeletEndpoint port), each
agent answering for all of its pods from a short cache. One call fans out to the nodes
concerned in parallel, with a deadline; a node whose agent does not answer is left out of
the answer (logged), as metrics-server leaves out nodes it could not scrape, so one dead
node never hides the others' usage.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

import grpc

from kemu.api import kinds
from kemu.api.v1 import core_pb2, metrics_pb2, metrics_pb2_grpc, nodeagent_pb2
from kemu.services.apiserver import identity
from kemu.services.apiserver.authorizer import Attributes, Authorization
from kemu.services.apiserver.proxy import NodeAgentProxy
from kemu.services.apiserver.registry import Registry
from kemu.services.apiserver.service import run_translated

log = logging.getLogger(__name__)
AGENT_TIMEOUT = 10.0
GROUP = "metrics.k8s.io"  # a first sample takes the engine about a second per container


class MetricsServicer(metrics_pb2_grpc.MetricsServicer):
    """kemu.v1.Metrics."""

    def __init__(self, registry: Registry, proxy: NodeAgentProxy, *,
                 agent_timeout: float = AGENT_TIMEOUT,
                 authorization: Authorization | None = None) -> None:
        self.registry = registry
        self.proxy = proxy
        self.agent_timeout = agent_timeout
        self.authorization = authorization

    def _authorize(self, resource: str, namespace: str) -> None:
        """list of pods or nodes in metrics.k8s.io, as metrics-server's API is authorized."""
        if self.authorization is not None:
            self.authorization.check(Attributes(identity.current(), "list", GROUP, resource,
                                                namespace=namespace))

    async def _stats(self, nodes: Iterable[core_pb2.Node]
                     ) -> dict[str, nodeagent_pb2.StatsResponse]:
        """Stats of each node's agent, by node name; unreachable agents are left out."""
        async def one(node: core_pb2.Node) -> nodeagent_pb2.StatsResponse:
            stub = self.proxy.stub_for(node)
            resp: nodeagent_pb2.StatsResponse = await stub.Stats(
                nodeagent_pb2.StatsRequest(), timeout=self.agent_timeout)
            return resp

        listed = list(nodes)
        results = await asyncio.gather(*(one(n) for n in listed), return_exceptions=True)
        found: dict[str, nodeagent_pb2.StatsResponse] = {}
        for node, result in zip(listed, results, strict=True):
            name = node.metadata.name
            if isinstance(result, grpc.aio.AioRpcError):
                log.warning("no metrics from node=%s: %s %s", name, result.code().name,
                            result.details())
            elif isinstance(result, Exception):
                log.warning("no metrics from node=%s: %s", name, result)
            elif isinstance(result, nodeagent_pb2.StatsResponse):
                found[name] = result
        return found

    async def _nodes(self, label_selector: str = "", field_selector: str = ""
                     ) -> list[core_pb2.Node]:
        listed = await self.registry.list(kinds.resolve("nodes"), "", label_selector,
                                          field_selector)
        return [o.node for o in listed.items]

    async def ListPodMetrics(self, request: metrics_pb2.ListPodMetricsRequest,
                             context: grpc.aio.ServicerContext
                             ) -> metrics_pb2.ListPodMetricsResponse:
        async def work() -> metrics_pb2.ListPodMetricsResponse:
            self._authorize("pods", request.namespace)
            listed = await self.registry.list(kinds.resolve("pods"), request.namespace,
                                              request.label_selector, request.field_selector)
            wanted = {(p.pod.metadata.namespace, p.pod.metadata.name): p.pod.metadata.uid
                      for p in listed.items if p.pod.spec.node_name}
            on = {p.pod.spec.node_name for p in listed.items if p.pod.spec.node_name}
            nodes = [n for n in await self._nodes() if n.metadata.name in on] if on else []
            items = []
            for resp in (await self._stats(nodes)).values():
                for pod in resp.pods:
                    key = (pod.metadata.namespace, pod.metadata.name)
                    if wanted.get(key) == pod.metadata.uid:
                        items.append(pod)
            items.sort(key=lambda p: (p.metadata.namespace, p.metadata.name))
            return metrics_pb2.ListPodMetricsResponse(items=items)
        return await run_translated(context, "ListPodMetrics", work)

    async def ListNodeMetrics(self, request: metrics_pb2.ListNodeMetricsRequest,
                              context: grpc.aio.ServicerContext
                              ) -> metrics_pb2.ListNodeMetricsResponse:
        async def work() -> metrics_pb2.ListNodeMetricsResponse:
            self._authorize("nodes", "")
            nodes = await self._nodes(request.label_selector, request.field_selector)
            stats = await self._stats(nodes)
            items = []
            for node in sorted(nodes, key=lambda n: n.metadata.name):
                resp = stats.get(node.metadata.name)
                if resp is None:
                    continue
                item = metrics_pb2.NodeMetrics()
                item.CopyFrom(resp.node)
                item.metadata.name = node.metadata.name
                item.metadata.labels.clear()
                item.metadata.labels.update(node.metadata.labels)
                items.append(item)
            return metrics_pb2.ListNodeMetricsResponse(items=items)
        return await run_translated(context, "ListNodeMetrics", work)
