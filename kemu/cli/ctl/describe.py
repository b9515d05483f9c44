"""`describe` for one object: the kind's describer (or a generic one printing the whole
object in kubectl's Title Case layout), followed by the Events about that object."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import describe_autoscaling, describe_core, describe_rbac, describe_workloads
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.describe_base import Writer, events_section, header
from kemu.cli.ctl.describe_nodes import describe_node
from kemu.cli.ctl.describe_pods import describe_pod
from kemu.client.errors import ClientError

Describer = Callable[[Writer, Ctx, Any, float], None]

DESCRIBERS: dict[str, Describer] = {
    "pods": lambda w, ctx, pod, now: describe_pod(w, pod, now),
    "deployments": describe_workloads.describe_deployment,
    "replicasets": describe_workloads.describe_replicaset,
    "replicationcontrollers": describe_workloads.describe_replicaset,
    "statefulsets": describe_workloads.describe_statefulset,
    "daemonsets": describe_workloads.describe_daemonset,
    "jobs": describe_workloads.describe_job,
    "cronjobs": describe_workloads.describe_cronjob,
    "services": describe_core.describe_service,
    "endpoints": describe_core.describe_endpoints,
    "nodes": describe_node,
    "namespaces": describe_core.describe_namespace,
    "configmaps": describe_core.describe_configmap,
    "secrets": describe_core.describe_secret,
    "horizontalpodautoscalers": describe_autoscaling.describe_hpa,
    "roles": describe_rbac.describe_role,
    "clusterroles": describe_rbac.describe_role,
    "rolebindings": describe_rbac.describe_binding,
    "clusterrolebindings": describe_rbac.describe_binding,
}
# Kinds whose kubectl describer prints no Events section.
NO_EVENTS = frozenset({"roles", "clusterroles", "rolebindings", "clusterrolebindings"})
ACRONYMS = frozenset({"API", "URL", "UID", "OSB", "GUID", "IP", "IPS", "CIDR", "CIDRS", "ID"})
_WORDS = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+|\d+")


def smart_label(field: str) -> str:
    """`creationTimestamp` -> `Creation Timestamp`, `apiVersion` -> `API Version`."""
    if any(not (ch.isalpha() or ch == "-") for ch in field):
        return field
    words = _WORDS.findall(field)
    return " ".join(w.upper() if w.upper() in ACRONYMS else w[:1].upper() + w[1:]
                    for w in words) or field


def unstructured(w: Writer, level: int, content: dict[str, Any], path: str = "",
                 skip: frozenset[str] = frozenset()) -> None:
    """kubectl's printUnstructuredContent: sorted keys, maps and lists nested by level."""
    for key in sorted(content):
        value = content[key]
        here = f"{path}.{key}"
        if here in skip:
            continue
        if isinstance(value, dict):
            w.write(level, f"{smart_label(key)}:\n")
            unstructured(w, level + 1, value, here, skip)
        elif isinstance(value, list):
            w.write(level, f"{smart_label(key)}:\n")
            for item in value:
                if isinstance(item, dict):
                    unstructured(w, level + 1, item, here, skip)
                else:
                    w.write(level + 1, f"{item}\n")
        else:
            w.line(level, f"{smart_label(key)}:", value)


GENERIC_SKIP = frozenset({".metadata.name", ".metadata.namespace", ".metadata.labels",
                          ".metadata.annotations"})


def describe_generic(w: Writer, obj: api_pb2.Object) -> None:
    kind = objects.kind_of(obj)
    header(w, objects.meta(obj), namespaced=kind.namespaced)
    unstructured(w, 0, objects.to_dict(obj), "", GENERIC_SKIP)


def events_for(ctx: Ctx, obj: api_pb2.Object) -> list[api_pb2.Object]:
    """Events whose involvedObject is this object (by kind, name and uid). Node events
    from a node agent carry the node's name as the uid, as the kubelet's do."""
    kind, meta = objects.kind_of(obj), objects.meta(obj)
    uids = {"", meta.uid, meta.name} if kind.kind == "Node" else {"", meta.uid}
    try:
        listed = ctx.client.list("events", meta.namespace if kind.namespaced else "",
                                 field_selector=f"involvedObject.name={meta.name}").items
    except ClientError:
        return []
    return [e for e in listed
            if e.event.involved_object.kind == kind.kind
            and e.event.involved_object.uid in uids]


def describe(ctx: Ctx, obj: api_pb2.Object, *, show_events: bool = True) -> str:
    kind = objects.kind_of(obj)
    w = Writer()
    now = ctx.now()
    describer = DESCRIBERS.get(kind.plural)
    if describer is None:
        describe_generic(w, obj)
    else:
        describer(w, ctx, objects.unwrap(obj), now)
    if show_events and kind.plural not in NO_EVENTS:
        events_section(w, events_for(ctx, obj), now)
    return w.text()
