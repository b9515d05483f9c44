"""The status lines of `kemuctl rollout status`: kubectl's status viewers, as pure functions.

Each viewer takes the typed object and returns (message, done), word for word as kubectl's
DeploymentStatusViewer, DaemonSetStatusViewer and StatefulSetStatusViewer, so scripts that
grep kubectl's output work unchanged. A rollout that can no longer finish raises
RolloutFailed.
"""

from __future__ import annotations

from typing import Any

TIMED_OUT = "ProgressDeadlineExceeded"


class RolloutFailed(Exception):
    """The rollout cannot finish (its progress deadline passed)."""


class NotSupported(Exception):
    """Status is not available for this object (e.g. OnDelete strategy)."""


def _replicas(spec: Any) -> int:
    return int(spec.replicas) if spec.HasField("replicas") else 1


def deployment_status(d: Any, revision: int = 0) -> tuple[str, bool]:
    name, st = d.metadata.name, d.status
    if revision > 0:
        current = d.metadata.annotations.get("deployment.kubernetes.io/revision", "0")
        if not current.isdigit() or int(current) != revision:
            raise RolloutFailed(f"desired revision ({revision}) is different from the running "
                                f"revision ({current})")
    if d.metadata.generation > st.observed_generation:
        return "Waiting for deployment spec update to be observed...\n", False
    cond = next((c for c in st.conditions if c.type == "Progressing"), None)
    if cond is not None and cond.reason == TIMED_OUT:
        raise RolloutFailed(f'deployment "{name}" exceeded its progress deadline')
    want = _replicas(d.spec)
    if st.updated_replicas < want:
        return (f'Waiting for deployment "{name}" rollout to finish: {st.updated_replicas} out '
                f"of {want} new replicas have been updated...\n", False)
    if st.replicas > st.updated_replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: '
                f"{st.replicas - st.updated_replicas} old replicas are pending "
                "termination...\n", False)
    if st.available_replicas < st.updated_replicas:
        return (f'Waiting for deployment "{name}" rollout to finish: {st.available_replicas} '
                f"of {st.updated_replicas} updated replicas are available...\n", False)
    return f'deployment "{name}" successfully rolled out\n', True


def daemonset_status(ds: Any) -> tuple[str, bool]:
    name, st = ds.metadata.name, ds.status
    if ds.spec.update_strategy.type not in ("", "RollingUpdate"):
        raise NotSupported("rollout status is only available for RollingUpdate strategy type")
    if ds.metadata.generation > st.observed_generation:
        return "Waiting for daemon set spec update to be observed...\n", False
    if st.updated_number_scheduled < st.desired_number_scheduled:
        return (f'Waiting for daemon set "{name}" rollout to finish: '
                f"{st.updated_number_scheduled} out of {st.desired_number_scheduled} new pods "
                "have been updated...\n", False)
    if st.number_available < st.desired_number_scheduled:
        return (f'Waiting for daemon set "{name}" rollout to finish: {st.number_available} of '
                f"{st.desired_number_scheduled} updated pods are available...\n", False)
    return f'daemon set "{name}" successfully rolled out\n', True


def statefulset_status(sts: Any) -> tuple[str, bool]:
    st = sts.status
    if sts.spec.update_strategy.type not in ("", "RollingUpdate"):
        raise NotSupported("rollout status is only available for RollingUpdate strategy type")
    if st.observed_generation == 0 or sts.metadata.generation > st.observed_generation:
        return "Waiting for statefulset spec update to be observed...\n", False
    want = _replicas(sts.spec)
    if st.ready_replicas < want:
        return f"Waiting for {want - st.ready_replicas} pods to be ready...\n", False
    rolling = sts.spec.update_strategy.rolling_update
    if rolling.HasField("partition") and rolling.partition > 0:
        done_at = want - rolling.partition
        if st.updated_replicas < done_at:
            return (f"Waiting for partitioned roll out to finish: {st.updated_replicas} out of "
                    f"{done_at} new pods have been updated...\n", False)
        return (f"partitioned roll out complete: {st.updated_replicas} new pods have been "
                "updated...\n", True)
    if st.update_revision != st.current_revision:
        return (f"waiting for statefulset rolling update to complete {st.updated_replicas} pods "
                f"at revision {st.update_revision}...\n", False)
    return (f"statefulset rolling update complete {st.current_replicas} pods at revision "
            f"{st.current_revision}...\n", True)


def status_of(kind: str, obj: Any, revision: int = 0) -> tuple[str, bool]:
    """The viewer for `kind` (Deployment, DaemonSet, StatefulSet)."""
    if kind == "Deployment":
        return deployment_status(obj, revision)
    if kind == "DaemonSet":
        return daemonset_status(obj)
    if kind == "StatefulSet":
        return statefulset_status(obj)
    raise NotSupported(f"no status viewer has been implemented for {kind}")
