"""The RollingUpdate strategy's arithmetic (Kubernetes' `deployment/rolling.go`).

A rolling update alternates two moves, each bounded by the Deployment's fenceposts: scale
the new ReplicaSet up while the total stays within replicas + maxSurge, and scale old
ReplicaSets down while the available pods stay at least replicas - maxUnavailable.
Old pods that are not available are removed first (they serve nothing), oldest ReplicaSet
first. These functions only compute sizes; the controller writes them.
"""

from __future__ import annotations

from collections.abc import Sequence

from kemu.services.controllers import deploymentutil as du


def new_rs_target(d: du.Deployment, all_rss: Sequence[du.RS | None], new: du.RS) -> int:
    """The size the new ReplicaSet should have now (reconcileNewReplicaSet)."""
    if new.spec.replicas >= d.spec.replicas:
        return d.spec.replicas
    return du.new_rs_new_replicas(d, all_rss, new)


def old_rs_targets(d: du.Deployment, all_rss: Sequence[du.RS | None],
                   olds: Sequence[du.RS], new: du.RS | None) -> dict[str, int]:
    """New sizes (by ReplicaSet name) for old ReplicaSets that should shrink now
    (reconcileOldReplicaSets: unhealthy pods first, then by availability)."""
    olds = [rs for rs in olds if rs.spec.replicas > 0]
    if du.spec_replicas(olds) == 0:
        return {}
    min_available = d.spec.replicas - du.max_unavailable(d)
    new_unavailable = (new.spec.replicas - new.status.available_replicas) if new else 0
    max_scaled_down = du.spec_replicas(all_rss) - min_available - new_unavailable
    if max_scaled_down <= 0:
        return {}
    sizes = {rs.metadata.name: rs.spec.replicas for rs in olds}
    ordered = sorted(olds, key=du.creation_key)
    _cleanup_unhealthy(ordered, sizes, max_scaled_down)
    _scale_down_available(d, all_rss, ordered, sizes, min_available)
    return {rs.metadata.name: sizes[rs.metadata.name] for rs in ordered
            if sizes[rs.metadata.name] != rs.spec.replicas}


def _cleanup_unhealthy(ordered: Sequence[du.RS], sizes: dict[str, int], limit: int) -> None:
    """Drop old pods that are not available, up to `limit` (cleanupUnhealthyReplicas)."""
    done = 0
    for rs in ordered:
        if done >= limit:
            break
        size = sizes[rs.metadata.name]
        unhealthy = size - rs.status.available_replicas
        if size == 0 or unhealthy <= 0:
            continue
        step = min(limit - done, unhealthy)
        sizes[rs.metadata.name] = size - step
        done += step


def _scale_down_available(d: du.Deployment, all_rss: Sequence[du.RS | None],
                          ordered: Sequence[du.RS], sizes: dict[str, int],
                          min_available: int) -> None:
    """Drop available old pods above minAvailable (scaleDownOldReplicaSetsForRollingUpdate)."""
    available = du.available_replicas(all_rss)
    budget = available - min_available
    done = 0
    for rs in ordered:
        if done >= budget:
            break
        size = sizes[rs.metadata.name]
        if size == 0:
            continue
        step = min(size, budget - done)
        sizes[rs.metadata.name] = size - step
        done += step
