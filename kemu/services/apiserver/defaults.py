"""Defaulting, as Kubernetes' SetDefaults_* functions do it, one function per kind.

Defaults are applied on every create and update (and to apply's merged result) so that a
manifest that leaves a field out and one that spells out the default store the same
object; that is what lets `apply` answer "unchanged".
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kemu.api.v1 import api_pb2

DEFAULT_GRACE_SECONDS = 30
CONFIG_VOLUME_MODE = 0o644  # 420, the defaultMode of configMap and secret volumes


def _intstr_unset(value: Any) -> bool:
    return value.WhichOneof("kind") is None


def image_pull_policy(image: str) -> str:
    """Always for `:latest` or an untagged image, IfNotPresent otherwise (a digest too)."""
    if "@" in image:
        return "IfNotPresent"
    last = image.rsplit("/", 1)[-1]
    tag = last.partition(":")[2]
    return "Always" if tag in ("", "latest") else "IfNotPresent"


def _probe(probe: Any) -> None:
    if not probe.HasField("timeout_seconds"):
        probe.timeout_seconds = 1
    if not probe.HasField("period_seconds"):
        probe.period_seconds = 10
    if not probe.HasField("success_threshold"):
        probe.success_threshold = 1
    if not probe.HasField("failure_threshold"):
        probe.failure_threshold = 3
    if probe.HasField("http_get") and not probe.http_get.scheme:
        probe.http_get.scheme = "HTTP"
    if probe.HasField("http_get") and not probe.http_get.path:
        probe.http_get.path = "/"


def _container(c: Any) -> None:
    if not c.image_pull_policy:
        c.image_pull_policy = image_pull_policy(c.image)
    if not c.termination_message_path:
        c.termination_message_path = "/dev/termination-log"
    if not c.termination_message_policy:
        c.termination_message_policy = "File"
    for port in c.ports:
        if not port.protocol:
            port.protocol = "TCP"
    for env in c.env:
        if env.HasField("value_from") and env.value_from.HasField("field_ref") \
                and not env.value_from.field_ref.api_version:
            env.value_from.field_ref.api_version = "v1"
    for name in ("liveness_probe", "readiness_probe", "startup_probe"):
        if c.HasField(name):
            _probe(getattr(c, name))


def pod_spec(spec: Any) -> None:
    """Defaults of a PodSpec (pods and every pod template)."""
    if not spec.restart_policy:
        spec.restart_policy = "Always"
    if not spec.dns_policy:
        spec.dns_policy = "ClusterFirst"
    if not spec.HasField("termination_grace_period_seconds"):
        spec.termination_grace_period_seconds = DEFAULT_GRACE_SECONDS
    if not spec.scheduler_name:
        spec.scheduler_name = "default-scheduler"
    for c in (*spec.init_containers, *spec.containers):
        _container(c)
    for vol in spec.volumes:
        for src in ("config_map", "secret"):
            if vol.HasField(src) and not getattr(vol, src).HasField("default_mode"):
                getattr(vol, src).default_mode = CONFIG_VOLUME_MODE
        if vol.HasField("host_path") and not vol.host_path.type:
            vol.host_path.type = ""
    for t in spec.tolerations:
        if not t.operator:
            t.operator = "Equal"


def pod(obj: Any) -> None:
    pod_spec(obj.spec)
    if not obj.status.phase:
        obj.status.phase = "Pending"


def service(obj: Any) -> None:
    spec = obj.spec
    if not spec.type:
        spec.type = "ClusterIP"
    if not spec.session_affinity:
        spec.session_affinity = "None"
    if spec.session_affinity == "ClientIP" and not spec.session_affinity_config.client_ip.HasField(
            "timeout_seconds"):
        spec.session_affinity_config.client_ip.timeout_seconds = 10800
    if spec.type == "ExternalName":
        return
    for port in spec.ports:
        if not port.protocol:
            port.protocol = "TCP"
        if _intstr_unset(port.target_port):
            port.target_port.number_value = port.port
    if not spec.internal_traffic_policy:
        spec.internal_traffic_policy = "Cluster"
    if spec.type in ("NodePort", "LoadBalancer") and not spec.external_traffic_policy:
        spec.external_traffic_policy = "Cluster"
    if not spec.ip_families:
        spec.ip_families.append("IPv4")
    if not spec.ip_family_policy:
        spec.ip_family_policy = "SingleStack"


def _rolling_fraction(ru: Any) -> None:
    if _intstr_unset(ru.max_surge):
        ru.max_surge.string_value = "25%"
    if _intstr_unset(ru.max_unavailable):
        ru.max_unavailable.string_value = "25%"


def deployment(obj: Any) -> None:
    spec = obj.spec
    if not spec.HasField("replicas"):
        spec.replicas = 1
    if not spec.strategy.type:
        spec.strategy.type = "RollingUpdate"
    if spec.strategy.type == "RollingUpdate":
        _rolling_fraction(spec.strategy.rolling_update)
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = 10
    if not spec.HasField("progress_deadline_seconds"):
        spec.progress_deadline_seconds = 600
    pod_spec(spec.template.spec)


def replica_set(obj: Any) -> None:
    if not obj.spec.HasField("replicas"):
        obj.spec.replicas = 1
    pod_spec(obj.spec.template.spec)


def replication_controller(obj: Any) -> None:
    spec = obj.spec
    if not spec.HasField("replicas"):
        spec.replicas = 1
    labels = spec.template.metadata.labels
    if not spec.selector:
        spec.selector.update(labels)
    if not obj.metadata.labels:
        obj.metadata.labels.update(labels)
    pod_spec(spec.template.spec)


def daemon_set(obj: Any) -> None:
    spec = obj.spec
    if not spec.update_strategy.type:
        spec.update_strategy.type = "RollingUpdate"
    if spec.update_strategy.type == "RollingUpdate":
        ru = spec.update_strategy.rolling_update
        if _intstr_unset(ru.max_unavailable):
            ru.max_unavailable.number_value = 1
        if _intstr_unset(ru.max_surge):
            ru.max_surge.number_value = 0
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = 10
    pod_spec(spec.template.spec)


def stateful_set(obj: Any) -> None:
    spec = obj.spec
    if not spec.HasField("replicas"):
        spec.replicas = 1
    if not spec.pod_management_policy:
        spec.pod_management_policy = "OrderedReady"
    if not spec.update_strategy.type:
        spec.update_strategy.type = "RollingUpdate"
    if spec.update_strategy.type == "RollingUpdate" and not \
            spec.update_strategy.rolling_update.HasField("partition"):
        spec.update_strategy.rolling_update.partition = 0
    if not spec.HasField("revision_history_limit"):
        spec.revision_history_limit = 10
    policy = spec.persistent_volume_claim_retention_policy
    if not policy.when_deleted:
        policy.when_deleted = "Retain"
    if not policy.when_scaled:
        policy.when_scaled = "Retain"
    for claim in spec.volume_claim_templates:
        if not claim.spec.volume_mode:
            claim.spec.volume_mode = "Filesystem"
    pod_spec(spec.template.spec)


def job_spec(spec: Any) -> None:
    if not spec.HasField("completions") and not spec.HasField("parallelism"):
        spec.completions = 1
        spec.parallelism = 1
    if not spec.HasField("parallelism"):
        spec.parallelism = 1
    if not spec.HasField("backoff_limit"):
        spec.backoff_limit = 6
    if not spec.completion_mode:
        spec.completion_mode = "NonIndexed"
    if not spec.HasField("suspend"):
        spec.suspend = False
    pod_spec(spec.template.spec)


def job(obj: Any) -> None:
    job_spec(obj.spec)


def cron_job(obj: Any) -> None:
    spec = obj.spec
    if not spec.concurrency_policy:
        spec.concurrency_policy = "Allow"
    if not spec.HasField("suspend"):
        spec.suspend = False
    if not spec.HasField("successful_jobs_history_limit"):
        spec.successful_jobs_history_limit = 3
    if not spec.HasField("failed_jobs_history_limit"):
        spec.failed_jobs_history_limit = 1
    job_spec(spec.job_template.spec)


def namespace(obj: Any) -> None:
    if not obj.status.phase:
        obj.status.phase = "Active"
    if "kubernetes" not in obj.spec.finalizers:
        obj.spec.finalizers.append("kubernetes")


def secret(obj: Any) -> None:
    if not obj.type:
        obj.type = "Opaque"
    for key, value in obj.string_data.items():
        obj.data[key] = value.encode()
    obj.ClearField("string_data")


def persistent_volume_claim(obj: Any) -> None:
    if not obj.spec.volume_mode:
        obj.spec.volume_mode = "Filesystem"
    if not obj.status.phase:
        obj.status.phase = "Pending"


def event(obj: Any) -> None:
    if not obj.type:
        obj.type = "Normal"
    if not obj.count:
        obj.count = 1


def ingress(obj: Any) -> None:
    return None


DEFAULT_CPU_UTILIZATION = 80


def _scaling_rules(rules: Any, *, up: bool) -> None:
    """Kubernetes' GenerateHPAScaleUpRules/ScaleDownRules: fill what a rule leaves out.
    The scale-down window stays unset so that the controller's own default applies."""
    if up and not rules.HasField("stabilization_window_seconds"):
        rules.stabilization_window_seconds = 0
    if not rules.select_policy:
        rules.select_policy = "Max"
    if not rules.policies:
        if up:
            rules.policies.add(type="Pods", value=4, period_seconds=15)
        rules.policies.add(type="Percent", value=100, period_seconds=15)


def horizontal_pod_autoscaler(obj: Any) -> None:
    spec = obj.spec
    if not spec.HasField("min_replicas"):
        spec.min_replicas = 1
    if not spec.metrics:
        metric = spec.metrics.add(type="Resource")
        metric.resource.name = "cpu"
        metric.resource.target.type = "Utilization"
        metric.resource.target.average_utilization = DEFAULT_CPU_UTILIZATION
    if spec.HasField("behavior"):
        _scaling_rules(spec.behavior.scale_up, up=True)
        _scaling_rules(spec.behavior.scale_down, up=False)


RBAC_GROUP = "rbac.authorization.k8s.io"


def _subjects(subjects: Any) -> None:
    """SetDefaults_Subject: Users and Groups are of the RBAC API group."""
    for subject in subjects:
        if not subject.api_group and subject.kind in ("User", "Group"):
            subject.api_group = RBAC_GROUP


def binding(obj: Any) -> None:
    """SetDefaults_RoleBinding and _ClusterRoleBinding: roleRef.apiGroup is RBAC's."""
    if not obj.role_ref.api_group:
        obj.role_ref.api_group = RBAC_GROUP
    _subjects(obj.subjects)


DEFAULTERS: dict[str, Callable[[Any], None]] = {
    "pod": pod, "service": service, "deployment": deployment, "replica_set": replica_set,
    "replication_controller": replication_controller, "daemon_set": daemon_set,
    "stateful_set": stateful_set, "job": job, "cron_job": cron_job, "namespace": namespace,
    "secret": secret, "persistent_volume_claim": persistent_volume_claim, "event": event,
    "horizontal_pod_autoscaler": horizontal_pod_autoscaler,
    "role_binding": binding, "cluster_role_binding": binding,
}


def apply_defaults(obj: api_pb2.Object) -> None:
    """Default the object in place according to its kind."""
    field = obj.WhichOneof("kind")
    if field in DEFAULTERS:
        DEFAULTERS[field](getattr(obj, field))
