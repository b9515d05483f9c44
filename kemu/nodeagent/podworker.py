"""The pod worker: `sync_pod(key)` makes Docker match one pod of this node, idempotently.

Level-triggered, like the kubelet's `SyncPod`: each call reads the pod from the informer
cache and the pod's containers from Docker (by label), decides what to do from those alone,
does it, and writes the status if it changed. It runs for any reason (a watch event, a
container that died, a back-off that expired, a periodic resync) and never assumes what an
earlier call did. The work queue guarantees one sync per pod at a time.

Order of a sync, as the kubelet's:
1. containers of another incarnation of the same pod name are removed;
2. a pod being deleted has its containers stopped (SIGTERM, SIGKILL after the grace period),
   removed, and the API object deleted with grace 0 and a uid precondition;
3. volumes are set up (FailedMount: the pod stays ContainerCreating);
4. the sandbox is created if there is none running (a dead one means every container is
   made again: they were in its network namespace);
5. init containers run one at a time, in order, each to success;
6. app containers are started, restarted by the restart policy with back-off, killed and
   made again when their liveness probe fails or their spec changed;
7. the status is computed (status.py) and written through UpdateStatus when it changed.

Between 2 and 3, and again before 7: a container that Docker says exited with 137 but not
(yet) OOMKilled, a moment ago, is not settled (`ContainerInfo.settle_left`): the sync does
nothing more and the pod is queued again for when it settles, so an OOM-killed container is
never written as `Error`, nor restarted or made terminal on the strength of that first look.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

from kemu.api.v1 import api_pb2, core_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import Conflict, NotFound
from kemu.client.events import NORMAL, WARNING, Recorder
from kemu.client.informer import Informer
from kemu.client.workqueue import WorkQueue
from kemu.nodeagent import containers as ctr
from kemu.nodeagent import envs, naming, sandbox, volumes
from kemu.nodeagent import status as podstatus
from kemu.nodeagent.backoff import Backoff
from kemu.nodeagent.clock import Clock
from kemu.nodeagent.config import AgentConfig
from kemu.nodeagent.probes import LIVENESS, READINESS, STARTUP, ProbeManager, run_hook
from kemu.nodeagent.pulls import ImagePuller
from kemu.nodeagent.pvc import LocalPathProvisioner
from kemu.nodeagent.runtime import (
    ContainerInfo,
    ContainerRuntime,
    ContainerRuntimeError,
    CreateError,
    RuntimeUnavailable,
)
from kemu.util.logsetup import event

log = logging.getLogger(__name__)
RETRY_CONFIG = 3.0  # seconds before retrying a missing ConfigMap/Secret or a failed mount
HOOK_TIMEOUT = 30  # seconds a postStart hook may take
DEADLINE_MESSAGE = "Pod was active on the node longer than the specified deadline"


def _attempt(info: ContainerInfo) -> int:
    try:
        return int(info.labels.get(naming.ATTEMPT, "0"))
    except ValueError:
        return 0


def restart_count(info: ContainerInfo | None) -> int:
    if info is None:
        return 0
    try:
        return int(info.labels.get(naming.RESTART_COUNT, "0"))
    except ValueError:
        return 0


@dataclass
class Instances:
    """A pod's containers from Docker, grouped: newest attempt first."""

    sandboxes: list[ContainerInfo] = field(default_factory=list)
    by_name: dict[tuple[str, str], list[ContainerInfo]] = field(
        default_factory=lambda: defaultdict(list))

    @classmethod
    def of(cls, infos: list[ContainerInfo]) -> Instances:
        inst = cls()
        for info in infos:
            kind = info.labels.get(naming.KIND, naming.KIND_APP)
            if kind == naming.KIND_SANDBOX:
                inst.sandboxes.append(info)
            else:
                inst.by_name[(kind, info.labels.get(naming.CONTAINER, ""))].append(info)
        inst.sandboxes.sort(key=_attempt, reverse=True)
        for lst in inst.by_name.values():
            lst.sort(key=_attempt, reverse=True)
        return inst

    def of_container(self, kind: str, name: str) -> list[ContainerInfo]:
        return self.by_name.get((kind, name), [])

    @property
    def sandbox(self) -> ContainerInfo | None:
        return self.sandboxes[0] if self.sandboxes else None

    def all(self) -> list[ContainerInfo]:
        return [*self.sandboxes, *(i for lst in self.by_name.values() for i in lst)]


@dataclass
class _Waiting:
    reasons: dict[str, tuple[str, str]] = field(default_factory=dict)

    def set(self, name: str, reason: str, message: str = "") -> None:
        self.reasons[name] = (reason, message)


class PodWorker:
    """Syncs the pods bound to this node."""

    def __init__(self, *, config: AgentConfig, client: AsyncClient, runtime: ContainerRuntime,
                 clock: Clock, pods: Informer, configmaps: Informer, secrets: Informer,
                 services: Informer, recorder: Recorder, provisioner: LocalPathProvisioner,
                 probes: ProbeManager, queue: WorkQueue[str],
                 node_allocatable: Callable[[], dict[str, str]] | None = None) -> None:
        self.config = config
        self.node = config.node_name
        self.client = client
        self.runtime = runtime
        self.clock = clock
        self.pods = pods
        self.configmaps = configmaps
        self.secrets = secrets
        self.services = services
        self.recorder = recorder
        self.provisioner = provisioner
        self.probes = probes
        self.queue = queue
        self.node_allocatable = node_allocatable or dict
        self.backoff = Backoff(clock, initial=config.backoff_initial,
                               maximum=config.backoff_max)
        self.puller = ImagePuller(runtime, recorder, clock,
                                  Backoff(clock, initial=config.backoff_initial,
                                          maximum=config.backoff_max))
        self._written: dict[str, bytes] = {}
        self._written_status: dict[str, core_pb2.PodStatus] = {}
        self._events_sent: set[tuple[str, str, str]] = set()
        self._uid_of: dict[str, str] = {}  # pod key -> uid last synced (to forget it later)
        self._terminating: dict[str, asyncio.Task[None]] = {}
        self._stopped: dict[str, set[str]] = {}  # pod uid -> containers this agent stopped

    # ---- lookups ------------------------------------------------------------------------

    def _configmap(self, ns: str, name: str) -> Any | None:
        obj = self.configmaps.get(f"{ns}/{name}")
        return obj.config_map if obj is not None else None

    def _secret(self, ns: str, name: str) -> Any | None:
        obj = self.secrets.get(f"{ns}/{name}")
        return obj.secret if obj is not None else None

    def cluster_dns(self) -> str:
        obj = self.services.get("kube-system/kube-dns")
        if obj is None:
            return ""
        ip = obj.service.spec.cluster_ip
        return "" if ip in ("", "None") else str(ip)

    def _services_for(self, pod: Any) -> list[Any]:
        if pod.spec.HasField("enable_service_links") and not pod.spec.enable_service_links:
            ns_services: list[Any] = []
        else:
            ns_services = [o.service for o in self.services.list()
                           if o.service.metadata.namespace == pod.metadata.namespace]
        master = self.services.get("default/kubernetes")
        if master is not None and pod.metadata.namespace != "default":
            ns_services.append(master.service)
        return ns_services

    def _pod_path(self, uid: str) -> Path:
        return volumes.pod_dir(self.config.data_dir, uid)

    # ---- the sync -----------------------------------------------------------------------

    async def sync(self, key: str) -> None:
        start = time.monotonic()
        ns, _, name = key.partition("/")
        obj = self.pods.get(key)
        found = await self.runtime.list_containers({naming.NODE: self.node,
                                                    naming.NAMESPACE: ns, naming.POD: name})
        uid = obj.pod.metadata.uid if obj is not None else ""
        stale = [c for c in found if c.labels.get(naming.UID) != uid]
        if stale:
            await self._teardown(stale, grace=2.0)
        previous = self._uid_of.pop(key, "")
        if previous and previous != uid:
            self.forget(previous)  # a pod that never got a container still had state
        if obj is None:
            return
        self._uid_of[key] = uid
        pod = obj.pod
        mine = [c for c in found if c.labels.get(naming.UID) == uid]
        if pod.metadata.HasField("deletion_timestamp"):
            self._start_termination(key, obj, mine)
            return
        if self._hold_unsettled(key, pod, mine):
            return
        waiting = _Waiting()
        inst = Instances.of(mine)
        overdue = self._past_deadline(key, pod)
        if not self._terminal(pod) and not overdue and \
                await self._sync_running(obj, inst, waiting):
            inst = Instances.of(await self.runtime.list_containers(
                {naming.NODE: self.node, naming.UID: uid}))
        status = self._status(obj, inst, waiting, deadline=overdue)
        if status.phase in podstatus.TERMINAL:
            if overdue and not self._terminal(pod):
                self.recorder.event(pod, NORMAL, "DeadlineExceeded", DEADLINE_MESSAGE)
            if await self._stop_terminal(pod, inst):
                inst = Instances.of(await self.runtime.list_containers(
                    {naming.NODE: self.node, naming.UID: uid}))
                before, status = status, self._status(obj, inst, waiting, deadline=overdue)
                if before.pod_ip and not status.pod_ip:  # a terminal pod keeps its IP
                    status.pod_ip = before.pod_ip
                    status.pod_ips.extend(before.pod_ips)
        else:
            self._sync_probes(obj, inst)
        if self._hold_unsettled(key, pod, inst.all()):
            return  # one died meanwhile: its status is written once Docker has settled it
        await self._write_status(obj, status)
        event(log, "synced pod", v=2, pod=key, phase=status.phase,
              duration_ms=round((time.monotonic() - start) * 1000, 2))

    def _past_deadline(self, key: str, pod: Any) -> bool:
        """activeDeadlineSeconds, counted from startTime as the kubelet does; schedules a
        sync for the moment it passes."""
        if not pod.spec.HasField("active_deadline_seconds"):
            return False
        written = self._written_status.get(pod.metadata.uid)
        start = pod.status.start_time if pod.status.HasField("start_time") else (
            written.start_time if written is not None and written.HasField("start_time")
            else None)
        if start is None:
            return False
        elapsed = (self.clock.now() - start.ToDatetime(tzinfo=UTC)).total_seconds()
        left = pod.spec.active_deadline_seconds - elapsed
        if left > 0:
            self.queue.add_after(key, left + 0.05)
            return False
        return True

    def own_status_echo(self, old: api_pb2.Object, new: api_pb2.Object) -> bool:
        """True when `new` differs from `old` only by the status this agent just wrote."""
        a, b = old.pod, new.pod
        if a.spec != b.spec:
            return False
        ma, mb = type(a.metadata)(), type(b.metadata)()
        ma.CopyFrom(a.metadata)
        mb.CopyFrom(b.metadata)
        ma.resource_version = mb.resource_version = ""
        if ma != mb:
            return False
        written = self._written.get(b.metadata.uid)
        return written is not None and \
            b.status.SerializeToString(deterministic=True) == written

    def _terminal(self, pod: Any) -> bool:
        written = self._written_status.get(pod.metadata.uid)
        return pod.status.phase in podstatus.TERMINAL or (
            written is not None and written.phase in podstatus.TERMINAL)

    def _hold_unsettled(self, key: str, pod: Any, infos: list[ContainerInfo]) -> bool:
        """True (and the pod queued again) when a container's exit is not settled yet.

        Docker may mark an exit OOMKilled a moment after it was seen (see
        `ContainerInfo.settle_left`); acting on the first look would write reason `Error`
        into a terminal status, which is never rewritten, or into the lastState of a
        restart. So nothing is decided: the sync ends here and the work queue brings the
        pod back when the settle window is over (or earlier, on Docker's `oom` event), with
        the cached inspect dropped so the next look asks Docker again. Sandboxes do not
        count, nor containers this agent stopped itself (a liveness kill, a terminal pod's
        stop): their 137 is the agent's own SIGKILL."""
        uid = pod.metadata.uid
        stopped = self._stopped.get(uid)
        if stopped:
            stopped &= {i.id for i in infos}  # forget containers removed since
        now = self.clock.now()
        left = 0.0
        for info in infos:
            if info.labels.get(naming.KIND) == naming.KIND_SANDBOX or \
                    (stopped and info.id in stopped):
                continue
            wait = info.settle_left(now)
            if wait > 0:
                self.runtime.invalidate(info.id)
                left = max(left, wait)
        if left <= 0:
            return False
        self.queue.add_after(key, left + 0.05)
        event(log, "container exit not settled, looking again", v=2, pod=key,
              after_s=round(left, 2))
        return True

    async def _stop(self, pod: Any, container_id: str, grace: float) -> None:
        """Stop a container the pod keeps, remembering that its exit is the agent's doing."""
        self._stopped.setdefault(pod.metadata.uid, set()).add(container_id)
        await self.runtime.stop(container_id, grace)

    def _sync_probes(self, obj: api_pb2.Object, inst: Instances) -> None:
        pod = obj.pod
        sb = inst.sandbox
        if sb is None or not sb.running:
            self.probes.forget(pod.metadata.uid)
            return
        pod_ip = self.config.node_ip if pod.spec.host_network else sb.ip
        running = {}
        for c in pod.spec.containers:
            lst = inst.of_container(naming.KIND_APP, c.name)
            if lst and lst[0].running:
                running[c.name] = lst[0]
        seed = {cs.name: (cs.container_id.removeprefix("docker://"), cs.ready, cs.started)
                for cs in pod.status.container_statuses}
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        self.probes.sync(pod, key, running, pod_ip, seed)

    async def _sync_running(self, obj: api_pb2.Object, inst: Instances,
                            waiting: _Waiting) -> bool:
        """Steps 3-6; True when containers were created or stopped."""
        pod = obj.pod
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        try:
            paths = await volumes.prepare(pod, self.config.data_dir, configmaps=self._configmap,
                                          secrets=self._secret,
                                          claims=self.provisioner.claim_path)
        except volumes.MountError as e:
            self._event_once(pod, WARNING, "FailedMount", str(e))
            self.queue.add_after(key, RETRY_CONFIG)
            return False
        sb = inst.sandbox
        fresh = False
        if sb is None or not sb.running:
            sb = await self._new_sandbox(pod, inst)
            if sb is None:
                return False
            fresh = True
        pod_ip = self.config.node_ip if pod.spec.host_network else sb.ip
        hosts, resolv = sandbox.write_pod_files(self._pod_path(pod.metadata.uid), pod, pod_ip,
                                                sandbox.dns_config(pod, self.cluster_dns()))
        ro = {v.name for v in pod.spec.volumes
              if v.WhichOneof("source") in ("config_map", "secret", "downward_api")}
        ctx = _StartContext(sandbox=sb, paths=paths, read_only=ro, hosts=hosts, resolv=resolv,
                            pod_ip=pod_ip, changed=fresh)
        if not await self._sync_init(pod, inst, ctx, waiting):
            for c in pod.spec.containers:
                if await self._kill_if_running(pod, inst.of_container(naming.KIND_APP, c.name)):
                    ctx.changed = True
            return ctx.changed
        for c in pod.spec.containers:
            await self._sync_container(pod, c, naming.KIND_APP,
                                       inst.of_container(naming.KIND_APP, c.name), ctx, waiting)
        return ctx.changed

    async def _kill_if_running(self, pod: Any, instances: list[ContainerInfo]) -> bool:
        killed = False
        for info in instances:
            if info.running:
                await self._stop(pod, info.id, 0)
                killed = True
        return killed

    # ---- sandbox ------------------------------------------------------------------------

    async def _new_sandbox(self, pod: Any, inst: Instances) -> ContainerInfo | None:
        old = inst.sandbox
        attempt = _attempt(old) + 1 if old is not None else 0
        if old is not None:
            self.recorder.event(pod, NORMAL, "SandboxChanged",
                                "Pod sandbox changed, it will be killed and re-created.")
            for lst in inst.by_name.values():
                for info in lst:
                    if info.running:
                        await self._stop(pod, info.id, 0)
            for info in inst.sandboxes:
                await self.runtime.remove(info.id)
        image = self.config.pause_image
        try:
            if not await self.runtime.image_present(image):
                await self.runtime.pull(image)
            spec = sandbox.sandbox_spec(pod, node=self.node, image=image,
                                        network=self.config.network_name, attempt=attempt)
            cid = await self.runtime.create(spec)
            await self.runtime.start(cid)
            info = await self.runtime.inspect(cid)
        except RuntimeUnavailable:
            raise
        except ContainerRuntimeError as e:
            self.recorder.event(pod, WARNING, "FailedCreatePodSandBox",
                                f"Failed to create pod sandbox: {e}")
            key = f"{pod.metadata.namespace}/{pod.metadata.name}"
            self.queue.add_after(key, RETRY_CONFIG)
            return None
        return info

    # ---- init containers ----------------------------------------------------------------

    async def _sync_init(self, pod: Any, inst: Instances, ctx: _StartContext,
                         waiting: _Waiting) -> bool:
        """Run init containers in order; True when all have succeeded in this sandbox."""
        for c in pod.spec.init_containers:
            lst = [i for i in inst.of_container(naming.KIND_INIT, c.name)
                   if i.labels.get(naming.SANDBOX_ID) == ctx.sandbox.id]
            cur = lst[0] if lst else None
            if cur is not None and podstatus.dead(cur) and cur.exit_code == 0 \
                    and not cur.error:
                continue
            if cur is not None and cur.running:
                return False
            if cur is not None and pod.spec.restart_policy == "Never":
                return False  # failed for good: the pod is Failed
            all_lst = inst.of_container(naming.KIND_INIT, c.name)
            await self._restart_or_start(pod, c, naming.KIND_INIT, cur, all_lst, ctx, waiting)
            return False
        return True

    # ---- app containers -----------------------------------------------------------------

    async def _sync_container(self, pod: Any, c: Any, kind: str, lst: list[ContainerInfo],
                              ctx: _StartContext, waiting: _Waiting) -> None:
        cur = lst[0] if lst else None
        uid = pod.metadata.uid
        if cur is not None and cur.running:
            reason = ""
            if cur.labels.get(naming.SANDBOX_ID) not in (None, ctx.sandbox.id):
                reason = "sandbox"
            elif cur.labels.get(naming.HASH) != naming.spec_hash(c):
                reason = "changed"
            elif self.probes.result(uid, c.name, STARTUP, cur.id) is False:
                reason = "startup"
            elif self.probes.result(uid, c.name, LIVENESS, cur.id) is False:
                reason = "liveness"
            if not reason:
                return
            message = {
                "sandbox": f"Container {c.name} is in an old sandbox, it will be restarted",
                "changed": f"Container {c.name} definition changed, will be restarted",
                "startup": f"Container {c.name} failed startup probe, will be restarted",
                "liveness": f"Container {c.name} failed liveness probe, will be restarted",
            }[reason]
            self.recorder.event(pod, NORMAL, "Killing", message, c.name)
            probe = c.startup_probe if reason == "startup" else c.liveness_probe
            grace = float(pod.spec.termination_grace_period_seconds)
            if reason in ("startup", "liveness") and \
                    probe.HasField("termination_grace_period_seconds"):
                grace = float(probe.termination_grace_period_seconds)
            await self._stop(pod, cur.id, grace)
            ctx.changed = True
            cur = await self.runtime.inspect(cur.id)
            if reason in ("changed", "sandbox"):
                # Not a failure of the container: start the new one at once.
                await self._start(pod, c, kind, ctx, waiting,
                                  restart_count=restart_count(cur) + 1,
                                  attempt=_attempt(cur) + 1, keep=cur, lst=lst)
                return
            lst = [cur, *lst[1:]]
        await self._restart_or_start(pod, c, kind, cur, lst, ctx, waiting)

    def _should_restart(self, pod: Any, kind: str, cur: ContainerInfo) -> bool:
        policy = pod.spec.restart_policy or "Always"
        failed = cur.exit_code != 0 or bool(cur.error)
        if kind == naming.KIND_INIT:
            return failed and policy != "Never"
        return policy == "Always" or (policy == "OnFailure" and failed)

    async def _restart_or_start(self, pod: Any, c: Any, kind: str, cur: ContainerInfo | None,
                                lst: list[ContainerInfo], ctx: _StartContext,
                                waiting: _Waiting) -> None:
        if cur is None:
            prev = lst[0] if lst else None  # an instance from an older sandbox
            await self._start(pod, c, kind, ctx, waiting,
                              restart_count=restart_count(prev) + (1 if prev else 0),
                              attempt=_attempt(prev) + 1 if prev else 0, keep=prev, lst=lst)
            return
        if cur.state == "created" and not cur.error:
            # Made but never started: the agent died between the two calls.
            try:
                await self.runtime.start(cur.id)
                ctx.changed = True
                self.recorder.event(pod, NORMAL, "Started", f"Started container {c.name}",
                                    c.name)
            except CreateError as e:
                self.recorder.event(pod, WARNING, "Failed", f"Error: {e}", c.name)
            return
        if not podstatus.dead(cur):
            return
        if not self._should_restart(pod, kind, cur):
            return
        uid, key = pod.metadata.uid, f"{pod.metadata.namespace}/{pod.metadata.name}"
        bkey = f"{uid}/{c.name}"
        finished = cur.finished_at or cur.created_at or self.clock.now()
        event_mono = self.clock.monotonic() - max(
            0.0, (self.clock.now() - finished).total_seconds())
        if self.backoff.get(bkey) == 0 and restart_count(cur) > 0:
            # After an agent restart: rebuild the back-off from the restart count.
            steps = min(restart_count(cur) - 1, 30)
            self.backoff.seed(bkey, self.config.backoff_initial * (2 ** steps), event_mono)
        remaining = self.backoff.remaining(bkey, event_mono)
        if remaining > 0:
            delay = self.backoff.get(bkey)
            pod_ref = f"{pod.metadata.name}_{pod.metadata.namespace}({uid})"
            waiting.set(c.name, "CrashLoopBackOff",
                        f"back-off {_duration(delay)} restarting failed container={c.name} "
                        f"pod={pod_ref}")
            self.recorder.event(pod, WARNING, "BackOff",
                                "Back-off restarting failed container "
                                f"{c.name} in pod {pod_ref}", c.name)
            self.queue.add_after(key, remaining + 0.05)
            return
        self.backoff.next(bkey, event_mono)
        await self._start(pod, c, kind, ctx, waiting, restart_count=restart_count(cur) + 1,
                          attempt=_attempt(cur) + 1, keep=cur, lst=lst)

    async def _start(self, pod: Any, c: Any, kind: str, ctx: _StartContext, waiting: _Waiting,
                     *, restart_count: int, attempt: int, keep: ContainerInfo | None,
                     lst: list[ContainerInfo]) -> None:
        """Pull, resolve, create and start one container; on failure set its waiting
        reason as the kubelet does and schedule a retry."""
        key = f"{pod.metadata.namespace}/{pod.metadata.name}"
        if not await self._ensure_image(pod, c, waiting):
            return
        try:
            env = envs.resolve(pod, c, configmaps=self._configmap, secrets=self._secret,
                               services=self._services_for(pod), host_ip=self.config.node_ip,
                               pod_ip=ctx.pod_ip, node_allocatable=self.node_allocatable())
        except envs.ConfigError as e:
            waiting.set(c.name, "CreateContainerConfigError", str(e))
            self._event_once(pod, WARNING, "Failed", f"Error: {e}", c.name)
            self.queue.add_after(key, RETRY_CONFIG)
            return
        try:
            binds = volumes.binds_for(c, ctx.paths, ctx.read_only)
        except volumes.MountError as e:
            waiting.set(c.name, "CreateContainerConfigError", str(e))
            self._event_once(pod, WARNING, "Failed", f"Error: {e}", c.name)
            return
        binds.append(f"{ctx.hosts}:/etc/hosts")
        if ctx.resolv is not None:
            binds.append(f"{ctx.resolv}:/etc/resolv.conf")
        spec = ctr.container_spec(pod, c, node=self.node, kind=kind,
                                  sandbox_id=ctx.sandbox.id, attempt=attempt,
                                  restart_count=restart_count, env=env, binds=binds)
        # Keep the instance before this one (for lastState and `logs --previous`).
        for old in lst:
            if keep is None or old.id != keep.id:
                await self.runtime.remove(old.id)
        try:
            cid = await self.runtime.create(spec)
        except CreateError as e:
            if "Conflict" in str(e) and "already in use" in str(e):
                self.queue.add_after(key, 0.2)
                return
            waiting.set(c.name, "CreateContainerError", str(e))
            self.recorder.event(pod, WARNING, "Failed", f"Error: {e}", c.name)
            self.queue.add_after(key, RETRY_CONFIG)
            return
        self.recorder.event(pod, NORMAL, "Created", f"Created container {c.name}", c.name)
        ctx.changed = True
        try:
            await self.runtime.start(cid)
        except CreateError as e:
            self.recorder.event(pod, WARNING, "Failed", f"Error: {e}", c.name)
            return
        self.recorder.event(pod, NORMAL, "Started", f"Started container {c.name}", c.name)
        if c.lifecycle.HasField("post_start"):
            ok, message = await run_hook(self.runtime, c.lifecycle.post_start, c, cid,
                                         ctx.pod_ip, float(HOOK_TIMEOUT))
            if not ok:
                self.recorder.event(pod, WARNING, "FailedPostStartHook", message, c.name)
                await self._stop(pod, cid, float(pod.spec.termination_grace_period_seconds))

    async def _ensure_image(self, pod: Any, c: Any, waiting: _Waiting) -> bool:
        result = await self.puller.ensure(pod, c)
        if result.ok:
            return True
        waiting.set(c.name, result.reason, result.message)
        if result.retry_after is not None:
            self.queue.add_after(f"{pod.metadata.namespace}/{pod.metadata.name}",
                                 result.retry_after)
        return False

    # ---- status -------------------------------------------------------------------------

    def _views(self, pod: Any, inst: Instances, waiting: _Waiting, kind: str,
               specs: Any, sandbox_id: str) -> list[podstatus.ContainerView]:
        uid = pod.metadata.uid
        views = []
        for c in specs:
            lst = inst.of_container(kind, c.name)
            if kind == naming.KIND_INIT and sandbox_id:
                current_sb = [i for i in lst if i.labels.get(naming.SANDBOX_ID) == sandbox_id]
                cur = current_sb[0] if current_sb else None
            else:
                cur = lst[0] if lst else None
            prev = next((i for i in lst if cur is not None and i.id != cur.id
                         and _attempt(i) < _attempt(cur)), None)
            if cur is None and lst:
                prev = lst[0]
            rc = restart_count(cur) if cur is not None else (
                restart_count(prev) + 1 if prev is not None else 0)
            reason, message = waiting.reasons.get(c.name, ("", ""))
            ready = started = False
            if cur is not None and cur.running and kind == naming.KIND_APP:
                has_startup = c.HasField("startup_probe")
                started = not has_startup or \
                    self.probes.result(uid, c.name, STARTUP, cur.id) is True
                if c.HasField("readiness_probe"):
                    ready = started and self.probes.result(uid, c.name, READINESS,
                                                           cur.id) is True
                else:
                    ready = started
            elif cur is not None and cur.running:
                started = True
            views.append(podstatus.ContainerView(
                name=c.name, current=cur, previous=prev, restart_count=rc,
                waiting_reason=reason, waiting_message=message, ready=ready, started=started))
        return views

    def _status(self, obj: api_pb2.Object, inst: Instances, waiting: _Waiting, *,
                deadline: bool = False) -> core_pb2.PodStatus:
        pod = obj.pod
        sb = inst.sandbox
        sb_id = sb.id if sb is not None else ""
        view = podstatus.PodView(
            sandbox=sb,
            pod_ip=(self.config.node_ip if pod.spec.host_network else sb.ip)
            if sb is not None and sb.running else "",
            init=self._views(pod, inst, waiting, naming.KIND_INIT, pod.spec.init_containers,
                             sb_id),
            app=self._views(pod, inst, waiting, naming.KIND_APP, pod.spec.containers, ""))
        base = api_pb2.Object()
        base.CopyFrom(obj)
        written = self._written_status.get(pod.metadata.uid)
        if written is not None:
            # The cache may lag our last write: keep its transition times and start time.
            merged = core_pb2.PodStatus()
            merged.CopyFrom(written)
            ours = {c.type for c in written.conditions}
            merged.conditions.extend(c for c in pod.status.conditions if c.type not in ours)
            if pod.status.phase in podstatus.TERMINAL:
                merged.phase = pod.status.phase
            base.pod.status.CopyFrom(merged)
        status = podstatus.compute(base.pod, view, host_ip=self.config.node_ip,
                                   now=self.clock.now())
        if deadline and status.phase not in podstatus.TERMINAL:
            status.phase, status.reason = "Failed", "DeadlineExceeded"
            status.message = DEADLINE_MESSAGE
        return status

    async def _write_status(self, obj: api_pb2.Object, status: core_pb2.PodStatus) -> None:
        pod = obj.pod
        uid = pod.metadata.uid
        data = status.SerializeToString(deterministic=True)
        if data == pod.status.SerializeToString(deterministic=True) or \
                data == self._written.get(uid):
            return
        new = api_pb2.Object()
        new.CopyFrom(obj)
        new.pod.status.CopyFrom(status)
        new.pod.metadata.resource_version = ""
        try:
            await self.client.update_status(new)
        except NotFound:
            return
        self._written[uid] = data
        self._written_status[uid] = status

    async def _stop_terminal(self, pod: Any, inst: Instances) -> bool:
        """A pod that reached Succeeded or Failed keeps its exited containers (for logs)
        but no longer holds a network namespace or runs anything. True if it stopped any."""
        self.probes.forget(pod.metadata.uid)
        apps = [i for lst in inst.by_name.values() for i in lst if i.running]
        await asyncio.gather(*(self._stop(
            pod, i.id, float(pod.spec.termination_grace_period_seconds)) for i in apps))
        sandboxes = [i for i in inst.sandboxes if i.running]
        for info in sandboxes:
            await self._stop(pod, info.id, 0)
        return bool(apps or sandboxes)

    # ---- deletion -----------------------------------------------------------------------

    def _start_termination(self, key: str, obj: api_pb2.Object,
                           mine: list[ContainerInfo]) -> None:
        """Stop a deleted pod in a task of its own: a grace period of 30 s must not hold a
        pod worker that other pods need (the kubelet stops pods in parallel too)."""
        uid = obj.pod.metadata.uid
        task = self._terminating.get(uid)
        if task is not None and not task.done():
            return

        async def terminate() -> None:
            try:
                await self._terminate(obj, mine)
            except asyncio.CancelledError:
                raise
            except Exception as e:
                log.warning("stopping pod %s failed: %s; retrying", key, e)
                self.queue.add_after(key, 1.0)
            finally:
                self._terminating.pop(uid, None)

        self._terminating[uid] = asyncio.create_task(terminate(), name=f"terminate-{key}")

    async def stop_terminations(self) -> None:
        tasks = list(self._terminating.values())
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _terminate(self, obj: api_pb2.Object, mine: list[ContainerInfo]) -> None:
        pod = obj.pod
        m = pod.metadata
        grace = float(m.deletion_grace_period_seconds if m.HasField(
            "deletion_grace_period_seconds") else pod.spec.termination_grace_period_seconds)
        self.probes.forget(m.uid)
        apps = [c for c in mine if c.labels.get(naming.KIND) != naming.KIND_SANDBOX]
        for info in apps:
            if info.running:
                self.recorder.event(pod, NORMAL, "Killing",
                                    f"Stopping container {info.labels.get(naming.CONTAINER)}",
                                    info.labels.get(naming.CONTAINER, ""))
        await asyncio.gather(*(self._stop_with_hook(pod, i, grace) for i in apps if i.running))
        await self._teardown(mine, grace=0)
        self.forget(m.uid)
        try:
            await self.client.delete("pods", m.name, m.namespace, grace_period_seconds=0,
                                     uid=m.uid)
            log.info("pod %s/%s deleted after its containers stopped", m.namespace, m.name)
        except (NotFound, Conflict):
            pass

    async def _stop_with_hook(self, pod: Any, info: ContainerInfo, grace: float) -> None:
        """preStop first (within the grace period), then SIGTERM, SIGKILL when the rest of
        the grace period is over."""
        name = info.labels.get(naming.CONTAINER, "")
        spec = next((c for c in pod.spec.containers if c.name == name), None)
        started = time.monotonic()
        if spec is not None and spec.lifecycle.HasField("pre_stop") and grace > 0:
            ok, message = await run_hook(self.runtime, spec.lifecycle.pre_stop, spec, info.id,
                                         pod.status.pod_ip, grace)
            if not ok:
                self.recorder.event(pod, WARNING, "FailedPreStopHook", message, name)
        remaining = max(0.0, grace - (time.monotonic() - started))
        await self.runtime.stop(info.id, remaining)

    async def _teardown(self, infos: list[ContainerInfo], *, grace: float) -> None:
        """Stop and remove containers (apps first, the sandbox last) and forget the pods'
        in-memory state and directories."""
        apps = [i for i in infos if i.labels.get(naming.KIND) != naming.KIND_SANDBOX]
        sandboxes = [i for i in infos if i.labels.get(naming.KIND) == naming.KIND_SANDBOX]
        await asyncio.gather(*(self.runtime.stop(i.id, grace) for i in apps if i.running))
        await asyncio.gather(*(self.runtime.remove(i.id) for i in apps))
        await asyncio.gather(*(self.runtime.remove(i.id) for i in sandboxes))
        for uid in {i.labels.get(naming.UID, "") for i in infos} - {""}:
            self.forget(uid)

    def forget(self, uid: str) -> None:
        self.probes.forget(uid)
        self.backoff.forget_prefix(uid)
        self.puller.forget(uid)
        self._written.pop(uid, None)
        self._written_status.pop(uid, None)
        self._stopped.pop(uid, None)
        self._events_sent = {e for e in self._events_sent if e[0] != uid}
        path = self._pod_path(uid)
        if path.exists():
            shutil.rmtree(path, ignore_errors=True)

    # ---- helpers ------------------------------------------------------------------------

    def _event_once(self, pod: Any, type_: str, reason: str, message: str,
                    container: str = "") -> None:
        """Events that every retry would repeat (FailedMount, a missing ConfigMap) are
        recorded again only when the message changes."""
        k = (pod.metadata.uid, reason, container + "\x00" + message)
        if k in self._events_sent:
            return
        self._events_sent.add(k)
        self.recorder.event(pod, type_, reason, message, container)

    def pods_using(self, kind: str, namespace: str, name: str) -> list[str]:
        """Keys of this node's pods that reference a ConfigMap or Secret."""
        keys = []
        for obj in self.pods.list():
            pod = obj.pod
            if pod.metadata.namespace == namespace and _references(pod, kind, name):
                keys.append(f"{namespace}/{pod.metadata.name}")
        return keys


@dataclass
class _StartContext:
    sandbox: ContainerInfo
    paths: Mapping[str, Path]
    read_only: set[str]
    hosts: Path
    resolv: Path | None
    pod_ip: str
    changed: bool = False


def _references(pod: Any, kind: str, name: str) -> bool:
    for v in pod.spec.volumes:
        if kind == "configmaps" and v.WhichOneof("source") == "config_map" \
                and v.config_map.name == name:
            return True
        if kind == "secrets" and v.WhichOneof("source") == "secret" \
                and v.secret.secret_name == name:
            return True
    for c in (*pod.spec.init_containers, *pod.spec.containers):
        for src in c.env_from:
            if kind == "configmaps" and src.config_map_ref.name == name:
                return True
            if kind == "secrets" and src.secret_ref.name == name:
                return True
        for e in c.env:
            vf = e.value_from
            if kind == "configmaps" and vf.config_map_key_ref.name == name:
                return True
            if kind == "secrets" and vf.secret_key_ref.name == name:
                return True
    return False


def _duration(seconds: float) -> str:
    """Go's duration text as the kubelet prints back-offs: 10s, 1m20s, 5m0s."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    return f"{s // 60}m{s % 60}s"


async def remove_pod_dirs(data_dir: Path, keep: set[str]) -> None:
    """Remove the directories of pods that no longer exist on this node."""
    root = data_dir / "pods"
    if not root.is_dir():
        return
    for entry in root.iterdir():
        if entry.name not in keep:
            with contextlib.suppress(OSError):
                shutil.rmtree(entry)

