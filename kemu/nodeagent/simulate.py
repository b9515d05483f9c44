"""Simulated nodes, as KWOK makes them: many Nodes in one process, no containers.

`kemu simulate nodes --count N` runs N simulated node agents on one asyncio loop and one
client connection. Each registers its Node (capacity cpu/memory/pods like a real node, the
labels `kubernetes.io/hostname` and `kemu.io/simulated=true`, containerRuntimeVersion
`fake://kemu-simulated`), keeps its Lease in kube-node-lease renewed (NodeLease, as the
real agent) and its Ready condition posted, and plays the kubelet for the pods bound to it:
a pod becomes Running and Ready at once with an IP from the node's podCIDR (status.compute
over a runtime view in which every container runs), and a pod being deleted (it has a
deletionTimestamp) is removed with grace 0, as the kubelet does once its containers stop.
Nothing runs: this is for scale work (scheduler and control plane benchmarks), never for
workloads.

What scales: one pod watch for all the nodes (`spec.nodeName!=`, filtered here by node
name), one work queue for pod writes, and heartbeats from one timer heap, spread over the
renew interval (jittered) and paced by a token rate (`heartbeat_qps`), so 5,000 nodes make
neither 5,000 watches nor a thundering herd. When the rate cannot renew every Lease within
the interval the interval stretches (count / qps) and a warning says so at start.

Pod IPs: each Node gets spec.podCIDR from `pod_cidr_range` at registration (a /24 per node
by index, 100.64.0.0/10 by default: room for 16,384 nodes; the controller manager's
10.244.0.0/16 has only 256), unless it already has one. The Node's InternalIP is the
subnet's first address; nothing answers there, so logs and exec cannot reach these nodes.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import ipaddress
import logging
import math
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Protocol

from google.protobuf.timestamp_pb2 import Timestamp

from kemu.api.v1 import api_pb2, core_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import AlreadyExists, ClientError, Conflict, NotFound
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue, run_workers
from kemu.nodeagent import status as podstatus
from kemu.nodeagent.clock import Clock, SystemClock
from kemu.nodeagent.fakeruntime import FAKE_RUNTIME_VERSION
from kemu.nodeagent.lease import NAMESPACE as LEASE_NAMESPACE
from kemu.nodeagent.lease import NodeLease
from kemu.nodeagent.node import arch, kemu_version
from kemu.nodeagent.runtime import ContainerInfo
from kemu.util.untilsignalled import run_until_signalled, wait_stopped_or_failed

log = logging.getLogger("kemu.simulate")
SIMULATED_LABEL = "kemu.io/simulated"
DEFAULT_POD_CIDR_RANGE = "100.64.0.0/10"


class SimulatorError(Exception):
    """The simulator cannot start; the message is the one line the user sees."""


@dataclass(frozen=True)
class SimulatorConfig:
    """Everything `kemu simulate nodes` needs; nothing here changes while it runs."""

    apiserver: str
    count: int
    name_prefix: str = "sim-node"
    token: str = ""
    cpu: str = "32"
    memory: str = "256Gi"
    max_pods: int = 110
    labels: Mapping[str, str] = field(default_factory=dict)
    pod_cidr_range: str = DEFAULT_POD_CIDR_RANGE
    # The kubelet's Lease: 40 s, renewed every 10 s (a quarter of it).
    lease_duration_seconds: int = 40
    lease_renew_interval: float = 10.0
    # The kubelet posts an unchanged status every 5 min when it has a Lease.
    node_status_interval: float = 300.0
    # Lease renewals and status posts together, per second, at most.
    heartbeat_qps: float = 200.0
    # Registrations, pod writes and heartbeats in flight at most.
    concurrency: int = 32
    cleanup: bool = False
    # False: pods bound here stay as the scheduler left them (as scheduler_perf's nodes,
    # which run nothing); deletions are still honoured.
    run_pods: bool = True
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.count < 1:
            raise ValueError(f"--count must be at least 1, got {self.count}")
        if self.heartbeat_qps <= 0:
            raise ValueError(f"--heartbeat-qps must be above 0, got {self.heartbeat_qps:g}")
        if self.concurrency < 1:
            raise ValueError(f"--concurrency must be at least 1, got {self.concurrency}")
        net = ipaddress.ip_network(self.pod_cidr_range, strict=False)
        subnets = 2 ** max(0, 24 - net.prefixlen) if net.prefixlen <= 24 else 0
        if net.version != 4 or subnets < self.count:
            raise ValueError(f"--pod-cidr-range {self.pod_cidr_range} holds {subnets} /24 "
                             f"subnets, fewer than --count {self.count}")

    def node_names(self) -> list[str]:
        return [f"{self.name_prefix}-{i}" for i in range(self.count)]


# ---- pure helpers -----------------------------------------------------------------------


def pod_cidr_for(cidr_range: str, index: int) -> str:
    """The index-th /24 of the range (stable across restarts: by the node's number)."""
    net = ipaddress.IPv4Network(cidr_range, strict=False)
    base = int(net.network_address) + index * 256
    return str(ipaddress.IPv4Network((base, 24)))


def node_ip_of(pod_cidr: str) -> str:
    """The simulated node's InternalIP: its subnet's first address (the bridge's, on a
    real node)."""
    return str(ipaddress.IPv4Network(pod_cidr, strict=False).network_address + 1)


def heartbeat_interval(count: int, renew_interval: float, qps: float) -> float:
    """Seconds between two renewals of one node's Lease: the wanted interval, stretched
    when `count` renewals in it would exceed `qps`."""
    return max(renew_interval, count / qps)


def _ts(dt: datetime) -> Timestamp:
    t = Timestamp()
    t.FromDatetime(dt.replace(microsecond=0))
    return t


def node_labels(config: SimulatorConfig, name: str) -> dict[str, str]:
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
              "kubernetes.io/arch": arch(), "beta.kubernetes.io/os": "linux",
              "beta.kubernetes.io/arch": arch(), SIMULATED_LABEL: "true",
              "type": "kwok"}
    labels.update(config.labels)
    return labels


def node_status(config: SimulatorConfig, name: str, node_ip: str, now: datetime,
                old: core_pb2.NodeStatus | None = None) -> core_pb2.NodeStatus:
    """A healthy node's status: Ready, no pressure; transition times kept from `old`."""
    st = core_pb2.NodeStatus()
    cap = {"cpu": config.cpu, "memory": config.memory, "pods": str(config.max_pods),
           "ephemeral-storage": "100Gi"}
    st.capacity.update(cap)
    st.allocatable.update(cap)
    st.addresses.add(type="InternalIP", address=node_ip)
    st.addresses.add(type="Hostname", address=name)
    info = st.node_info
    info.machine_id = info.system_uuid = info.boot_id = f"simulated-{name}"
    info.kernel_version = "simulated"
    info.os_image = "kemu simulated node (no containers run)"
    info.container_runtime_version = FAKE_RUNTIME_VERSION
    info.kubelet_version = info.kube_proxy_version = f"v{kemu_version()}"
    info.operating_system = "linux"
    info.architecture = arch()
    previous = {c.type: c for c in (old.conditions if old is not None else ())}
    for type_, status, reason, message in (
            ("Ready", "True", "KubeletReady", "simulated kubelet is posting ready status"),
            ("MemoryPressure", "False", "KubeletHasSufficientMemory",
             "kubelet has sufficient memory available"),
            ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
            ("PIDPressure", "False", "KubeletHasSufficientPID",
             "kubelet has sufficient PID available")):
        c = st.conditions.add(type=type_, status=status, reason=reason, message=message)
        c.last_heartbeat_time.CopyFrom(_ts(now))
        prev = previous.get(type_)
        if prev is not None and prev.status == status:
            c.last_transition_time.CopyFrom(prev.last_transition_time)
        else:
            c.last_transition_time.CopyFrom(_ts(now))
    return st


def running_status(pod: core_pb2.Pod, pod_ip: str, host_ip: str,
                   now: datetime) -> core_pb2.PodStatus:
    """The status a kubelet writes once every container runs and is ready (init containers
    completed), computed by the real agent's status.compute over such a view."""
    sandbox_id = f"sim-{pod.metadata.uid[:12] or pod.metadata.name}"

    def info(name: str, image: str, state: str) -> ContainerInfo:
        return ContainerInfo(id=f"{sandbox_id}-{name}", name=name, labels={}, state=state,
                             started_at=now, finished_at=now if state == "exited" else None,
                             created_at=now, image=image, image_id=image)

    sandbox = replace(info("sandbox", "", "running"), ip=pod_ip)
    init = [podstatus.ContainerView(c.name, current=info(c.name, c.image, "exited"))
            for c in pod.spec.init_containers]
    app = [podstatus.ContainerView(c.name, current=info(c.name, c.image, "running"),
                                   ready=True, started=True)
           for c in pod.spec.containers]
    st = podstatus.compute(pod, podstatus.PodView(sandbox, pod_ip, init, app),
                           host_ip=host_ip, now=now)
    for cs in (*st.init_container_statuses, *st.container_statuses):
        cs.container_id = cs.container_id.replace("docker://", "fake://")
        cs.image_id = cs.image_id.replace("docker://", "fake://")
        if cs.state.HasField("terminated"):
            cs.state.terminated.container_id = cs.container_id
    return st


def pod_action(pod: core_pb2.Pod) -> str:
    """What the simulated kubelet does for a pod bound to one of its nodes: "delete" (it is
    being deleted), "run" (not Running with an IP yet), or "" (nothing)."""
    if pod.metadata.HasField("deletion_timestamp"):
        return "delete"
    if pod.status.phase in podstatus.TERMINAL:
        return ""
    if pod.status.phase != "Running" or not pod.status.pod_ip:
        return "run"
    return ""


class PodIPs:
    """Pod IPs per node from the node's /24: the network and first addresses are skipped
    (the subnet and the node's own); a pod keeps its IP until released."""

    def __init__(self) -> None:
        self._by_key: dict[str, str] = {}
        self._used: dict[str, set[str]] = {}
        self._cursor: dict[str, int] = {}

    def observe(self, key: str, cidr: str, ip: str) -> None:
        """A pod seen with an IP (a restart of the simulator): keep it."""
        if ip and key not in self._by_key:
            self._by_key[key] = ip
            self._used.setdefault(cidr, set()).add(ip)

    def allocate(self, key: str, cidr: str) -> str:
        if key in self._by_key:
            return self._by_key[key]
        net = ipaddress.IPv4Network(cidr, strict=False)
        used = self._used.setdefault(cidr, set())
        size = net.num_addresses - 3  # network, node, broadcast
        if len(used) >= size:
            raise PodIPsExhausted(f"no free pod IP left in {cidr}")
        start = self._cursor.get(cidr, 0)
        for step in range(size):
            offset = (start + step) % size
            ip = str(net.network_address + 2 + offset)
            if ip not in used:
                self._cursor[cidr] = offset + 1
                used.add(ip)
                self._by_key[key] = ip
                return ip
        raise PodIPsExhausted(f"no free pod IP left in {cidr}")  # pragma: no cover

    def release(self, key: str, cidr: str) -> None:
        ip = self._by_key.pop(key, None)
        if ip is not None:
            self._used.get(cidr, set()).discard(ip)

    def __len__(self) -> int:
        return len(self._by_key)


class PodIPsExhausted(Exception):
    """A node's podCIDR has no free address."""


class Pacer:
    """At most `qps` starts per second, evenly spaced (a token bucket of size one)."""

    def __init__(self, qps: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = 1.0 / qps
        self.clock = clock
        self._next = 0.0

    def reserve(self) -> float:
        """Seconds to wait before the next start (the slot is taken)."""
        now = self.clock()
        at = max(now, self._next)
        self._next = at + self.interval
        return at - now


class HeartbeatPlan:
    """Due times of every node's heartbeats (Lease renewals and status posts) in one heap:
    first ones spread at random over the interval, later ones one interval apart."""

    def __init__(self, names: Iterable[str], *, lease_interval: float, status_interval: float,
                 now: float, rng: random.Random) -> None:
        self.lease_interval = lease_interval
        self.status_interval = status_interval
        self._heap: list[tuple[float, str, str]] = []
        for name in names:
            self._heap.append((now + rng.uniform(0, lease_interval), "lease", name))
            self._heap.append((now + rng.uniform(0, status_interval), "status", name))
        heapq.heapify(self._heap)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop(self, now: float) -> tuple[str, str] | None:
        """The earliest heartbeat if due; it is scheduled again one interval later (or one
        interval from now when it ran late by more than an interval)."""
        if not self._heap or self._heap[0][0] > now:
            return None
        due, kind, name = heapq.heappop(self._heap)
        interval = self.lease_interval if kind == "lease" else self.status_interval
        nxt = due + interval
        heapq.heappush(self._heap, (nxt if nxt > now else now + interval, kind, name))
        return kind, name


# ---- the pods' kubelet ---------------------------------------------------------------


class PodClient(Protocol):
    """The calls the simulated kubelet makes on pods (AsyncClient has them)."""

    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object: ...

    async def delete(self, resource: str, name: str, namespace: str = "", *,
                     grace_period_seconds: int | None = None, uid: str = "") -> Any: ...


class SimulatedKubelet:
    """`sync(key)`: the pod's level-triggered reconcile for every simulated node at once."""

    def __init__(self, client: PodClient, lookup: Callable[[str], api_pb2.Object | None],
                 pod_cidrs: Mapping[str, str], clock: Clock) -> None:
        self.client = client
        self.lookup = lookup
        self.pod_cidrs = pod_cidrs  # node name -> podCIDR, for our nodes only
        self.clock = clock
        self.ips = PodIPs()
        self.running = 0
        self.deleted = 0

    def ours(self, pod: core_pb2.Pod) -> bool:
        return pod.spec.node_name in self.pod_cidrs

    def observe(self, pod: core_pb2.Pod) -> None:
        """Note an IP a pod already has (seen after a restart of the simulator)."""
        cidr = self.pod_cidrs.get(pod.spec.node_name)
        if cidr and pod.status.pod_ip:
            self.ips.observe(f"{pod.metadata.namespace}/{pod.metadata.name}", cidr,
                             pod.status.pod_ip)

    def forget(self, pod: core_pb2.Pod) -> None:
        cidr = self.pod_cidrs.get(pod.spec.node_name)
        if cidr:
            self.ips.release(f"{pod.metadata.namespace}/{pod.metadata.name}", cidr)

    async def sync(self, key: str) -> None:
        obj = self.lookup(key)
        if obj is None or not self.ours(obj.pod):
            return
        pod = obj.pod
        action = pod_action(pod)
        if action == "delete":
            try:
                await self.client.delete("pods", pod.metadata.name, pod.metadata.namespace,
                                         grace_period_seconds=0, uid=pod.metadata.uid)
            except (NotFound, Conflict):
                return  # gone already, or a new pod of that name
            self.deleted += 1
            return
        if action != "run":
            return
        cidr = self.pod_cidrs[pod.spec.node_name]
        ip = self.ips.allocate(key, cidr)
        new = api_pb2.Object()  # a status write sends the status only (unconditional)
        new.pod.metadata.name, new.pod.metadata.namespace = (pod.metadata.name,
                                                             pod.metadata.namespace)
        new.pod.status.CopyFrom(running_status(pod, ip, node_ip_of(cidr), self.clock.now()))
        try:
            await self.client.update_status(new)
        except NotFound:
            return
        self.running += 1


# ---- the simulator ---------------------------------------------------------------------


class Simulator:
    """N simulated nodes: `start` registers them and starts the loops; `stop` ends them."""

    def __init__(self, config: SimulatorConfig, *, client: AsyncClient | None = None,
                 clock: Clock | None = None) -> None:
        self.config = config
        self.clock = clock or SystemClock()
        self.client = client
        self.names = config.node_names()
        self.pod_cidrs: dict[str, str] = {}
        self.leases: dict[str, NodeLease] = {}
        self.node_status: dict[str, core_pb2.NodeStatus] = {}
        self.queue: WorkQueue[str] = WorkQueue(base_delay=0.1, max_delay=30.0)
        self.pods: Informer | None = None
        self.kubelet: SimulatedKubelet | None = None
        self.tasks: list[asyncio.Task[Any]] = []
        self.stopped = asyncio.Event()
        self.renewals = 0
        self.status_posts = 0
        self._rng = random.Random(config.seed)
        self._slots = asyncio.Semaphore(config.concurrency)
        # Heartbeats have slots of their own, as many as the rate allows in a second: every
        # real kubelet renews its Lease on its own, and when a burst of pods slows the
        # apiserver to a second a call, 32 shared slots renewed 32 Leases a second where
        # 1,000 nodes need 100, so live nodes went silent for 40 s and were marked NotReady.
        self._beat_slots = asyncio.Semaphore(max(config.concurrency,
                                                 math.ceil(config.heartbeat_qps)))
        self._inflight: set[asyncio.Task[None]] = set()

    def _client(self) -> AsyncClient:
        assert self.client is not None
        return self.client

    async def _check_apiserver(self) -> None:
        client = self._client()
        try:
            await asyncio.wait_for(client.list("namespaces",
                                               field_selector="metadata.name=default"), 15)
        except (ClientError, TimeoutError) as e:
            reason = e.message if isinstance(e, ClientError) else "no answer in 15 s"
            raise SimulatorError(f"cannot reach the apiserver at {self.config.apiserver}: "
                                 f"{reason}") from None

    async def register_all(self) -> None:
        """Create (or take over) every Node, `concurrency` at a time."""
        started = time.perf_counter()

        async def one(index: int, name: str) -> None:
            async with self._slots:
                await self._register(index, name)
        await asyncio.gather(*(one(i, n) for i, n in enumerate(self.names)))
        log.info("registered %d simulated nodes (fake runtime, no containers) duration_s=%.1f",
                 len(self.names), time.perf_counter() - started)

    async def _register(self, index: int, name: str) -> None:
        client, cfg = self._client(), self.config
        delay = 0.2
        while True:
            try:
                await self._register_once(client, cfg, index, name)
                return
            except ClientError as e:
                log.warning("node %s not registered: %s; retrying", name, e.message)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _register_once(self, client: AsyncClient, cfg: SimulatorConfig, index: int,
                             name: str) -> None:
        now = self.clock.now()
        node = core_pb2.Node()
        node.metadata.name = name
        node.metadata.labels.update(node_labels(cfg, name))
        cidr = pod_cidr_for(cfg.pod_cidr_range, index)
        node.spec.pod_cidr = cidr
        node.spec.pod_cidrs.append(cidr)
        try:
            obj = await client.create(api_pb2.Object(node=node))
        except AlreadyExists:
            obj = await client.get("nodes", name)
            existing = obj.node.spec.pod_cidr or (obj.node.spec.pod_cidrs[0]
                                                  if obj.node.spec.pod_cidrs else "")
            wanted = node_labels(cfg, name)
            stale = any(obj.node.metadata.labels.get(k) != v for k, v in wanted.items())
            if existing:
                cidr = existing
            if stale or not existing:
                obj.node.metadata.labels.update(wanted)
                if not existing:
                    obj.node.spec.pod_cidr = cidr
                    obj.node.spec.pod_cidrs.append(cidr)
                obj = await client.update(obj)
        self.pod_cidrs[name] = cidr
        status = node_status(cfg, name, node_ip_of(cidr), now, obj.node.status)
        await self._post_status(name, status)
        self.leases[name] = NodeLease(client, name, self.clock,
                                      duration=cfg.lease_duration_seconds,
                                      renew_interval=cfg.lease_renew_interval)

    async def _post_status(self, name: str, status: core_pb2.NodeStatus) -> None:
        obj = api_pb2.Object()
        obj.node.metadata.name = name
        obj.node.status.CopyFrom(status)
        try:
            await self._client().update_status(obj)
        except NotFound:
            log.warning("node %s is gone (deleted by someone else?)", name)
            raise
        self.node_status[name] = status

    async def start(self) -> None:
        cfg = self.config
        if self.client is None:
            self.client = AsyncClient(cfg.apiserver, token=cfg.token or None)
        await self._check_apiserver()
        interval = heartbeat_interval(cfg.count, cfg.lease_renew_interval, cfg.heartbeat_qps)
        if interval > cfg.lease_duration_seconds * 0.75:
            log.warning("%d nodes at --heartbeat-qps %g renew each Lease only every %.0f s, "
                        "close to its %d s duration: the node lifecycle controller may mark "
                        "them NotReady; raise --heartbeat-qps", cfg.count, cfg.heartbeat_qps,
                        interval, cfg.lease_duration_seconds)
        await self.register_all()
        kubelet = self.kubelet = SimulatedKubelet(self._client(), self._pod, self.pod_cidrs,
                                                  self.clock)
        pods = self.pods = Informer(self._client(), "pods", field_selector="spec.nodeName!=")
        pods.add_handler(self._on_pod)
        pods.start()
        await pods.wait_synced()

        def on_error(key: str, err: Exception) -> None:
            log.warning("pod %s not synced: %s", key, getattr(err, "message", err))

        self.tasks += [
            asyncio.create_task(run_workers(self.queue, kubelet.sync, cfg.concurrency,
                                            on_error=on_error), name="simulated-pods"),
            asyncio.create_task(self._heartbeats(interval), name="simulated-heartbeats"),
        ]
        log.info("simulating %d nodes %s-0..%d on %s: Lease every %.1f s, status every "
                 "%.0f s, at most %g heartbeats/s; %d pods bound to them", cfg.count,
                 cfg.name_prefix, cfg.count - 1, cfg.apiserver, interval,
                 cfg.node_status_interval, cfg.heartbeat_qps,
                 sum(1 for o in pods.list() if kubelet.ours(o.pod)))

    def _pod(self, key: str) -> api_pb2.Object | None:
        return self.pods.get(key) if self.pods is not None else None

    def _on_pod(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        kubelet = self.kubelet
        if kubelet is None:
            return
        if new is None:
            if old is not None and kubelet.ours(old.pod):
                kubelet.forget(old.pod)
            return
        if not kubelet.ours(new.pod):
            return
        if old is None:
            kubelet.observe(new.pod)
        action = pod_action(new.pod)
        if action == "delete" or (action == "run" and self.config.run_pods):
            self.queue.add(key_of(new))

    async def _heartbeats(self, lease_interval: float) -> None:
        cfg = self.config
        plan = HeartbeatPlan(self.names, lease_interval=lease_interval,
                             status_interval=max(cfg.node_status_interval, lease_interval),
                             now=self.clock.monotonic(), rng=self._rng)
        pacer = Pacer(cfg.heartbeat_qps, self.clock.monotonic)
        while True:
            due = plan.next_due()
            assert due is not None
            wait = due - self.clock.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            beat = plan.pop(self.clock.monotonic())
            if beat is None:
                continue
            wait = pacer.reserve()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._beat_slots.acquire()
            task = asyncio.create_task(self._beat(*beat))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _beat(self, kind: str, name: str) -> None:
        try:
            if kind == "lease":
                await self.leases[name].renew()
                self.renewals += 1
            else:
                status = node_status(self.config, name, node_ip_of(self.pod_cidrs[name]),
                                     self.clock.now(), self.node_status.get(name))
                await self._post_status(name, status)
                self.status_posts += 1
        except ClientError as e:
            log.info("%s of node %s not written: %s", kind, name, e.message)
        finally:
            self._beat_slots.release()

    async def wait(self) -> None:
        """Until stopped, or until a loop fails (then raise its error)."""
        await wait_stopped_or_failed(self.stopped, self.tasks)

    async def stop(self) -> None:
        await self.queue.shut_down()
        for t in [*self.tasks, *self._inflight]:
            t.cancel()
        await asyncio.gather(*self.tasks, *self._inflight, return_exceptions=True)
        if self.pods is not None:
            await self.pods.stop()
        if self.config.cleanup and self.client is not None and self.pod_cidrs:
            await self.remove_nodes()
        if self.client is not None:
            await self.client.close()

    async def remove_nodes(self) -> None:
        """`--cleanup`: delete the Nodes and their Leases, then force-delete the pods
        still bound to them (as the pod garbage collector would), twice, for pods the
        scheduler bound while the Nodes were going."""
        client = self._client()

        async def gently(coro: Any) -> None:
            async with self._slots:
                with contextlib.suppress(NotFound, Conflict):
                    await coro

        async def each(calls: Iterable[Any]) -> None:
            await asyncio.gather(*(gently(c) for c in calls), return_exceptions=True)

        await each(client.delete("nodes", n) for n in self.pod_cidrs)
        await each(client.delete("leases", n, LEASE_NAMESPACE) for n in self.pod_cidrs)
        removed = 0
        for _ in range(2):
            bound = await client.list("pods", field_selector="spec.nodeName!=")
            ours = [o.pod for o in bound.items if o.pod.spec.node_name in self.pod_cidrs]
            await each(client.delete("pods", p.metadata.name, p.metadata.namespace,
                                     grace_period_seconds=0, uid=p.metadata.uid)
                       for p in ours)
            removed += len(ours)
            await asyncio.sleep(0.5)
        log.info("cleanup: deleted %d Nodes and Leases, %d pods bound to them",
                 len(self.pod_cidrs), removed)


async def main(config: SimulatorConfig) -> None:

    sim = Simulator(config)
    try:
        # SimulatorError from the start: the one-line reason it cannot start.
        await run_until_signalled(sim.start, sim.wait, sim.stopped)
        log.info("simulated nodes stopping (%s)",
                 "deleting them" if config.cleanup else "their Nodes stay")
    finally:
        await sim.stop()


def run(config: SimulatorConfig) -> None:
    """Simulate until SIGTERM/SIGINT. SimulatorError carries the one-line reason it could
    not start."""
    asyncio.run(main(config))

