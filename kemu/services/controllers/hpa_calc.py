"""The arithmetic of the HorizontalPodAutoscaler, as pure functions over plain values.

Mirrors Kubernetes' `pkg/controller/podautoscaler/replica_calculator.go` and the
normalization in `horizontal.go`: usage is compared with the pods' requests, a ratio
within the tolerance (10%) changes nothing, pods without metrics and unready pods are
counted conservatively (so that missing data never makes the autoscaler overshoot), and
the proposal is then stabilized (the highest recommendation of the scale-down window
wins, so load that dips for a moment does not remove pods) and rate-limited (at most
double, or the behavior's policies). Kept apart from the controller so the tests can feed
numbers and a clock, with no API and no event loop.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from kemu.api import quantity
from kemu.api.v1 import autoscaling_pb2, core_pb2
from kemu.services.controllers import podutil

DEFAULT_TOLERANCE = 0.1
CPU_INITIALIZATION_PERIOD = 300.0
INITIAL_READINESS_DELAY = 30.0
SCALE_UP_LIMIT_FACTOR = 2.0
SCALE_UP_LIMIT_MINIMUM = 4


class MetricError(Exception):
    """The metric gives no replica count (no pods, no metrics, a missing request)."""


@dataclass(frozen=True)
class PodUsage:
    """One pod's usage summed over its containers: cpu in millicores, memory in bytes,
    sampled at `timestamp` (unix seconds) over `window` seconds."""

    values: Mapping[str, int]
    timestamp: float = 0.0
    window: float = 0.0


@dataclass(frozen=True)
class Proposal:
    """What one resource metric proposes: replicas, and the status to show."""

    replicas: int
    utilization: int | None  # percent of requests, for Utilization targets
    average: int  # raw average per pod: millicores or bytes


def request_of(pod: core_pb2.Pod, resource: str) -> int:
    """The pod's request of `resource` (millicores or bytes), summed over its containers.
    MetricError when a container has none, as Kubernetes' calculatePodRequests says it."""
    total = 0
    for c in pod.spec.containers:
        text = c.resources.requests.get(resource)
        if text is None:
            raise MetricError(f"missing request for {resource} in container {c.name} of Pod "
                              f"{pod.metadata.name}")
        total += to_units(resource, text)
    return total


def to_units(resource: str, text: str) -> int:
    """A quantity in the unit the calculator uses: millicores for cpu, bytes otherwise."""
    return quantity.millicores(text) if resource == "cpu" else quantity.to_bytes(text)


@dataclass
class _Groups:
    ready: int = 0
    unready: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    ignored: set[str] = field(default_factory=set)


def _group(pods: Sequence[core_pb2.Pod], metrics: Mapping[str, PodUsage], resource: str,
           now: float) -> _Groups:
    """Kubernetes' groupPods: ignored (deleting, failed, pending), missing a metric, unready
    (cpu only: a pod starting up is not a fair sample), and the ready count."""
    g = _Groups()
    for pod in pods:
        name = pod.metadata.name
        if podutil.is_terminating(pod.metadata) or pod.status.phase in ("Failed", "Pending"):
            g.ignored.add(name)
            continue
        metric = metrics.get(name)
        if metric is None:
            g.missing.add(name)
            continue
        if resource == "cpu" and _unready_for_cpu(pod, metric, now):
            g.unready.add(name)
            continue
        g.ready += 1
    return g


def _unready_for_cpu(pod: core_pb2.Pod, metric: PodUsage, now: float) -> bool:
    cond = podutil.ready_condition(pod)
    if cond is None or not pod.status.HasField("start_time"):
        return True
    started = podutil.seconds(pod.status.start_time)
    transition = podutil.seconds(cond.last_transition_time)
    if started + CPU_INITIALIZATION_PERIOD > now:
        return cond.status == "False" or metric.timestamp < transition + metric.window
    return cond.status == "False" and started + INITIAL_READINESS_DELAY > transition


def _ratio(metrics: Mapping[str, int], requests: Mapping[str, int], target: int
           ) -> tuple[float, int, int]:
    """(usage ratio, utilization percent, raw average) over the pods that have requests."""
    used = requested = 0
    for name, value in metrics.items():
        if name in requests:
            used += value
            requested += requests[name]
    if requested == 0:
        raise MetricError("no metrics returned matched known pods")
    utilization = used * 100 // requested
    return utilization / target, utilization, used // max(len(metrics), 1)


def resource_replicas(current: int, target_utilization: int, resource: str,
                      pods: Sequence[core_pb2.Pod], usage: Mapping[str, PodUsage], now: float,
                      *, tolerance: float = DEFAULT_TOLERANCE) -> Proposal:
    """GetResourceReplicas: replicas that bring average utilization to the target."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    g = _group(pods, usage, resource, now)
    requests = {p.metadata.name: request_of(p, resource) for p in pods}
    metrics = {n: u.values.get(resource, 0) for n, u in usage.items()
               if n not in g.ignored and n not in g.unready and n in requests}
    if not metrics:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    ratio, utilization, average = _ratio(metrics, requests, target_utilization)
    scale_up_with_unready = bool(g.unready) and ratio > 1.0
    if not scale_up_with_unready and not g.missing:
        if abs(1.0 - ratio) <= tolerance:
            return Proposal(current, utilization, average)
        return Proposal(math.ceil(ratio * g.ready), utilization, average)
    if g.missing:
        if ratio < 1.0:  # on a scale-down, missing pods count as using all of their request
            fallback = max(100, target_utilization)
            metrics.update({n: requests[n] * fallback // 100 for n in g.missing})
        elif ratio > 1.0:  # on a scale-up, as using nothing
            metrics.update(dict.fromkeys(g.missing, 0))
    if scale_up_with_unready:
        metrics.update(dict.fromkeys(g.unready, 0))
    new_ratio, _, _ = _ratio(metrics, requests, target_utilization)
    if abs(1.0 - new_ratio) <= tolerance or (ratio < 1.0 < new_ratio) or \
            (new_ratio < 1.0 < ratio):
        return Proposal(current, utilization, average)
    replicas = math.ceil(new_ratio * len(metrics))
    if (new_ratio < 1.0 and replicas > current) or (new_ratio > 1.0 and replicas < current):
        return Proposal(current, utilization, average)
    return Proposal(replicas, utilization, average)


def average_value_replicas(current: int, target_average: int, resource: str,
                           pods: Sequence[core_pb2.Pod], usage: Mapping[str, PodUsage],
                           *, tolerance: float = DEFAULT_TOLERANCE) -> Proposal:
    """GetRawResourceReplicas for an AverageValue target (a quantity per pod)."""
    if not pods:
        raise MetricError("no pods returned by selector while calculating replica count")
    names = {p.metadata.name for p in pods if not podutil.is_terminating(p.metadata)
             and p.status.phase not in ("Failed", "Pending")}
    values = [u.values.get(resource, 0) for n, u in usage.items() if n in names]
    if not values:
        raise MetricError("did not receive metrics for targeted pods (pods might be unready)")
    average = sum(values) // len(values)
    ratio = sum(values) / (target_average * len(values))
    if abs(1.0 - ratio) <= tolerance:
        return Proposal(current, None, average)
    return Proposal(math.ceil(sum(values) / target_average), None, average)


# ---- normalization: stabilization windows and rate limits ---------------------------------

@dataclass(frozen=True)
class Recommendation:
    replicas: int
    at: float


@dataclass(frozen=True)
class ScaleEvent:
    change: int  # replicas added (scale up) or removed (scale down), positive
    at: float


@dataclass(frozen=True)
class Limited:
    """The normalized replicas and the conditions to set."""

    replicas: int
    able_reason: str
    able_message: str
    limited: bool
    limit_reason: str
    limit_message: str


READY_FOR_NEW_SCALE = ("ReadyForNewScale", "recommended size matches current size")
DOWN_STABILIZED = ("ScaleDownStabilized", "recent recommendations were higher than current "
                   "one, applying the highest recent recommendation")
UP_STABILIZED = ("ScaleUpStabilized", "recent recommendations were lower than current one, "
                 "applying the lowest recent recommendation")
WITHIN_RANGE = ("DesiredWithinRange", "the desired count is within the acceptable range")
TOO_MANY = ("TooManyReplicas", "the desired replica count is more than the maximum replica "
            "count")
TOO_FEW = ("TooFewReplicas", "the desired replica count is less than the minimum replica "
           "count")
UP_LIMIT = ("ScaleUpLimit", "the desired replica count is increasing faster than the maximum "
            "scale rate")
DOWN_LIMIT = ("ScaleDownLimit", "the desired replica count is decreasing faster than the "
              "maximum scale rate")


def _limited(replicas: int, stabilized: int, able: tuple[str, str],
             limit: tuple[str, str]) -> Limited:
    return Limited(replicas, *able, replicas != stabilized, *limit)


def normalize(history: list[Recommendation], current: int, desired: int, min_replicas: int,
              max_replicas: int, *, window: float, now: float) -> Limited:
    """Without a behavior: the highest recommendation of the scale-down window, then
    [min, max] and at most max(2 x current, 4). `history` is updated in place."""
    history[:] = [r for r in history if r.at > now - window]
    stabilized = max([desired, *(r.replicas for r in history)])
    history.append(Recommendation(desired, now))
    able = DOWN_STABILIZED if stabilized != desired else READY_FOR_NEW_SCALE
    up_limit = max(math.ceil(SCALE_UP_LIMIT_FACTOR * current), SCALE_UP_LIMIT_MINIMUM)
    top, top_reason = (up_limit, UP_LIMIT) if max_replicas > up_limit else \
        (max_replicas, TOO_MANY)
    if stabilized < min_replicas:
        return _limited(min_replicas, stabilized, able, TOO_FEW)
    if stabilized > top:
        return _limited(top, stabilized, able, top_reason)
    return _limited(stabilized, stabilized, able, WITHIN_RANGE)


def _changed_within(events: Iterable[ScaleEvent], period: float, now: float) -> int:
    return sum(e.change for e in events if e.at > now - period)


def _policy_limit(rules: autoscaling_pb2.HPAScalingRules, current: int,
                  ups: Sequence[ScaleEvent], downs: Sequence[ScaleEvent], now: float, *,
                  up: bool) -> int:
    """The furthest the policies allow from `current` in one direction."""
    if rules.select_policy == "Disabled" or not rules.policies:
        return current
    proposals = []
    for policy in rules.policies:
        start = current - _changed_within(ups, policy.period_seconds, now) + \
            _changed_within(downs, policy.period_seconds, now)
        if policy.type == "Pods":
            proposals.append(start + policy.value if up else start - policy.value)
        elif up:
            proposals.append(math.ceil(start * (1 + policy.value / 100)))
        else:
            proposals.append(int(start * (1 - policy.value / 100)))
    # "Max" selects the policy allowing the biggest change, "Min" the smallest.
    biggest = rules.select_policy != "Min"
    return (max if biggest == up else min)(proposals)


def normalize_with_behavior(history: list[Recommendation], ups: Sequence[ScaleEvent],
                            downs: Sequence[ScaleEvent], current: int, desired: int,
                            min_replicas: int, max_replicas: int,
                            behavior: autoscaling_pb2.HorizontalPodAutoscalerBehavior, *,
                            default_down_window: float, now: float) -> Limited:
    """With a behavior: each direction's stabilization window, then its policies."""
    up_window = float(behavior.scale_up.stabilization_window_seconds)
    down_rules = behavior.scale_down
    down_window = float(down_rules.stabilization_window_seconds) \
        if down_rules.HasField("stabilization_window_seconds") else default_down_window
    if desired >= current:
        window, pick, stabilized_reason = up_window, min, UP_STABILIZED
    else:
        window, pick, stabilized_reason = down_window, max, DOWN_STABILIZED
    recent = [r.replicas for r in history if r.at > now - window]
    stabilized = pick([desired, *recent])
    history[:] = [r for r in history if r.at > now - max(up_window, down_window)]
    history.append(Recommendation(desired, now))
    able = stabilized_reason if stabilized != desired else READY_FOR_NEW_SCALE
    if stabilized > current:
        limit = max(_policy_limit(behavior.scale_up, current, ups, downs, now, up=True),
                    current)
        top, reason = (limit, UP_LIMIT) if max_replicas > limit else (max_replicas, TOO_MANY)
        if stabilized > top:
            return _limited(top, stabilized, able, reason)
    elif stabilized < current:
        limit = min(_policy_limit(down_rules, current, ups, downs, now, up=False), current)
        bottom, reason = (limit, DOWN_LIMIT) if min_replicas < limit else \
            (min_replicas, TOO_FEW)
        if stabilized < bottom:
            return _limited(bottom, stabilized, able, reason)
    return _limited(stabilized, stabilized, able, WITHIN_RANGE)
