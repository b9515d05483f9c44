"""The Recreate strategy's test (Kubernetes' `deployment/recreate.go`): every old pod must
be gone, not merely scaled away, before the new ReplicaSet gets any, so that two versions
never run side by side. A terminating pod still counts; a finished one does not.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from kemu.api.v1 import core_pb2
from kemu.services.controllers import deploymentutil as du
from kemu.services.controllers.podutil import TERMINAL_PHASES


def old_pods_running(new: du.RS | None, olds: Sequence[du.RS],
                     pods_by_rs: Mapping[str, Sequence[core_pb2.Pod]]) -> bool:
    """Whether pods of the old ReplicaSets (by owner uid in `pods_by_rs`) still run."""
    if du.status_replicas(olds) > 0:
        return True
    new_uid = new.metadata.uid if new is not None else None
    return any(pod.status.phase not in TERMINAL_PHASES
               for uid, pods in pods_by_rs.items() if uid != new_uid for pod in pods)
