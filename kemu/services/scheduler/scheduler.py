"""The scheduling loop: from informer events to bound pods.

Informers on pods and nodes call `on_pod` / `on_node`, which only update the cache and the
queue: assigned pods are counted on their nodes, pending pods (no nodeName, our
schedulerName, not terminating) are queued. One worker takes a pod at a time and runs a
cycle synchronously over the cache (filters, scores, pick), *assumes* the pod onto the
chosen node, and hands the Bind RPC to a background task, so the next cycle starts at once
and already sees the node's reduced capacity. Binds run concurrently up to a limit, which
also throttles the worker when the apiserver is the bottleneck.

A pod that fits nowhere is parked (see queue.py), gets PodScheduled=False/Unschedulable
with kube-scheduler's message via UpdateStatus, and a FailedScheduling event that is
updated, not repeated, on later attempts. A bind Conflict (someone else bound it, or it is
being deleted) just drops the assumption; other bind errors retry with back-off.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import signal
import time
from typing import Protocol

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from kemu.api import quantity
from kemu.api.v1 import api_pb2, core_pb2, meta_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import ClientError, Conflict, NotFound
from kemu.client.events import EventRecorder as ObjectEventRecorder
from kemu.client.informer import Informer
from kemu.client.leaderelection import LeaderElector
from kemu.client.workqueue import ShutDown
from kemu.services.scheduler.cache import Cache
from kemu.services.scheduler.config import SchedulerConfig
from kemu.services.scheduler.events import EventClient, EventRecorder
from kemu.services.scheduler.framework import (
    FitError,
    Framework,
    Profile,
    Registry,
    ScheduleResult,
    SchedulingError,
)
from kemu.services.scheduler.metrics import SchedulerMetrics
from kemu.services.scheduler.nodeinfo import PodInfo, pod_key
from kemu.services.scheduler.plugins import DEFAULT_PROFILE, REGISTRY
from kemu.services.scheduler.queue import SchedulingQueue
from kemu.util.listen import check_bindable
from kemu.util.logsetup import event, ms_since
from kemu.util.metrics import (
    GrpcServerMetrics,
    MetricsEndpoint,
    leader_status,
    maybe_serve_metrics,
)

log = logging.getLogger("kemu.scheduler")
GC_GEN0_THRESHOLD = 10_000  # objects; Python's default is 700
TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
GATED_MESSAGE = "Scheduling is blocked due to non-empty scheduling gates"


class APIClient(EventClient, Protocol):
    """Every call the scheduler makes to the apiserver (AsyncClient has them)."""

    async def bind(self, namespace: str, name: str, node_name: str,
                   uid: str = "") -> api_pb2.Object: ...
    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object: ...


# ---- pure helpers ---------------------------------------------------------------------


def _conditions(node: core_pb2.Node) -> dict[str, str]:
    return {c.type: c.status for c in node.status.conditions}


def node_scheduling_changed(old: core_pb2.Node, new: core_pb2.Node) -> bool:
    """Whether a node update could let a parked pod fit. Heartbeats (condition times,
    images, addresses) do not count, so a busy cluster does not retry every parked pod
    every time a node agent reports in."""
    return (old.spec.unschedulable != new.spec.unschedulable
            or old.status.allocatable != new.status.allocatable
            or old.status.capacity != new.status.capacity
            or old.metadata.labels != new.metadata.labels
            or [(t.key, t.value, t.effect) for t in old.spec.taints]
            != [(t.key, t.value, t.effect) for t in new.spec.taints]
            or _conditions(old) != _conditions(new))


def pod_scheduling_changed(old: core_pb2.Pod, new: core_pb2.Pod) -> bool:
    """Whether a pending pod's update could change where it fits: its spec or labels, not
    its status (which the scheduler itself writes)."""
    return old.spec != new.spec or old.metadata.labels != new.metadata.labels


def without_running_status(obj: api_pb2.Object) -> api_pb2.Object:
    """The pod informer's transform: a bound pod that has not finished is kept without its
    status. The scheduler reads only a bound pod's spec, metadata and whether it finished
    (which a terminal pod, kept whole, still says), and it writes status only to pending
    pods, which are kept whole too. A decoded pod takes 5.2 KB, one without status 2.6 KB:
    protobuf's arena grows in doubling blocks and the status tips it into the next one, so
    at 10,000 pods this is 26 MB of the scheduler's memory. The copy is re-parsed from
    bytes so that it gets an arena of its own size (about 9 µs a pod)."""
    pod = obj.pod
    if not pod.spec.node_name or not pod.HasField("status") \
            or pod.status.phase in TERMINAL_PHASES:
        return obj
    pod.ClearField("status")
    return api_pb2.Object.FromString(obj.SerializeToString())


def pod_scheduled_condition(pod: core_pb2.Pod) -> meta_pb2.Condition | None:
    for cond in pod.status.conditions:
        if cond.type == "PodScheduled":
            return cond
    return None


def set_unscheduled(pod: core_pb2.Pod, reason: str, message: str, now: float) -> bool:
    """Set PodScheduled=False with reason and message; False if it already says that."""
    cond = pod_scheduled_condition(pod)
    if cond is None:
        cond = pod.status.conditions.add(type="PodScheduled")
    elif cond.status == "False" and cond.reason == reason and cond.message == message:
        return False
    if cond.status != "False" or not cond.HasField("last_transition_time"):
        cond.last_transition_time.FromSeconds(int(now))
    cond.status, cond.reason, cond.message = "False", reason, message
    return True


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


# ---- the scheduler --------------------------------------------------------------------


class Scheduler:
    """Cache + queue + framework, fed by informer handlers; `run()` is the worker."""

    def __init__(self, config: SchedulerConfig, client: APIClient, *,
                 registry: Registry = REGISTRY, profile: Profile = DEFAULT_PROFILE) -> None:
        self.config = config
        self.client = client
        self.cache = Cache()
        self.queue = SchedulingQueue(initial_backoff=config.pod_initial_backoff_seconds,
                                     max_backoff=config.pod_max_backoff_seconds,
                                     max_unschedulable=config.unschedulable_retry_seconds)
        self.framework = Framework.from_profile(
            registry, profile, percentage_of_nodes_to_score=config.percentage_of_nodes_to_score,
            rng=random.Random(config.seed))
        self.recorder = EventRecorder(client, component=config.scheduler_name)
        self.metrics = SchedulerMetrics(self.queue, profile=config.scheduler_name)
        self.pending: dict[str, core_pb2.Pod] = {}
        self.bound = 0
        self._bind_slots = asyncio.Semaphore(config.bind_concurrency)
        self._bind_tasks: set[asyncio.Task[None]] = set()
        self._status_want: dict[str, tuple[str, str, str]] = {}
        self._status_done: dict[str, tuple[str, str, str]] = {}
        self._status_tasks: dict[str, asyncio.Task[None]] = {}

    # ---- informer handlers ------------------------------------------------------------

    def responsible_for(self, pod: core_pb2.Pod) -> bool:
        """A pending pod this scheduler should place."""
        name = pod.spec.scheduler_name or "default-scheduler"
        return (name == self.config.scheduler_name and not pod.spec.node_name
                and not pod.metadata.HasField("deletion_timestamp")
                and pod.status.phase not in TERMINAL_PHASES)

    def on_pod(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None:
            if old is not None:
                self._pod_gone(old.pod)
            return
        pod = new.pod
        key = pod_key(pod)
        if pod.spec.node_name:
            self._drop_pending(key, pod.metadata.uid)
            if pod.status.phase in TERMINAL_PHASES:
                # A finished pod holds no resources (kube-scheduler does not count it).
                if self.cache.remove_pod(key):
                    self._move_all("assigned pod finished")
                return
            if not self.cache.confirm(pod, key):
                self.cache.add_pod(self._pod_info(pod), pod.spec.node_name)
            return
        if not self.responsible_for(pod):
            self._drop_pending(key, pod.metadata.uid)
            return
        self.pending[key] = pod
        if self.cache.is_assumed(key):
            return  # bound a moment ago; the informer has not caught up
        before = old.pod if old is not None else None
        if before is None or before.metadata.uid != pod.metadata.uid \
                or before.spec.node_name or pod_scheduling_changed(before, pod):
            self.queue.add(key)

    def _pod_gone(self, pod: core_pb2.Pod) -> None:
        key = pod_key(pod)
        self._drop_pending(key, pod.metadata.uid)
        if self.cache.remove_pod(key):
            self._move_all("assigned pod deleted")

    def _drop_pending(self, key: str, uid: str) -> None:
        if self.pending.pop(key, None) is None:
            return
        self.queue.forget(key)
        self._status_want.pop(key, None)
        self._status_done.pop(key, None)
        self.recorder.forget_pod(uid)

    def on_node(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None:
            if old is not None:
                self.cache.remove_node(old.node.metadata.name)
            return
        self.cache.set_node(new.node)
        if old is None:
            self._move_all(f"node {new.node.metadata.name} added")
        elif node_scheduling_changed(old.node, new.node):
            self._move_all(f"node {new.node.metadata.name} changed")

    def _move_all(self, why: str) -> None:
        moved = self.queue.move_all_to_active()
        if moved:
            log.info("retrying unschedulable pods count=%d reason=%r", moved, why)

    @staticmethod
    def _pod_info(pod: core_pb2.Pod) -> PodInfo:
        try:
            return PodInfo.of(pod)
        except quantity.QuantityError:
            log.warning("pod=%s has malformed requests; counting it as requesting nothing",
                        pod_key(pod))
            return PodInfo(pod_key(pod), pod, {}, {}, (), "")

    # ---- the worker -------------------------------------------------------------------

    async def run(self) -> None:
        """Schedule pods until the queue shuts down (or the task is cancelled)."""
        flusher = asyncio.create_task(self._flush_loop(), name="scheduler-flush")
        try:
            while True:
                await self._bind_slots.acquire()
                try:
                    key = await self.queue.pop()
                except ShutDown:
                    self._bind_slots.release()
                    return
                started = False
                try:
                    started = self.schedule_key(key)
                except Exception:
                    log.exception("pod=%s scheduling failed", key)
                    self.queue.mark_error(key)
                finally:
                    self.queue.done(key)
                    if not started:
                        self._bind_slots.release()
                await asyncio.sleep(0)  # let informer events and binds through
        finally:
            flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await flusher

    async def _flush_loop(self) -> None:
        interval = min(5.0, self.config.unschedulable_retry_seconds / 4)
        while True:
            await asyncio.sleep(interval)
            moved = self.queue.flush_leftover()
            if moved:
                log.info("retrying unschedulable pods count=%d reason='periodic'", moved)

    def schedule_key(self, key: str) -> bool:
        """One scheduling cycle for the pod; True if a bind was started (it then owns one
        bind slot, which it releases)."""
        pod = self.pending.get(key)
        if pod is None or self.cache.is_assumed(key):
            return False
        started = time.perf_counter()
        if pod.spec.scheduling_gates:
            self._set_condition(key, pod, "SchedulingGated", GATED_MESSAGE)
            return False
        try:
            info = PodInfo.of(pod)
        except quantity.QuantityError as e:
            self.queue.mark_error(key)
            self._report_failure(key, pod, "SchedulerError", f"invalid resource request: {e}",
                                 started)
            return False
        try:
            result = self.framework.schedule(info, self.cache.node_list())
        except FitError as e:
            self.queue.mark_unschedulable(key)
            self._report_failure(key, pod, "Unschedulable", e.message, started)
            return False
        except SchedulingError as e:
            self.queue.mark_error(key)
            self._report_failure(key, pod, "SchedulerError", str(e), started)
            return False
        self.cache.assume(info, result.node)
        task = asyncio.create_task(self._bind(info, result, started, _ms(started)))
        self._bind_tasks.add(task)
        task.add_done_callback(self._bind_tasks.discard)
        return True

    def _report_failure(self, key: str, pod: core_pb2.Pod, reason: str, message: str,
                        started: float) -> None:
        log.info("pod=%s unschedulable reason=%s message=%r duration_ms=%.2f", key, reason,
                 message, _ms(started))
        self.metrics.attempt("unschedulable" if reason == "Unschedulable" else "error", started)
        self.recorder.failed_scheduling(pod, message)
        self._set_condition(key, pod, reason, message)

    async def _bind(self, info: PodInfo, result: ScheduleResult, started: float,
                    cycle_ms: float) -> None:
        pod, key, node = info.pod, info.key, result.node
        try:
            await self.client.bind(pod.metadata.namespace, pod.metadata.name, node,
                                   pod.metadata.uid)
        except (Conflict, NotFound) as e:
            self.cache.forget(key)
            log.info("pod=%s bind to node=%s skipped: %s", key, node, e.message)
            return
        except Exception as e:
            self.cache.forget(key)
            message = e.message if isinstance(e, ClientError) else repr(e)
            log.warning("pod=%s bind to node=%s failed, will retry: %s", key, node, message)
            self.metrics.attempt("error", started)
            if key in self.pending:
                self.queue.mark_error(key)
                self.recorder.failed_scheduling(pod, f"Binding rejected: {message}")
            return
        finally:
            self._bind_slots.release()
        self.bound += 1
        self.metrics.attempt("scheduled", started)
        self.queue.forget(key)
        self.recorder.scheduled(pod, node)
        self.recorder.forget_pod(pod.metadata.uid)
        event(log, "bound pod", v=2, pod=key, node=node, evaluated=result.evaluated,
              feasible=result.feasible, cycle_ms=round(cycle_ms, 2), duration_ms=ms_since(started))

    # ---- PodScheduled=False -------------------------------------------------------------

    def _set_condition(self, key: str, pod: core_pb2.Pod, reason: str, message: str) -> None:
        want = (pod.metadata.uid, reason, message)
        if self._status_done.get(key) == want:
            return
        self._status_want[key] = want
        if key not in self._status_tasks:
            self._status_tasks[key] = asyncio.create_task(self._status_writer(key))

    async def _status_writer(self, key: str) -> None:
        try:
            while (want := self._status_want.pop(key, None)) is not None:
                pod = self.pending.get(key)
                if pod is None or pod.metadata.uid != want[0]:
                    continue
                if await self._write_condition(pod, want[1], want[2]):
                    self._status_done[key] = want
        finally:
            self._status_tasks.pop(key, None)

    async def _write_condition(self, pod: core_pb2.Pod, reason: str, message: str) -> bool:
        ns, name, uid = pod.metadata.namespace, pod.metadata.name, pod.metadata.uid
        for _attempt in range(3):
            obj = api_pb2.Object()
            obj.pod.CopyFrom(pod)
            if not set_unscheduled(obj.pod, reason, message, time.time()):
                return True
            try:
                await self.client.update_status(obj)
                return True
            except Conflict:
                try:
                    fresh = (await self.client.get("pods", name, ns)).pod
                except ClientError:
                    return False
                if fresh.metadata.uid != uid or fresh.spec.node_name:
                    return False
                pod = fresh
            except ClientError as e:
                if not isinstance(e, NotFound):
                    log.warning("pod=%s/%s status not written: %s", ns, name, e.message)
                return False
        return False

    # ---- shutdown -------------------------------------------------------------------

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (bounded) for binds, status writes and events in flight."""
        deadline = time.monotonic() + timeout
        while self._bind_tasks or self._status_tasks:
            pending = [*self._bind_tasks, *self._status_tasks.values()]
            left = deadline - time.monotonic()
            if left <= 0:
                break
            await asyncio.wait(pending, timeout=left)
        await self.recorder.flush(max(0.1, deadline - time.monotonic()))


# ---- wiring: informers, health, process -----------------------------------------------


class SchedulerService:
    """A running scheduler: client, informers, worker and an optional health server.

    With leader election the informers fill and health says SERVING at once, but the
    worker runs only while this replica holds the Lease: a standby keeps a warm cache and
    queue, so it schedules within a retry period of taking over. Losing the Lease raises
    LeaderElectionLost out of the main task (the process exits, as kube-scheduler does).
    """

    def __init__(self, config: SchedulerConfig) -> None:
        self.config = config
        self.client = AsyncClient(config.apiserver)
        self.scheduler = Scheduler(config, self.client)
        self.nodes = Informer(self.client, "nodes")
        self.pods = Informer(self.client, "pods", transform=without_running_status)
        self.nodes.add_handler(self.scheduler.on_node)
        self.pods.add_handler(self.scheduler.on_pod)
        self.ready = asyncio.Event()
        self.health: health.aio.HealthServicer | None = None
        self.server: grpc.aio.Server | None = None
        self.health_port = 0
        self.metrics: MetricsEndpoint | None = None
        self._main: asyncio.Task[None] | None = None
        self.elector: LeaderElector | None = None
        self.lease_events: ObjectEventRecorder | None = None
        if config.leader_election is not None:
            self.lease_events = ObjectEventRecorder(self.client, config.scheduler_name,
                                                    instance=config.leader_election.identity)
            elector = self.elector = LeaderElector(self.client, config.leader_election,
                                                   events=self.lease_events)
            self.scheduler.metrics.registry.register(leader_status(
                config.leader_election.resource_name, lambda: elector.is_leader))

    async def start(self) -> None:
        if self.lease_events is not None:
            self.lease_events.start()
        if self.config.health_listen is not None:
            self.health = health.aio.HealthServicer()
            self.server = grpc.aio.server(
                interceptors=[GrpcServerMetrics(self.scheduler.metrics.registry)],
                options=[("grpc.so_reuseport", 0)])
            health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
            reflection.enable_server_reflection(
                (health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
                 reflection.SERVICE_NAME), self.server)
            check_bindable(self.config.health_listen)
            try:
                self.health_port = self.server.add_insecure_port(self.config.health_listen)
            except RuntimeError:
                raise OSError(f"cannot listen on {self.config.health_listen}: address in use "
                              "or not available") from None
            await self.server.start()
            await self.health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
        self.metrics = await maybe_serve_metrics(self.config.metrics_listen,
                                                 self.scheduler.metrics.registry)
        self.nodes.start()
        self.pods.start()
        self._main = asyncio.create_task(self._run(), name="scheduler")

    async def _run(self) -> None:
        started = time.perf_counter()
        await self.nodes.synced.wait()
        await self.pods.synced.wait()
        self.ready.set()
        if self.health is not None:
            await self.health.set("", health_pb2.HealthCheckResponse.SERVING)
        log.info("scheduler ready apiserver=%s name=%s nodes=%d pending=%d duration_ms=%.1f",
                 self.config.apiserver, self.config.scheduler_name,
                 len(self.scheduler.cache.node_list()), len(self.scheduler.pending),
                 _ms(started))
        if self.elector is None:
            await self.scheduler.run()
        else:
            await self.elector.run(self._lead)

    async def _lead(self) -> None:
        assert self.elector is not None
        log.info("scheduler leading identity=%s pending=%d", self.elector.identity,
                 len(self.scheduler.pending))
        await self.scheduler.run()

    @property
    def main_task(self) -> asyncio.Task[None]:
        assert self._main is not None
        return self._main

    async def wait_ready(self, timeout: float | None = None) -> None:
        await asyncio.wait_for(self.ready.wait(), timeout)

    async def stop(self) -> None:
        await self.scheduler.queue.shut_down()
        if self._main is not None:
            self._main.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._main
        lost = self.elector is not None and self.elector.lost
        if not lost:  # a leader that lost its Lease writes nothing more
            await self.scheduler.drain()
        if self.elector is not None:
            await self.elector.release()  # a standby takes over at once
        if self.lease_events is not None:
            if not lost:
                await self.lease_events.flush(1.0)
            await self.lease_events.stop()
        await self.pods.stop()
        await self.nodes.stop()
        if self.server is not None:
            await self.server.stop(0.5)
        if self.metrics is not None:
            await self.metrics.stop()
        await self.client.close()


def run(config: SchedulerConfig) -> None:
    """Schedule until SIGTERM or SIGINT; raise if the scheduler itself dies."""

    async def main() -> None:
        service = SchedulerService(config)
        await service.start()
        log.info("scheduler started apiserver=%s", config.apiserver)
        # Start-up objects (modules, grpc, the informers' first lists) live for the whole
        # run: frozen out of the collector's view, and with a first generation of 10,000
        # objects the per-pod garbage (mostly acyclic) triggers far fewer collections (GC
        # time in the scheduler benchmark: 0.2 to 0.1 CPU s per 3,000 pods).
        gc.collect()
        gc.freeze()
        gc.set_threshold(GC_GEN0_THRESHOLD)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        stopper = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({stopper, service.main_task},
                               return_when=asyncio.FIRST_COMPLETED)
            if service.main_task.done() and not service.main_task.cancelled():
                exc = service.main_task.exception()
                if exc is not None:
                    raise exc
        finally:
            stopper.cancel()
            log.info("scheduler shutting down")
            await service.stop()

    asyncio.run(main())
