"""Which nodes a DaemonSet's pod belongs on, and the pod it gets there: pure functions.

As Kubernetes' `NodeShouldRunDaemonPod`, a node is judged with the pod the controller would
create for it: the template plus the tolerations every daemon pod gets
(`AddOrUpdateDaemonPodTolerations`: not-ready and unreachable with NoExecute, so taint-based
eviction leaves daemons alone; disk, memory and PID pressure and unschedulable with
NoSchedule, so a cordoned or pressured node still runs its daemons; network-unavailable
for host-network pods). The node must match the template's nodeName, nodeSelector and
required node affinity. A NoSchedule or NoExecute taint the pod does not tolerate means
"should not run"; an existing pod may stay unless a NoExecute taint is untolerated
(`shouldContinueRunning`).

Pods are created with their required node affinity replaced by one term, `matchFields
metadata.name In [<node>]` (`ReplaceDaemonSetPodNodeNameNodeAffinity`), so the scheduler
binds them, honouring resources and ports, as Kubernetes does since 1.12; until it has,
`target_node` reads the node back from that term. The scheduler never sees the user's
required terms: the controller already checked them. The node matching here mirrors the
scheduler's NodeAffinity and TaintToleration plugins (components do not import each other).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from kemu.api.v1 import core_pb2

NOT_READY = "node.kubernetes.io/not-ready"
UNREACHABLE = "node.kubernetes.io/unreachable"
DISK_PRESSURE = "node.kubernetes.io/disk-pressure"
MEMORY_PRESSURE = "node.kubernetes.io/memory-pressure"
PID_PRESSURE = "node.kubernetes.io/pid-pressure"
UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
NETWORK_UNAVAILABLE = "node.kubernetes.io/network-unavailable"
NAME_FIELD = "metadata.name"

_NO_SCHEDULE, _NO_EXECUTE = "NoSchedule", "NoExecute"
_DEFAULT_TOLERATIONS = ((NOT_READY, _NO_EXECUTE), (UNREACHABLE, _NO_EXECUTE),
                        (DISK_PRESSURE, _NO_SCHEDULE), (MEMORY_PRESSURE, _NO_SCHEDULE),
                        (PID_PRESSURE, _NO_SCHEDULE), (UNSCHEDULABLE, _NO_SCHEDULE))


def _same_toleration(a: core_pb2.Toleration, b: core_pb2.Toleration) -> bool:
    """Toleration.MatchToleration: same key, operator, value and effect."""
    return (a.key, a.operator or "Equal", a.value, a.effect) == \
        (b.key, b.operator or "Equal", b.value, b.effect)


def add_or_update_toleration(spec: core_pb2.PodSpec, tol: core_pb2.Toleration) -> None:
    """AddOrUpdateTolerationInPodSpec: replace a matching toleration, else append."""
    for i, have in enumerate(spec.tolerations):
        if _same_toleration(have, tol):
            spec.tolerations[i].CopyFrom(tol)
            return
    spec.tolerations.append(tol)


def add_daemon_tolerations(spec: core_pb2.PodSpec) -> None:
    """The tolerations Kubernetes' daemonset controller gives every daemon pod."""
    wanted = list(_DEFAULT_TOLERATIONS)
    if spec.host_network:
        wanted.append((NETWORK_UNAVAILABLE, _NO_SCHEDULE))
    for key, effect in wanted:
        add_or_update_toleration(
            spec, core_pb2.Toleration(key=key, operator="Exists", effect=effect))


def tolerates(tol: core_pb2.Toleration, taint: core_pb2.Taint) -> bool:
    """Toleration.ToleratesTaint: empty effect and empty key (with Exists) match all."""
    if tol.effect and tol.effect != taint.effect:
        return False
    if tol.key and tol.key != taint.key:
        return False
    if tol.operator == "Exists":
        return True
    return tol.operator in ("", "Equal") and tol.value == taint.value


def untolerated(taints: Iterable[core_pb2.Taint], tolerations: Iterable[core_pb2.Toleration],
                effects: frozenset[str]) -> bool:
    """Whether a taint with one of `effects` is tolerated by none of the tolerations."""
    tols = list(tolerations)
    return any(t.effect in effects and not any(tolerates(tol, t) for tol in tols)
               for t in taints)


# ---- node selector terms ----------------------------------------------------------------


def _requirement_matches(req: core_pb2.NodeSelectorRequirement,
                         values: Mapping[str, str]) -> bool:
    """One node selector requirement (Kubernetes' nodeSelectorRequirementsAsSelector):
    NotIn and DoesNotExist match a missing label, Gt and Lt compare integers; a malformed
    requirement matches nothing."""
    have = values.get(req.key)
    op, wanted = req.operator, list(req.values)
    if op in ("In", "NotIn"):
        if not wanted:
            return False
        return (have in wanted) if op == "In" else (have is None or have not in wanted)
    if op in ("Exists", "DoesNotExist"):
        return not wanted and ((have is not None) == (op == "Exists"))
    if op in ("Gt", "Lt") and len(wanted) == 1 and have is not None:
        try:
            a, b = int(have), int(wanted[0])
        except ValueError:
            return False
        return a > b if op == "Gt" else a < b
    return False


def _field_matches(req: core_pb2.NodeSelectorRequirement, node_name: str) -> bool:
    if req.key != NAME_FIELD or req.operator not in ("In", "NotIn") or len(req.values) != 1:
        return False
    return _requirement_matches(req, {NAME_FIELD: node_name})


def term_matches(term: core_pb2.NodeSelectorTerm, node: core_pb2.Node) -> bool:
    """Expressions and fields of a term are ANDed; an empty term matches nothing."""
    if not term.match_expressions and not term.match_fields:
        return False
    labels = node.metadata.labels
    return all(_requirement_matches(r, labels) for r in term.match_expressions) and \
        all(_field_matches(r, node.metadata.name) for r in term.match_fields)


def _required_terms(spec: core_pb2.PodSpec) -> list[core_pb2.NodeSelectorTerm] | None:
    if not (spec.HasField("affinity") and spec.affinity.HasField("node_affinity")):
        return None
    aff = spec.affinity.node_affinity
    if not aff.HasField("required_during_scheduling_ignored_during_execution"):
        return None
    return list(aff.required_during_scheduling_ignored_during_execution.node_selector_terms)


def fits_node_affinity(spec: core_pb2.PodSpec, node: core_pb2.Node) -> bool:
    """nodeSelector (every pair) and required node affinity (any term)."""
    labels = node.metadata.labels
    if any(labels.get(k) != v for k, v in spec.node_selector.items()):
        return False
    terms = _required_terms(spec)
    return terms is None or any(term_matches(t, node) for t in terms)


# ---- the verdict -------------------------------------------------------------------------


@dataclass(frozen=True)
class Placement:
    """NodeShouldRunDaemonPod's two answers."""

    should_run: bool  # a daemon pod should be created here
    should_continue: bool  # an existing daemon pod may stay here


def daemon_pod_spec(template: core_pb2.PodTemplateSpec) -> core_pb2.PodSpec:
    """The template's pod spec with the daemon tolerations added (NewPod)."""
    spec = core_pb2.PodSpec()
    spec.CopyFrom(template.spec)
    add_daemon_tolerations(spec)
    return spec


def placement(spec: core_pb2.PodSpec, node: core_pb2.Node) -> Placement:
    """Judge `node` for a daemon pod with `spec` (from `daemon_pod_spec`)."""
    if spec.node_name and spec.node_name != node.metadata.name:
        return Placement(False, False)
    if not fits_node_affinity(spec, node):
        return Placement(False, False)
    taints = node.spec.taints
    if untolerated(taints, spec.tolerations, frozenset({_NO_SCHEDULE, _NO_EXECUTE})):
        return Placement(False, not untolerated(taints, spec.tolerations,
                                                frozenset({_NO_EXECUTE})))
    return Placement(True, True)


def target_node(pod: core_pb2.Pod) -> str | None:
    """The node a daemon pod is for (GetTargetNodeName): spec.nodeName once bound, else
    the metadata.name In [node] field requirement its controller gave it."""
    if pod.spec.node_name:
        return pod.spec.node_name
    for term in _required_terms(pod.spec) or ():
        for req in term.match_fields:
            if req.key == NAME_FIELD and req.operator == "In":
                return req.values[0] if len(req.values) == 1 else None
    return None


def pin_to_node(spec: core_pb2.PodSpec, node_name: str) -> None:
    """ReplaceDaemonSetPodNodeNameNodeAffinity: the required terms become one matchFields
    term naming the node; preferred terms and other affinities are kept."""
    required = spec.affinity.node_affinity.required_during_scheduling_ignored_during_execution
    del required.node_selector_terms[:]
    term = required.node_selector_terms.add()
    term.match_fields.add(key=NAME_FIELD, operator="In", values=[node_name])
