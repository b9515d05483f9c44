"""Table rows of the workload kinds: deployments, replicasets, replicationcontrollers,
daemonsets, statefulsets, jobs and cronjobs (READY as ready/desired, Job STATUS and
COMPLETIONS, CronJob SUSPEND and LAST SCHEDULE as kubectl prints them)."""

from __future__ import annotations

from typing import Any

from kemu.cli.ctl.age import human_duration, seconds_of, since
from kemu.cli.ctl.columns import (
    NONE,
    Columns,
    age,
    containers_images,
    format_labels,
    map_selector,
    selector_string,
)


def _replicas(spec: Any) -> int:
    return int(spec.replicas) if spec.HasField("replicas") else 1


def deployment_row(d: Any, now: float, wide: bool) -> list[str]:
    st = d.status
    row = [d.metadata.name, f"{st.ready_replicas}/{_replicas(d.spec)}", str(st.updated_replicas),
           str(st.available_replicas), age(d, now)]
    if wide:
        row += [*containers_images(d.spec.template.spec.containers),
                selector_string(d.spec.selector)]
    return row


def replicaset_row(rs: Any, now: float, wide: bool) -> list[str]:
    row = [rs.metadata.name, str(_replicas(rs.spec)), str(rs.status.replicas),
           str(rs.status.ready_replicas), age(rs, now)]
    if wide:
        row += [*containers_images(rs.spec.template.spec.containers),
                selector_string(rs.spec.selector)]
    return row


def replicationcontroller_row(rc: Any, now: float, wide: bool) -> list[str]:
    row = [rc.metadata.name, str(_replicas(rc.spec)), str(rc.status.replicas),
           str(rc.status.ready_replicas), age(rc, now)]
    if wide:
        row += [*containers_images(rc.spec.template.spec.containers),
                map_selector(rc.spec.selector)]
    return row


def daemonset_row(ds: Any, now: float, wide: bool) -> list[str]:
    st = ds.status
    row = [ds.metadata.name, str(st.desired_number_scheduled), str(st.current_number_scheduled),
           str(st.number_ready), str(st.updated_number_scheduled), str(st.number_available),
           format_labels(ds.spec.template.spec.node_selector), age(ds, now)]
    if wide:
        row += [*containers_images(ds.spec.template.spec.containers),
                selector_string(ds.spec.selector)]
    return row


def statefulset_row(sts: Any, now: float, wide: bool) -> list[str]:
    row = [sts.metadata.name, f"{sts.status.ready_replicas}/{_replicas(sts.spec)}",
           age(sts, now)]
    if wide:
        row += containers_images(sts.spec.template.spec.containers)
    return row


def _has_condition(conditions: Any, kind: str) -> bool:
    return any(c.type == kind and c.status == "True" for c in conditions)


def job_status(job: Any) -> str:
    conditions = job.status.conditions
    if _has_condition(conditions, "Complete"):
        return "Complete"
    if _has_condition(conditions, "Failed"):
        return "Failed"
    if job.metadata.HasField("deletion_timestamp"):
        return "Terminating"
    if _has_condition(conditions, "Suspended"):
        return "Suspended"
    if _has_condition(conditions, "FailureTarget"):
        return "FailureTarget"
    if _has_condition(conditions, "SuccessCriteriaMet"):
        return "SuccessCriteriaMet"
    return "Running"


def job_completions(job: Any) -> str:
    succeeded = job.status.succeeded
    if job.spec.HasField("completions"):
        return f"{succeeded}/{job.spec.completions}"
    parallelism = job.spec.parallelism if job.spec.HasField("parallelism") else 0
    if parallelism > 1:
        return f"{succeeded}/1 of {parallelism}"
    return f"{succeeded}/1"


def job_duration(job: Any, now: float) -> str:
    start = seconds_of(job.status.start_time)
    if start is None:
        return ""
    end = seconds_of(job.status.completion_time)
    return human_duration((now if end is None else end) - start)


def job_row(job: Any, now: float, wide: bool) -> list[str]:
    row = [job.metadata.name, job_status(job), job_completions(job), job_duration(job, now),
           age(job, now)]
    if wide:
        row += [*containers_images(job.spec.template.spec.containers),
                selector_string(job.spec.selector)]
    return row


def _bool_ptr(msg: Any, name: str) -> str:
    if not msg.HasField(name):
        return "<unset>"
    return "True" if getattr(msg, name) else "False"


def cronjob_row(cj: Any, now: float, wide: bool) -> list[str]:
    spec = cj.spec
    last = since(cj.status.last_schedule_time, now) \
        if seconds_of(cj.status.last_schedule_time) is not None else NONE
    zone = spec.time_zone if spec.HasField("time_zone") else NONE
    row = [cj.metadata.name, spec.schedule, zone, _bool_ptr(spec, "suspend"),
           str(len(cj.status.active)), last, age(cj, now)]
    if wide:
        job_spec = spec.job_template.spec
        row += [*containers_images(job_spec.template.spec.containers),
                selector_string(job_spec.selector) or NONE]
    return row


_WIDE = ("CONTAINERS", "IMAGES", "SELECTOR")
COLUMNS: dict[str, Columns] = {
    "deployments": Columns(("NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"),
                           deployment_row, _WIDE),
    "replicasets": Columns(("NAME", "DESIRED", "CURRENT", "READY", "AGE"), replicaset_row, _WIDE),
    "replicationcontrollers": Columns(("NAME", "DESIRED", "CURRENT", "READY", "AGE"),
                                      replicationcontroller_row, _WIDE),
    "daemonsets": Columns(("NAME", "DESIRED", "CURRENT", "READY", "UP-TO-DATE", "AVAILABLE",
                           "NODE SELECTOR", "AGE"), daemonset_row, _WIDE),
    "statefulsets": Columns(("NAME", "READY", "AGE"), statefulset_row, ("CONTAINERS", "IMAGES")),
    "jobs": Columns(("NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"), job_row, _WIDE),
    "cronjobs": Columns(("NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST SCHEDULE",
                         "AGE"), cronjob_row, _WIDE),
}
