"""A pod's READY, STATUS and RESTARTS cells, computed as kubectl's printPod computes them.

STATUS is the most-read column of `kubectl get pods`: it shows the reason a container is
waiting or terminated (ContainerCreating, CrashLoopBackOff, ErrImagePull, Completed,
OOMKilled), init progress (Init:0/1), Terminating while a deletion is pending, and the
phase otherwise. The precedence rules below are kubectl's, in its order.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kemu.cli.ctl.age import human_duration, seconds_of


@dataclass(frozen=True)
class PodCells:
    ready: str
    status: str
    restarts: str


def _restartable(container: Any) -> bool:
    """A sidecar: an init container with restartPolicy Always."""
    return container is not None and container.HasField("restart_policy") and \
        container.restart_policy == "Always"


def _condition_true(status: Any, kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in status.conditions)


def _terminated_reason(term: Any, prefix: str = "") -> str:
    if term.reason:
        return f"{prefix}{term.reason}"
    if term.signal:
        return f"{prefix}Signal:{term.signal}"
    return f"{prefix}ExitCode:{term.exit_code}"


def _latest(current: float | None, state: Any) -> float | None:
    if not state.HasField("terminated"):
        return current
    finished = seconds_of(state.terminated.finished_at)
    if finished is None:
        return current
    return finished if current is None or finished > current else current


def pod_cells(pod: Any, now: float) -> PodCells:
    spec, status = pod.spec, pod.status
    total = len(spec.containers)
    ready = 0
    reason = status.reason or status.phase
    for cond in status.conditions:
        if cond.type == "PodScheduled" and cond.reason == "SchedulingGated":
            reason = "SchedulingGated"
    init_specs = {c.name: c for c in spec.init_containers}
    total += sum(1 for c in spec.init_containers if _restartable(c))

    restarts = sidecar_restarts = 0
    last_restart: float | None = None
    last_sidecar_restart: float | None = None
    initializing = False
    for i, cs in enumerate(status.init_container_statuses):
        restarts += cs.restart_count
        last_restart = _latest(last_restart, cs.last_state)
        sidecar = _restartable(init_specs.get(cs.name))
        if sidecar:
            sidecar_restarts += cs.restart_count
            last_sidecar_restart = _latest(last_sidecar_restart, cs.last_state)
        state = cs.state
        if state.HasField("terminated") and state.terminated.exit_code == 0:
            continue
        if sidecar and cs.HasField("started") and cs.started:
            ready += 1 if cs.ready else 0
            continue
        if state.HasField("terminated"):
            reason = _terminated_reason(state.terminated, "Init:")
        elif state.HasField("waiting") and state.waiting.reason and \
                state.waiting.reason != "PodInitializing":
            reason = "Init:" + state.waiting.reason
        else:
            reason = f"Init:{i}/{len(spec.init_containers)}"
        initializing = True
        break

    if not initializing or _condition_true(status, "Initialized"):
        restarts, last_restart = sidecar_restarts, last_sidecar_restart
        has_running = False
        for cs in reversed(status.container_statuses):
            restarts += cs.restart_count
            last_restart = _latest(last_restart, cs.last_state)
            state = cs.state
            if state.HasField("waiting") and state.waiting.reason:
                reason = state.waiting.reason
            elif state.HasField("terminated"):
                reason = _terminated_reason(state.terminated)
            elif cs.ready and state.HasField("running"):
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_true(status, "Ready") else "NotReady"

    if pod.metadata.HasField("deletion_timestamp"):
        if status.reason == "NodeLost":
            reason = "Unknown"
        elif status.phase not in ("Succeeded", "Failed"):
            reason = "Terminating"

    restarts_text = str(restarts)
    if restarts and last_restart is not None:
        restarts_text = f"{restarts} ({human_duration(now - last_restart)} ago)"
    return PodCells(f"{ready}/{total}", reason, restarts_text)


def readiness_gates(pod: Any) -> str:
    """The READINESS GATES cell: `<none>`, or how many gate conditions are True."""
    gates = [g.condition_type for g in pod.spec.readiness_gates]
    if not gates:
        return "<none>"
    true = sum(1 for g in gates if _condition_true(pod.status, g))
    return f"{true}/{len(gates)}"
