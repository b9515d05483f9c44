"""NodeAffinity: the pod's nodeSelector and required node affinity must match the node's
labels (and name); preferred node affinity terms add their weights to the node's score.

Selectors are compiled once per cycle (PreFilter) into tuples of small requirement objects,
so the per-node check is a few dict lookups. Semantics follow Kubernetes' node selector
helpers: terms are ORed, the expressions and fields of a term ANDed; an empty term or an
empty term list matches nothing; NotIn and DoesNotExist match a node without the label;
Gt and Lt compare integers and need the label; matchFields knows only metadata.name with
In/NotIn and one value. A malformed requirement makes its term match nothing, as the
Kubernetes helpers' parse errors do.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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

NAME = "NodeAffinity"
REASON = "node(s) didn't match Pod's node affinity/selector"
_SCORE_STATE = NAME + "/preferred"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One compiled requirement on a label (or on the metadata.name field)."""

    key: str
    op: str
    values: frozenset[str] = frozenset()
    number: int = 0

    def matches(self, labels: Mapping[str, str]) -> bool:
        value = labels.get(self.key)
        op = self.op
        if op == "In":
            return value is not None and value in self.values
        if op == "NotIn":
            return value is None or value not in self.values
        if op == "Exists":
            return value is not None
        if op == "DoesNotExist":
            return value is None
        if op in ("Gt", "Lt"):
            if value is None:
                return False
            try:
                have = int(value)
            except ValueError:
                return False
            return have > self.number if op == "Gt" else have < self.number
        return False


class _Invalid(ValueError):
    pass


def compile_requirement(req: core_pb2.NodeSelectorRequirement) -> Requirement:
    op, values = req.operator, list(req.values)
    if op in ("In", "NotIn"):
        if not values:
            raise _Invalid(f"{op} needs values")
        return Requirement(req.key, op, frozenset(values))
    if op in ("Exists", "DoesNotExist"):
        if values:
            raise _Invalid(f"{op} takes no values")
        return Requirement(req.key, op)
    if op in ("Gt", "Lt"):
        if len(values) != 1:
            raise _Invalid(f"{op} needs one value")
        try:
            return Requirement(req.key, op, number=int(values[0]))
        except ValueError as e:
            raise _Invalid(str(e)) from e
    raise _Invalid(f"unknown operator {op!r}")


def compile_field(req: core_pb2.NodeSelectorRequirement) -> Requirement:
    if req.key != "metadata.name" or req.operator not in ("In", "NotIn") \
            or len(req.values) != 1:
        raise _Invalid(f"unsupported field requirement {req.key} {req.operator}")
    return Requirement(req.key, req.operator, frozenset(req.values))


@dataclass(frozen=True, slots=True)
class Term:
    """A compiled NodeSelectorTerm; `valid` is False when it can match nothing."""

    expressions: tuple[Requirement, ...]
    fields: tuple[Requirement, ...]
    valid: bool = True

    def matches(self, labels: Mapping[str, str], node_name: str) -> bool:
        if not self.valid:
            return False
        for r in self.expressions:
            if not r.matches(labels):
                return False
        if self.fields:
            by_field = {"metadata.name": node_name}
            for r in self.fields:
                if not r.matches(by_field):
                    return False
        return True


def compile_term(term: core_pb2.NodeSelectorTerm) -> Term:
    if not term.match_expressions and not term.match_fields:
        return Term((), (), valid=False)
    try:
        return Term(tuple(compile_requirement(r) for r in term.match_expressions),
                    tuple(compile_field(r) for r in term.match_fields))
    except _Invalid:
        return Term((), (), valid=False)


@dataclass(frozen=True, slots=True)
class Matcher:
    """The pod's nodeSelector plus its required terms (None: no required affinity)."""

    selector: tuple[tuple[str, str], ...]
    required: tuple[Term, ...] | None

    def matches(self, labels: Mapping[str, str], node_name: str) -> bool:
        for key, value in self.selector:
            if labels.get(key) != value:
                return False
        if self.required is None:
            return True
        return any(t.matches(labels, node_name) for t in self.required)


def compile_pod(spec: core_pb2.PodSpec) -> Matcher:
    selector = tuple(sorted(spec.node_selector.items()))
    required: tuple[Term, ...] | None = None
    aff = spec.affinity.node_affinity
    if spec.HasField("affinity") and spec.affinity.HasField("node_affinity") and \
            aff.HasField("required_during_scheduling_ignored_during_execution"):
        terms = aff.required_during_scheduling_ignored_during_execution.node_selector_terms
        required = tuple(compile_term(t) for t in terms)
    return Matcher(selector, required)


def compile_preferred(spec: core_pb2.PodSpec) -> tuple[tuple[int, Term], ...]:
    if not (spec.HasField("affinity") and spec.affinity.HasField("node_affinity")):
        return ()
    prefs = spec.affinity.node_affinity.preferred_during_scheduling_ignored_during_execution
    return tuple((p.weight, compile_term(p.preference)) for p in prefs if p.weight)


class NodeAffinity:
    """Filter on nodeSelector + required node affinity; score preferred terms."""

    name = NAME

    def pre_filter(self, state: CycleState, pod: PodInfo) -> Status:
        matcher = state[NAME] = compile_pod(pod.pod.spec)
        return SKIP if not matcher.selector and matcher.required is None else SUCCESS

    def filter(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> Status:
        matcher: Matcher | None = state.get(NAME)
        if matcher is None:
            matcher = state[NAME] = compile_pod(pod.pod.spec)
        if not matcher.selector and matcher.required is None:
            return SUCCESS
        if matcher.matches(node.labels, node.name):
            return SUCCESS
        return Unschedulable(REASON)

    def pre_score(self, state: CycleState, pod: PodInfo, nodes: Sequence[NodeInfo]) -> Status:
        preferred = state[_SCORE_STATE] = compile_preferred(pod.pod.spec)
        return SUCCESS if preferred else SKIP

    def score(self, state: CycleState, pod: PodInfo, node: NodeInfo) -> int:
        preferred: tuple[tuple[int, Term], ...] = state[_SCORE_STATE]
        if not preferred:
            return 0
        labels = node.labels
        return sum(w for w, term in preferred if term.matches(labels, node.name))

    def normalize_scores(self, state: CycleState, pod: PodInfo, scores: list[int]) -> None:
        default_normalize_score(scores)
