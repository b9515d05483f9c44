"""TaintToleration: a node's NoSchedule/NoExecute taints must be tolerated by the pod;
PreferNoSchedule taints it does not tolerate make the node score lower.

The toleration matching here is also what NodeUnschedulable and NodeReady use, since
Kubernetes expresses cordoned and not-ready nodes as taints a pod may tolerate.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from kemu.api.v1 import core_pb2
from kemu.services.scheduler.framework import (
    SKIP,
    SUCCESS,
    CycleState,
    Status,
    Unschedulable,
    default_normalize_score,
)
from kemu.services.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "TaintToleration"
FILTER_EFFECTS = frozenset({"NoSchedule", "NoExecute"})


def tolerates(tol: core_pb2.Toleration, key: str, value: str, effect: str) -> bool:
    """Whether one toleration tolerates the taint (Kubernetes' Toleration.ToleratesTaint):
    an empty effect matches every effect, an empty key (with Exists) every key; Exists
    ignores the value, Equal (the default) compares it."""
    if tol.effect and tol.effect != effect:
        return False
    if tol.key and tol.key != key:
        return False
    if tol.operator == "Exists":
        return True
    if tol.operator in ("", "Equal"):
        return tol.value == value
    return False


def tolerated(tolerations: Iterable[core_pb2.Toleration], key: str, value: str,
              effect: str) -> bool:
    return any(tolerates(t, key, value, effect) for t in tolerations)


def first_untolerated(taints: Iterable[core_pb2.Taint],
                      tolerations: Sequence[core_pb2.Toleration],
                      effects: frozenset[str] = FILTER_EFFECTS) -> core_pb2.Taint | None:
    """The first taint with one of `effects` that no toleration tolerates."""
    for taint in taints:
        if taint.effect in effects and not tolerated(tolerations, taint.key, taint.value,
                                                     taint.effect):
            return taint
    return None


def untolerated_reason(taint: core_pb2.Taint) -> str:
    return f"node(s) had untolerated taint {{{taint.key}: {taint.value}}}"


def count_intolerable_prefer_no_schedule(taints: Iterable[core_pb2.Taint],
                                         tolerations: Sequence[core_pb2.Toleration]) -> int:
    return sum(1 for t in taints if t.effect == "PreferNoSchedule"
               and not tolerated(tolerations, t.key, t.value, t.effect))


class TaintToleration:
    """Filter on NoSchedule/NoExecute taints; score by untolerated PreferNoSchedule ones."""

    name = NAME

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        taints = node.taints
        if not taints:
            return SUCCESS
        taint = first_untolerated(taints, pod.pod.spec.tolerations)
        return SUCCESS if taint is None else Unschedulable(untolerated_reason(taint))

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        if not any(n.prefer_no_schedule for n in nodes):
            return SKIP  # every node scores the same: it cannot change the pick
        state[NAME] = [t for t in pod.pod.spec.tolerations
                       if t.effect in ("", "PreferNoSchedule")]
        return SUCCESS

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        taints = node.prefer_no_schedule
        if not taints:
            return 0
        return count_intolerable_prefer_no_schedule(taints, state[NAME])

    def normalize_scores(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize_score(scores, reverse=True)
