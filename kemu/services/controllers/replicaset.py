"""The ReplicaSet and ReplicationController controllers: keep `spec.replicas` pods running.

One implementation serves both kinds, as in Kubernetes (whose ReplicationController
manager wraps the ReplicaSet one): they differ only in how the selector is written
(`matchLabels`/`matchExpressions` against a plain map) and in the owner reference they
put on pods. A sync follows `syncReplicaSet`: list the namespace's active pods from the
cache (terminating and finished pods are not replicas), claim them (adopt matching orphans,
release owned pods whose labels stopped matching), then, unless creates or deletes this
controller issued are still unseen (`Expectations`), create the missing pods in slow-start
batches or delete the surplus in ActivePods order, and write status when it changed.

Watch handlers only map events to owner keys and count expectations down; everything
else is recomputed from the cache on each sync, so a missed or repeated event costs a
sync, never a wrong pod count.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kemu.api import labels as labelsel
from kemu.api.v1 import api_pb2, core_pb2, meta_pb2
from kemu.client.errors import ClientError, Forbidden, NotFound
from kemu.client.events import DISCARD, NORMAL, WARNING, ObjectRecorder
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue, run_workers
from kemu.services.controllers import podutil
from kemu.services.controllers.controllerref import (
    Owner,
    RefManager,
    WorkloadClient,
    claim_candidates,
    controller_of,
    log_sync_error,
    matching_owners,
    owner_check,
    resolve_controller,
)
from kemu.services.controllers.expectations import Expectations
from kemu.services.controllers.podcontrol import PodControl, slow_start_batch
from kemu.services.controllers.requeue import Requeuer

log = logging.getLogger("kemu.controllers.replicaset")

BURST_REPLICAS = 500  # creates or deletes per sync at most (Kubernetes' burstReplicas)
REPLICA_FAILURE = "ReplicaFailure"
_NAMESPACE_TERMINATING = "because it is being terminated"


@dataclass(frozen=True)
class Workload:
    """What differs between ReplicaSets and ReplicationControllers."""

    name: str  # the controller's name in --controllers
    resource: str
    field: str  # the envelope's oneof field
    kind: str
    api_version: str
    selector: Callable[[Any], labelsel.Selector]

    @property
    def informers(self) -> tuple[str, ...]:
        return (self.resource, "pods")


REPLICA_SET = Workload("replicaset", "replicasets", "replica_set", "ReplicaSet", "apps/v1",
                       lambda rs: labelsel.from_label_selector(rs.spec.selector))
REPLICATION_CONTROLLER = Workload(
    "replicationcontroller", "replicationcontrollers", "replication_controller",
    "ReplicationController", "v1", lambda rc: labelsel.from_map(rc.spec.selector))


# ---- pure computation -------------------------------------------------------------------


def set_condition(conditions: Any, cond: meta_pb2.Condition) -> None:
    """Kubernetes' SetCondition: same status and reason is no change; a new one replaces
    the old condition of that type."""
    for c in conditions:
        if c.type == cond.type and c.status == cond.status and c.reason == cond.reason:
            return
    remove_condition(conditions, cond.type)
    conditions.append(cond)


def remove_condition(conditions: Any, type_: str) -> None:
    kept = [c for c in conditions if c.type != type_]
    if len(kept) != len(conditions):
        del conditions[:]
        conditions.extend(kept)


def calculate_status(owner: Any, pods: list[core_pb2.Pod], error: Exception | None,
                     now: float) -> Any:
    """The owner's next status from the pods it controls (calculateStatus)."""
    status = type(owner.status)()
    status.CopyFrom(owner.status)
    template = labelsel.from_map(owner.spec.template.metadata.labels)
    min_ready = owner.spec.min_ready_seconds
    status.replicas = len(pods)
    status.fully_labeled_replicas = sum(template.matches(p.metadata.labels) for p in pods)
    status.ready_replicas = sum(podutil.is_ready(p) for p in pods)
    status.available_replicas = sum(podutil.is_available(p, min_ready, now) for p in pods)
    failed = any(c.type == REPLICA_FAILURE for c in owner.status.conditions)
    if error is not None and not failed:
        diff = len(pods) - owner.spec.replicas
        reason = "FailedCreate" if diff < 0 else "FailedDelete" if diff > 0 else ""
        cond = meta_pb2.Condition(type=REPLICA_FAILURE, status="True", reason=reason,
                                  message=getattr(error, "message", None) or str(error))
        cond.last_transition_time.FromNanoseconds(int(now * 1e9))
        set_condition(status.conditions, cond)
    elif error is None and failed:
        remove_condition(status.conditions, REPLICA_FAILURE)
    return status


def status_changed(owner: Any, status: Any) -> bool:
    """Whether the status needs a write (updateReplicaSetStatus' early return)."""
    return (owner.status.replicas != status.replicas
            or owner.status.fully_labeled_replicas != status.fully_labeled_replicas
            or owner.status.ready_replicas != status.ready_replicas
            or owner.status.available_replicas != status.available_replicas
            or owner.metadata.generation != owner.status.observed_generation
            or list(owner.status.conditions) != list(status.conditions))


def next_available_in(owner: Any, pods: list[core_pb2.Pod], now: float) -> float | None:
    """Seconds until the next ready pod passes minReadySeconds, so the owner is synced
    then: no pod event marks that moment."""
    waits = [at - now for p in pods
             if (at := podutil.available_at(p, owner.spec.min_ready_seconds)) and at >= now]
    return min(waits) if waits else None


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


# ---- the controller ---------------------------------------------------------------------


class ReplicaSetController:
    """Keeps the pods of every ReplicaSet (or ReplicationController) at spec.replicas."""

    def __init__(self, client: WorkloadClient, informers: Mapping[str, Informer],
                 workload: Workload = REPLICA_SET, *, workers: int = 4,
                 expectations: Expectations | None = None,
                 clock: Callable[[], float] = time.time,
                 recorder: ObjectRecorder = DISCARD) -> None:
        self.client = client
        self.recorder = recorder
        self.workload = workload
        self.owners = informers[workload.resource]
        self.pods = informers["pods"]
        self.workers = workers
        self.expectations = expectations or Expectations()
        self.clock = clock
        self.pod_control = PodControl(client)
        self.queue: WorkQueue[str] = WorkQueue()
        self.requeue = Requeuer(self.queue)
        self.owners.add_handler(self.on_owner)
        self.pods.add_handler(self.on_pod)

    # ---- event handlers: events -> owner keys, and expectations counted down -------------

    def on_owner(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None and old is not None:
            self.expectations.forget(key_of(old))
            self.requeue.forget(key_of(old))
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _owner_key(self, pod: core_pb2.Pod) -> str | None:
        return resolve_controller(self.owners, self.workload.kind, pod.metadata)

    def _matching_owners(self, pod: core_pb2.Pod) -> list[str]:
        return matching_owners(
            self.owners, lambda o: self.workload.selector(getattr(o, self.workload.field)),
            pod.metadata)

    def on_pod(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None:
            if old is not None:
                self._pod_gone(old.pod)
            return
        pod = new.pod
        if podutil.is_terminating(pod.metadata):
            self._pod_gone(pod)  # counts as deleted from now on (the kubelet may take long)
            if old is not None and dict(old.pod.metadata.labels) != dict(pod.metadata.labels):
                self._pod_gone(old.pod)
            return
        if old is None:
            key = self._owner_key(pod)
            if key is not None:
                self.expectations.creation_observed(key)
            self._enqueue_for(pod, key)
            return
        old_key = self._owner_key(old.pod)
        key = self._owner_key(pod)
        if old_key is not None and old_key != key:
            self.queue.add(old_key)
        self._enqueue_for(pod, key, orphan_changed=(
            dict(old.pod.metadata.labels) != dict(pod.metadata.labels) or old_key != key))

    def _enqueue_for(self, pod: core_pb2.Pod, key: str | None, *,
                     orphan_changed: bool = True) -> None:
        if key is not None:
            self.queue.add(key)
        elif controller_of(pod.metadata) is None and orphan_changed:
            for k in self._matching_owners(pod):
                self.queue.add(k)

    def _pod_gone(self, pod: core_pb2.Pod) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, pod.metadata.uid)
            self.queue.add(key)

    # ---- reconcile ----------------------------------------------------------------------

    async def run(self) -> None:
        for obj in self.owners.list():
            self.queue.add(key_of(obj))
        await run_workers(self.queue, self.reconcile, self.workers, on_error=self._on_error)

    def _on_error(self, key: str, e: Exception) -> None:
        log_sync_error(log, self.workload.name, key, self.queue.num_requeues(key), e)

    async def reconcile(self, key: str) -> None:
        """Claim, create or delete pods toward spec.replicas, write status; idempotent."""
        started = time.perf_counter()
        obj = self.owners.get(key)
        if obj is None:
            self.expectations.forget(key)
            return
        owner_msg = getattr(obj, self.workload.field)
        try:
            selector = self.workload.selector(owner_msg)
        except labelsel.SelectorError as e:
            log.error("%s=%s has an invalid selector: %s", self.workload.name, key, e)
            return
        needs_sync = self.expectations.satisfied(key)
        owner = Owner(self.workload.kind, self.workload.api_version,
                      _copy_meta(owner_msg.metadata))
        pods = await self._claim(owner, selector)
        error: Exception | None = None
        if needs_sync and not owner.deleting:
            try:
                await self._manage(key, owner_msg, owner, pods)
            except (ClientError, ValueError) as e:
                error = e
        now = self.clock()
        status = calculate_status(owner_msg, pods, error, now)
        if status_changed(owner_msg, status):
            await self._write_status(obj, status)
        wait = next_available_in(owner_msg, pods, now)
        if error is None and wait is not None:
            self.requeue.after(key, wait + 0.05)
        log.debug("%s=%s synced pods=%d want=%d expectations=%s duration_ms=%.2f",
                  self.workload.name, key, len(pods), owner_msg.spec.replicas,
                  self.expectations.pending(key), _ms(started))
        if error is not None:
            raise error

    async def _claim(self, owner: Owner, selector: labelsel.Selector) -> list[core_pb2.Pod]:
        candidates = [o for o in claim_candidates(self.pods, owner)
                      if podutil.is_active(o.pod)]
        manager = RefManager(self.client, owner, selector, "pods",
                             owner_check(self.client, self.workload.resource, owner))
        return [o.pod for o in await manager.claim(candidates)]

    async def _manage(self, key: str, owner_msg: Any, owner: Owner,
                      pods: list[core_pb2.Pod]) -> None:
        diff = len(pods) - owner_msg.spec.replicas
        if diff < 0:
            await self._create(key, owner_msg, owner, min(-diff, BURST_REPLICAS))
        elif diff > 0:
            await self._delete(key, owner_msg, pods, min(diff, BURST_REPLICAS))

    async def _create(self, key: str, owner_msg: Any, owner: Owner, count: int) -> None:
        self.expectations.expect_creations(key, count)
        ref = owner.controller_ref()
        namespace, name = owner.meta.namespace, owner.meta.name

        async def create_one() -> None:
            try:
                pod = await self.pod_control.create(namespace, owner_msg.spec.template, name,
                                                    ref)
            except Forbidden as e:
                if _NAMESPACE_TERMINATING not in e.message:
                    self.recorder.emit(self.workload.kind, owner_msg, WARNING, "FailedCreate",
                                       f"Error creating: {e.message}")
                    raise
            except ClientError as e:
                self.recorder.emit(self.workload.kind, owner_msg, WARNING, "FailedCreate",
                                   f"Error creating: {e.message}")
                raise
            else:
                self.recorder.emit(self.workload.kind, owner_msg, NORMAL, "SuccessfulCreate",
                                   f"Created pod: {pod.pod.metadata.name}")
        created, error = await slow_start_batch(count, create_one)
        for _ in range(count - created):
            self.expectations.creation_observed(key)  # never coming: not created
        log.info("%s=%s created pods=%d of %d", self.workload.name, key, created, count)
        if error is not None:
            raise error

    async def _delete(self, key: str, owner_msg: Any, pods: list[core_pb2.Pod],
                      count: int) -> None:
        victims = podutil.pods_to_delete(pods, count)
        self.expectations.expect_deletions(key, [p.metadata.uid for p in victims])
        results = await asyncio.gather(
            *(self.pod_control.delete(p.metadata.namespace, p.metadata.name, p.metadata.uid)
              for p in victims), return_exceptions=True)
        errors: list[Exception] = []
        for pod, result in zip(victims, results, strict=True):
            if result is True:
                self.recorder.emit(self.workload.kind, owner_msg, NORMAL, "SuccessfulDelete",
                                   f"Deleted pod: {pod.metadata.name}")
                continue
            self.expectations.deletion_observed(key, pod.metadata.uid)
            if isinstance(result, Exception):
                errors.append(result)
            elif isinstance(result, BaseException):
                raise result
        log.info("%s=%s deleted pods=%s", self.workload.name, key,
                 ",".join(p.metadata.name for p in victims))
        if errors:
            raise errors[0]

    async def _write_status(self, obj: api_pb2.Object, status: Any) -> None:
        out = api_pb2.Object()
        out.CopyFrom(obj)
        msg = getattr(out, self.workload.field)
        status.observed_generation = msg.metadata.generation
        msg.status.CopyFrom(status)
        # A Conflict propagates: the queue retries once the cache has the newer object.
        with contextlib.suppress(NotFound):  # deleted meanwhile: its delete event follows
            await self.client.update_status(out)


def _copy_meta(meta: meta_pb2.ObjectMeta) -> meta_pb2.ObjectMeta:
    out = meta_pb2.ObjectMeta()
    out.CopyFrom(meta)
    return out
