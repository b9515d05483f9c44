"""`kemuctl describe hpa`, laid out as kubectl's describer for autoscaling/v2: each metric
as `current / target`, the behavior when one is set, the target's pod counts and the
conditions with their messages, which are where the controller says why it does not
scale."""

from __future__ import annotations

from typing import Any

from kemu.cli.ctl.age import rfc1123z
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.describe_base import Writer, annotations_multiline, labels_multiline
from kemu.cli.ctl.rows_autoscaling import UNKNOWN


def _metric_line(w: Writer, spec: Any, status: Any | None) -> None:
    name, target = spec.resource.name, spec.resource.target
    current = status.resource.current if status is not None and \
        status.HasField("resource") else None
    if target.average_value:
        now = current.average_value if current is not None and current.average_value \
            else UNKNOWN
        w.line(1, f"resource {name} on pods:", f"{now} / {target.average_value}")
        return
    now = f"{current.average_utilization}% ({current.average_value})" \
        if current is not None and current.HasField("average_utilization") else UNKNOWN
    want = f"{target.average_utilization}%" if target.HasField("average_utilization") \
        else "<auto>"
    w.line(1, f"resource {name} on pods  (as a percentage of request):", f"{now} / {want}")


def _direction(w: Writer, title: str, rules: Any) -> None:
    w.write(1, f"{title}:\n")
    if rules.HasField("stabilization_window_seconds"):
        w.write(2, f"Stabilization Window: {rules.stabilization_window_seconds} seconds\n")
    if rules.policies:
        w.write(2, f"Select Policy: {rules.select_policy or 'Max'}\n")
        w.write(2, "Policies:\n")
        for p in rules.policies:
            w.line(3, f"- Type: {p.type}", f"Value: {p.value}",
                   f"Period: {p.period_seconds} seconds")


def describe_hpa(w: Writer, ctx: Ctx, hpa: Any, now: float) -> None:
    meta, spec, st = hpa.metadata, hpa.spec, hpa.status
    w.line(0, "Name:", meta.name)
    w.line(0, "Namespace:", meta.namespace)
    labels_multiline(w, "Labels", meta.labels)
    annotations_multiline(w, "Annotations", meta.annotations)
    w.line(0, "CreationTimestamp:", rfc1123z(meta.creation_timestamp))
    w.line(0, "Reference:", f"{spec.scale_target_ref.kind}/{spec.scale_target_ref.name}")
    w.line(0, "Metrics:", "( current / target )")
    for i, metric in enumerate(spec.metrics):
        _metric_line(w, metric, st.current_metrics[i] if i < len(st.current_metrics) else None)
    w.line(0, "Min replicas:",
           spec.min_replicas if spec.HasField("min_replicas") else "<unset>")
    w.line(0, "Max replicas:", spec.max_replicas)
    if spec.HasField("behavior"):
        w.write(0, "Behavior:\n")
        if spec.behavior.HasField("scale_up"):
            _direction(w, "Scale Up", spec.behavior.scale_up)
        if spec.behavior.HasField("scale_down"):
            _direction(w, "Scale Down", spec.behavior.scale_down)
    w.line(0, f"{spec.scale_target_ref.kind} pods:",
           f"{st.current_replicas} current / {st.desired_replicas} desired")
    if st.conditions:
        w.write(0, "Conditions:\n")
        w.line(1, "Type", "Status", "Reason", "Message")
        w.line(1, "----", "------", "------", "-------")
        for c in st.conditions:
            w.line(1, c.type, c.status, c.reason, c.message)
