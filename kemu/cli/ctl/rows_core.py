"""Table rows of the core kinds that are not about networking or workloads: pods, nodes,
namespaces, configmaps, secrets, events, persistentvolumeclaims and leases."""

from __future__ import annotations

from typing import Any

from kemu.cli.ctl.age import seconds_of, since
from kemu.cli.ctl.columns import NONE, Columns, age
from kemu.cli.ctl.podstatus import pod_cells, readiness_gates


def pod_row(pod: Any, now: float, wide: bool) -> list[str]:
    cells = pod_cells(pod, now)
    row = [pod.metadata.name, cells.ready, cells.status, cells.restarts, age(pod, now)]
    if wide:
        row += [pod.status.pod_ip or NONE, pod.spec.node_name or NONE,
                pod.status.nominated_node_name or NONE, readiness_gates(pod)]
    return row


ROLE_PREFIX = "node-role.kubernetes.io/"


def node_roles(node: Any) -> str:
    roles: set[str] = set()
    for key, value in node.metadata.labels.items():
        if key.startswith(ROLE_PREFIX) and key[len(ROLE_PREFIX):]:
            roles.add(key[len(ROLE_PREFIX):])
        elif key == "kubernetes.io/role" and value:
            roles.add(value)
    return ",".join(sorted(roles)) or NONE


def node_status(node: Any) -> str:
    states = [("Ready" if c.status == "True" else "NotReady")
              for c in node.status.conditions if c.type == "Ready"][:1] or ["Unknown"]
    if node.spec.unschedulable:
        states.append("SchedulingDisabled")
    return ",".join(states)


def node_address(node: Any, kind: str) -> str:
    return next((a.address for a in node.status.addresses if a.type == kind), NONE)


def node_row(node: Any, now: float, wide: bool) -> list[str]:
    info = node.status.node_info
    row = [node.metadata.name, node_status(node), node_roles(node), age(node, now),
           info.kubelet_version]
    if wide:
        row += [node_address(node, "InternalIP"), node_address(node, "ExternalIP"),
                info.os_image or "<unknown>", info.kernel_version or "<unknown>",
                info.container_runtime_version or "<unknown>"]
    return row


def namespace_row(ns: Any, now: float, wide: bool) -> list[str]:
    return [ns.metadata.name, ns.status.phase, age(ns, now)]


def configmap_row(cm: Any, now: float, wide: bool) -> list[str]:
    return [cm.metadata.name, str(len(cm.data) + len(cm.binary_data)), age(cm, now)]


def secret_row(secret: Any, now: float, wide: bool) -> list[str]:
    keys = set(secret.data) | set(secret.string_data)
    return [secret.metadata.name, secret.type or "Opaque", str(len(keys)), age(secret, now)]


def event_times(event: Any, now: float) -> tuple[str, str, int]:
    """LAST SEEN (with `(x3 over 10m)` for repeats), FIRST SEEN and the count."""
    first_ts = event.first_timestamp if seconds_of(event.first_timestamp) is not None \
        else event.event_time
    first = since(first_ts, now)
    last = since(event.last_timestamp, now) if seconds_of(event.last_timestamp) is not None \
        else first
    count = event.count
    if event.HasField("series"):
        last = since(event.series.last_observed_time, now)
        count = event.series.count
    elif count == 0:
        count = 1
    if count > 1:
        last = f"{last} (x{count} over {first})"
    return last, first, count


def event_object(event: Any) -> str:
    ref = event.involved_object
    kind = ref.kind.lower()
    return f"{kind}/{ref.name}" if ref.name else kind


def event_row(event: Any, now: float, wide: bool) -> list[str]:
    last, first, count = event_times(event, now)
    message = event.message.strip()
    if not wide:
        return [last, event.type, event.reason, event_object(event), message]
    source = event.source.component or event.reporting_component
    host = event.source.host or event.reporting_instance
    if source and host:
        source = f"{source}, {host}"
    return [last, event.type, event.reason, event_object(event),
            event.involved_object.field_path, source, message, first, str(count),
            event.metadata.name]


ACCESS_MODES = {"ReadWriteOnce": "RWO", "ReadOnlyMany": "ROX", "ReadWriteMany": "RWX",
                "ReadWriteOncePod": "RWOP"}


def access_modes(modes: Any) -> str:
    return ",".join(ACCESS_MODES.get(m, m) for m in modes)


def pvc_row(pvc: Any, now: float, wide: bool) -> list[str]:
    phase = "Terminating" if pvc.metadata.HasField("deletion_timestamp") else pvc.status.phase
    capacity = modes = ""
    if pvc.spec.volume_name:
        modes = access_modes(pvc.status.access_modes)
        capacity = pvc.status.capacity.get("storage", "")
    storage_class = pvc.spec.storage_class_name if pvc.spec.HasField("storage_class_name") \
        else pvc.metadata.annotations.get("volume.beta.kubernetes.io/storage-class", "")
    row = [pvc.metadata.name, phase, pvc.spec.volume_name, capacity, modes,
           storage_class or NONE, age(pvc, now)]
    if wide:
        row.append(pvc.spec.volume_mode if pvc.spec.HasField("volume_mode") else "<unset>")
    return row


def lease_row(lease: Any, now: float, wide: bool) -> list[str]:
    return [lease.metadata.name, lease.spec.holder_identity, age(lease, now)]


COLUMNS: dict[str, Columns] = {
    "pods": Columns(("NAME", "READY", "STATUS", "RESTARTS", "AGE"), pod_row,
                    ("IP", "NODE", "NOMINATED NODE", "READINESS GATES")),
    "nodes": Columns(("NAME", "STATUS", "ROLES", "AGE", "VERSION"), node_row,
                     ("INTERNAL-IP", "EXTERNAL-IP", "OS-IMAGE", "KERNEL-VERSION",
                      "CONTAINER-RUNTIME")),
    "namespaces": Columns(("NAME", "STATUS", "AGE"), namespace_row),
    "configmaps": Columns(("NAME", "DATA", "AGE"), configmap_row),
    "secrets": Columns(("NAME", "TYPE", "DATA", "AGE"), secret_row),
    "events": Columns(("LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"), event_row,
                      ("LAST SEEN", "TYPE", "REASON", "OBJECT", "SUBOBJECT", "SOURCE",
                       "MESSAGE", "FIRST SEEN", "COUNT", "NAME"), wide_replaces=True),
    "persistentvolumeclaims": Columns(("NAME", "STATUS", "VOLUME", "CAPACITY", "ACCESS MODES",
                                       "STORAGECLASS", "AGE"), pvc_row, ("VOLUMEMODE",)),
    "leases": Columns(("NAME", "HOLDER", "AGE"), lease_row),
}
