"""The Deployment controller: roll a pod template out through ReplicaSets.

As Kubernetes' deployment controller, a Deployment owns one ReplicaSet per pod template
it has run, named `<deployment>-<pod-template-hash>` and selecting the hash label on top of
the Deployment's selector, so the ReplicaSets never count each other's pods. The new
ReplicaSet is the one whose template equals the Deployment's (ignoring the hash label);
it carries the highest `deployment.kubernetes.io/revision`, which the Deployment also
shows and which `kemuctl rollout undo` (the apiserver's rollback subresource) reads:
rolling back copies an old template into the Deployment, the old ReplicaSet becomes the
new one again and takes the next revision.

A sync (`syncDeployment`) claims ReplicaSets by selector and controller reference, then:
a paused Deployment or one whose replica count changed is only scaled (proportionally in
the middle of a rolling update); otherwise the strategy moves one step (`rolling`,
`recreate`), old ReplicaSets beyond revisionHistoryLimit are deleted once a rollout is
complete, and status and conditions are written (`progress`). Pods are the ReplicaSet
controller's business: this controller only sets ReplicaSet sizes and reads their status.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence

from kemu.api import labels as labelsel
from kemu.api import objects
from kemu.api.v1 import api_pb2, apps_pb2, core_pb2, meta_pb2
from kemu.client.errors import AlreadyExists, ClientError, Conflict, NotFound
from kemu.client.events import DISCARD, NORMAL, ObjectRecorder
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue, run_workers
from kemu.services.controllers import deploymentutil as du
from kemu.services.controllers import progress, recreate, rolling
from kemu.services.controllers.controllerref import (
    Owner,
    RefManager,
    WorkloadClient,
    controller_of,
    log_sync_error,
    matching_owners,
    owner_check,
    resolve_controller,
)
from kemu.services.controllers.hashing import compute_hash
from kemu.services.controllers.requeue import Requeuer

log = logging.getLogger("kemu.controllers.deployment")

NAME = "deployment"
INFORMERS = ("deployments", "replicasets", "pods")
KIND, API_VERSION = "Deployment", "apps/v1"


def _ms(since: float) -> float:
    return (time.perf_counter() - since) * 1000


def _copy(d: apps_pb2.Deployment) -> apps_pb2.Deployment:
    out = apps_pb2.Deployment()
    out.CopyFrom(d)
    return out


def new_replica_set(d: du.Deployment, old_rss: Sequence[du.RS], new_revision: int
                    ) -> du.RS:
    """The ReplicaSet to create for the Deployment's current template."""
    collisions = d.status.collision_count if d.status.HasField("collision_count") else None
    pod_hash = compute_hash(d.spec.template, collisions)
    rs = apps_pb2.ReplicaSet()
    rs.metadata.name = f"{d.metadata.name}-{pod_hash}"
    rs.metadata.namespace = d.metadata.namespace
    rs.metadata.owner_references.append(
        Owner(KIND, API_VERSION, d.metadata).controller_ref())
    rs.spec.replicas = 0
    rs.spec.min_ready_seconds = d.spec.min_ready_seconds
    rs.spec.selector.CopyFrom(d.spec.selector)
    rs.spec.selector.match_labels[du.HASH_LABEL] = pod_hash
    rs.spec.template.CopyFrom(d.spec.template)
    rs.spec.template.metadata.labels[du.HASH_LABEL] = pod_hash
    rs.metadata.labels.update(rs.spec.template.metadata.labels)
    rs.spec.replicas = du.new_rs_new_replicas(d, [*old_rss, rs], rs)
    du.set_new_rs_annotations(d, rs, new_revision, exists=False)
    return rs


class _Sync:
    """One reconcile's view of a Deployment: what the server has (`stored`) and the
    working copy whose annotations and status the sync changes (`d`)."""

    def __init__(self, key: str, stored: apps_pb2.Deployment) -> None:
        self.key = key
        self.stored = stored
        self.d = _copy(stored)


class DeploymentController:
    """Drives every Deployment's ReplicaSets toward its template and replica count."""

    def __init__(self, client: WorkloadClient, informers: Mapping[str, Informer], *,
                 workers: int = 5, clock: Callable[[], float] = time.time,
                 recorder: ObjectRecorder = DISCARD) -> None:
        self.client = client
        self.recorder = recorder
        self.deployments = informers["deployments"]
        self.replicasets = informers["replicasets"]
        self.pods = informers["pods"]
        self.workers = workers
        self.clock = clock
        self.queue: WorkQueue[str] = WorkQueue()
        self.requeue = Requeuer(self.queue)
        self.deployments.add_handler(self.on_deployment)
        self.replicasets.add_handler(self.on_replica_set)
        self.pods.add_handler(self.on_pod)

    # ---- event handlers: events -> Deployment keys ------------------------------------

    def on_deployment(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None and old is not None:
            self.requeue.forget(key_of(old))
        obj = new if new is not None else old
        if obj is not None:
            self.queue.add(key_of(obj))

    def _deployment_key(self, meta: meta_pb2.ObjectMeta) -> str | None:
        return resolve_controller(self.deployments, KIND, meta)

    def on_replica_set(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        for obj in (old, new):
            if obj is None:
                continue
            rs = obj.replica_set
            key = self._deployment_key(rs.metadata)
            if key is not None:
                self.queue.add(key)
            elif controller_of(rs.metadata) is None and obj is new:
                for k in self._matching_deployments(rs):
                    self.queue.add(k)

    def _matching_deployments(self, rs: du.RS) -> list[str]:
        return matching_owners(
            self.deployments, lambda o: labelsel.from_label_selector(o.deployment.spec.selector),
            rs.metadata)

    def on_pod(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        """A Recreate rollout waits for old pods to be gone: look again when one goes."""
        if new is not None or old is None:
            return
        pod = old.pod
        ref = controller_of(pod.metadata)
        if ref is None or ref.kind != "ReplicaSet":
            return
        rs = self.replicasets.get(f"{pod.metadata.namespace}/{ref.name}")
        if rs is None:
            return
        key = self._deployment_key(rs.replica_set.metadata)
        if key is not None:
            obj = self.deployments.get(key)
            if obj is not None and obj.deployment.spec.strategy.type == "Recreate":
                self.queue.add(key)

    # ---- reconcile --------------------------------------------------------------------

    async def run(self) -> None:
        for obj in self.deployments.list():
            self.queue.add(key_of(obj))
        await run_workers(self.queue, self.reconcile, self.workers, on_error=self._on_error)

    def _on_error(self, key: str, e: Exception) -> None:
        log_sync_error(log, NAME, key, self.queue.num_requeues(key), e)

    async def reconcile(self, key: str) -> None:
        """One step of the Deployment `key` toward its spec; idempotent."""
        started = time.perf_counter()
        obj = self.deployments.get(key)
        if obj is None:
            return
        s = _Sync(key, obj.deployment)
        d = s.d
        try:
            selector = labelsel.from_label_selector(d.spec.selector)
        except labelsel.SelectorError as e:
            log.error("deployment=%s has an invalid selector: %s", key, e)
            return
        if selector.empty():
            log.warning("deployment=%s selects all pods: refusing to sync", key)
            return
        rss = await self._claim(d, selector)
        if d.metadata.HasField("deletion_timestamp"):
            await self._sync_status_only(s, rss)
            return
        await self._check_paused(s)
        if d.spec.paused or self._scaling_event(d, rss):
            await self._sync(s, rss)
        elif d.spec.strategy.type == "Recreate":
            await self._rollout_recreate(s, rss)
        else:
            await self._rollout_rolling(s, rss)
        log.debug("deployment=%s synced replicasets=%d duration_ms=%.2f", key, len(rss),
                  _ms(started))

    async def _claim(self, d: du.Deployment, selector: labelsel.Selector) -> list[du.RS]:
        owner = Owner(KIND, API_VERSION, _copy(d).metadata)
        candidates = [o for o in self.replicasets.list()
                      if o.replica_set.metadata.namespace == d.metadata.namespace]
        manager = RefManager(self.client, owner, selector, "replicasets",
                             owner_check(self.client, "deployments", owner))
        return [o.replica_set for o in await manager.claim(candidates)]

    # ---- writes -------------------------------------------------------------------------

    async def _save(self, s: _Sync) -> None:
        """Write the working copy's annotations (update) and status (update-status) where
        they differ from the server's; a Conflict propagates and the sync is retried."""
        if dict(s.d.metadata.annotations) != dict(s.stored.metadata.annotations):
            out = _copy(s.stored)
            out.metadata.annotations.clear()
            out.metadata.annotations.update(s.d.metadata.annotations)
            s.stored = (await self.client.update(objects.wrap(out))).deployment
            s.d.metadata.CopyFrom(s.stored.metadata)
        if s.d.status != s.stored.status:
            out = _copy(s.stored)
            out.status.CopyFrom(s.d.status)
            s.stored = (await self.client.update_status(objects.wrap(out))).deployment
            s.d.metadata.CopyFrom(s.stored.metadata)

    async def _scale(self, s: _Sync, rs: du.RS, size: int, *, annotate: bool = True
                     ) -> du.RS:
        """Set a ReplicaSet's size and its desired/max-replicas annotations (scaleReplicaSet)."""
        out = apps_pb2.ReplicaSet()
        out.CopyFrom(rs)
        d = s.d
        changed = annotate and du.set_replicas_annotations(
            out, d.spec.replicas, d.spec.replicas + du.max_surge(d))
        if rs.spec.replicas == size and not changed:
            return rs
        out.spec.replicas = size
        written = (await self.client.update(objects.wrap(out))).replica_set
        if rs.spec.replicas != size:
            direction = "up" if size > rs.spec.replicas else "down"
            log.info("deployment=%s scaled %s replica set %s to %d from %d", s.key,
                     direction, rs.metadata.name, size, rs.spec.replicas)
            self.recorder.emit("Deployment", s.d, NORMAL, "ScalingReplicaSet",
                               f"Scaled {direction} replica set {rs.metadata.name} to {size} "
                               f"from {rs.spec.replicas}")
        return written

    async def _scale_if_needed(self, s: _Sync, rs: du.RS, size: int) -> tuple[bool, du.RS]:
        """scaleReplicaSetAndRecordEvent: nothing when the size is already right."""
        if rs.spec.replicas == size:
            return False, rs
        return True, await self._scale(s, rs, size)

    # ---- the new ReplicaSet and revisions -------------------------------------------------

    async def _all_rss(self, s: _Sync, rss: list[du.RS], *, create: bool
                       ) -> tuple[du.RS | None, list[du.RS]]:
        """(new, olds), syncing revisions (getAllReplicaSetsAndSyncRevision)."""
        existing = du.find_new(s.d, rss)
        olds = du.find_old(rss, existing)
        new_revision = du.max_revision(olds) + 1
        if existing is not None:
            return await self._sync_existing_new(s, existing, new_revision), olds
        if not create:
            return None, olds
        return await self._create_new(s, olds, new_revision), olds

    async def _sync_existing_new(self, s: _Sync, rs: du.RS, new_revision: int) -> du.RS:
        d = s.d
        out = apps_pb2.ReplicaSet()
        out.CopyFrom(rs)
        annotated = du.set_new_rs_annotations(d, out, new_revision, exists=True)
        if annotated or out.spec.min_ready_seconds != d.spec.min_ready_seconds:
            out.spec.min_ready_seconds = d.spec.min_ready_seconds
            return (await self.client.update(objects.wrap(out))).replica_set
        changed = du.set_deployment_revision(d, out.metadata.annotations.get(du.REVISION, ""))
        if progress.get_condition(d.status, progress.PROGRESSING) is None:
            progress.set_condition(d.status, progress.condition(
                progress.PROGRESSING, "True", progress.FOUND_NEW_RS,
                f'Found new replica set "{rs.metadata.name}"', self.clock()))
            changed = True
        if changed:
            await self._save(s)
        return rs

    async def _create_new(self, s: _Sync, olds: list[du.RS], new_revision: int) -> du.RS:
        d = s.d
        rs = new_replica_set(d, olds, new_revision)
        name = rs.metadata.name
        try:
            created = (await self.client.create(objects.wrap(rs))).replica_set
        except AlreadyExists:
            return await self._adopt_existing_name(s, name)
        except ClientError as e:
            if progress.has_progress_deadline(d):
                progress.set_condition(d.status, progress.condition(
                    progress.PROGRESSING, "False", progress.FAILED_RS_CREATE,
                    f'Failed to create new replica set "{name}": {e.message}', self.clock()))
                await self._save(s)
            raise
        log.info("deployment=%s created replica set %s revision=%d replicas=%d", s.key, name,
                 new_revision, created.spec.replicas)
        if created.spec.replicas > 0:
            self.recorder.emit("Deployment", d, NORMAL, "ScalingReplicaSet",
                               f"Scaled up replica set {name} to {created.spec.replicas}")
        du.set_deployment_revision(d, str(new_revision))
        if progress.has_progress_deadline(d):
            progress.set_condition(d.status, progress.condition(
                progress.PROGRESSING, "True", progress.NEW_RS_CREATED,
                f'Created new replica set "{name}"', self.clock()))
        await self._save(s)
        return created

    async def _adopt_existing_name(self, s: _Sync, name: str) -> du.RS:
        """The name is taken: ours with this template (a stale cache) is the new
        ReplicaSet; anything else is a hash collision, so bump collisionCount and retry."""
        d = s.d
        try:
            rs = (await self.client.get("replicasets", name, d.metadata.namespace)).replica_set
        except NotFound:
            raise ClientError(f"replica set {name} vanished while being created") from None
        ref = controller_of(rs.metadata)
        if ref is not None and ref.uid == d.metadata.uid and \
                du.equal_ignore_hash(rs.spec.template, d.spec.template):
            return rs
        d.status.collision_count = (d.status.collision_count + 1
                                    if d.status.HasField("collision_count") else 1)
        await self._save(s)
        raise ClientError(f"hash collision: replica set {name} exists with another template; "
                          f"collisionCount={d.status.collision_count}")

    # ---- scaling (paused, or replicas changed) ------------------------------------------

    def _scaling_event(self, d: du.Deployment, rss: list[du.RS]) -> bool:
        """An active ReplicaSet's desired-replicas differs from spec.replicas."""
        return any(du.desired_replicas_annotation(rs) not in (None, d.spec.replicas)
                   for rs in du.active(rss))

    async def _sync(self, s: _Sync, rss: list[du.RS]) -> None:
        """Scale only, no rollout step (sync): for paused and scaled Deployments."""
        new, olds = await self._all_rss(s, rss, create=False)
        await self._scale_deployment(s, new, olds)
        if s.d.spec.paused:
            await self._cleanup(s, olds)
        await self._sync_status(s, [*olds, new], new)

    async def _scale_deployment(self, s: _Sync, new: du.RS | None, olds: list[du.RS]) -> None:
        d = s.d
        target = du.find_active_or_latest(new, olds)
        if target is not None:
            await self._scale_if_needed(s, target, d.spec.replicas)
            return
        if du.is_saturated(d, new):
            for rs in du.active(olds):
                await self._scale_if_needed(s, rs, 0)
            return
        if du.is_rolling(d):
            for rs, size in du.proportional_sizes(d, du.active([*olds, new])):
                await self._scale(s, rs, size)

    async def _sync_status_only(self, s: _Sync, rss: list[du.RS]) -> None:
        new, olds = await self._all_rss(s, rss, create=False)
        await self._sync_status(s, [*olds, new], new)

    async def _sync_status(self, s: _Sync, all_rss: Sequence[du.RS | None],
                           new: du.RS | None) -> None:
        status = progress.calculate_status(s.d, all_rss, new, self.clock())
        if status != s.d.status:
            s.d.status.CopyFrom(status)
            await self._save(s)

    async def _check_paused(self, s: _Sync) -> None:
        """Record pausing or resuming in the Progressing condition."""
        cond = progress.paused_condition(s.d, self.clock())
        if cond is not None:
            progress.set_condition(s.d.status, cond)
            await self._save(s)

    # ---- strategies ---------------------------------------------------------------------

    async def _rollout_rolling(self, s: _Sync, rss: list[du.RS]) -> None:
        new, olds = await self._all_rss(s, rss, create=True)
        assert new is not None
        scaled, new = await self._scale_if_needed(
            s, new, rolling.new_rs_target(s.d, [*olds, new], new))
        if not scaled:
            targets = rolling.old_rs_targets(s.d, [*olds, new], olds, new)
            for i, rs in enumerate(olds):
                if rs.metadata.name in targets:
                    olds[i] = await self._scale(s, rs, targets[rs.metadata.name])
            scaled = bool(targets)
        if not scaled and progress.complete(s.d, s.d.status):
            await self._cleanup(s, olds)
        await self._sync_rollout_status(s, [*olds, new], new)

    async def _rollout_recreate(self, s: _Sync, rss: list[du.RS]) -> None:
        new, olds = await self._all_rss(s, rss, create=False)
        scaled = False
        for i, rs in enumerate(olds):
            if rs.spec.replicas != 0:
                olds[i] = await self._scale(s, rs, 0)
                scaled = True
        if not scaled and not recreate.old_pods_running(new, olds, self._pods_by_rs(s.d, rss)):
            if new is None:
                new, olds = await self._all_rss(s, rss, create=True)
            assert new is not None
            _, new = await self._scale_if_needed(s, new, s.d.spec.replicas)
            if progress.complete(s.d, s.d.status):
                await self._cleanup(s, olds)
        await self._sync_rollout_status(s, [*olds, new], new)

    def _pods_by_rs(self, d: du.Deployment, rss: list[du.RS]) -> dict[str, list[core_pb2.Pod]]:
        """The Deployment's pods grouped by the uid of the ReplicaSet controlling them."""
        selector = labelsel.from_label_selector(d.spec.selector)
        out: dict[str, list[core_pb2.Pod]] = {rs.metadata.uid: [] for rs in rss}
        for obj in self.pods.list():
            pod = obj.pod
            ref = controller_of(pod.metadata)
            if pod.metadata.namespace == d.metadata.namespace and ref is not None \
                    and ref.uid in out and selector.matches(pod.metadata.labels):
                out[ref.uid].append(pod)
        return out

    async def _sync_rollout_status(self, s: _Sync, all_rss: Sequence[du.RS | None],
                                   new: du.RS | None) -> None:
        now = self.clock()
        status = progress.rollout_status(s.d, all_rss, new, now)
        if status != s.d.status:
            s.d.status.CopyFrom(status)
            await self._save(s)
            return
        after = progress.requeue_after(s.d, status, now)
        if after is not None:
            self.requeue.after(s.key, after)

    async def _cleanup(self, s: _Sync, olds: list[du.RS]) -> None:
        """Delete the oldest idle ReplicaSets beyond revisionHistoryLimit."""
        d = s.d
        if not d.spec.HasField("revision_history_limit"):
            return
        alive = [rs for rs in olds if not rs.metadata.HasField("deletion_timestamp")]
        excess = len(alive) - d.spec.revision_history_limit
        if excess <= 0:
            return
        for rs in sorted(alive, key=lambda r: (du.revision(r), du.creation_key(r)))[:excess]:
            if rs.status.replicas != 0 or rs.spec.replicas != 0 or \
                    rs.metadata.generation > rs.status.observed_generation:
                continue
            try:
                await self.client.delete("replicasets", rs.metadata.name, rs.metadata.namespace,
                                         uid=rs.metadata.uid)
            except (NotFound, Conflict):
                continue
            log.info("deployment=%s deleted old replica set %s revision=%d", s.key,
                     rs.metadata.name, du.revision(rs))
