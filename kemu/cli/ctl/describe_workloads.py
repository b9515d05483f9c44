"""describe for workloads: deployments (replicas line, strategy, rolling-update limits,
pod template, conditions, old and new replica sets), replicasets and replication
controllers (pods status), statefulsets, daemonsets, jobs and cronjobs."""

from __future__ import annotations

from collections import Counter
from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl.age import rfc1123z, seconds_of
from kemu.cli.ctl.columns import format_labels, map_selector, selector_string
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.describe_base import (
    Writer,
    annotations_multiline,
    controlled_by,
    header,
    labels_multiline,
)
from kemu.cli.ctl.describe_pods import pod_template
from kemu.cli.ctl.rows_workloads import job_duration


def _replicas(spec: Any) -> int:
    return int(spec.replicas) if spec.HasField("replicas") else 1


def _intstr(value: Any, default: str) -> str:
    which = value.WhichOneof("kind")
    if which == "number_value":
        return str(int(value.number_value))
    if which == "string_value":
        return str(value.string_value)
    return default


def _conditions(w: Writer, conditions: Any) -> None:
    if not conditions:
        return
    w.write(0, "Conditions:\n")
    w.line(1, "Type", "Status", "Reason")
    w.line(1, "----", "------", "------")
    for c in conditions:
        w.line(1, f"{c.type} ", c.status, c.reason)


def _owned(ctx: Ctx, resource: str, namespace: str, uid: str) -> list[api_pb2.Object]:
    items = ctx.client.list(resource, namespace).items
    return [o for o in items if any(r.uid == uid for r in objects.meta(o).owner_references)]


def _revision(rs: Any) -> int:
    text = rs.metadata.annotations.get("deployment.kubernetes.io/revision", "0")
    return int(text) if text.isdigit() else 0


def _replica_sets(sets: list[Any]) -> str:
    if not sets:
        return "<none>"
    return ", ".join(f"{rs.metadata.name} ({rs.status.replicas}/{_replicas(rs.spec)} replicas "
                     "created)" for rs in sets)


def describe_deployment(w: Writer, ctx: Ctx, d: Any, now: float) -> None:
    meta, spec, st = d.metadata, d.spec, d.status
    w.line(0, "Name:", meta.name)
    w.line(0, "Namespace:", meta.namespace)
    w.line(0, "CreationTimestamp:", rfc1123z(meta.creation_timestamp))
    header_rest(w, meta)
    w.line(0, "Selector:", selector_string(spec.selector))
    w.line(0, "Replicas:", f"{_replicas(spec)} desired | {st.updated_replicas} updated | "
                           f"{st.replicas} total | {st.available_replicas} available | "
                           f"{st.unavailable_replicas} unavailable")
    w.line(0, "StrategyType:", spec.strategy.type)
    w.line(0, "MinReadySeconds:", spec.min_ready_seconds)
    if spec.strategy.HasField("rolling_update"):
        ru = spec.strategy.rolling_update
        w.line(0, "RollingUpdateStrategy:", f"{_intstr(ru.max_unavailable, '25%')} max "
               f"unavailable, {_intstr(ru.max_surge, '25%')} max surge")
    pod_template(w, spec.template)
    _conditions(w, st.conditions)
    owned = [o.replica_set for o in _owned(ctx, "replicasets", meta.namespace, meta.uid)]
    newest = max(owned, key=_revision, default=None)
    w.line(0, "OldReplicaSets:", _replica_sets([rs for rs in owned if rs is not newest]))
    w.line(0, "NewReplicaSet:", _replica_sets([newest] if newest is not None else []))


def header_rest(w: Writer, meta: Any) -> None:
    """Labels and Annotations, for describers that print Name/Namespace themselves."""
    labels_multiline(w, "Labels", meta.labels)
    annotations_multiline(w, "Annotations", meta.annotations)


def pods_status(ctx: Ctx, namespace: str, uid: str) -> str:
    pods = [o.pod for o in _owned(ctx, "pods", namespace, uid)]
    phases = Counter(p.status.phase for p in pods)
    return (f"{phases['Running']} Running / {phases['Pending']} Waiting / "
            f"{phases['Succeeded']} Succeeded / {phases['Failed']} Failed")


def describe_replicaset(w: Writer, ctx: Ctx, rs: Any, now: float) -> None:
    meta = rs.metadata
    w.line(0, "Name:", meta.name)
    w.line(0, "Namespace:", meta.namespace)
    legacy = rs.DESCRIPTOR.name == "ReplicationController"  # an equality-only selector map
    w.line(0, "Selector:", map_selector(rs.spec.selector) if legacy
           else selector_string(rs.spec.selector))
    header_rest(w, meta)
    controlled_by(w, meta)
    w.line(0, "Replicas:", f"{rs.status.replicas} current / {_replicas(rs.spec)} desired")
    w.line(0, "Pods Status:", pods_status(ctx, meta.namespace, meta.uid))
    pod_template(w, rs.spec.template)
    _conditions(w, rs.status.conditions)


def describe_statefulset(w: Writer, ctx: Ctx, sts: Any, now: float) -> None:
    meta, spec = sts.metadata, sts.spec
    w.line(0, "Name:", meta.name)
    w.line(0, "Namespace:", meta.namespace)
    w.line(0, "CreationTimestamp:", rfc1123z(meta.creation_timestamp))
    w.line(0, "Selector:", selector_string(spec.selector))
    header_rest(w, meta)
    w.line(0, "Replicas:", f"{_replicas(spec)} desired | {sts.status.replicas} total")
    w.line(0, "Update Strategy:", spec.update_strategy.type or "RollingUpdate")
    if spec.update_strategy.rolling_update.HasField("partition"):
        w.line(1, "Partition:", spec.update_strategy.rolling_update.partition)
    w.line(0, "Pods Status:", pods_status(ctx, meta.namespace, meta.uid))
    pod_template(w, spec.template)
    if spec.volume_claim_templates:
        w.write(0, "Volume Claims:\n")
        for claim in spec.volume_claim_templates:
            w.line(1, "Name:", claim.metadata.name)
            w.line(1, "StorageClass:", claim.spec.storage_class_name)
            w.line(1, "Capacity:", claim.spec.resources.requests.get("storage", ""))
            w.line(1, "Access Modes:", ", ".join(claim.spec.access_modes))
    else:
        w.line(0, "Volume Claims:", "<none>")


def describe_daemonset(w: Writer, ctx: Ctx, ds: Any, now: float) -> None:
    meta, spec, st = ds.metadata, ds.spec, ds.status
    w.line(0, "Name:", meta.name)
    w.line(0, "Selector:", selector_string(spec.selector))
    w.line(0, "Node-Selector:", format_labels(spec.template.spec.node_selector))
    header_rest(w, meta)
    w.line(0, "Desired Number of Nodes Scheduled:", st.desired_number_scheduled)
    w.line(0, "Current Number of Nodes Scheduled:", st.current_number_scheduled)
    w.line(0, "Number of Nodes Scheduled with Up-to-date Pods:", st.updated_number_scheduled)
    w.line(0, "Number of Nodes Scheduled with Available Pods:", st.number_available)
    w.line(0, "Number of Nodes Misscheduled:", st.number_misscheduled)
    w.line(0, "Pods Status:", pods_status(ctx, meta.namespace, meta.uid))
    pod_template(w, spec.template)


def describe_job(w: Writer, ctx: Ctx, job: Any, now: float) -> None:
    meta, spec, st = job.metadata, job.spec, job.status
    w.line(0, "Name:", meta.name)
    w.line(0, "Namespace:", meta.namespace)
    w.line(0, "Selector:", selector_string(spec.selector))
    header_rest(w, meta)
    controlled_by(w, meta)
    w.line(0, "Parallelism:", spec.parallelism if spec.HasField("parallelism") else 1)
    w.line(0, "Completions:", spec.completions if spec.HasField("completions") else "<unset>")
    w.line(0, "Completion Mode:", spec.completion_mode if spec.HasField("completion_mode")
           else "NonIndexed")
    w.line(0, "Suspend:", str(spec.HasField("suspend") and spec.suspend).lower())
    w.line(0, "Backoff Limit:", spec.backoff_limit if spec.HasField("backoff_limit") else 6)
    if seconds_of(st.start_time) is not None:
        w.line(0, "Start Time:", rfc1123z(st.start_time))
    if seconds_of(st.completion_time) is not None:
        w.line(0, "Completed At:", rfc1123z(st.completion_time))
    if seconds_of(st.start_time) is not None:
        w.line(0, "Duration:", job_duration(job, now))
    w.line(0, "Pods Statuses:", f"{st.active} Active ({st.ready if st.HasField('ready') else 0}"
                                f" Ready) / {st.succeeded} Succeeded / {st.failed} Failed")
    pod_template(w, spec.template)


def describe_cronjob(w: Writer, ctx: Ctx, cj: Any, now: float) -> None:
    meta, spec = cj.metadata, cj.spec
    header(w, meta)
    w.line(0, "Schedule:", spec.schedule)
    w.line(0, "Concurrency Policy:", spec.concurrency_policy or "Allow")
    w.line(0, "Suspend:", "True" if spec.HasField("suspend") and spec.suspend else "False")
    w.line(0, "Successful Job History Limit:", spec.successful_jobs_history_limit
           if spec.HasField("successful_jobs_history_limit") else 3)
    w.line(0, "Failed Job History Limit:", spec.failed_jobs_history_limit
           if spec.HasField("failed_jobs_history_limit") else 1)
    w.line(0, "Starting Deadline Seconds:", f"{spec.starting_deadline_seconds}s"
           if spec.HasField("starting_deadline_seconds") else "<unset>")
    w.line(0, "Selector:", selector_string(spec.job_template.spec.selector) or "<unset>")
    job = spec.job_template.spec
    w.line(0, "Parallelism:", job.parallelism if job.HasField("parallelism") else "<unset>")
    w.line(0, "Completions:", job.completions if job.HasField("completions") else "<unset>")
    pod_template(w, job.template)
    last = cj.status.last_schedule_time
    w.line(0, "Last Schedule Time:", rfc1123z(last) if seconds_of(last) is not None
           else "<unset>")
    active = ", ".join(r.name for r in cj.status.active)
    w.line(0, "Active Jobs:", active or "<none>")
