"""Pure helpers of the Deployment controller (Kubernetes' `deployment/util`).

Everything here is a function of typed messages: which ReplicaSet is the new one (its
template equals the Deployment's, ignoring the pod-template-hash label), revisions and the
annotations the controller keeps on ReplicaSets, maxSurge/maxUnavailable resolved against
the replica count with Kubernetes' rounding (surge up, unavailable down), and the
proportional split of a scaling change across ReplicaSets in the middle of a rollout. The
controller and the strategy modules (rolling, recreate, progress) decide with these and
only write what they return.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

from google.protobuf import struct_pb2

from kemu.api.v1 import apps_pb2, core_pb2

REVISION = "deployment.kubernetes.io/revision"
REVISION_HISTORY = "deployment.kubernetes.io/revision-history"
DESIRED_REPLICAS = "deployment.kubernetes.io/desired-replicas"
MAX_REPLICAS = "deployment.kubernetes.io/max-replicas"
HASH_LABEL = "pod-template-hash"
CHANGE_CAUSE = "kubernetes.io/change-cause"
# Deployment annotations not copied to its ReplicaSets (annotationsToSkip).
SKIP_ANNOTATIONS = frozenset({"kubectl.kubernetes.io/last-applied-configuration", REVISION,
                              REVISION_HISTORY, DESIRED_REPLICAS, MAX_REPLICAS,
                              "deprecated.deployment.rollback.to"})
DEFAULT_FRACTION = "25%"
NO_DEADLINE = 2**31 - 1  # progressDeadlineSeconds of MaxInt32 means "no deadline"

RS = apps_pb2.ReplicaSet
Deployment = apps_pb2.Deployment


# ---- maxSurge / maxUnavailable ------------------------------------------------------------


def scaled_value(value: struct_pb2.Value, total: int, *, round_up: bool) -> int:
    """An int-or-percent against `total` (intstr.GetScaledValueFromIntOrPercent)."""
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        return int(value.number_value)
    text = value.string_value if kind == "string_value" else DEFAULT_FRACTION
    if not text.endswith("%"):
        return int(text)
    fraction = int(text[:-1]) * total / 100
    return math.ceil(fraction) if round_up else math.floor(fraction)


def is_rolling(d: Deployment) -> bool:
    return d.spec.strategy.type in ("", "RollingUpdate")


def resolve_fenceposts(d: Deployment) -> tuple[int, int]:
    """(maxSurge, maxUnavailable) in pods; never both 0 (percentages may round to 0)."""
    ru, desired = d.spec.strategy.rolling_update, d.spec.replicas
    surge = scaled_value(ru.max_surge, desired, round_up=True)
    unavailable = scaled_value(ru.max_unavailable, desired, round_up=False)
    if surge == 0 and unavailable == 0:
        unavailable = 1
    return surge, unavailable


def max_surge(d: Deployment) -> int:
    return resolve_fenceposts(d)[0] if is_rolling(d) else 0


def max_unavailable(d: Deployment) -> int:
    if not is_rolling(d) or d.spec.replicas == 0:
        return 0
    return min(resolve_fenceposts(d)[1], d.spec.replicas)


# ---- ReplicaSet sets ---------------------------------------------------------------------


def creation_key(rs: RS) -> tuple[int, int, str]:
    """ReplicaSetsByCreationTimestamp: older first, then by name."""
    ts = rs.metadata.creation_timestamp
    return (ts.seconds, ts.nanos, rs.metadata.name)


def revision(rs: RS) -> int:
    try:
        return int(rs.metadata.annotations.get(REVISION, "0") or 0)
    except ValueError:
        return 0


def max_revision(rss: Iterable[RS]) -> int:
    return max((revision(rs) for rs in rss), default=0)


def without_hash(template: core_pb2.PodTemplateSpec) -> core_pb2.PodTemplateSpec:
    out = core_pb2.PodTemplateSpec()
    out.CopyFrom(template)
    out.metadata.labels.pop(HASH_LABEL, None)
    return out


def equal_ignore_hash(a: core_pb2.PodTemplateSpec, b: core_pb2.PodTemplateSpec) -> bool:
    return without_hash(a) == without_hash(b)


def find_new(d: Deployment, rss: Sequence[RS]) -> RS | None:
    """The oldest ReplicaSet whose template is the Deployment's (FindNewReplicaSet)."""
    for rs in sorted(rss, key=creation_key):
        if equal_ignore_hash(rs.spec.template, d.spec.template):
            return rs
    return None


def find_old(rss: Sequence[RS], new: RS | None) -> list[RS]:
    if new is None:
        return list(rss)
    return [rs for rs in rss if rs.metadata.uid != new.metadata.uid]


def active(rss: Iterable[RS | None]) -> list[RS]:
    """ReplicaSets that should have pods (FilterActiveReplicaSets)."""
    return [rs for rs in rss if rs is not None and rs.spec.replicas > 0]


def present(rss: Iterable[RS | None]) -> list[RS]:
    return [rs for rs in rss if rs is not None]


def spec_replicas(rss: Iterable[RS | None]) -> int:
    return sum(rs.spec.replicas for rs in present(rss))


def status_replicas(rss: Iterable[RS | None]) -> int:
    return sum(rs.status.replicas for rs in present(rss))


def ready_replicas(rss: Iterable[RS | None]) -> int:
    return sum(rs.status.ready_replicas for rs in present(rss))


def available_replicas(rss: Iterable[RS | None]) -> int:
    return sum(rs.status.available_replicas for rs in present(rss))


# ---- annotations -------------------------------------------------------------------------


def set_replicas_annotations(rs: RS, desired: int, maximum: int) -> bool:
    """desired-replicas and max-replicas on a ReplicaSet; True when they changed."""
    ann = rs.metadata.annotations
    changed = False
    for key, value in ((DESIRED_REPLICAS, str(desired)), (MAX_REPLICAS, str(maximum))):
        if ann.get(key) != value:
            ann[key] = value
            changed = True
    return changed


def _int_annotation(rs: RS, key: str) -> int | None:
    try:
        return int(rs.metadata.annotations[key])
    except (KeyError, ValueError):
        return None


def desired_replicas_annotation(rs: RS) -> int | None:
    return _int_annotation(rs, DESIRED_REPLICAS)


def copy_annotations(d: Deployment, rs: RS) -> bool:
    """Copy the Deployment's own annotations (change-cause...) to the ReplicaSet."""
    changed = False
    for key, value in d.metadata.annotations.items():
        if key in SKIP_ANNOTATIONS or rs.metadata.annotations.get(key) == value:
            continue
        rs.metadata.annotations[key] = value
        changed = True
    return changed


def set_new_rs_annotations(d: Deployment, rs: RS, new_revision: int, *, exists: bool) -> bool:
    """Annotations of the new ReplicaSet (SetNewReplicaSetAnnotations); True if changed.

    A ReplicaSet coming back as the new one (a rollback, or a template changed back) gets
    the new revision and remembers its earlier ones in revision-history, as Kubernetes.
    """
    changed = copy_annotations(d, rs)
    ann = rs.metadata.annotations
    old_text = ann.get(REVISION, "")
    try:
        old = int(old_text) if old_text else 0
    except ValueError:
        return changed
    if old < new_revision:
        ann[REVISION] = str(new_revision)
        changed = True
        if old_text:
            history = ann.get(REVISION_HISTORY, "")
            ann[REVISION_HISTORY] = f"{history},{old_text}" if history else old_text
    if not exists and set_replicas_annotations(rs, d.spec.replicas,
                                               d.spec.replicas + max_surge(d)):
        changed = True
    return changed


def set_deployment_revision(d: Deployment, rev: str) -> bool:
    if d.metadata.annotations.get(REVISION) == rev:
        return False
    d.metadata.annotations[REVISION] = rev
    return True


# ---- sizes -------------------------------------------------------------------------------


def new_rs_new_replicas(d: Deployment, all_rss: Sequence[RS | None], new: RS) -> int:
    """How big the new ReplicaSet may be now (NewRSNewReplicas)."""
    if not is_rolling(d):
        return d.spec.replicas
    max_total = d.spec.replicas + max_surge(d)
    current = spec_replicas(all_rss)
    if current >= max_total:
        return new.spec.replicas
    scale_up = min(max_total - current, d.spec.replicas - new.spec.replicas)
    return new.spec.replicas + scale_up


def is_saturated(d: Deployment, rs: RS | None) -> bool:
    """The new ReplicaSet runs all the Deployment's replicas, all available."""
    return (rs is not None and desired_replicas_annotation(rs) == d.spec.replicas
            and rs.spec.replicas == d.spec.replicas
            and rs.status.available_replicas == d.spec.replicas)


def find_active_or_latest(new: RS | None, olds: Sequence[RS]) -> RS | None:
    """The one ReplicaSet with replicas, or the latest when none has: None when several
    have replicas (FindActiveOrLatest)."""
    olds_newest_first = sorted(olds, key=creation_key, reverse=True)
    running = active([*olds_newest_first, new])
    if len(running) == 1:
        return running[0]
    if running:
        return None
    if new is not None:
        return new
    return olds_newest_first[0] if olds_newest_first else None


def round_half_away(x: float) -> int:
    """integer.RoundToInt32 (math.Round): halves away from zero."""
    return math.floor(abs(x) + 0.5) * (1 if x >= 0 else -1)


def _fraction(rs: RS, d: Deployment) -> int:
    """The change this ReplicaSet takes of a scaling (getReplicaSetFraction)."""
    if d.spec.replicas == 0:
        return -rs.spec.replicas
    deployment_replicas = d.spec.replicas + max_surge(d)
    annotated = _int_annotation(rs, MAX_REPLICAS)
    if annotated is None:
        annotated = d.status.replicas
    if annotated <= 0:
        return 0
    return round_half_away(rs.spec.replicas * deployment_replicas / annotated) \
        - rs.spec.replicas


def _proportion(rs: RS, d: Deployment, to_add: int, added: int) -> int:
    if rs.spec.replicas == 0 or to_add == 0 or to_add == added:
        return 0
    fraction, allowed = _fraction(rs, d), to_add - added
    return min(fraction, allowed) if to_add > 0 else max(fraction, allowed)


def proportional_sizes(d: Deployment, rss: Sequence[RS]) -> list[tuple[RS, int]]:
    """New sizes for the active ReplicaSets of a rolling Deployment whose replica count
    changed mid-rollout: each takes its share, the largest the rest."""
    allowed = d.spec.replicas + max_surge(d) if d.spec.replicas > 0 else 0
    to_add = allowed - spec_replicas(rss)
    if to_add > 0:  # ReplicaSetsBySizeNewer
        ordered = sorted(sorted(rss, key=creation_key, reverse=True),
                         key=lambda rs: -rs.spec.replicas)
    else:  # ReplicaSetsBySizeOlder
        ordered = sorted(sorted(rss, key=creation_key), key=lambda rs: -rs.spec.replicas)
    sizes: list[list[Any]] = []
    added = 0
    for rs in ordered:
        share = _proportion(rs, d, to_add, added) if to_add != 0 else 0
        sizes.append([rs, rs.spec.replicas + share])
        added += share
    if to_add != 0 and sizes:
        sizes[0][1] = max(sizes[0][1] + to_add - added, 0)
    return [(rs, int(n)) for rs, n in sizes]
