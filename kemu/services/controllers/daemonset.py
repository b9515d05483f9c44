"""The DaemonSet controller: one pod of the template on every node that should run it.

A sync follows Kubernetes' `syncDaemonSet`: claim the namespace's pods by selector and
controller reference, group them by the node they are for, judge every node
(`ds_nodes.placement`: nodeName, nodeSelector, required node affinity, taints against the
template's tolerations plus the daemon defaults), then, unless creates or deletes issued
earlier are still unseen (`Expectations`), create the missing pods in slow-start batches
and delete the surplus, misplaced and finished ones (`ds_rolling.node_plan`); a
RollingUpdate then deletes old pods within maxUnavailable, and the next sync creates
their replacements, or, with maxSurge, creates new pods beside old ones and deletes the
old ones once the new are available. Status is written when it changed.

Created pods carry `controller-revision-hash=<hash of the template>` (the hash of
`hashing.compute_hash`, mixed with status.collisionCount), which tells new pods from old.
kemu has no ControllerRevision kind: the current hash is also kept in the DaemonSet's
`daemonset.kemu.io/revision-hash` annotation, so `kemuctl get ds -o yaml` shows which
revision the pods should be at. Pods are pinned to their node with a required
`matchFields metadata.name` node affinity and bound by the scheduler, as in Kubernetes.

Watch handlers only map events to DaemonSet keys and count expectations down: a node
added, deleted, or changed in a way that changes a DaemonSet's verdict wakes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from kemu.api import labels as labelsel
from kemu.api.v1 import api_pb2, apps_pb2, core_pb2, meta_pb2
from kemu.client.errors import ClientError, Forbidden, NotFound
from kemu.client.events import NORMAL, WARNING, EventRecorder, ObjectRecorder
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue, run_workers
from kemu.services.controllers import ds_nodes, ds_rolling, podutil
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
from kemu.services.controllers.expectations import Expectations
from kemu.services.controllers.hashing import compute_hash
from kemu.services.controllers.podcontrol import PodControl, slow_start_batch
from kemu.services.controllers.requeue import Requeuer

log = logging.getLogger("kemu.controllers.daemonset")

NAME = "daemonset"
INFORMERS = ("daemonsets", "pods", "nodes")
KIND, API_VERSION = "DaemonSet", "apps/v1"
COMPONENT = "daemonset-controller"
REVISION_ANNOTATION = "daemonset.kemu.io/revision-hash"
BURST_REPLICAS = 250  # Kubernetes' daemonset BurstReplicas
_NAMESPACE_TERMINATING = "because it is being terminated"


def revision_of(ds: apps_pb2.DaemonSet) -> str:
    """The hash naming the DaemonSet's current template."""
    collisions = ds.status.collision_count if ds.status.HasField("collision_count") else None
    return compute_hash(ds.spec.template, collisions)


def pod_template(ds: apps_pb2.DaemonSet, revision: str, node: str) -> core_pb2.PodTemplateSpec:
    """CreatePodTemplate plus the node pin: daemon tolerations, the hash label, and the
    node affinity term naming `node`."""
    template = core_pb2.PodTemplateSpec()
    template.CopyFrom(ds.spec.template)
    ds_nodes.add_daemon_tolerations(template.spec)
    template.metadata.labels[ds_rolling.HASH_LABEL] = revision
    ds_nodes.pin_to_node(template.spec, node)
    return template


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


class DaemonExpectations(Expectations):
    """Expectations with creations and deletions set together, as one syncNodes issues
    both (`SetExpectations(key, adds, dels)`); the shared class sets one kind at a time."""

    def expect(self, key: str, adds: int, delete_uids: list[str]) -> None:
        self.expect_deletions(key, delete_uids)
        self._records[key].adds = adds


class DaemonSetController:
    """Keeps one pod of every DaemonSet on each node that should run it.

    `workers` defaults to kube-controller-manager's --concurrent-daemonset-syncs (2);
    without a `recorder` it records events itself as "daemonset-controller"."""

    def __init__(self, client: WorkloadClient, informers: Mapping[str, Informer], *,
                 workers: int = 2, expectations: DaemonExpectations | None = None,
                 recorder: ObjectRecorder | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.daemonsets = informers["daemonsets"]
        self.pods = informers["pods"]
        self.nodes = informers["nodes"]
        self.workers = workers
        self.expectations = expectations or DaemonExpectations()
        self._own_recorder = recorder is None
        self.recorder: ObjectRecorder = recorder or EventRecorder(client, COMPONENT)
        self.clock = clock
        self.pod_control = PodControl(client)
        self.queue: WorkQueue[str] = WorkQueue()
        self.requeue = Requeuer(self.queue)
        self.daemonsets.add_handler(self.on_daemonset)
        self.pods.add_handler(self.on_pod)
        self.nodes.add_handler(self.on_node)

    # ---- event handlers ---------------------------------------------------------------

    def on_daemonset(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None and old is not None:
            self.expectations.forget(key_of(old))
            self.requeue.forget(key_of(old))
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _owner_key(self, pod: core_pb2.Pod) -> str | None:
        return resolve_controller(self.daemonsets, KIND, pod.metadata)

    def on_pod(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None:
            if old is not None:
                self._pod_gone(old.pod)
            return
        pod = new.pod
        if podutil.is_terminating(pod.metadata):
            self._pod_gone(pod)
            return
        key = self._owner_key(pod)
        if old is None and key is not None:
            self.expectations.creation_observed(key)
        if old is not None:
            old_key = self._owner_key(old.pod)
            if old_key is not None and old_key != key:
                self.queue.add(old_key)
        if key is not None:
            self.queue.add(key)
        elif controller_of(pod.metadata) is None:
            for k in matching_owners(self.daemonsets, _selector_of, pod.metadata):
                self.queue.add(k)

    def _pod_gone(self, pod: core_pb2.Pod) -> None:
        key = self._owner_key(pod)
        if key is not None:
            self.expectations.deletion_observed(key, pod.metadata.uid)
            self.queue.add(key)

    def on_node(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        """Wake the DaemonSets whose verdict on this node may have changed."""
        if old is not None and new is not None and _same_for_daemons(old.node, new.node):
            return
        for obj in self.daemonsets.list():
            ds = obj.daemon_set
            if old is None or new is None:
                self.queue.add(key_of(obj))
                continue
            spec = ds_nodes.daemon_pod_spec(ds.spec.template)
            if ds_nodes.placement(spec, old.node) != ds_nodes.placement(spec, new.node):
                self.queue.add(key_of(obj))

    # ---- reconcile --------------------------------------------------------------------

    async def run(self) -> None:
        if self._own_recorder and isinstance(self.recorder, EventRecorder):
            self.recorder.start()
        for obj in self.daemonsets.list():
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
        """Create, delete and replace daemon pods toward one per eligible node; write
        status; idempotent."""
        started = time.perf_counter()
        obj = self.daemonsets.get(key)
        if obj is None:
            self.expectations.forget(key)
            return
        obj = _copy(obj)  # _record_revision replaces it with what it wrote
        ds = obj.daemon_set
        try:
            selector = labelsel.from_label_selector(ds.spec.selector)
        except labelsel.SelectorError as e:
            log.error("daemonset=%s has an invalid selector: %s", key, e)
            return
        if selector.empty():
            self.recorder.emit(KIND, ds, WARNING, "SelectingAll",
                               "This daemon set is selecting all pods. A non-empty selector "
                               "is required.")
            return
        if ds.metadata.HasField("deletion_timestamp"):
            return
        revision = revision_of(ds)
        await self._record_revision(obj, revision)
        pods = await self._claim(ds, selector)
        error: Exception | None = None
        if self.expectations.satisfied(key):
            try:
                await self._update(key, ds, pods, revision)
            except (ClientError, ValueError) as e:
                error = e
            pods = await self._claim(ds, selector)
        await self._sync_status(key, obj, pods, revision)
        log.debug("daemonset=%s synced pods=%d expectations=%s duration_ms=%.2f", key,
                  len(pods), self.expectations.pending(key), _ms(started))
        if error is not None:
            raise error

    async def _claim(self, ds: apps_pb2.DaemonSet, selector: labelsel.Selector
                     ) -> list[core_pb2.Pod]:
        owner = Owner(KIND, API_VERSION, _copy_meta(ds.metadata))
        candidates = claim_candidates(self.pods, owner)
        manager = RefManager(self.client, owner, selector, "pods",
                             owner_check(self.client, "daemonsets", owner))
        return [o.pod for o in await manager.claim(candidates)]

    def _placements(self, ds: apps_pb2.DaemonSet) -> dict[str, ds_nodes.Placement]:
        spec = ds_nodes.daemon_pod_spec(ds.spec.template)
        return {o.node.metadata.name: ds_nodes.placement(spec, o.node)
                for o in self.nodes.list()}

    async def _update(self, key: str, ds: apps_pb2.DaemonSet, pods: list[core_pb2.Pod],
                      revision: str) -> None:
        """manage, then one rolling-update step once manage's writes are all seen."""
        placements = self._placements(ds)
        by_node = ds_rolling.pods_by_node(pods)
        surge = ds_rolling.Surge(revision, ds.spec.min_ready_seconds, self.clock()) \
            if ds_rolling.allows_surge(ds) else None
        plan = ds_rolling.Plan()
        for node, where in sorted(placements.items()):
            ds_rolling.node_plan(plan, node, where, by_node.get(node, ()), surge)
        plan.delete.extend(ds_rolling.unscheduled_without_node(by_node, placements))
        for pod in plan.failed:
            self.recorder.emit(KIND, ds, WARNING, "FailedDaemonPod",
                               f"Found failed daemon pod {pod.metadata.namespace}/"
                               f"{pod.metadata.name} on node {ds_nodes.target_node(pod)}, "
                               "will try to kill it")
        if plan.delete or plan.create_on:  # the rolling step waits for these to be seen
            await self._sync_nodes(key, ds, plan.delete, plan.create_on, revision)
        elif ds.spec.update_strategy.type in ("", "RollingUpdate"):
            await self._roll(key, ds, placements, by_node, revision, surge)

    async def _roll(self, key: str, ds: apps_pb2.DaemonSet,
                    placements: dict[str, ds_nodes.Placement], by_node: ds_rolling.Pods,
                    revision: str, surge: ds_rolling.Surge | None) -> None:
        """One step of a RollingUpdate: surge new pods beside old ones, or delete old pods
        within maxUnavailable."""
        wanted = [n for n, w in placements.items() if w.should_run]
        max_surge, max_unavailable = ds_rolling.fenceposts(ds, len(wanted))
        if surge is not None:
            victims, create_on = ds_rolling.surge_plan(by_node, placements, max_surge, surge)
        else:
            create_on = []
            victims = ds_rolling.rolling_deletions(
                by_node, wanted, revision, max_unavailable, ds.spec.min_ready_seconds,
                self.clock())
        if victims or create_on:
            log.info("daemonset=%s rolling update replaces pods=%s surges on nodes=%s", key,
                     ",".join(p.metadata.name for p in victims), ",".join(create_on))
        await self._sync_nodes(key, ds, victims, create_on, revision)

    async def _sync_nodes(self, key: str, ds: apps_pb2.DaemonSet,
                          delete: list[core_pb2.Pod], create_on: list[str],
                          revision: str) -> None:
        """syncNodes: at most BURST_REPLICAS of each, expectations set first."""
        create_on = create_on[:BURST_REPLICAS]
        delete = delete[:BURST_REPLICAS]
        if not create_on and not delete:
            return
        self.expectations.expect(key, len(create_on), [p.metadata.uid for p in delete])
        errors: list[Exception] = []
        if create_on:
            error = await self._create(key, ds, create_on, revision)
            if error is not None:
                errors.append(error)
        if delete:
            await self._delete(key, ds, delete, errors)
        if errors:
            raise errors[0]

    async def _create(self, key: str, ds: apps_pb2.DaemonSet, nodes: list[str],
                      revision: str) -> Exception | None:
        pending = list(nodes)
        ref = Owner(KIND, API_VERSION, ds.metadata).controller_ref()

        async def create_one() -> None:
            node = pending.pop(0)
            template = pod_template(ds, revision, node)
            try:
                made = await self.pod_control.create(ds.metadata.namespace, template,
                                                     ds.metadata.name, ref)
            except Forbidden as e:
                if _NAMESPACE_TERMINATING in e.message:
                    return
                self._failed_create(ds, e)
                raise
            except ClientError as e:
                self._failed_create(ds, e)
                raise
            self.recorder.emit(KIND, ds, NORMAL, "SuccessfulCreate",
                               f"Created pod: {made.pod.metadata.name}")
        created, error = await slow_start_batch(len(nodes), create_one)
        for _ in range(len(nodes) - created):
            self.expectations.creation_observed(key)
        log.info("daemonset=%s created pods=%d of %d", key, created, len(nodes))
        return error

    def _failed_create(self, ds: apps_pb2.DaemonSet, e: ClientError) -> None:
        self.recorder.emit(KIND, ds, WARNING, "FailedCreate", f"Error creating: {e.message}")

    async def _delete(self, key: str, ds: apps_pb2.DaemonSet, victims: list[core_pb2.Pod],
                      errors: list[Exception]) -> None:
        results = await asyncio.gather(
            *(self.pod_control.delete(p.metadata.namespace, p.metadata.name, p.metadata.uid)
              for p in victims), return_exceptions=True)
        for pod, result in zip(victims, results, strict=True):
            if result is True:
                self.recorder.emit(KIND, ds, NORMAL, "SuccessfulDelete",
                                   f"Deleted pod: {pod.metadata.name}")
                continue
            self.expectations.deletion_observed(key, pod.metadata.uid)
            if isinstance(result, ClientError):
                self.recorder.emit(KIND, ds, WARNING, "FailedDelete",
                                   f"Error deleting: {result.message}")
            if isinstance(result, Exception):
                errors.append(result)
            elif isinstance(result, BaseException):
                raise result
        log.info("daemonset=%s deleted pods=%s", key,
                 ",".join(p.metadata.name for p in victims))

    # ---- status and the revision annotation -----------------------------------------

    async def _sync_status(self, key: str, obj: api_pb2.Object, pods: list[core_pb2.Pod],
                           revision: str) -> None:
        ds = obj.daemon_set
        now = self.clock()
        by_node = ds_rolling.pods_by_node(p for p in pods if not _deleted_terminal(p))
        status = ds_rolling.status(ds, self._placements(ds), by_node, revision, now)
        if status != ds.status:
            out = api_pb2.Object()
            out.CopyFrom(obj)
            out.daemon_set.status.CopyFrom(status)
            with contextlib.suppress(NotFound):  # deleted meanwhile: its event follows
                await self.client.update_status(out)
        if ds.spec.min_ready_seconds > 0 and status.number_ready != status.number_available:
            self.requeue.after(key, ds.spec.min_ready_seconds)

    async def _record_revision(self, obj: api_pb2.Object, revision: str) -> None:
        """Keep the current revision hash in the DaemonSet's annotation."""
        if obj.daemon_set.metadata.annotations.get(REVISION_ANNOTATION) == revision:
            return

        def change(meta: meta_pb2.ObjectMeta) -> bool:
            if meta.annotations.get(REVISION_ANNOTATION) == revision:
                return False
            meta.annotations[REVISION_ANNOTATION] = revision
            return True
        written = await update_meta(self.client, "daemonsets", obj, change)
        if written is not None:
            obj.CopyFrom(written)


def _selector_of(obj: api_pb2.Object) -> labelsel.Selector:
    return labelsel.from_label_selector(obj.daemon_set.spec.selector)


def _deleted_terminal(pod: core_pb2.Pod) -> bool:
    """getNodesToDaemonPods(includeDeletedTerminal=false) leaves these out of status."""
    return podutil.is_terminating(pod.metadata) and pod.status.phase in podutil.TERMINAL_PHASES


def _same_for_daemons(old: core_pb2.Node, new: core_pb2.Node) -> bool:
    """shouldIgnoreNodeUpdate: only heartbeats and status details changed."""
    def conditions(n: core_pb2.Node) -> set[tuple[str, str]]:
        return {(c.type, c.status) for c in n.status.conditions}
    return (dict(old.metadata.labels) == dict(new.metadata.labels)
            and list(old.spec.taints) == list(new.spec.taints)
            and old.spec.unschedulable == new.spec.unschedulable
            and conditions(old) == conditions(new))


def _copy(obj: api_pb2.Object) -> api_pb2.Object:
    out = api_pb2.Object()
    out.CopyFrom(obj)
    return out


def _copy_meta(meta: meta_pb2.ObjectMeta) -> meta_pb2.ObjectMeta:
    out = meta_pb2.ObjectMeta()
    out.CopyFrom(meta)
    return out
