"""Table rows of HorizontalPodAutoscalers, as `kubectl get hpa` prints them: REFERENCE as
`Deployment/web`, TARGETS as `cpu: 12%/50%` (`<unknown>` until the controller has read the
metric), MINPODS `<unset>` when the spec leaves it to the default."""

from __future__ import annotations

from typing import Any

from kemu.cli.ctl.columns import NONE, Columns, age

UNKNOWN = "<unknown>"
MAX_TARGETS = 2  # kubectl shows two metrics, then "+ N more..."


def _current(statuses: Any, i: int) -> Any | None:
    if i < len(statuses) and statuses[i].HasField("resource"):
        return statuses[i].resource.current
    return None


def format_targets(specs: Any, statuses: Any) -> str:
    """kubectl's formatHPAMetrics for the Resource metrics kemu serves."""
    if not specs:
        return NONE
    shown: list[str] = []
    for i, spec in enumerate(specs):
        if len(shown) == MAX_TARGETS:
            return f"{', '.join(shown)} + {len(specs) - i} more..."
        target = spec.resource.target
        current = _current(statuses, i)
        if target.average_value:
            now = current.average_value if current is not None and current.average_value \
                else UNKNOWN
            shown.append(f"{spec.resource.name}: {now}/{target.average_value}")
            continue
        now = f"{current.average_utilization}%" if current is not None and \
            current.HasField("average_utilization") else UNKNOWN
        want = f"{target.average_utilization}%" if target.HasField("average_utilization") \
            else "<auto>"
        shown.append(f"{spec.resource.name}: {now}/{want}")
    return ", ".join(shown)


def hpa_row(hpa: Any, now: float, wide: bool) -> list[str]:
    spec = hpa.spec
    ref = spec.scale_target_ref
    min_pods = str(spec.min_replicas) if spec.HasField("min_replicas") else "<unset>"
    return [hpa.metadata.name, f"{ref.kind}/{ref.name}",
            format_targets(spec.metrics, hpa.status.current_metrics), min_pods,
            str(spec.max_replicas), str(hpa.status.current_replicas), age(hpa, now)]


COLUMNS: dict[str, Columns] = {
    "horizontalpodautoscalers": Columns(
        ("NAME", "REFERENCE", "TARGETS", "MINPODS", "MAXPODS", "REPLICAS", "AGE"), hpa_row),
}
