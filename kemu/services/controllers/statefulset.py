"""The StatefulSet controller: pods with stable names, network identities and claims.

A sync follows Kubernetes' `updateStatefulSet` (stateful_set_control.go). The set's pods
(`<set>-<ordinal>`, claimed by selector, name and controller reference) are split into
`replicas`, the ordinals [start, start+replicas), and `condemned`, the ordinals above.
Each replica in turn is deleted when finished (to be made again), created when missing
(its claims first), and otherwise checked: under OrderedReady (`monotonic`) the sync stops
at the first replica created this sync, terminating, or not Running and Ready, so ordinal
N+1 is made only after N is ready. Then condemned pods are deleted from the highest
ordinal down, one at a time and only while the others are healthy (OrderedReady), or all
at once (Parallel). Last, a RollingUpdate deletes the highest-ordinal pod at or above the
partition that is not at the update revision, and waits until the pod made again in its
place is healthy before the next; OnDelete stops before that.

Nothing here needs expectations: pod names are fixed, so a create the cache has not shown
yet fails with AlreadyExists and the sync simply waits for the watch. Claims are never
deleted (the Retain policy), so a pod made again for an ordinal mounts the same claim.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from kemu.api import labels as labelsel
from kemu.api import objects
from kemu.api.v1 import api_pb2, apps_pb2, core_pb2, meta_pb2
from kemu.client.errors import AlreadyExists, ClientError, NotFound
from kemu.client.events import NORMAL, WARNING, EventRecorder, ObjectRecorder
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue, run_workers
from kemu.services.controllers import podutil
from kemu.services.controllers import sts_pods as sp
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
    update_meta,
)
from kemu.services.controllers.podcontrol import slow_start_batch
from kemu.services.controllers.requeue import Requeuer

log = logging.getLogger("kemu.controllers.statefulset")

NAME = "statefulset"
INFORMERS = ("statefulsets", "pods", "persistentvolumeclaims")
KIND, API_VERSION = "StatefulSet", "apps/v1"
COMPONENT = "statefulset-controller"

Pod = core_pb2.Pod


@dataclass
class _Sync:
    """One sync's view of a StatefulSet."""

    key: str
    sts: apps_pb2.StatefulSet
    update_revision: str
    current_revision: str
    current_template: core_pb2.PodTemplateSpec | None  # None: unknown, use the update's
    replicas: list[Pod | None] = field(default_factory=list)  # by ordinal - start
    condemned: list[Pod] = field(default_factory=list)  # highest ordinal first

    @property
    def start(self) -> int:
        return self.sts.spec.ordinals.start

    @property
    def monotonic(self) -> bool:
        return self.sts.spec.pod_management_policy != "Parallel"

    @property
    def partition(self) -> int:
        return self.sts.spec.update_strategy.rolling_update.partition

    @property
    def rolling(self) -> bool:
        return self.sts.spec.update_strategy.type in ("", "RollingUpdate")

    def template_for(self, ordinal: int) -> tuple[core_pb2.PodTemplateSpec, str]:
        """newVersionedStatefulSetPod's choice: below a rolling update's partition a pod
        is made at the current revision, elsewhere at the update revision."""
        if self.rolling and ordinal < self.partition and self.current_template is not None:
            return self.current_template, self.current_revision
        return self.sts.spec.template, self.update_revision


def split_pods(s: _Sync, pods: list[Pod]) -> None:
    """Fill `s.replicas` and `s.condemned` from the set's pods."""
    count = s.sts.spec.replicas
    s.replicas = [None] * count
    for pod in pods:
        index = sp.ordinal_of(pod) - s.start
        if 0 <= index < count:
            s.replicas[index] = pod
        elif index >= count:
            s.condemned.append(pod)
    s.condemned.sort(key=sp.ordinal_of, reverse=True)


def first_unhealthy(s: _Sync) -> Pod | None:
    """The lowest-ordinal pod that is not healthy, replicas before condemned."""
    for pod in (*s.replicas, *reversed(s.condemned)):
        if pod is not None and not sp.healthy(pod):
            return pod
    return None


class StatefulSetController:
    """Drives every StatefulSet's ordinal pods and their claims toward its spec.

    `workers` defaults to kube-controller-manager's --concurrent-statefulset-syncs (5);
    without a `recorder` it records events itself as "statefulset-controller"."""

    def __init__(self, client: WorkloadClient, informers: Mapping[str, Informer], *,
                 workers: int = 5, recorder: ObjectRecorder | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.sets = informers["statefulsets"]
        self.pods = informers["pods"]
        self.claims = informers["persistentvolumeclaims"]
        self.workers = workers
        self._own_recorder = recorder is None
        self.recorder: ObjectRecorder = recorder or EventRecorder(client, COMPONENT)
        self.clock = clock
        self.queue: WorkQueue[str] = WorkQueue()
        self.requeue = Requeuer(self.queue)
        self.sets.add_handler(self.on_set)
        self.pods.add_handler(self.on_pod)

    # ---- event handlers ---------------------------------------------------------------

    def on_set(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None and old is not None:
            self.requeue.forget(key_of(old))
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def on_pod(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        """Any change of a set's pod (ready, terminating, gone) may let its set move on."""
        for obj in (old, new):
            if obj is None:
                continue
            key = resolve_controller(self.sets, KIND, obj.pod.metadata)
            if key is not None:
                self.queue.add(key)
            elif obj is new and controller_of(obj.pod.metadata) is None:
                for k in matching_owners(self.sets, _selector_of, obj.pod.metadata):
                    self.queue.add(k)

    # ---- reconcile --------------------------------------------------------------------

    async def run(self) -> None:
        if self._own_recorder and isinstance(self.recorder, EventRecorder):
            self.recorder.start()
        for obj in self.sets.list():
            self.queue.add(key_of(obj))
        try:
            await run_workers(self.queue, self.reconcile, self.workers,
                              on_error=self._on_error)
        finally:
            if self._own_recorder and isinstance(self.recorder, EventRecorder):
                await self.recorder.stop()

    def _on_error(self, key: str, e: Exception) -> None:
        log_sync_error(log, NAME, key, self.queue.num_requeues(key), e)

    async def reconcile(self, key: str) -> None:
        """One step of the StatefulSet `key` toward its spec; idempotent."""
        started = time.perf_counter()
        obj = self.sets.get(key)
        if obj is None:
            return
        sts = obj.stateful_set
        try:
            selector = labelsel.from_label_selector(sts.spec.selector)
        except labelsel.SelectorError as e:
            log.error("statefulset=%s has an invalid selector: %s", key, e)
            return
        pods = await self._claim(sts, selector)
        s = self._view(key, sts, pods)
        error: Exception | None = None
        if not sts.metadata.HasField("deletion_timestamp"):
            try:
                await self._update(s)
            except ClientError as e:
                error = e
        await self._sync_status(obj, s, pods)
        log.debug("statefulset=%s synced pods=%d want=%d duration_ms=%.2f", key, len(pods),
                  sts.spec.replicas, (time.perf_counter() - started) * 1000)
        if error is not None:
            raise error

    async def _claim(self, sts: apps_pb2.StatefulSet, selector: labelsel.Selector
                     ) -> list[Pod]:
        owner = Owner(KIND, API_VERSION, _copy_meta(sts.metadata))
        candidates = [o for o in claim_candidates(self.pods, owner)
                      if sp.is_member(sts, o.pod)]
        manager = RefManager(self.client, owner, selector, "pods",
                             owner_check(self.client, "statefulsets", owner))
        return [o.pod for o in await manager.claim(candidates)]

    def _view(self, key: str, sts: apps_pb2.StatefulSet, pods: list[Pod]) -> _Sync:
        update = sp.revision_name(sts, sts.spec.template)
        current = sts.status.current_revision or update
        template = sts.spec.template if current == update else sp.stored_template(sts, current)
        if template is None:
            log.warning("statefulset=%s: the template of revision %s is not known; pods "
                        "below the partition are made at %s", key, current, update)
        s = _Sync(key, sts, update, current, template)
        split_pods(s, pods)
        return s

    async def _update(self, s: _Sync) -> None:
        if await self._for_all(s, len(s.replicas), lambda i: self._replica(s, i)):
            return
        unhealthy = first_unhealthy(s)
        if await self._for_all(s, len(s.condemned),
                               lambda i: self._condemned(s, s.condemned[i], unhealthy)):
            return
        if s.rolling:
            await self._roll(s)

    async def _for_all(self, s: _Sync, count: int,
                       fn: Callable[[int], Awaitable[bool]]) -> bool:
        """runForAll: in order, stopping at the first that says stop (monotonic), or all in
        slow-start batches (Parallel). True when the sync should stop here."""
        if s.monotonic:
            for i in range(count):
                if await fn(i):
                    return True
            return False
        pending = list(range(count))

        async def next_one() -> None:
            await fn(pending.pop(0))
        _, error = await slow_start_batch(count, next_one)
        if error is not None:
            raise error
        return False

    # ---- one replica, one condemned pod, one rolling step -------------------------------

    async def _replica(self, s: _Sync, i: int) -> bool:
        """processReplica: True when an OrderedReady sync must stop at this ordinal."""
        pod, ordinal = s.replicas[i], s.start + i
        if pod is None:
            await self._create(s, ordinal)
            return s.monotonic
        if sp.finished(pod):
            if not podutil.is_terminating(pod.metadata):
                await self._delete(s, pod)
            return True
        if podutil.is_terminating(pod.metadata):
            return s.monotonic
        if pod.status.phase == "Pending":
            await self._create_claims(s, ordinal, pod.metadata.name)
        if s.monotonic and not self._available(s, pod):
            return True
        if not sp.identity_matches(s.sts, pod):
            await self._fix_identity(pod)
        return False

    def _available(self, s: _Sync, pod: Pod) -> bool:
        """Running, Ready and past minReadySeconds; re-sync when it will be."""
        if not sp.running_and_ready(pod):
            return False
        min_ready = s.sts.spec.min_ready_seconds
        if sp.running_and_available(pod, min_ready, self.clock()):
            return True
        at = podutil.available_at(pod, min_ready)
        self.requeue.after(s.key, (at or 0.0) - self.clock() + 0.05)
        return False

    async def _condemned(self, s: _Sync, pod: Pod, unhealthy: Pod | None) -> bool:
        """processCondemned: delete from the top, one at a time under OrderedReady."""
        if podutil.is_terminating(pod.metadata):
            return s.monotonic
        if s.monotonic and pod is not unhealthy and not self._available(s, pod):
            return True
        await self._delete(s, pod)
        return True

    async def _roll(self, s: _Sync) -> None:
        """Replace the highest-ordinal pod not at the update revision, at or above the
        partition; wait while the one below is not healthy."""
        for i in reversed(range(len(s.replicas))):
            if s.start + i < s.partition:
                return
            pod = s.replicas[i]
            if pod is None:
                return
            if sp.revision_of(pod) != s.update_revision and \
                    not podutil.is_terminating(pod.metadata):
                log.info("statefulset=%s rolling update deletes %s (revision %s -> %s)",
                         s.key, pod.metadata.name, sp.revision_of(pod), s.update_revision)
                await self._delete(s, pod)
                return
            if not sp.healthy(pod):
                return

    # ---- writes -------------------------------------------------------------------------

    async def _create(self, s: _Sync, ordinal: int) -> None:
        sts = s.sts
        name = sp.pod_name(sts, ordinal)
        await self._create_claims(s, ordinal, name)
        template, revision = s.template_for(ordinal)
        ref = Owner(KIND, API_VERSION, sts.metadata).controller_ref()
        pod = sp.new_pod(sts, template, revision, ordinal, ref)
        try:
            await self.client.create(objects.wrap(pod))
        except AlreadyExists:
            log.debug("statefulset=%s pod %s exists: waiting for the cache", s.key, name)
            return
        except ClientError as e:
            self._event(sts, WARNING, "FailedCreate",
                        f"create Pod {name} in StatefulSet {sts.metadata.name} failed "
                        f"error: {e.message}")
            raise
        log.info("statefulset=%s created pod %s revision=%s", s.key, name, revision)
        self._event(sts, NORMAL, "SuccessfulCreate",
                    f"create Pod {name} in StatefulSet {sts.metadata.name} successful")

    async def _create_claims(self, s: _Sync, ordinal: int, pod_name: str) -> None:
        """createPersistentVolumeClaims: the ordinal's claims that do not exist yet."""
        sts = s.sts
        for claim in sp.claims_for(sts, ordinal):
            name = claim.metadata.name
            if self.claims.get(f"{sts.metadata.namespace}/{name}") is not None:
                continue
            try:
                await self.client.create(objects.wrap(claim))
            except AlreadyExists:
                continue
            except ClientError as e:
                self._event(sts, WARNING, "FailedCreate",
                            f"create Claim {name} for Pod {pod_name} in StatefulSet "
                            f"{sts.metadata.name} failed error: {e.message}")
                raise
            log.info("statefulset=%s created claim %s", s.key, name)
            self._event(sts, NORMAL, "SuccessfulCreate",
                        f"create Claim {name} Pod {pod_name} in StatefulSet "
                        f"{sts.metadata.name} success")

    async def _delete(self, s: _Sync, pod: Pod) -> None:
        sts, name = s.sts, pod.metadata.name
        try:
            await self.client.delete("pods", name, pod.metadata.namespace,
                                     uid=pod.metadata.uid)
        except NotFound:
            return
        except ClientError as e:
            self._event(sts, WARNING, "FailedDelete",
                        f"delete Pod {name} in StatefulSet {sts.metadata.name} failed "
                        f"error: {e.message}")
            raise
        log.info("statefulset=%s deleted pod %s", s.key, name)
        self._event(sts, NORMAL, "SuccessfulDelete",
                    f"delete Pod {name} in StatefulSet {sts.metadata.name} successful")

    async def _fix_identity(self, pod: Pod) -> None:
        """updateIdentity on an existing pod (its labels; hostname and subdomain are
        immutable and set only at creation)."""
        def change(meta: meta_pb2.ObjectMeta) -> bool:
            probe = Pod()
            probe.metadata.CopyFrom(meta)
            sp.set_identity_labels(probe)
            if dict(probe.metadata.labels) == dict(meta.labels):
                return False
            meta.labels.update(probe.metadata.labels)
            return True
        await update_meta(self.client, "pods", objects.wrap(pod), change)

    def _event(self, sts: apps_pb2.StatefulSet, type_: str, reason: str, message: str) -> None:
        self.recorder.emit(KIND, sts, type_, reason, message)

    # ---- status and the current template ------------------------------------------------

    async def _sync_status(self, obj: api_pb2.Object, s: _Sync, pods: list[Pod]) -> None:
        status = sp.status(s.sts, pods, s.current_revision, s.update_revision, self.clock())
        if status.current_revision == s.update_revision:
            obj = await self._keep_template(obj, s.sts.spec.template)
        if status == obj.stateful_set.status:
            return
        out = api_pb2.Object()
        out.CopyFrom(obj)
        out.stateful_set.status.CopyFrom(status)
        with contextlib.suppress(NotFound):  # deleted meanwhile: its event follows
            await self.client.update_status(out)

    async def _keep_template(self, obj: api_pb2.Object, template: core_pb2.PodTemplateSpec
                             ) -> api_pb2.Object:
        """Record the template of the (new) current revision on the set."""
        text = sp.encode_template(template)
        if obj.stateful_set.metadata.annotations.get(sp.TEMPLATE_ANNOTATION) == text:
            return obj

        def change(meta: meta_pb2.ObjectMeta) -> bool:
            if meta.annotations.get(sp.TEMPLATE_ANNOTATION) == text:
                return False
            meta.annotations[sp.TEMPLATE_ANNOTATION] = text
            return True
        written = await update_meta(self.client, "statefulsets", obj, change)
        return written if written is not None else obj


def _selector_of(obj: api_pb2.Object) -> labelsel.Selector:
    return labelsel.from_label_selector(obj.stateful_set.spec.selector)


def _copy_meta(meta: meta_pb2.ObjectMeta) -> meta_pb2.ObjectMeta:
    out = meta_pb2.ObjectMeta()
    out.CopyFrom(meta)
    return out
