"""SelectorSpread: spread pods that belong together across nodes.

Pods belong together when they have the same controlling owner (ownerReferences with
controller: true, e.g. one ReplicaSet), or, for bare pods, the same namespace and exact
label set. The fewer such pods a node already has (bound or assumed), the higher it
scores: MAX * (max - count) / max, as kube-scheduler's SelectorSpread normalizes (without
zones). The counts are kept per node by the cache, so a score is one dict lookup.
"""

from __future__ import annotations

from collections.abc import Sequence

from kemu.services.scheduler.framework import MAX_NODE_SCORE, SKIP, SUCCESS, CycleState, Status
from kemu.services.scheduler.nodeinfo import NodeInfo, PodInfo

NAME = "SelectorSpread"


def spread_scores(counts: list[int], max_score: int = MAX_NODE_SCORE) -> list[int]:
    """Fewer matching pods -> higher score; all equal when no node has any."""
    highest = max(counts, default=0)
    if highest == 0:
        return [max_score] * len(counts)
    return [max_score * (highest - c) // highest for c in counts]


class SelectorSpread:
    """Score nodes by how few pods of the same set they already run."""

    name = NAME

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        return SUCCESS if pod.spread else SKIP

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        return node.spread_counts.get(pod.spread, 0) if pod.spread else 0

    def score_nodes(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]
                    ) -> list[int]:
        spread = pod.spread
        if not spread:
            return [0] * len(nodes)
        return [n.spread_counts.get(spread, 0) for n in nodes]

    def normalize_scores(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        scores[:] = spread_scores(scores)
