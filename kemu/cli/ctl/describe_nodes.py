"""`kemuctl describe node`: kubectl's layout, section by section: identity, taints,
Lease (from kube-node-lease), Conditions, Addresses, Capacity and Allocatable, System Info,
pod CIDRs, the non-terminated pods with their requests and limits as shares of the node,
and the allocated totals. A node agent operator reads this to answer "why is nothing
scheduled here", so the arithmetic is kubectl's exactly (see `noderesources`)."""

from __future__ import annotations

from typing import Any

from kemu.cli.ctl import noderesources as nr
from kemu.cli.ctl.age import rfc1123z, seconds_of, since
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.describe_base import Writer, annotations_multiline, labels_multiline
from kemu.cli.ctl.rows_core import node_roles
from kemu.client.errors import NotFound

LEASE_NAMESPACE = "kube-node-lease"


def _time(ts: Any) -> str:
    return rfc1123z(ts) if seconds_of(ts) is not None else "<unset>"


def node_pods(ctx: Ctx, name: str) -> list[Any]:
    """The pods bound to the node that have not finished (kubectl's field selector)."""
    listed = ctx.client.list("pods", "", field_selector=f"spec.nodeName={name},"
                             "status.phase!=Succeeded,status.phase!=Failed").items
    return [o.pod for o in listed]


def node_lease(ctx: Ctx, name: str) -> Any | None:
    try:
        return ctx.client.get("leases", name, LEASE_NAMESPACE).lease
    except NotFound:
        return None


def taints(w: Writer, node: Any) -> None:
    if not node.spec.taints:
        w.line(0, "Taints:", "<none>")
        return
    for i, t in enumerate(node.spec.taints):
        text = f"{t.key}={t.value}:{t.effect}" if t.value else f"{t.key}:{t.effect}"
        w.line(0, "Taints:" if i == 0 else "", text)


def lease_section(w: Writer, lease: Any | None) -> None:
    w.write(0, "Lease:\n")
    holder = "<unset>"
    if lease is not None and lease.spec.HasField("holder_identity"):
        holder = lease.spec.holder_identity
    w.line(1, "HolderIdentity:", holder)
    w.line(1, "AcquireTime:", _time(lease.spec.acquire_time) if lease is not None else "<unset>")
    w.line(1, "RenewTime:", _time(lease.spec.renew_time) if lease is not None else "<unset>")


def conditions(w: Writer, node: Any) -> None:
    if not node.status.conditions:
        return
    w.write(0, "Conditions:\n")
    w.line(1, "Type", "Status", "LastHeartbeatTime", "LastTransitionTime", "Reason", "Message")
    w.line(1, "----", "------", "-----------------", "------------------", "------", "-------")
    for c in node.status.conditions:
        # kubectl's format string puts a space after every cell but the last.
        w.line(1, f"{c.type} ", f"{c.status} ", f"{_time(c.last_heartbeat_time)} ",
               f"{_time(c.last_transition_time)} ", f"{c.reason} ", c.message)


def resource_list(w: Writer, title: str, values: Any) -> None:
    if not values:
        return
    w.write(0, f"{title}:\n")
    for key in sorted(values):
        amount = nr.parse_list({key: values[key]}).get(key)
        w.line(1, f"{key}:", str(amount) if amount is not None else values[key])


def system_info(w: Writer, info: Any) -> None:
    w.write(0, "System Info:\n")
    for label, value in (("Machine ID", info.machine_id), ("System UUID", info.system_uuid),
                         ("Boot ID", info.boot_id), ("Kernel Version", info.kernel_version),
                         ("OS Image", info.os_image),
                         ("Operating System", info.operating_system),
                         ("Architecture", info.architecture),
                         ("Container Runtime Version", info.container_runtime_version),
                         ("Kubelet Version", info.kubelet_version),
                         ("Kube-Proxy Version", info.kube_proxy_version)):
        w.line(1, f"{label}:", value)


def pods_table(w: Writer, node: Any, pods: list[Any], now: float) -> None:
    allocatable = nr.node_allocatable(node.status)
    w.line(0, "Non-terminated Pods:", f"({len(pods)} in total)")
    # The empty cell after Name is kubectl's: it widens the gap before CPU Requests.
    w.line(1, "Namespace", "Name", "", "CPU Requests", "CPU Limits", "Memory Requests",
           "Memory Limits", "Age")
    w.line(1, "---------", "----", "", "------------", "----------", "---------------",
           "-------------", "---")
    for pod in pods:
        req, lim = nr.pod_requests_and_limits(pod.spec)
        w.line(1, pod.metadata.namespace, pod.metadata.name, "",
               nr.cell(nr.CPU, req.get(nr.CPU), allocatable),
               nr.cell(nr.CPU, lim.get(nr.CPU), allocatable),
               nr.cell(nr.MEMORY, req.get(nr.MEMORY), allocatable),
               nr.cell(nr.MEMORY, lim.get(nr.MEMORY), allocatable),
               since(pod.metadata.creation_timestamp, now))


def allocated(w: Writer, node: Any, pods: list[Any]) -> None:
    allocatable = nr.node_allocatable(node.status)
    requests, limits = nr.total_requests_and_limits(p.spec for p in pods)
    w.write(0, "Allocated resources:\n")
    w.write(1, "(Total limits may be over 100 percent, i.e., overcommitted.)\n")
    w.line(1, "Resource", "Requests", "Limits")
    w.line(1, "--------", "--------", "------")
    huge, extended = nr.extended_resources(allocatable)
    for name in (nr.CPU, nr.MEMORY, nr.EPHEMERAL, *huge):
        w.line(1, name, nr.cell(name, requests.get(name), allocatable),
               nr.cell(name, limits.get(name), allocatable))
    for name in extended:
        w.line(1, name, str(requests.get(name, nr.ZERO)), str(limits.get(name, nr.ZERO)))


def describe_node(w: Writer, ctx: Ctx, node: Any, now: float) -> None:
    render_node(w, node, node_lease(ctx, node.metadata.name),
                node_pods(ctx, node.metadata.name), now)


def render_node(w: Writer, node: Any, lease: Any | None, pods: list[Any], now: float) -> None:
    """The description from what was fetched (pure: the unit tests call it directly)."""
    meta, spec, st = node.metadata, node.spec, node.status
    w.line(0, "Name:", meta.name)
    w.line(0, "Roles:", node_roles(node))
    labels_multiline(w, "Labels", meta.labels)
    annotations_multiline(w, "Annotations", meta.annotations)
    w.line(0, "CreationTimestamp:", _time(meta.creation_timestamp))
    taints(w, node)
    w.line(0, "Unschedulable:", str(spec.unschedulable).lower())
    lease_section(w, lease)
    conditions(w, node)
    w.write(0, "Addresses:\n")
    for a in st.addresses:
        w.line(1, f"{a.type}:", a.address)
    resource_list(w, "Capacity", st.capacity)
    resource_list(w, "Allocatable", st.allocatable)
    system_info(w, st.node_info)
    if spec.pod_cidr:
        w.line(0, "PodCIDR:", spec.pod_cidr)
    if spec.pod_cidrs:
        w.line(0, "PodCIDRs:", ",".join(spec.pod_cidrs))
    if spec.provider_id:
        w.line(0, "ProviderID:", spec.provider_id)
    pods_table(w, node, pods, now)
    allocated(w, node, pods)
