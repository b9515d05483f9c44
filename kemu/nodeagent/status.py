"""PodStatus from the runtime's view of a pod: a pure function, as the kubelet's
`generateAPIPodStatus` and `getPhase`.

The pod worker gathers, for every container of the spec, its latest instance and the one
before it (from Docker, by labels), the restart count, the probe results and any waiting
reason it decided on (ErrImagePull, CrashLoopBackOff, CreateContainerConfigError...); this
module turns that into phase, conditions and container statuses exactly as `kubectl get`
and `describe` expect to read them. Table-driven tests cover it without Docker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from kemu.api.v1 import core_pb2, meta_pb2
from kemu.nodeagent.containers import qos_class
from kemu.nodeagent.runtime import ContainerInfo

CONTAINER_CREATING = "ContainerCreating"
POD_INITIALIZING = "PodInitializing"
TERMINAL = ("Succeeded", "Failed")


@dataclass(frozen=True)
class ContainerView:
    """What is known of one container of the spec."""

    name: str
    current: ContainerInfo | None = None
    previous: ContainerInfo | None = None
    restart_count: int = 0
    waiting_reason: str = ""
    waiting_message: str = ""
    ready: bool = False
    started: bool = False


@dataclass(frozen=True)
class PodView:
    """The runtime's view of a pod."""

    sandbox: ContainerInfo | None
    pod_ip: str
    init: Sequence[ContainerView]
    app: Sequence[ContainerView]


def dead(info: ContainerInfo | None) -> bool:
    """Exited, or created but failed to start (Docker leaves those in `created`)."""
    return info is not None and (info.exited or (info.state == "created" and bool(info.error)))


def _ts(dt: datetime | None) -> Timestamp:
    t = Timestamp()
    if dt is not None:
        t.FromDatetime(dt)
    return t


def terminated_reason(info: ContainerInfo) -> str:
    """The kubelet's reason for an exit. OOMKilled is Docker's word, which may come a moment
    after the exit: the pod worker passes an exit here only once it has settled
    (`ContainerInfo.settle_left`), so an OOM kill is not written as `Error` first."""
    if info.state == "created" and info.error:
        return "StartError"
    if info.oom_killed:
        return "OOMKilled"
    return "Completed" if info.exit_code == 0 else "Error"


def _terminated(info: ContainerInfo) -> core_pb2.ContainerStateTerminated:
    code = info.exit_code
    if info.state == "created" and info.error and code == 0:
        code = 128
    t = core_pb2.ContainerStateTerminated(exit_code=code, reason=terminated_reason(info),
                                          message=info.error,
                                          container_id=f"docker://{info.id}")
    t.started_at.CopyFrom(_ts(info.started_at or info.created_at))
    t.finished_at.CopyFrom(_ts(info.finished_at or info.started_at or info.created_at))
    return t


def container_status(spec: Any, view: ContainerView, default_waiting: str
                     ) -> core_pb2.ContainerStatus:
    cs = core_pb2.ContainerStatus(name=spec.name, image=spec.image,
                                  restart_count=view.restart_count)
    cur = view.current
    if cur is not None:
        cs.container_id = f"docker://{cur.id}"
        cs.image_id = f"docker://{cur.image_id}" if cur.image_id else ""
    if view.waiting_reason:
        cs.state.waiting.reason = view.waiting_reason
        cs.state.waiting.message = view.waiting_message
        if cur is not None and dead(cur):
            cs.last_state.terminated.CopyFrom(_terminated(cur))
        elif view.previous is not None and dead(view.previous):
            cs.last_state.terminated.CopyFrom(_terminated(view.previous))
    elif cur is None or (cur.state == "created" and not cur.error):
        cs.state.waiting.reason = default_waiting
        if view.previous is not None and dead(view.previous):
            cs.last_state.terminated.CopyFrom(_terminated(view.previous))
    elif cur.running:
        cs.state.running.started_at.CopyFrom(_ts(cur.started_at))
        if view.previous is not None and dead(view.previous):
            cs.last_state.terminated.CopyFrom(_terminated(view.previous))
    else:
        cs.state.terminated.CopyFrom(_terminated(cur))
        if view.previous is not None and dead(view.previous):
            cs.last_state.terminated.CopyFrom(_terminated(view.previous))
    running = cur is not None and cur.running and not view.waiting_reason
    cs.ready = running and view.ready
    cs.started = running and view.started
    return cs


def phase(restart_policy: str, init: Sequence[core_pb2.ContainerStatus],
          app: Sequence[core_pb2.ContainerStatus]) -> str:
    """The kubelet's getPhase."""
    pending_init = failed_init = 0
    for s in init:
        if s.state.HasField("running"):
            pending_init += 1
        elif s.state.HasField("terminated"):
            if s.state.terminated.exit_code != 0:
                failed_init += 1
        elif s.state.HasField("waiting"):
            if s.last_state.HasField("terminated"):
                if s.last_state.terminated.exit_code != 0:
                    failed_init += 1
            else:
                pending_init += 1
        else:
            pending_init += 1
    if failed_init and restart_policy == "Never":
        return "Failed"
    waiting = running = stopped = succeeded = 0
    for s in app:
        if s.state.HasField("running"):
            running += 1
        elif s.state.HasField("terminated"):
            stopped += 1
            if s.state.terminated.exit_code == 0:
                succeeded += 1
        elif s.state.HasField("waiting"):
            if s.last_state.HasField("terminated"):
                stopped += 1
            else:
                waiting += 1
    if pending_init or waiting:
        return "Pending"
    if running:
        return "Running"
    if stopped:
        if restart_policy == "Always":
            return "Running"
        if stopped == succeeded:
            return "Succeeded"
        if restart_policy == "Never":
            return "Failed"
        return "Running"
    return "Pending"


def _condition(old: Sequence[meta_pb2.Condition], type_: str, status: bool, now: datetime,
               reason: str = "", message: str = "") -> meta_pb2.Condition:
    text = "True" if status else "False"
    c = meta_pb2.Condition(type=type_, status=text, reason=reason, message=message)
    prev = next((o for o in old if o.type == type_), None)
    if prev is not None and prev.status == text:
        c.last_transition_time.CopyFrom(prev.last_transition_time)
    else:
        c.last_transition_time.CopyFrom(_ts(now.replace(microsecond=0)))
    c.ClearField("last_probe_time")
    return c


def compute(pod: Any, view: PodView, *, host_ip: str, now: datetime) -> core_pb2.PodStatus:
    """The pod's status. `pod.status` (the last one written) supplies what is kept: the
    scheduler's condition, transition times, startTime, and a terminal phase."""
    old = pod.status
    has_init = len(pod.spec.init_containers) > 0
    default = POD_INITIALIZING if has_init else CONTAINER_CREATING
    init_status = [container_status(c, v, default)
                   for c, v in zip(pod.spec.init_containers, view.init, strict=True)]
    app_status = [container_status(c, v, default)
                  for c, v in zip(pod.spec.containers, view.app, strict=True)]
    st = core_pb2.PodStatus()
    st.phase = old.phase if old.phase in TERMINAL else phase(
        pod.spec.restart_policy or "Always", init_status, app_status)
    if old.phase in TERMINAL:  # e.g. DeadlineExceeded: the reason stays with the phase
        st.reason, st.message = old.reason, old.message
    st.host_ip = host_ip
    if host_ip:
        st.host_ips.add(ip=host_ip)
    ip = view.pod_ip or (old.pod_ip if st.phase in TERMINAL else "")
    if ip:
        st.pod_ip = ip
        st.pod_ips.add(ip=ip)
    if old.HasField("start_time"):
        st.start_time.CopyFrom(old.start_time)
    else:
        st.start_time.CopyFrom(_ts(now.replace(microsecond=0)))
    st.init_container_statuses.extend(init_status)
    st.container_statuses.extend(app_status)
    st.qos_class = qos_class(pod)
    st.nominated_node_name = old.nominated_node_name

    conds = list(old.conditions)
    sandbox_ready = view.sandbox is not None and view.sandbox.running
    initialized = all(s.state.HasField("terminated") and s.state.terminated.exit_code == 0
                      for s in init_status)
    not_init = [s.name for s in init_status
                if not (s.state.HasField("terminated") and s.state.terminated.exit_code == 0)]
    unready = [s.name for s in app_status if not s.ready]
    out: list[meta_pb2.Condition] = []
    out.append(_condition(conds, "PodReadyToStartContainers", sandbox_ready, now))
    if st.phase == "Succeeded" and has_init:
        out.append(_condition(conds, "Initialized", True, now, "PodCompleted"))
    elif initialized:
        out.append(_condition(conds, "Initialized", True, now))
    else:
        out.append(_condition(conds, "Initialized", False, now, "ContainersNotInitialized",
                              f"containers with incomplete status: [{' '.join(not_init)}]"))
    if st.phase == "Succeeded":
        ready_c = _condition(conds, "Ready", False, now, "PodCompleted")
        cready_c = _condition(conds, "ContainersReady", False, now, "PodCompleted")
    elif unready:
        msg = f"containers with unready status: [{' '.join(unready)}]"
        ready_c = _condition(conds, "Ready", False, now, "ContainersNotReady", msg)
        cready_c = _condition(conds, "ContainersReady", False, now, "ContainersNotReady", msg)
    else:
        cready_c = _condition(conds, "ContainersReady", True, now)
        gates = [g.condition_type for g in pod.spec.readiness_gates]
        missing = [g for g in gates
                   if not any(c.type == g and c.status == "True" for c in conds)]
        if missing:
            ready_c = _condition(conds, "Ready", False, now, "ReadinessGatesNotReady",
                                 "corresponding condition of pod readiness gate "
                                 f"\"{missing[0]}\" does not exist.")
        else:
            ready_c = _condition(conds, "Ready", True, now)
    out += [ready_c, cready_c]
    scheduled = next((c for c in conds if c.type == "PodScheduled"), None)
    if scheduled is None:
        scheduled = _condition(conds, "PodScheduled", True, now)
    out.append(scheduled)
    owned = {c.type for c in out}
    out += [c for c in conds if c.type not in owned]  # readiness gates' own conditions
    st.conditions.extend(out)
    return st
