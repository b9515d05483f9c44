"""The HorizontalPodAutoscaler controller: set a workload's replicas from its pods' usage.

As Kubernetes' podautoscaler, it is periodic rather than event-driven: usage changes all
the time without any watch event, so every autoscaler is looked at every `sync_period`
(15 s, `--horizontal-pod-autoscaler-sync-period`), and at once when it is created or
changed. One look reads the target's scale (replicas and selector) from the API, the
pods from the shared informer and their usage from the apiserver's Metrics service,
computes the desired replicas (`hpa_calc`), scales through the scale subresource when
that differs, and writes status with the conditions AbleToScale, ScalingActive and
ScalingLimited, and the events SuccessfulRescale, FailedGetScale,
FailedGetResourceMetric..., in Kubernetes' words, so `kemuctl describe hpa` reads
as kubectl's.

The metrics source and the API calls are small protocols: unit tests give fakes, the
integration test a stand-in metrics source against a real apiserver.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import grpc

from kemu.api import kinds, objects, quantity
from kemu.api import labels as labelsel
from kemu.api.v1 import api_pb2, autoscaling_pb2, metrics_pb2, metrics_pb2_grpc
from kemu.client.aio import AsyncClient
from kemu.client.errors import ClientError, Conflict, NotFound, from_rpc_error
from kemu.client.events import DISCARD, NORMAL, WARNING, ObjectRecorder
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue, run_workers
from kemu.services.controllers import hpa_calc as calc
from kemu.services.controllers.controllerref import log_sync_error
from kemu.services.controllers.podutil import seconds
from kemu.services.controllers.requeue import Requeuer

log = logging.getLogger("kemu.controllers.hpa")

NAME = "horizontalpodautoscaling"
INFORMERS = ("horizontalpodautoscalers", "pods")
KIND = "HorizontalPodAutoscaler"
COMPONENT = "horizontal-pod-autoscaler"
DEFAULT_SYNC_PERIOD = 15.0
DEFAULT_DOWNSCALE_STABILIZATION = 300.0
# The kinds with a scale subresource, by the kind a scaleTargetRef names.
TARGETS = {"Deployment": "deployments", "ReplicaSet": "replicasets",
           "StatefulSet": "statefulsets", "ReplicationController": "replicationcontrollers"}
HPA = autoscaling_pb2.HorizontalPodAutoscaler


class MetricsSource(Protocol):
    """Pod usage by pod name (metrics.k8s.io through the apiserver; a fake in tests)."""

    async def pod_usage(self, namespace: str, selector: str) -> dict[str, calc.PodUsage]: ...


class HPAClient(Protocol):
    """The API calls the controller makes."""

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object: ...
    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object: ...
    async def scale(self, resource: str, name: str, replicas: int, namespace: str = "", *,
                    resource_version: str = "") -> api_pb2.Object: ...


def usage_of(pod: metrics_pb2.PodMetrics) -> calc.PodUsage:
    """A PodMetrics summed over its containers: cpu in millicores, memory in bytes."""
    totals: dict[str, int] = {}
    for c in pod.containers:
        for resource, text in c.usage.items():
            totals[resource] = totals.get(resource, 0) + calc.to_units(resource, text)
    return calc.PodUsage(totals, seconds(pod.timestamp),
                         pod.window.seconds + pod.window.nanos / 1e9)


class APIMetrics:
    """MetricsSource over the apiserver's kemu.v1.Metrics service."""

    def __init__(self, channel: grpc.aio.Channel, *, timeout: float = 30.0) -> None:
        self.stub = metrics_pb2_grpc.MetricsStub(channel)
        self.timeout = timeout

    async def pod_usage(self, namespace: str, selector: str) -> dict[str, calc.PodUsage]:
        try:
            resp: metrics_pb2.ListPodMetricsResponse = await self.stub.ListPodMetrics(
                metrics_pb2.ListPodMetricsRequest(namespace=namespace,
                                                  label_selector=selector),
                timeout=self.timeout)
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e) from None
        return {p.metadata.name: usage_of(p) for p in resp.items}


class APIScaleClient:
    """HPAClient over AsyncClient, adding the scale subresource call."""

    def __init__(self, client: AsyncClient) -> None:
        self.client = client

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object:
        return await self.client.get(resource, name, namespace)

    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object:
        return await self.client.update_status(obj)

    async def scale(self, resource: str, name: str, replicas: int, namespace: str = "", *,
                    resource_version: str = "") -> api_pb2.Object:
        req = api_pb2.ScaleRequest(
            key=api_pb2.ObjectKey(resource=resource, namespace=namespace, name=name),
            replicas=replicas, resource_version=resource_version)
        try:
            obj: api_pb2.Object = await self.client.resources.Scale(
                req, timeout=self.client.timeout, metadata=self.client.metadata)
        except grpc.aio.AioRpcError as e:
            raise from_rpc_error(e, self.client.server) from None
        return obj


def set_condition(hpa: Any, type_: str, status: str, reason: str, message: str,
                  now: float) -> None:
    """Set one condition; its lastTransitionTime moves only when the status changes."""
    for c in hpa.status.conditions:
        if c.type == type_:
            if c.status != status:
                c.status = status
                c.last_transition_time.FromSeconds(int(now))
            c.reason, c.message = reason, message
            return
    c = hpa.status.conditions.add(type=type_, status=status, reason=reason, message=message)
    c.last_transition_time.FromSeconds(int(now))


def target_selector(kind: str, target: Any) -> str:
    """The scale subresource's status.selector: the target's selector as a string."""
    if kind == "ReplicationController":
        return str(labelsel.from_map(target.spec.selector))
    return str(labelsel.from_label_selector(target.spec.selector))


def _average_quantity(resource: str, value: int) -> str:
    return f"{value}m" if resource == "cpu" else str(value)


@dataclass
class _Computed:
    replicas: int
    metric: str
    statuses: list[autoscaling_pb2.MetricStatus]


class _History:
    """What one autoscaler remembers between syncs: recommendations and scale events."""

    def __init__(self) -> None:
        self.recommendations: list[calc.Recommendation] = []
        self.ups: list[calc.ScaleEvent] = []
        self.downs: list[calc.ScaleEvent] = []

    def record(self, current: int, desired: int, now: float, keep: float) -> None:
        events = self.ups if desired > current else self.downs
        events.append(calc.ScaleEvent(abs(desired - current), now))
        self.ups[:] = [e for e in self.ups if e.at > now - keep]
        self.downs[:] = [e for e in self.downs if e.at > now - keep]


class HPAController:
    """Scales every HorizontalPodAutoscaler's target from its pods' resource usage."""

    def __init__(self, client: AsyncClient | HPAClient, informers: Mapping[str, Informer], *,
                 workers: int = 1, sync_period: float = DEFAULT_SYNC_PERIOD,
                 downscale_stabilization: float = DEFAULT_DOWNSCALE_STABILIZATION,
                 tolerance: float = calc.DEFAULT_TOLERANCE,
                 metrics: MetricsSource | None = None, recorder: ObjectRecorder = DISCARD,
                 clock: Callable[[], float] = time.time) -> None:
        if isinstance(client, AsyncClient):
            self.client: HPAClient = APIScaleClient(client)
            self.metrics = metrics or APIMetrics(client.channel, timeout=client.timeout)
        else:
            if metrics is None:
                raise TypeError("metrics is required unless client is an AsyncClient")
            self.client, self.metrics = client, metrics
        self.hpas = informers["horizontalpodautoscalers"]
        self.pods = informers["pods"]
        self.workers = workers
        self.sync_period = sync_period
        self.downscale_stabilization = downscale_stabilization
        self.tolerance = tolerance
        self.recorder = recorder
        self.clock = clock
        self.queue: WorkQueue[str] = WorkQueue()
        self.requeue = Requeuer(self.queue)
        self.history: dict[str, _History] = {}
        self.hpas.add_handler(self.on_hpa)

    def on_hpa(self, old: api_pb2.Object | None, new: api_pb2.Object | None) -> None:
        if new is None:
            if old is not None:
                key = key_of(old)
                self.history.pop(key, None)
                self.requeue.forget(key)
            return
        if old is None or old.horizontal_pod_autoscaler.spec != \
                new.horizontal_pod_autoscaler.spec:
            self.queue.add(key_of(new))  # our own status writes wait for the period

    async def run(self) -> None:
        for obj in self.hpas.list():
            self.queue.add(key_of(obj))
        await run_workers(self.queue, self.reconcile, self.workers, on_error=self._on_error)

    def _on_error(self, key: str, e: Exception) -> None:
        log_sync_error(log, "hpa", key, self.queue.num_requeues(key), e)

    async def reconcile(self, key: str) -> None:
        """One look at the autoscaler `key`; the next one is due a sync period later."""
        started = time.perf_counter()
        obj = self.hpas.get(key)
        if obj is None:
            self.history.pop(key, None)
            return
        self.requeue.after(key, self.sync_period)
        stored = obj.horizontal_pod_autoscaler
        hpa = HPA()
        hpa.CopyFrom(stored)
        try:
            await self._autoscale(key, hpa, self.clock())
        finally:
            await self._write_status(stored, hpa)
        log.debug("hpa=%s synced current=%d desired=%d duration_ms=%.1f", key,
                  hpa.status.current_replicas, hpa.status.desired_replicas,
                  (time.perf_counter() - started) * 1000)

    def _event(self, hpa: HPA, type_: str, reason: str, message: str) -> None:
        self.recorder.emit(KIND, hpa, type_, reason, message)

    async def _autoscale(self, key: str, hpa: HPA, now: float) -> None:
        """Kubernetes' reconcileAutoscaler, writing into `hpa.status`."""
        ref = hpa.spec.scale_target_ref
        namespace = hpa.metadata.namespace
        resource = TARGETS.get(ref.kind)
        if resource is None:
            group = ref.api_version.rpartition("/")[0]
            self._failed_get_scale(hpa, f'no matches for kind "{ref.kind}" in group '
                                        f'"{group}"', now)
            return
        try:
            target_obj = await self.client.get(resource, ref.name, namespace)
        except NotFound as e:
            self._failed_get_scale(hpa, e.message, now)
            return
        target = objects.unwrap(target_obj)
        current = int(target.spec.replicas)
        set_condition(hpa, "AbleToScale", "True", "SucceededGetScale",
                      "the HPA controller was able to get the target's current scale", now)
        hpa.status.observed_generation = hpa.metadata.generation
        selector = target_selector(ref.kind, target)
        min_replicas = hpa.spec.min_replicas if hpa.spec.HasField("min_replicas") else 1
        max_replicas = hpa.spec.max_replicas
        reason = ""
        statuses: list[autoscaling_pb2.MetricStatus] = list(hpa.status.current_metrics)
        if current == 0 and min_replicas != 0:
            desired, rescale = 0, False
            set_condition(hpa, "ScalingActive", "False", "ScalingDisabled",
                          "scaling is disabled since the replica count of the target is zero",
                          now)
        elif current > max_replicas:
            reason, desired = "Current number of replicas above Spec.MaxReplicas", max_replicas
            rescale = True
        elif current < min_replicas:
            reason, desired = "Current number of replicas below Spec.MinReplicas", min_replicas
            rescale = True
        else:
            if not selector:
                self._event(hpa, WARNING, "SelectorRequired", "selector is required")
                set_condition(hpa, "ScalingActive", "False", "InvalidSelector",
                              "the HPA target's scale is missing a selector", now)
                self._set_status(hpa, current, current, statuses, False, now)
                return
            computed = await self._compute(hpa, current, namespace, selector, now)
            if computed is None:
                self._set_status(hpa, current, current, list(hpa.status.current_metrics),
                                 False, now)
                return
            statuses = computed.statuses
            desired = computed.replicas
            if desired > current:
                reason = f"{computed.metric} above target"
            elif desired < current:
                reason = "All metrics below target"
            desired = self._normalize(key, hpa, current, desired, min_replicas, now)
            rescale = desired != current
        if rescale:
            try:
                await self.client.scale(resource, ref.name, desired, namespace,
                                        resource_version=target.metadata.resource_version)
            except ClientError as e:
                self._event(hpa, WARNING, "FailedRescale",
                            f"New size: {desired}; reason: {reason}; error: {e.message}")
                set_condition(hpa, "AbleToScale", "False", "FailedUpdateScale",
                              f"the HPA controller was unable to update the target scale: "
                              f"{e.message}", now)
                self._set_status(hpa, current, hpa.status.desired_replicas, statuses, False,
                                 now)
                raise
            set_condition(hpa, "AbleToScale", "True", "SucceededRescale",
                          f"the HPA controller was able to update the target scale to "
                          f"{desired}", now)
            self._event(hpa, NORMAL, "SuccessfulRescale",
                        f"New size: {desired}; reason: {reason}")
            self._history(key).record(current, desired, now, self._longest_period(hpa))
            log.info("hpa=%s scaled %s/%s from %d to %d: %s", key, ref.kind, ref.name,
                     current, desired, reason)
        else:
            desired = current
        self._set_status(hpa, current, desired, statuses, rescale, now)

    def _failed_get_scale(self, hpa: HPA, why: str, now: float) -> None:
        self._event(hpa, WARNING, "FailedGetScale", why)
        set_condition(hpa, "AbleToScale", "False", "FailedGetScale",
                      f"the HPA controller was unable to get the target's current scale: {why}",
                      now)
        hpa.status.observed_generation = hpa.metadata.generation

    def _history(self, key: str) -> _History:
        return self.history.setdefault(key, _History())

    @staticmethod
    def _longest_period(hpa: HPA) -> float:
        b = hpa.spec.behavior
        return float(max((p.period_seconds for rules in (b.scale_up, b.scale_down)
                          for p in rules.policies), default=0))

    def _set_status(self, hpa: HPA, current: int, desired: int,
                    statuses: Sequence[autoscaling_pb2.MetricStatus], rescale: bool,
                    now: float) -> None:
        hpa.status.current_replicas = current
        hpa.status.desired_replicas = desired
        hpa.status.ClearField("current_metrics")
        hpa.status.current_metrics.extend(statuses)
        if rescale:
            hpa.status.last_scale_time.FromSeconds(int(now))

    def _normalize(self, key: str, hpa: HPA, current: int, desired: int, min_replicas: int,
                   now: float) -> int:
        history = self._history(key)
        if hpa.spec.HasField("behavior"):
            result = calc.normalize_with_behavior(
                history.recommendations, history.ups, history.downs, current, desired,
                min_replicas, hpa.spec.max_replicas, hpa.spec.behavior,
                default_down_window=self.downscale_stabilization, now=now)
        else:
            result = calc.normalize(history.recommendations, current, desired, min_replicas,
                                    hpa.spec.max_replicas,
                                    window=self.downscale_stabilization, now=now)
        set_condition(hpa, "AbleToScale", "True", result.able_reason, result.able_message, now)
        set_condition(hpa, "ScalingLimited", "True" if result.limited else "False",
                      result.limit_reason, result.limit_message, now)
        return result.replicas

    async def _compute(self, hpa: HPA, current: int, namespace: str, selector: str,
                       now: float) -> _Computed | None:
        """computeReplicasForMetrics: the largest proposal of the metrics that worked;
        None when too many failed (ScalingActive False, and events that say why)."""
        specs = list(hpa.spec.metrics)
        sel = labelsel.parse(selector)
        pods = [o.pod for o in self.pods.list() if o.pod.metadata.namespace == namespace
                and sel.matches(o.pod.metadata.labels)]
        usage: dict[str, calc.PodUsage] | None = None
        statuses: list[autoscaling_pb2.MetricStatus] = []
        best: tuple[int, str] | None = None
        errors: list[str] = []
        for spec in specs:
            res = spec.resource.name
            target = spec.resource.target
            utilization = target.type == "Utilization"
            try:
                if usage is None:
                    usage = await self._usage(namespace, selector, res)
                if utilization:
                    proposal = calc.resource_replicas(
                        current, target.average_utilization, res, pods, usage, now,
                        tolerance=self.tolerance)
                    metric = f"{res} resource utilization (percentage of request)"
                else:
                    proposal = calc.average_value_replicas(
                        current, calc.to_units(res, target.average_value), res, pods, usage,
                        tolerance=self.tolerance)
                    metric = f"{res} resource"
            except (calc.MetricError, quantity.QuantityError) as e:
                what = "utilization" if utilization else "usage"
                error = f"failed to get {res} {what}: {e}"
                errors.append(error)
                self._event(hpa, WARNING, "FailedGetResourceMetric", error)
                set_condition(hpa, "ScalingActive", "False", "FailedGetResourceMetric",
                              f"the HPA was unable to compute the replica count: {error}", now)
                statuses.append(autoscaling_pb2.MetricStatus())
                continue
            status = autoscaling_pb2.MetricStatus(type="Resource")
            status.resource.name = res
            status.resource.current.average_value = _average_quantity(res, proposal.average)
            if proposal.utilization is not None:
                status.resource.current.average_utilization = proposal.utilization
            statuses.append(status)
            if best is None or proposal.replicas > best[0]:
                best = (proposal.replicas, metric)
        if best is None or (errors and best[0] < current):
            self._event(hpa, WARNING, "FailedComputeMetricsReplicas",
                        f"invalid metrics ({len(errors)} invalid out of {len(specs)}), first "
                        f"error is: {errors[0] if errors else 'no metrics'}")
            hpa.status.ClearField("current_metrics")
            hpa.status.current_metrics.extend(statuses)
            return None
        set_condition(hpa, "ScalingActive", "True", "ValidMetricFound",
                      f"the HPA was able to successfully calculate a replica count from "
                      f"{best[1]}", now)
        return _Computed(best[0], best[1], statuses)

    async def _usage(self, namespace: str, selector: str, resource: str
                     ) -> dict[str, calc.PodUsage]:
        try:
            found = await self.metrics.pod_usage(namespace, selector)
        except ClientError as e:
            raise calc.MetricError(f"unable to get metrics for resource {resource}: "
                                   f"{e.message}") from e
        if not found:
            raise calc.MetricError(f"unable to get metrics for resource {resource}: no metrics "
                                   "returned from resource metrics API")
        return found

    async def _write_status(self, stored: HPA, hpa: HPA) -> None:
        if hpa.status == stored.status:
            return
        obj = api_pb2.Object(horizontal_pod_autoscaler=hpa)
        try:
            await self.client.update_status(obj)
        except Conflict:  # our cache was behind: write the same status over the latest
            latest = await self.client.get(kinds.resolve(KIND).plural, hpa.metadata.name,
                                           hpa.metadata.namespace)
            latest.horizontal_pod_autoscaler.status.CopyFrom(hpa.status)
            await self.client.update_status(latest)
