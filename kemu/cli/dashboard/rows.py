"""What the dashboard shows of each object: a small JSON-able dict per object, computed on
the server with kemuctl's own cell functions, so a pod's STATUS, a node's roles or a
Deployment's READY read exactly as `kemuctl get` prints them.

Times are sent as epoch seconds and turned into ages by the page (which re-renders them
every second without asking the server anything). Every string here is data for the page
to show as text; the page never parses it as HTML.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl.age import seconds_of
from kemu.cli.ctl.podstatus import pod_cells
from kemu.cli.ctl.rows_core import event_object, node_address, node_roles, node_status
from kemu.cli.ctl.rows_net import cluster_ip, external_ip, format_endpoints, service_ports
from kemu.cli.ctl.rows_workloads import job_completions, job_status

Row = dict[str, Any]
# At most this many endpoint addresses are listed per Service (then "+ N more...").
ENDPOINT_LIMIT = 20


def _meta(msg: Any) -> Row:
    m = msg.metadata
    return {"name": m.name, "namespace": m.namespace,
            "created": seconds_of(m.creation_timestamp),
            "labels": dict(sorted(m.labels.items())),
            "annotations": dict(sorted(m.annotations.items())),
            "deleting": m.HasField("deletion_timestamp")}


def _replicas(spec: Any) -> int:
    return int(spec.replicas) if spec.HasField("replicas") else 1


def node_row(node: Any, now: float) -> Row:
    return {**_meta(node), "status": node_status(node), "ready": node_status(node)
            .startswith("Ready"), "roles": node_roles(node),
            "internalIP": node_address(node, "InternalIP"),
            "podCIDR": node.spec.pod_cidr or "<none>",
            "version": node.status.node_info.kubelet_version,
            "runtime": node.status.node_info.container_runtime_version}


def namespace_row(ns: Any, now: float) -> Row:
    return {**_meta(ns), "status": ns.status.phase or "Active"}


def container_state(status: Any) -> str:
    """`Running`, `Waiting: ErrImagePull`, `Terminated: Completed (exit 0)`."""
    state = status.state
    if state.HasField("running"):
        return "Running"
    if state.HasField("terminated"):
        t = state.terminated
        return f"Terminated: {t.reason or 'Error'} (exit {t.exit_code})"
    if state.HasField("waiting"):
        return f"Waiting: {state.waiting.reason}" if state.waiting.reason else "Waiting"
    return "Unknown"


def pod_row(pod: Any, now: float) -> Row:
    cells = pod_cells(pod, now)
    phase = pod.status.phase or "Pending"
    return {**_meta(pod), "phase": phase, "status": cells.status or phase,
            "ready": cells.ready, "restarts": cells.restarts.split(" ", 1)[0],
            "node": pod.spec.node_name, "ip": pod.status.pod_ip,
            "containers": [c.name for c in pod.spec.containers],
            "containerStatuses": [{"name": cs.name, "image": cs.image, "ready": cs.ready,
                                   "restarts": cs.restart_count,
                                   "state": container_state(cs)}
                                  for cs in pod.status.container_statuses],
            "owner": next((f"{r.kind}/{r.name}" for r in pod.metadata.owner_references
                           if r.controller), "")}


def _workload(msg: Any, kind: str, ready: int, desired: int, **extra: Any) -> Row:
    return {**_meta(msg), "kind": kind, "ready": f"{ready}/{desired}",
            "complete": ready >= desired, **extra}


def deployment_row(d: Any, now: float) -> Row:
    st = d.status
    return _workload(d, "Deployment", st.ready_replicas, _replicas(d.spec),
                     detail=f"up-to-date {st.updated_replicas}, "
                            f"available {st.available_replicas}")


def replicaset_row(rs: Any, now: float) -> Row:
    return _workload(rs, "ReplicaSet", rs.status.ready_replicas, _replicas(rs.spec),
                     detail=f"current {rs.status.replicas}")


def daemonset_row(ds: Any, now: float) -> Row:
    st = ds.status
    return _workload(ds, "DaemonSet", st.number_ready, st.desired_number_scheduled,
                     detail=f"up-to-date {st.updated_number_scheduled}, "
                            f"available {st.number_available}")


def statefulset_row(sts: Any, now: float) -> Row:
    return _workload(sts, "StatefulSet", sts.status.ready_replicas, _replicas(sts.spec),
                     detail=f"current {sts.status.current_replicas}")


def job_row(job: Any, now: float) -> Row:
    status = job_status(job)
    completions = job_completions(job)
    done, _, total = completions.partition(" ")[0].partition("/")
    return {**_meta(job), "kind": "Job", "ready": completions,
            "complete": status == "Complete", "detail": status,
            "failed": status == "Failed", "done": done, "total": total}


def service_row(svc: Any, now: float) -> Row:
    return {**_meta(svc), "type": svc.spec.type or "ClusterIP", "clusterIP": cluster_ip(svc),
            "externalIP": external_ip(svc, True), "ports": service_ports(svc.spec.ports),
            "selector": dict(sorted(svc.spec.selector.items()))}


def endpoints_row(ep: Any, now: float) -> Row:
    return {**_meta(ep), "endpoints": format_endpoints(ep, limit=ENDPOINT_LIMIT)}


def event_row(event: Any, now: float) -> Row:
    first = seconds_of(event.first_timestamp) or seconds_of(event.event_time)
    last = seconds_of(event.last_timestamp) or first
    count = event.count or 1
    if event.HasField("series"):
        last = seconds_of(event.series.last_observed_time) or last
        count = event.series.count or count
    return {**_meta(event), "type": event.type, "reason": event.reason,
            "object": event_object(event), "message": event.message.strip(),
            "count": count, "firstSeen": first, "lastSeen": last,
            "source": event.source.component or event.reporting_component}


# The resources the dashboard watches, in the order the page lists them, with their rows.
ROWS: Mapping[str, Callable[[Any, float], Row]] = {
    "nodes": node_row,
    "namespaces": namespace_row,
    "deployments": deployment_row,
    "replicasets": replicaset_row,
    "daemonsets": daemonset_row,
    "statefulsets": statefulset_row,
    "jobs": job_row,
    "pods": pod_row,
    "services": service_row,
    "endpoints": endpoints_row,
    "events": event_row,
}


def row_of(resource: str, obj: api_pb2.Object, now: float) -> Row:
    """The row of one envelope object of `resource`, with its `key` (namespace/name)."""
    row = ROWS[resource](objects.unwrap(obj), now)
    row["key"] = f"{row['namespace']}/{row['name']}" if row["namespace"] else row["name"]
    return row
