"""Wiring of the node agent: `run(config)`.

Start order: reach Docker (or fail with one line), register the Node, make the pod network,
start the informers (pods bound to this node; ConfigMaps, Secrets and Services for env and
volumes), wait until they have listed once, adopt what is already running, then run the
pod workers, the Lease and node status heartbeats, the Docker event watch (the kubelet's
PLEG: a container that dies queues its pod at once), a periodic resync, and the NodeAgent
gRPC server. SIGTERM and SIGINT stop the agent and leave the pods running, as the kubelet
does.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from prometheus_client import CollectorRegistry

from kemu.api.v1 import api_pb2, nodeagent_pb2_grpc
from kemu.client.aio import AsyncClient
from kemu.client.errors import ClientError
from kemu.client.events import WARNING, EventRecorder
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue, run_workers
from kemu.nodeagent import adopt, naming
from kemu.nodeagent.clock import SystemClock
from kemu.nodeagent.config import AgentConfig
from kemu.nodeagent.fakeruntime import FAKE_RUNTIME_NAME, FakeNodeStatus, FakeRuntime
from kemu.nodeagent.lbannounce import Announcer
from kemu.nodeagent.lease import NodeLease
from kemu.nodeagent.metrics import AgentMetrics, serve_agent_metrics
from kemu.nodeagent.netnslock import NetnsLock
from kemu.nodeagent.node import NodeStatus
from kemu.nodeagent.podnetwork import PodNetwork, PodNetworkConfig
from kemu.nodeagent.podworker import PodWorker
from kemu.nodeagent.probes import ProbeManager
from kemu.nodeagent.proxy import Proxier, ProxyConfig, SubprocessIptables
from kemu.nodeagent.pvc import LocalPathProvisioner
from kemu.nodeagent.resourcemetrics import ResourceMetrics
from kemu.nodeagent.runtime import ContainerRuntimeError, DockerRuntime, RuntimeUnavailable
from kemu.nodeagent.service import NodeAgentService
from kemu.nodeagent.serviceproxy import ServiceProxy
from kemu.nodeagent.stats import NodeStats
from kemu.util.grpcdecode import DecodeErrorInterceptor
from kemu.util.grpcopts import KEEPALIVE_SERVER_OPTIONS
from kemu.util.metrics import GrpcServerMetrics, MetricsEndpoint
from kemu.util.tls import TLSConfigError, add_port, warn_insecure
from kemu.util.untilsignalled import run_until_signalled, wait_stopped_or_failed

log = logging.getLogger(__name__)
AgentRuntime = DockerRuntime | FakeRuntime
SERVICE_NAME = "kemu.v1.NodeAgent"


def _reason(err: BaseException) -> str:
    """The useful end of a docker SDK / requests error chain, on one line."""
    text = str(err) or type(err).__name__
    for known in ("No such file or directory", "Connection refused", "Permission denied",
                  "timed out", "Name or service not known"):
        if known in text:
            return known.lower() if known != "timed out" else "timed out"
    return text.split("\n")[0][-200:]


ROUTE_LOCALNET = Path("/proc/sys/net/ipv4/conf/all/route_localnet")


def enable_route_localnet() -> None:
    """DNAT of 127.0.0.1:NODEPORT to a pod needs the kernel to route a loopback source out
    of a real interface (kube-proxy sets the same sysctl; its firewall rule, rendered by
    the proxy, drops what this would otherwise let in from outside)."""
    try:
        if ROUTE_LOCALNET.read_text().strip() != "1":
            ROUTE_LOCALNET.write_text("1")
    except OSError as e:
        log.warning("cannot set net.ipv4.conf.all.route_localnet=1 (%s): NodePorts will "
                    "not answer on 127.0.0.1", e)



def new_grpc_server(metrics: CollectorRegistry | None = None) -> grpc.aio.Server:
    """The agent's gRPC server: keep-alive as every kemu server, and a request that does not
    decode answered INVALID_ARGUMENT (grpc.aio's own answer is UNKNOWN and a traceback);
    every call counted in `metrics` when given."""
    counted = [GrpcServerMetrics(metrics)] if metrics is not None else []
    return grpc.aio.server(interceptors=[*counted, DecodeErrorInterceptor()],
                           options=KEEPALIVE_SERVER_OPTIONS)

class AgentError(Exception):
    """The agent cannot start; the message is the one line the user sees."""


class Agent:
    """One node agent; `start` then `wait`, `stop` from a signal."""

    def __init__(self, config: AgentConfig) -> None:
        self.config = config
        self.clock = SystemClock()
        self.tasks: list[asyncio.Task[Any]] = []
        self.stopped = asyncio.Event()
        self.server: grpc.aio.Server | None = None
        self.informers: list[Informer] = []
        self.runtime: AgentRuntime | None = None
        self.client: AsyncClient | None = None
        self._cidr_warned = False
        self._network_plugin_active = False
        self._netns_lock: NetnsLock | None = None
        self._service_proxy: ServiceProxy | None = None
        self.metrics = AgentMetrics()
        self.metrics_endpoint: MetricsEndpoint | None = None

    async def _connect_runtime(self) -> AgentRuntime:
        if self.config.runtime == FAKE_RUNTIME_NAME:
            log.warning("node %s uses the FAKE runtime: no container runs, pods only look "
                        "Running (for scale tests)", self.config.node_name)
            return FakeRuntime()
        where = self.config.docker_host or "unix:///var/run/docker.sock"
        try:
            runtime = DockerRuntime(self.config.docker_host)
            await asyncio.wait_for(runtime.ping(), timeout=10)
        except (ContainerRuntimeError, TimeoutError) as e:
            raise AgentError(f"cannot reach Docker at {where}: {_reason(e)} "
                             "(is dockerd running? see --docker-host)") from None
        return runtime

    async def _register(self, node: NodeStatus) -> None:
        delay = 0.2
        while True:
            try:
                await node.register()
                return
            except ClientError as e:
                log.warning("cannot register node %s at %s: %s; retrying",
                            self.config.node_name, self.config.apiserver, e.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _ensure_network(self, runtime: AgentRuntime, pod_cidr: str) -> None:
        name = self.config.network_name
        if self.config.owns_network or isinstance(runtime, FakeRuntime):
            # With the host-gw plugin our own rule masquerades only traffic leaving the
            # cluster CIDR; Docker's would also rewrite pod-to-pod traffic across nodes.
            await runtime.ensure_network(name, pod_cidr, {naming.NETWORK_OWNER:
                                                          self.config.node_name},
                                         masquerade=not self._network_plugin_active)
            return
        nets = await runtime._run(runtime.api.networks, names=[name])
        if not any(n.get("Name") == name for n in nets):
            raise AgentError(f"docker network {name!r} (--network) does not exist")

    async def _follow_pod_cidr(self, runtime: AgentRuntime, cidr: str) -> None:
        """A podCIDR assigned after the agent made its network (the node IPAM controller
        runs after registration): remake the network with that subnet once no container is
        attached to it; until then pods keep the addresses they have."""
        if not self.config.owns_network:
            return
        import ipaddress

        name = self.config.network_name
        current = await runtime.network_subnet(name)
        wanted = str(ipaddress.ip_network(cidr, strict=False))
        if current is not None and current[0] == wanted:
            return
        if current is not None and current[1] > 0:
            if not self._cidr_warned:
                log.warning("network %s has subnet %s, node podCIDR is %s: it is remade when "
                            "no pod is attached", name, current[0], wanted)
                self._cidr_warned = True
            return
        try:
            if current is not None:
                await runtime.remove_network(name)
            await self._ensure_network(runtime, wanted)
        except ContainerRuntimeError as e:  # a pod got attached meanwhile: try again next time
            log.info("network %s not remade yet: %s", name, e)
            return
        log.info("network %s now uses the node's podCIDR %s", name, wanted)

    async def start(self) -> None:
        cfg = self.config
        runtime = self.runtime = await self._connect_runtime()
        client = self.client = AsyncClient(cfg.apiserver, token=cfg.token or None)
        cfg.data_dir.mkdir(parents=True, exist_ok=True)
        self._claim_host_networking()
        node = (FakeNodeStatus if isinstance(runtime, FakeRuntime) else NodeStatus)(
            cfg, client, runtime, self.clock)
        await self._register(node)
        await self._ensure_network(runtime, node.pod_cidr)
        node.on_pod_cidr = lambda cidr: self._follow_pod_cidr(runtime, cidr)

        queue: WorkQueue[str] = WorkQueue(base_delay=0.1, max_delay=30.0)
        recorder = EventRecorder(client, "kubelet", instance=cfg.node_name,
                                 host=cfg.node_name)
        recorder.start()
        pods = Informer(client, "pods", field_selector=f"spec.nodeName={cfg.node_name}")
        configmaps = Informer(client, "configmaps")
        secrets = Informer(client, "secrets")
        services = Informer(client, "services")
        own_node = Informer(client, "nodes", field_selector=f"metadata.name={cfg.node_name}")
        endpoints = Informer(client, "endpoints")
        all_nodes = Informer(client, "nodes")

        def on_own_node(old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
            # A podCIDR assigned by the node IPAM controller: move the network at once.
            if new is not None and (new.node.spec.pod_cidr or "") != node.pod_cidr:
                node.poke()
        own_node.add_handler(on_own_node)
        self.informers = [pods, configmaps, secrets, services, own_node, endpoints, all_nodes]
        service_proxy = self._make_service_proxy(services, endpoints, all_nodes)
        probes = ProbeManager(runtime, self.clock, on_change=queue.add,
                              on_failure=lambda pod, container, message: recorder.event(
                                  pod, WARNING, "Unhealthy", message, container))
        worker = PodWorker(config=cfg, client=client, runtime=runtime, clock=self.clock,
                           pods=pods, configmaps=configmaps, secrets=secrets,
                           services=services, recorder=recorder,
                           provisioner=LocalPathProvisioner(client, cfg.data_dir,
                                                            cfg.node_name),
                           probes=probes, queue=queue, node_allocatable=node.allocatable)

        def on_pod(old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
            obj = new if new is not None else old
            if obj is None:
                return
            if old is not None and new is not None and worker.own_status_echo(old, new):
                return  # the watch echoing our own status write: nothing to do
            queue.add(key_of(obj))

        def on_source(kind: str) -> Any:
            def handler(old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
                obj = new if new is not None else old
                if obj is None or not pods.synced.is_set():
                    return
                m = obj.config_map.metadata if kind == "configmaps" else obj.secret.metadata
                for key in worker.pods_using(kind, m.namespace, m.name):
                    queue.add(key)
            return handler

        pods.add_handler(on_pod)
        pods.add_handler(self.metrics.on_pod)
        self.metrics.watch_pods(pods.list)
        configmaps.add_handler(on_source("configmaps"))
        secrets.add_handler(on_source("secrets"))
        for inf in self.informers:
            inf.start()
        for inf in self.informers:
            await inf.wait_synced()
        await adopt.sweep(runtime, cfg.node_name, pods, queue, cfg.data_dir, initial=True)

        def on_error(key: str, err: Exception) -> None:
            if isinstance(err, RuntimeUnavailable | ClientError):
                log.warning("sync of pod %s failed: %s", key, err)
            else:
                log.error("sync of pod %s failed", key, exc_info=err)

        def requeue_all() -> None:
            for o in pods.list():
                queue.add(key_of(o))

        self.tasks += [
            asyncio.create_task(run_workers(queue, worker.sync, cfg.workers, on_error=on_error),
                                name="pod-workers"),
            asyncio.create_task(node.run(on_runtime_back=requeue_all), name="node-status"),
            asyncio.create_task(NodeLease(client, cfg.node_name, self.clock,
                                          duration=cfg.lease_duration_seconds,
                                          renew_interval=cfg.lease_renew_interval).run(),
                                name="lease"),
            asyncio.create_task(self._watch_runtime(runtime, queue), name="runtime-events"),
            asyncio.create_task(self._resync(runtime, pods, queue), name="resync"),
        ]
        if service_proxy is not None:
            service_proxy.on_sync = self.metrics.proxy_synced
            self.tasks.append(asyncio.create_task(service_proxy.run(), name="service-proxy"))
        self._queue, self._recorder, self._probes, self._worker = queue, recorder, probes, worker
        await self._serve(runtime, pods)
        log.info("node agent %s ready: apiserver %s, NodeAgent on %s:%d, network %s, "
                 "runtime %s", cfg.node_name, cfg.apiserver, cfg.listen_host, cfg.port,
                 cfg.network_name, cfg.runtime)

    def _claim_host_networking(self) -> None:
        """Service rules and pod routes belong to one agent per network namespace: a second
        one (another cluster's node on the same machine) would delete the first one's
        chains as stale. The second agent runs pods but leaves networking alone."""
        cfg = self.config
        if cfg.proxy_mode == "none" and cfg.network_plugin == "none":
            return
        lock = NetnsLock.acquire()
        if lock is None:
            log.warning("another kemu agent programs Services and routes in this network "
                        "namespace: this node (%s) runs without the Service proxy and the "
                        "pod network plugin", cfg.node_name)
            return
        self._netns_lock = lock
        self._network_plugin_active = cfg.network_plugin == "host-gw"

    def _make_service_proxy(self, services: Informer, endpoints: Informer,
                            nodes: Informer) -> ServiceProxy | None:
        cfg = self.config
        if self._netns_lock is None:
            return None
        proxy_on = cfg.proxy_mode == "iptables"
        proxier = (Proxier(SubprocessIptables(),
                           ProxyConfig(cfg.cluster_cidr, node_ips=(cfg.node_ip,),
                                       localhost_nodeports=cfg.localhost_nodeports))
                   if proxy_on else None)
        if proxier is not None and cfg.localhost_nodeports:
            enable_route_localnet()
        network = (PodNetwork(PodNetworkConfig(cfg.cluster_cidr, cfg.service_cidr,
                                               cfg.node_name, cfg.node_ip))
                   if self._network_plugin_active else None)
        self._service_proxy = ServiceProxy(
            node_name=cfg.node_name, services=services, endpoints=endpoints, nodes=nodes,
            proxier=proxier, network=network,
            announcer=Announcer(cfg.node_ip) if proxy_on else None,
            min_interval=cfg.proxy_min_sync_interval,
            resync_interval=cfg.proxy_sync_interval)
        return self._service_proxy

    async def _serve(self, runtime: AgentRuntime, pods: Informer) -> None:
        # One sampler for the Stats RPC (the Metrics service) and /metrics/resource.
        stats = NodeStats(runtime, self.config.node_name)
        try:
            if self.config.metrics_listen is not None:
                self.metrics_endpoint = await serve_agent_metrics(
                    self.config.metrics_listen, self.metrics.registry,
                    ResourceMetrics(stats, pods.get))
        except OSError as e:
            raise AgentError(f"--metrics-listen: {e}") from None
        server = self.server = new_grpc_server(self.metrics.registry)
        nodeagent_pb2_grpc.add_NodeAgentServicer_to_server(
            NodeAgentService(runtime, self.config.node_name, pods, stats=stats), server)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME), server)
        address = f"{self.config.listen_host}:{self.config.port}"
        try:
            port = add_port(server, address, self.config.tls)
        except RuntimeError as e:
            raise AgentError(f"cannot listen on {address}: address in use or not available"
                             ) from e
        except TLSConfigError as e:
            raise AgentError(str(e)) from e
        if port == 0:
            raise AgentError(f"cannot listen on {address}")
        if self.config.tls is None:
            warn_insecure("node agent", [address], explicit=self.config.insecure)
        await server.start()
        for svc in ("", SERVICE_NAME):
            await health_servicer.set(svc, health_pb2.HealthCheckResponse.SERVING)

    async def _watch_runtime(self, runtime: AgentRuntime, queue: WorkQueue[str]) -> None:
        """Docker's event stream as the kubelet's PLEG: a container of ours that dies (or is
        removed behind our back) queues its pod; starts are the agent's own doing."""
        delay = 0.5
        while True:
            try:
                async for ev in runtime.events({naming.NODE: self.config.node_name}):
                    runtime.invalidate(ev.container_id)
                    ns, name = ev.labels.get(naming.NAMESPACE), ev.labels.get(naming.POD)
                    if ns and name:
                        queue.add(f"{ns}/{name}")
                    delay = 0.5
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.info("docker events: %s; watching again in %.1fs", e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)

    async def _resync(self, runtime: AgentRuntime, pods: Informer,
                      queue: WorkQueue[str]) -> None:
        while True:
            await asyncio.sleep(self.config.resync_interval)
            try:
                await adopt.sweep(runtime, self.config.node_name, pods, queue,
                                  self.config.data_dir)
            except (ContainerRuntimeError, OSError) as e:
                log.info("resync: %s", e)

    async def wait(self) -> None:
        """Until stopped, or until a background task fails (then raise its error)."""
        await wait_stopped_or_failed(self.stopped, self.tasks)

    async def stop(self) -> None:
        """Stop serving; containers keep running."""
        if self.server is not None:
            await self.server.stop(1.0)
        if self.metrics_endpoint is not None:
            await self.metrics_endpoint.stop()
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        if hasattr(self, "_probes"):
            await self._worker.stop_terminations()
            await self._probes.stop_all()
            await self._recorder.flush(2.0)
            await self._recorder.stop()
        for inf in self.informers:
            await inf.stop()
        if self._service_proxy is not None:
            try:
                await asyncio.to_thread(self._service_proxy.cleanup)
            except Exception as e:  # the stop goes on; `kemu agent --cleanup` can finish
                log.warning("removing Service rules and routes failed: %s", e)
        if self._netns_lock is not None:
            self._netns_lock.release()
        if self.client is not None:
            await self.client.close()
        if self.runtime is not None:
            await self.runtime.close()


async def main(config: AgentConfig) -> None:
    agent = Agent(config)
    try:
        # AgentError from the start: the one-line reason it cannot start.
        await run_until_signalled(agent.start, agent.wait, agent.stopped)
        log.info("node agent %s stopping; pods keep running", config.node_name)
    finally:
        await agent.stop()


def run(config: AgentConfig) -> None:
    """Run the agent until SIGTERM/SIGINT. AgentError carries the one-line reason it could
    not start."""
    asyncio.run(main(config))
