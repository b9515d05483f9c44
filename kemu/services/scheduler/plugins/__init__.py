"""The in-tree plugins and the registry that wires them: a plain dict, name -> factory,
and the default profile (filter order and score weights, after kube-scheduler's defaults:
TaintToleration 3, NodeAffinity 2, spreading 2, NodeResourcesFit 1).

Filters run in profile order and a node's first rejection is the one reported, so cheap,
decisive checks (cordon, readiness) come first, as in kube-scheduler.
"""

from __future__ import annotations

from kemu.services.scheduler.framework import Profile, Registry
from kemu.services.scheduler.plugins import (
    node_affinity,
    node_name,
    node_ports,
    node_ready,
    node_resources_fit,
    node_unschedulable,
    selector_spread,
    taint_toleration,
)

REGISTRY: Registry = {
    node_unschedulable.NAME: node_unschedulable.NodeUnschedulable,
    node_name.NAME: node_name.NodeName,
    node_ready.NAME: node_ready.NodeReady,
    taint_toleration.NAME: taint_toleration.TaintToleration,
    node_affinity.NAME: node_affinity.NodeAffinity,
    node_ports.NAME: node_ports.NodePorts,
    node_resources_fit.NAME: node_resources_fit.NodeResourcesFit,
    selector_spread.NAME: selector_spread.SelectorSpread,
}

DEFAULT_PROFILE = Profile(
    filters=(
        node_unschedulable.NAME,
        node_name.NAME,
        node_ready.NAME,
        taint_toleration.NAME,
        node_affinity.NAME,
        node_ports.NAME,
        node_resources_fit.NAME,
    ),
    scores=(
        (taint_toleration.NAME, 3),
        (node_affinity.NAME, 2),
        (selector_spread.NAME, 2),
        (node_resources_fit.NAME, 1),
    ),
)
