"""The controller manager: shared informers once, then every enabled controller.

As in kube-controller-manager, controllers share one informer (one list + one watch) per
resource instead of each watching on its own; workers start only after every informer
has listed once, so no controller acts on a half-filled cache (the node IPAM controller
in particular must see every existing podCIDR before it hands one out). A controller
whose loop ends or raises takes the process down loudly: a manager that silently stopped
reconciling is worse than one that restarts.

With leader election (the CLI's default, as kube-controller-manager's --leader-elect) the
informers fill and health says SERVING in every replica, but controllers and their event
recorders start only in the one holding the Lease; a leader that cannot renew stops with
LeaderElectionLost, and a graceful stop releases the Lease for a standby to take at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kemu.client.aio import AsyncClient
from kemu.client.events import EventRecorder
from kemu.client.informer import Informer
from kemu.client.leaderelection import LeaderElector
from kemu.client.workqueue import WorkQueue
from kemu.services.controllers import (
    cronjob,
    daemonset,
    deployment,
    endpoints,
    garbagecollector,
    hpa,
    job,
    lbipam,
    namespace,
    nodeipam,
    nodelifecycle,
    replicaset,
    statefulset,
)
from kemu.services.controllers.cidrs import CIDRAllocator
from kemu.util.listen import check_bindable
from kemu.util.metrics import (
    GrpcServerMetrics,
    MetricsEndpoint,
    WorkQueueMetricsProvider,
    leader_status,
    maybe_serve_metrics,
    new_registry,
)

if TYPE_CHECKING:
    from kemu.client.leaderelection import LeaderElectionConfig

log = logging.getLogger("kemu.controllers")

KNOWN = ("endpoints", "nodeipam", replicaset.REPLICA_SET.name,
         replicaset.REPLICATION_CONTROLLER.name, deployment.NAME, daemonset.NAME,
         statefulset.NAME, job.NAME, cronjob.NAME, garbagecollector.NAME, namespace.NAME,
         nodelifecycle.NAME, hpa.NAME, lbipam.NAME)
DEFAULT = ("*",)
INFORMERS: dict[str, tuple[str, ...]] = {
    endpoints.NAME: endpoints.INFORMERS, nodeipam.NAME: nodeipam.INFORMERS,
    replicaset.REPLICA_SET.name: replicaset.REPLICA_SET.informers,
    replicaset.REPLICATION_CONTROLLER.name: replicaset.REPLICATION_CONTROLLER.informers,
    deployment.NAME: deployment.INFORMERS, daemonset.NAME: daemonset.INFORMERS,
    statefulset.NAME: statefulset.INFORMERS, garbagecollector.NAME: garbagecollector.INFORMERS,
    namespace.NAME: namespace.INFORMERS, nodelifecycle.NAME: nodelifecycle.INFORMERS,
    hpa.NAME: hpa.INFORMERS, job.NAME: job.INFORMERS, cronjob.NAME: cronjob.INFORMERS,
    lbipam.NAME: lbipam.INFORMERS}


def check_host_port(text: str, what: str) -> None:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) <= 65535:
        raise ValueError(f"{what}: expected HOST:PORT, got {text!r}")


@dataclass(frozen=True)
class ControllerManagerConfig:
    """How to run the controller manager; ValueError (one line) on a bad value."""

    apiserver: str = "127.0.0.1:6443"
    cluster_cidr: str = "10.244.0.0/16"
    node_cidr_mask_size: int = 24
    controllers: tuple[str, ...] = DEFAULT
    health_listen: str | None = None
    endpoints_workers: int = 4
    replicaset_workers: int = 5  # kube-controller-manager's --concurrent-replicaset-syncs
    rc_workers: int = 5
    deployment_workers: int = 5
    daemonset_workers: int = 2  # --concurrent-daemonset-syncs
    statefulset_workers: int = 5  # --concurrent-statefulset-syncs
    job_workers: int = 5  # --concurrent-job-syncs
    cronjob_workers: int = 5  # --concurrent-cron-job-syncs
    gc_workers: int = 20  # --concurrent-gc-syncs
    namespace_workers: int = 10  # --concurrent-namespace-syncs
    # Node lifecycle, as kube-controller-manager's flags of these names (seconds).
    node_monitor_grace_period: float = 40.0
    pod_eviction_timeout: float = 300.0
    node_monitor_period: float = 5.0
    hpa_workers: int = 5  # --concurrent-horizontal-pod-autoscaler-syncs
    hpa_sync_period: float = 15.0
    hpa_downscale_stabilization: float = 300.0
    hpa_tolerance: float = 0.1
    # LoadBalancer addresses (CIDR or FIRST-LAST); empty: LoadBalancer Services stay pending.
    load_balancer_pool: str = ""
    # Reconcile only while holding this Lease; None: at once, alone (in-process uses).
    leader_election: LeaderElectionConfig | None = None
    # Prometheus /metrics over HTTP (`--metrics-listen`); None: off.
    metrics_listen: str | None = None

    def __post_init__(self) -> None:
        check_host_port(self.apiserver, "--apiserver")
        if self.health_listen is not None:
            check_host_port(self.health_listen, "--health-listen")
        if self.metrics_listen is not None:
            check_host_port(self.metrics_listen, "--metrics-listen")
        if "*" in self.controllers:  # as kube-controller-manager: every known controller
            extra = [c for c in self.controllers if c != "*" and c not in KNOWN]
            object.__setattr__(self, "controllers", (*KNOWN, *extra))
        if not self.controllers:
            raise ValueError("--controllers: name at least one controller")
        unknown = [c for c in self.controllers if c not in KNOWN]
        if unknown:
            raise ValueError(f"--controllers: unknown controller {unknown[0]!r} "
                             f"(known: {', '.join(KNOWN)})")
        CIDRAllocator.parse(self.cluster_cidr, self.node_cidr_mask_size)
        if self.load_balancer_pool:
            lbipam.parse_pool(self.load_balancer_pool)  # PoolError is a ValueError
        if self.endpoints_workers < 1:
            raise ValueError("endpoints workers must be at least 1")
        for flag, n in (("--concurrent-replicaset-syncs", self.replicaset_workers),
                        ("--concurrent-rc-syncs", self.rc_workers),
                        ("--concurrent-deployment-syncs", self.deployment_workers),
                        ("--concurrent-daemonset-syncs", self.daemonset_workers),
                        ("--concurrent-statefulset-syncs", self.statefulset_workers),
                        ("--concurrent-job-syncs", self.job_workers),
                        ("--concurrent-cron-job-syncs", self.cronjob_workers),
                        ("--concurrent-gc-syncs", self.gc_workers),
                        ("--concurrent-namespace-syncs", self.namespace_workers),
                        ("--concurrent-horizontal-pod-autoscaler-syncs", self.hpa_workers)):
            if n < 1:
                raise ValueError(f"{flag}: must be at least 1")
        for flag, seconds in (("--node-monitor-grace-period", self.node_monitor_grace_period),
                              ("--pod-eviction-timeout", self.pod_eviction_timeout),
                              ("--node-monitor-period", self.node_monitor_period),
                              ("--horizontal-pod-autoscaler-sync-period",
                               self.hpa_sync_period)):
            if seconds <= 0:
                raise ValueError(f"{flag}: must be more than 0")
        if self.hpa_downscale_stabilization < 0 or self.hpa_tolerance < 0:
            raise ValueError("--horizontal-pod-autoscaler-downscale-stabilization and "
                             "--horizontal-pod-autoscaler-tolerance: must not be negative")


class Controller(Protocol):
    """What the manager runs: `run()` reconciles until cancelled."""

    async def run(self) -> None: ...


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


class ControllerManager:
    """Client, shared informers, the enabled controllers and an optional health server."""

    def __init__(self, config: ControllerManagerConfig) -> None:
        self.config = config
        self.client = AsyncClient(config.apiserver)
        resources = sorted({r for c in config.controllers for r in INFORMERS[c]})
        self.informers = {r: Informer(self.client, r) for r in resources}
        self.controllers: dict[str, Controller] = {}
        self.recorders: list[EventRecorder] = []

        def recorder(component: str) -> EventRecorder:
            """One event source per controller, named as kube-controller-manager's."""
            rec = EventRecorder(self.client, component)
            self.recorders.append(rec)
            return rec
        factories: dict[str, Callable[[], Controller]] = {
            endpoints.NAME: lambda: endpoints.EndpointsController(
                self.client, self.informers, workers=config.endpoints_workers),
            nodeipam.NAME: lambda: nodeipam.NodeIPAMController(
                self.client, self.informers,
                CIDRAllocator.parse(config.cluster_cidr, config.node_cidr_mask_size)),
            replicaset.REPLICA_SET.name: lambda: replicaset.ReplicaSetController(
                self.client, self.informers, replicaset.REPLICA_SET,
                workers=config.replicaset_workers,
                recorder=recorder("replicaset-controller")),
            replicaset.REPLICATION_CONTROLLER.name: lambda: replicaset.ReplicaSetController(
                self.client, self.informers, replicaset.REPLICATION_CONTROLLER,
                workers=config.rc_workers, recorder=recorder("replication-controller")),
            deployment.NAME: lambda: deployment.DeploymentController(
                self.client, self.informers, workers=config.deployment_workers,
                recorder=recorder("deployment-controller")),
            daemonset.NAME: lambda: daemonset.DaemonSetController(
                self.client, self.informers, workers=config.daemonset_workers,
                recorder=recorder("daemonset-controller")),
            statefulset.NAME: lambda: statefulset.StatefulSetController(
                self.client, self.informers, workers=config.statefulset_workers,
                recorder=recorder("statefulset-controller")),
            job.NAME: lambda: job.JobController(
                self.client, self.informers, workers=config.job_workers,
                recorder=recorder("job-controller")),
            cronjob.NAME: lambda: cronjob.CronJobController(
                self.client, self.informers, workers=config.cronjob_workers,
                recorder=recorder("cronjob-controller")),
            garbagecollector.NAME: lambda: garbagecollector.GarbageCollector(
                self.client, self.informers, workers=config.gc_workers),
            namespace.NAME: lambda: namespace.NamespaceController(
                self.client, self.informers, workers=config.namespace_workers),
            nodelifecycle.NAME: lambda: nodelifecycle.NodeLifecycleController(
                self.client, self.informers,
                node_monitor_grace_period=config.node_monitor_grace_period,
                pod_eviction_timeout=config.pod_eviction_timeout,
                node_monitor_period=config.node_monitor_period,
                recorder=recorder("node-controller")),
            hpa.NAME: lambda: hpa.HPAController(
                self.client, self.informers, workers=config.hpa_workers,
                sync_period=config.hpa_sync_period,
                downscale_stabilization=config.hpa_downscale_stabilization,
                tolerance=config.hpa_tolerance, recorder=recorder(hpa.COMPONENT)),
        }
        if config.load_balancer_pool:
            factories[lbipam.NAME] = lambda: lbipam.LoadBalancerIPController(
                self.client, self.informers, lbipam.parse_pool(config.load_balancer_pool))
        for name in config.controllers:
            if name == lbipam.NAME and not config.load_balancer_pool:
                log.info("controller=%s off: no --load-balancer-pool, LoadBalancer Services "
                         "stay pending", name)
                continue
            self.controllers[name] = factories[name]()
        # client-go's workqueue series, one queue per controller named as --controllers.
        self.metrics_registry = new_registry()
        queues = WorkQueueMetricsProvider(self.metrics_registry)
        for name, controller in self.controllers.items():
            queue = getattr(controller, "queue", None)
            if isinstance(queue, WorkQueue):
                queue.metrics = queues.for_queue(name)
        self.metrics: MetricsEndpoint | None = None
        self.ready = asyncio.Event()
        self.health: health.aio.HealthServicer | None = None
        self.server: grpc.aio.Server | None = None
        self._main: asyncio.Task[None] | None = None
        self.elector: LeaderElector | None = None
        self.lease_events: EventRecorder | None = None
        if config.leader_election is not None:
            self.lease_events = EventRecorder(self.client, "kube-controller-manager",
                                              instance=config.leader_election.identity)
            elector = self.elector = LeaderElector(self.client, config.leader_election,
                                                   events=self.lease_events)
            self.metrics_registry.register(leader_status(
                config.leader_election.resource_name, lambda: elector.is_leader))

    async def start(self) -> None:
        if self.lease_events is not None:
            self.lease_events.start()
        if self.config.health_listen is not None:
            await self._start_health(self.config.health_listen)
        self.metrics = await maybe_serve_metrics(self.config.metrics_listen,
                                                 self.metrics_registry)
        for inf in self.informers.values():
            inf.start()
        self._main = asyncio.create_task(self._run(), name="controller-manager")

    async def _start_health(self, address: str) -> None:
        self.health = health.aio.HealthServicer()
        self.server = grpc.aio.server(interceptors=[GrpcServerMetrics(self.metrics_registry)],
                                      options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        reflection.enable_server_reflection(
            (health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME), self.server)
        check_bindable(address)
        try:
            self.server.add_insecure_port(address)
        except RuntimeError:
            raise OSError(f"cannot listen on {address}: address in use or not "
                          "available") from None
        await self.server.start()
        await self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)

    async def _run(self) -> None:
        started = time.perf_counter()
        for inf in self.informers.values():
            await inf.synced.wait()
        if self.health is not None:
            await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        if self.elector is None:
            await self._lead(started)
        else:
            await self.elector.run(lambda: self._lead(started))

    async def _lead(self, started: float) -> None:
        for rec in self.recorders:
            rec.start()
        tasks: dict[asyncio.Task[None], str] = {
            asyncio.create_task(c.run(), name=f"controller-{name}"): name
            for name, c in self.controllers.items()}
        self.ready.set()
        log.info("controller-manager ready apiserver=%s controllers=%s informers=%s "
                 "duration_ms=%.1f", self.config.apiserver, ",".join(self.controllers),
                 ",".join(self.informers), _ms(started))
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            task = done.pop()
            name = tasks[task]
            exc = task.exception() if not task.cancelled() else None
            if exc is not None:
                log.error("controller=%s died: %r", name, exc, exc_info=exc)
                raise RuntimeError(f"controller {name} died: {exc!r}") from exc
            raise RuntimeError(f"controller {name} stopped")
        finally:
            for t in tasks:
                t.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)

    @property
    def main_task(self) -> asyncio.Task[None]:
        assert self._main is not None
        return self._main

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def stop(self) -> None:
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._main
        # A leader that lost its Lease writes nothing more (another may be acting): it
        # drops its queued events and exits at once.
        lost = self.elector is not None and self.elector.lost
        for rec in self.recorders:
            if not lost:
                await rec.flush(1.0)
            await rec.stop()
        if self.elector is not None:
            await self.elector.release()  # a standby takes over at once
        if self.lease_events is not None:
            if not lost:
                await self.lease_events.flush(1.0)
            await self.lease_events.stop()
        for inf in self.informers.values():
            await inf.stop()
        if self.server is not None:
            await self.server.stop(0.5)
        if self.metrics is not None:
            await self.metrics.stop()
        await self.client.close()


def run(config: ControllerManagerConfig) -> None:
    """Reconcile until SIGTERM or SIGINT; raise if a controller dies."""

    async def main() -> None:
        manager = ControllerManager(config)
        await manager.start()
        log.info("controller-manager started apiserver=%s controllers=%s",
                 config.apiserver, ",".join(config.controllers))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({stopper, manager.main_task},
                               return_when=asyncio.FIRST_COMPLETED)
            if manager.main_task.done() and not manager.main_task.cancelled():
                exc = manager.main_task.exception()
                if exc is not None:
                    raise exc
        finally:
            stopper.cancel()
            log.info("controller-manager shutting down")
            await manager.stop()

    asyncio.run(main())
