"""Validation, one function per kind, every problem reported with its field path.

Mirrors Kubernetes' pkg/apis/*/validation for the fields kemu serves: names, labels,
ports, required fields, enumerations, selectors that must match template labels, and
what may not change on update.
"""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from kemu.api import names, quantity
from kemu.api.labels import SelectorError, from_label_selector
from kemu.services.apiserver.errors import (
    FieldError,
    duplicate,
    forbidden,
    invalid,
    required,
    unsupported,
)

Errors = list[FieldError]
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_PERCENT = re.compile(r"^(\d+)%$")
_NAME_RULES: dict[str, Callable[[str], list[str]]] = {
    "namespace": names.dns1123_label,
    "service": names.dns1035_label,
}
PROTOCOLS = ("TCP", "UDP", "SCTP")
MAX_ANNOTATIONS_BYTES = 256 * 1024


def _name_rule(field: str) -> Callable[[str], list[str]]:
    return _NAME_RULES.get(field, names.dns1123_subdomain)


def labels(path: str, values: Mapping[str, str]) -> Errors:
    errs: Errors = []
    for key, value in values.items():
        errs += [invalid(path, key, e) for e in names.qualified_name(key)]
        errs += [invalid(f"{path}.{key}", value, e) for e in names.label_value(value)]
    return errs


def metadata(meta: Any, field: str, namespaced: bool, *, check_name: bool = True) -> Errors:
    """ObjectMeta: name syntax, namespace, labels, annotations, owner references."""
    errs: Errors = []
    if check_name:
        if not meta.name:
            errs.append(required("metadata.name", "name or generateName is required"))
        else:
            errs += [invalid("metadata.name", meta.name, e) for e in _name_rule(field)(meta.name)]
    if namespaced:
        errs += [invalid("metadata.namespace", meta.namespace, e)
                 for e in names.dns1123_label(meta.namespace)]
    errs += labels("metadata.labels", meta.labels)
    size = 0
    for key, value in meta.annotations.items():
        errs += [invalid("metadata.annotations", key, e) for e in names.qualified_name(key)]
        size += len(key) + len(value)
    if size > MAX_ANNOTATIONS_BYTES:
        errs.append(FieldError("metadata.annotations", "Too long",
                               f"must have at most {MAX_ANNOTATIONS_BYTES} bytes"))
    controllers = 0
    for i, ref in enumerate(meta.owner_references):
        p = f"metadata.ownerReferences[{i}]"
        for attr, json in (("api_version", "apiVersion"), ("kind", "kind"), ("name", "name"),
                           ("uid", "uid")):
            if not getattr(ref, attr):
                errs.append(required(f"{p}.{json}"))
        controllers += bool(ref.controller)
    if controllers > 1:
        errs.append(invalid("metadata.ownerReferences", controllers,
                            "Only one reference can have Controller set to true"))
    return errs


def _enum(path: str, value: str, allowed: tuple[str, ...]) -> Errors:
    return [] if value in allowed else [unsupported(path, value, allowed)]


def _port(path: str, value: int, *, allow_zero: bool = False) -> Errors:
    low = 0 if allow_zero else 1
    if low <= value <= 65535:
        return []
    return [invalid(path, value, f"must be between {low} and 65535, inclusive")]


def int_or_string_port(path: str, value: Any) -> Errors:
    """A port given as a number 1-65535 or an IANA port name."""
    which = value.WhichOneof("kind")
    if which == "number_value":
        n = value.number_value
        if not float(n).is_integer():
            return [invalid(path, n, "must be an integer")]
        return _port(path, int(n))
    if which == "string_value":
        return [invalid(path, value.string_value, e) for e in names.port_name(value.string_value)]
    return [required(path)]


def _nonneg(path: str, value: int) -> Errors:
    return [] if value >= 0 else [invalid(path, value, "must be greater than or equal to 0")]


def resources(path: str, res: Any) -> Errors:
    errs: Errors = []
    parsed: dict[str, dict[str, Any]] = {"limits": {}, "requests": {}}
    for part in ("limits", "requests"):
        for name, text in getattr(res, part).items():
            try:
                parsed[part][name] = quantity.parse(text)
            except quantity.QuantityError as e:
                errs.append(invalid(f"{path}.{part}.{name}", text, str(e)))
                continue
            if parsed[part][name] < 0:
                errs.append(invalid(f"{path}.{part}.{name}", text,
                                    "must be greater than or equal to 0"))
    for name, req in parsed["requests"].items():
        lim = parsed["limits"].get(name)
        if lim is not None and req > lim:
            errs.append(invalid(f"{path}.requests", res.requests[name],
                                f"must be less than or equal to {name} limit of "
                                f"{res.limits[name]}"))
    return errs


def probe(path: str, p: Any) -> Errors:
    errs: Errors = []
    handlers = [h for h in ("exec", "http_get", "tcp_socket", "grpc") if p.HasField(h)]
    if len(handlers) != 1:
        errs.append(required(path, "must specify exactly one handler: exec, httpGet, "
                            "tcpSocket or grpc") if not handlers else
                    forbidden(path, "may not specify more than 1 handler type"))
    if p.HasField("http_get"):
        errs += int_or_string_port(f"{path}.httpGet.port", p.http_get.port)
        errs += _enum(f"{path}.httpGet.scheme", p.http_get.scheme or "HTTP", ("HTTP", "HTTPS"))
    if p.HasField("tcp_socket"):
        errs += int_or_string_port(f"{path}.tcpSocket.port", p.tcp_socket.port)
    if p.HasField("exec") and not p.exec.command:
        errs.append(required(f"{path}.exec.command"))
    for attr, json in (("initial_delay_seconds", "initialDelaySeconds"),):
        errs += _nonneg(f"{path}.{json}", getattr(p, attr))
    for attr, json in (("period_seconds", "periodSeconds"), ("timeout_seconds", "timeoutSeconds"),
                       ("success_threshold", "successThreshold"),
                       ("failure_threshold", "failureThreshold")):
        if p.HasField(attr) and getattr(p, attr) < 1:
            errs.append(invalid(f"{path}.{json}", getattr(p, attr),
                                "must be greater than or equal to 1"))
    return errs


def _env(path: str, env: Iterable[Any]) -> Errors:
    errs: Errors = []
    for i, var in enumerate(env):
        p = f"{path}[{i}]"
        if not var.name:
            errs.append(required(f"{p}.name"))
        if var.HasField("value_from"):
            vf = var.value_from
            sources = [s for s in ("field_ref", "resource_field_ref", "config_map_key_ref",
                                   "secret_key_ref") if vf.HasField(s)]
            if len(sources) != 1:
                errs.append(invalid(f"{p}.valueFrom", "", "may not have more than one field "
                                    "specified at a time" if sources else
                                    "must specify one of: `fieldRef`, `resourceFieldRef`, "
                                    "`configMapKeyRef` or `secretKeyRef`"))
            if var.value:
                errs.append(invalid(f"{p}.valueFrom", "", "may not be specified when `value` "
                                    "is not empty"))
            for ref, json in (("config_map_key_ref", "configMapKeyRef"),
                              ("secret_key_ref", "secretKeyRef")):
                if vf.HasField(ref):
                    sel = getattr(vf, ref)
                    if not sel.key:
                        errs.append(required(f"{p}.valueFrom.{json}.key"))
                    if not sel.name:
                        errs.append(required(f"{p}.valueFrom.{json}.name"))
            if vf.HasField("field_ref") and not vf.field_ref.field_path:
                errs.append(required(f"{p}.valueFrom.fieldRef.fieldPath"))
    return errs


def container(path: str, c: Any, volumes: set[str], *, init: bool = False) -> Errors:
    errs: Errors = []
    if not c.name:
        errs.append(required(f"{path}.name"))
    else:
        errs += [invalid(f"{path}.name", c.name, e) for e in names.dns1123_label(c.name)]
    if not c.image:
        errs.append(required(f"{path}.image"))
    errs += _enum(f"{path}.imagePullPolicy", c.image_pull_policy,
                  ("Always", "IfNotPresent", "Never"))
    port_names: set[str] = set()
    for i, port in enumerate(c.ports):
        p = f"{path}.ports[{i}]"
        errs += _port(f"{p}.containerPort", port.container_port)
        errs += _port(f"{p}.hostPort", port.host_port, allow_zero=True)
        errs += _enum(f"{p}.protocol", port.protocol, PROTOCOLS)
        if port.name:
            errs += [invalid(f"{p}.name", port.name, e) for e in names.port_name(port.name)]
            if port.name in port_names:
                errs.append(duplicate(f"{p}.name", port.name))
            port_names.add(port.name)
    errs += _env(f"{path}.env", c.env)
    errs += resources(f"{path}.resources", c.resources)
    for attr, json in (("liveness_probe", "livenessProbe"), ("readiness_probe", "readinessProbe"),
                       ("startup_probe", "startupProbe")):
        if c.HasField(attr):
            if init:
                errs.append(forbidden(f"{path}.{json}", "may not be set for init containers"))
            errs += probe(f"{path}.{json}", getattr(c, attr))
    for i, mount in enumerate(c.volume_mounts):
        p = f"{path}.volumeMounts[{i}]"
        if not mount.name:
            errs.append(required(f"{p}.name"))
        elif mount.name not in volumes:
            errs.append(FieldError(f"{p}.name", "Not found", "", mount.name, True))
        if not mount.mount_path:
            errs.append(required(f"{p}.mountPath"))
    return errs


_VOLUME_SOURCES = ("empty_dir", "host_path", "config_map", "secret", "persistent_volume_claim",
                   "downward_api", "projected")


def pod_spec(path: str, spec: Any, *, restart_policies: tuple[str, ...] = (
        "Always", "OnFailure", "Never"), extra_volumes: frozenset[str] = frozenset()
             ) -> Errors:
    """A pod spec; `extra_volumes` are names mounts may use without a volume (a
    StatefulSet's volumeClaimTemplates, which the controller turns into volumes)."""
    errs: Errors = []
    volumes: set[str] = set()
    for i, vol in enumerate(spec.volumes):
        p = f"{path}.volumes[{i}]"
        if not vol.name:
            errs.append(required(f"{p}.name"))
        else:
            errs += [invalid(f"{p}.name", vol.name, e) for e in names.dns1123_label(vol.name)]
            if vol.name in volumes:
                errs.append(duplicate(f"{p}.name", vol.name))
            volumes.add(vol.name)
        set_sources = [s for s in _VOLUME_SOURCES if vol.HasField(s)]
        if len(set_sources) > 1:
            errs.append(forbidden(p, "may not specify more than 1 volume type"))
        if vol.HasField("host_path") and not vol.host_path.path:
            errs.append(required(f"{p}.hostPath.path"))
        if vol.HasField("persistent_volume_claim") and not vol.persistent_volume_claim.claim_name:
            errs.append(required(f"{p}.persistentVolumeClaim.claimName"))
    volumes |= extra_volumes
    if not spec.containers:
        errs.append(required(f"{path}.containers"))
    seen: set[str] = set()
    for group, json, init in ((spec.init_containers, "initContainers", True),
                              (spec.containers, "containers", False)):
        for i, c in enumerate(group):
            p = f"{path}.{json}[{i}]"
            errs += container(p, c, volumes, init=init)
            if c.name in seen:
                errs.append(duplicate(f"{p}.name", c.name))
            seen.add(c.name)
    errs += _enum(f"{path}.restartPolicy", spec.restart_policy, restart_policies)
    errs += _enum(f"{path}.dnsPolicy", spec.dns_policy,
                  ("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None"))
    if spec.HasField("termination_grace_period_seconds"):
        errs += _nonneg(f"{path}.terminationGracePeriodSeconds",
                        spec.termination_grace_period_seconds)
    errs += labels(f"{path}.nodeSelector", spec.node_selector)
    for i, tol in enumerate(spec.tolerations):
        p = f"{path}.tolerations[{i}]"
        errs += _enum(f"{p}.operator", tol.operator, ("Equal", "Exists"))
        if tol.effect:
            errs += _enum(f"{p}.effect", tol.effect, ("NoSchedule", "PreferNoSchedule",
                                                       "NoExecute"))
        if tol.operator == "Exists" and tol.value:
            errs.append(invalid(f"{p}.operator", tol.operator,
                                "value must be empty when `operator` is 'Exists'"))
    if spec.hostname:
        errs += [invalid(f"{path}.hostname", spec.hostname, e)
                 for e in names.dns1123_label(spec.hostname)]
    if spec.subdomain:
        errs += [invalid(f"{path}.subdomain", spec.subdomain, e)
                 for e in names.dns1123_label(spec.subdomain)]
    return errs


def _match_expressions(path: str, exprs: Iterable[Any]) -> Errors:
    """Kubernetes' ValidateLabelSelectorRequirement: key, operator, values."""
    errs: Errors = []
    for i, expr in enumerate(exprs):
        p = f"{path}[{i}]"
        errs += [invalid(f"{p}.key", expr.key, e) for e in names.qualified_name(expr.key)]
        if expr.operator in ("In", "NotIn"):
            if not expr.values:
                errs.append(required(f"{p}.values", "must be specified when `operator` is "
                                     "'In' or 'NotIn'"))
        elif expr.operator in ("Exists", "DoesNotExist"):
            if expr.values:
                errs.append(forbidden(f"{p}.values", "may not be specified when `operator` "
                                      "is 'Exists' or 'DoesNotExist'"))
        else:
            errs.append(invalid(f"{p}.operator", expr.operator,
                                "not a valid selector operator"))
        for j, value in enumerate(expr.values):
            errs += [invalid(f"{p}.values[{j}]", value, e) for e in names.label_value(value)]
    return errs


def selector_matches_template(path: str, sel: Any, template_labels: Mapping[str, str]) -> Errors:
    """A workload's selector must be non-empty and select its own template's labels."""
    if not sel.match_labels and not sel.match_expressions:
        return [required(path)]
    errs = labels(f"{path}.matchLabels", sel.match_labels)
    errs += _match_expressions(f"{path}.matchExpressions", sel.match_expressions)
    if errs:
        return errs
    try:
        selector = from_label_selector(sel)
    except SelectorError as e:
        return [invalid(path, "", str(e))]
    if not selector.matches(template_labels):
        errs.append(invalid("spec.template.metadata.labels", dict(template_labels),
                            "`selector` does not match template `labels`"))
    return errs


def _template(spec: Any, *, restart: tuple[str, ...] = ("Always",),
              extra_volumes: frozenset[str] = frozenset()) -> Errors:
    errs = labels("spec.template.metadata.labels", spec.template.metadata.labels)
    errs += pod_spec("spec.template.spec", spec.template.spec, restart_policies=restart,
                     extra_volumes=extra_volumes)
    return errs


def _replicas(spec: Any) -> Errors:
    return _nonneg("spec.replicas", spec.replicas) if spec.HasField("replicas") else []


def _int_or_percent(path: str, value: Any) -> tuple[Errors, bool]:
    """Validate maxSurge/maxUnavailable; also say whether the value is zero."""
    which = value.WhichOneof("kind")
    if which == "number_value":
        n = value.number_value
        if n < 0 or not float(n).is_integer():
            return [invalid(path, n, "must be greater than or equal to 0")], False
        return [], n == 0
    if which == "string_value":
        m = _PERCENT.match(value.string_value)
        if m is None:
            return [invalid(path, value.string_value, "a valid percent string must be a numeric "
                            "string followed by an ending '%' (e.g. '1%',  or '93%')")], False
        pct = int(m[1])
        if pct > 100:
            return [invalid(path, value.string_value, "must not be greater than 100%")], False
        return [], pct == 0
    return [], False


def deployment(obj: Any) -> Errors:
    spec = obj.spec
    errs = _replicas(spec)
    errs += selector_matches_template("spec.selector", spec.selector,
                                      spec.template.metadata.labels)
    errs += _template(spec)
    errs += _enum("spec.strategy.type", spec.strategy.type, ("RollingUpdate", "Recreate"))
    if spec.strategy.type == "Recreate" and spec.strategy.HasField("rolling_update"):
        errs.append(forbidden("spec.strategy.rollingUpdate",
                              "may not be specified when strategy `type` is 'Recreate'"))
    if spec.strategy.type == "RollingUpdate":
        ru = spec.strategy.rolling_update
        e1, surge_zero = _int_or_percent("spec.strategy.rollingUpdate.maxSurge", ru.max_surge)
        e2, unav_zero = _int_or_percent("spec.strategy.rollingUpdate.maxUnavailable",
                                        ru.max_unavailable)
        errs += e1 + e2
        if surge_zero and unav_zero:
            errs.append(invalid("spec.strategy.rollingUpdate.maxUnavailable", 0,
                                "may not be 0 when `maxSurge` is 0"))
    if spec.HasField("revision_history_limit"):
        errs += _nonneg("spec.revisionHistoryLimit", spec.revision_history_limit)
    errs += _nonneg("spec.minReadySeconds", spec.min_ready_seconds)
    if spec.HasField("progress_deadline_seconds") and \
            spec.progress_deadline_seconds <= spec.min_ready_seconds:
        errs.append(invalid("spec.progressDeadlineSeconds", spec.progress_deadline_seconds,
                            "must be greater than minReadySeconds"))
    return errs


def replica_set(obj: Any) -> Errors:
    spec = obj.spec
    errs = _replicas(spec)
    errs += selector_matches_template("spec.selector", spec.selector,
                                      spec.template.metadata.labels)
    errs += _template(spec)
    errs += _nonneg("spec.minReadySeconds", spec.min_ready_seconds)
    return errs


def replication_controller(obj: Any) -> Errors:
    spec = obj.spec
    errs = _replicas(spec)
    if not spec.selector:
        errs.append(required("spec.selector"))
    errs += labels("spec.selector", spec.selector)
    tmpl = spec.template.metadata.labels
    if spec.selector and any(tmpl.get(k) != v for k, v in spec.selector.items()):
        errs.append(invalid("spec.template.metadata.labels", dict(tmpl),
                            "`selector` does not match template `labels`"))
    errs += _template(spec)
    return errs


def daemon_set(obj: Any) -> Errors:
    spec = obj.spec
    errs = selector_matches_template("spec.selector", spec.selector,
                                     spec.template.metadata.labels)
    errs += _template(spec)
    errs += _enum("spec.updateStrategy.type", spec.update_strategy.type,
                  ("RollingUpdate", "OnDelete"))
    if spec.update_strategy.type == "RollingUpdate":
        ru = spec.update_strategy.rolling_update
        e1, unav_zero = _int_or_percent("spec.updateStrategy.rollingUpdate.maxUnavailable",
                                        ru.max_unavailable)
        e2, surge_zero = _int_or_percent("spec.updateStrategy.rollingUpdate.maxSurge",
                                         ru.max_surge)
        errs += e1 + e2
        if unav_zero and surge_zero:
            errs.append(invalid("spec.updateStrategy.rollingUpdate.maxUnavailable", 0,
                                "may not be 0 when `maxSurge` is 0"))
    return errs


def stateful_set(obj: Any) -> Errors:
    spec = obj.spec
    errs = _replicas(spec)
    errs += selector_matches_template("spec.selector", spec.selector,
                                      spec.template.metadata.labels)
    claims = frozenset(c.metadata.name for c in spec.volume_claim_templates if c.metadata.name)
    errs += _template(spec, extra_volumes=claims)
    errs += _enum("spec.podManagementPolicy", spec.pod_management_policy,
                  ("OrderedReady", "Parallel"))
    errs += _enum("spec.updateStrategy.type", spec.update_strategy.type,
                  ("RollingUpdate", "OnDelete"))
    for i, claim in enumerate(spec.volume_claim_templates):
        p = f"spec.volumeClaimTemplates[{i}]"
        if not claim.metadata.name:
            errs.append(required(f"{p}.metadata.name"))
        errs += _pvc_spec(f"{p}.spec", claim.spec)
    return errs


def _job_spec(path: str, spec: Any, *, check_selector: bool = True) -> Errors:
    errs: Errors = []
    for attr, json in (("parallelism", "parallelism"), ("completions", "completions"),
                       ("backoff_limit", "backoffLimit")):
        if spec.HasField(attr):
            errs += _nonneg(f"{path}.{json}", getattr(spec, attr))
    if spec.HasField("active_deadline_seconds") and spec.active_deadline_seconds <= 0:
        errs.append(invalid(f"{path}.activeDeadlineSeconds", spec.active_deadline_seconds,
                            "must be greater than 0"))
    errs += _enum(f"{path}.completionMode", spec.completion_mode, ("NonIndexed", "Indexed"))
    errs += labels(f"{path}.template.metadata.labels", spec.template.metadata.labels)
    errs += pod_spec(f"{path}.template.spec", spec.template.spec,
                     restart_policies=("OnFailure", "Never"))
    if check_selector and spec.HasField("selector"):
        errs += selector_matches_template(f"{path}.selector", spec.selector,
                                          spec.template.metadata.labels)
    return errs


def job(obj: Any) -> Errors:
    return _job_spec("spec", obj.spec)


_CRON_FIELD = re.compile(r"^[\d*/,\-A-Za-z?LW#]+$")
_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}


def cron_schedule(text: str) -> str | None:
    """The problem with a cron schedule, or None when it is valid (croniter's grammar)."""
    from croniter import croniter

    body = text.strip()
    if body.startswith("TZ=") or body.startswith("CRON_TZ="):
        return "cannot use TZ or CRON_TZ in schedule, use timeZone field instead"
    if body in _CRON_MACROS:
        return None
    if len(body.split()) != 5:
        return f"expected exactly 5 fields, found {len(body.split())}: {text}"
    return None if croniter.is_valid(body) else f"unparseable schedule: {text}"


def cron_job(obj: Any) -> Errors:
    spec = obj.spec
    errs: Errors = []
    if len(obj.metadata.name) > 52:
        errs.append(invalid("metadata.name", obj.metadata.name, "must be no more than 52 "
                            "characters"))
    if not spec.schedule:
        errs.append(required("spec.schedule"))
    elif (problem := cron_schedule(spec.schedule)) is not None:
        errs.append(invalid("spec.schedule", spec.schedule, problem))
    errs += _enum("spec.concurrencyPolicy", spec.concurrency_policy, ("Allow", "Forbid",
                                                                       "Replace"))
    errs += _job_spec("spec.jobTemplate.spec", spec.job_template.spec)
    return errs


def _ip(path: str, text: str) -> Errors:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return [invalid(path, text,
                        "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)")]
    return []


SERVICE_TYPES = ("ClusterIP", "NodePort", "LoadBalancer", "ExternalName")


def service(obj: Any) -> Errors:
    spec = obj.spec
    errs = _enum("spec.type", spec.type, SERVICE_TYPES)
    if spec.type == "ExternalName":
        if not spec.external_name:
            errs.append(required("spec.externalName"))
        else:
            errs += [invalid("spec.externalName", spec.external_name, e)
                     for e in names.dns1123_subdomain(spec.external_name.rstrip("."))]
    headless = spec.cluster_ip == "None"
    if spec.cluster_ip and not headless:
        errs += _ip("spec.clusterIPs[0]", spec.cluster_ip)
    if headless and spec.type in ("NodePort", "LoadBalancer"):
        errs.append(invalid("spec.clusterIPs[0]", "None",
                            f"may not be set to 'None' for {spec.type} services"))
    if not spec.ports and spec.type != "ExternalName" and not headless:
        errs.append(required("spec.ports"))
    seen_names: set[str] = set()
    seen_ports: set[tuple[int, str]] = set()
    for i, port in enumerate(spec.ports):
        p = f"spec.ports[{i}]"
        if len(spec.ports) > 1 and not port.name:
            errs.append(required(f"{p}.name"))
        if port.name:
            errs += [invalid(f"{p}.name", port.name, e) for e in names.dns1123_label(port.name)]
            if port.name in seen_names:
                errs.append(duplicate(f"{p}.name", port.name))
            seen_names.add(port.name)
        errs += _port(f"{p}.port", port.port)
        errs += _enum(f"{p}.protocol", port.protocol, PROTOCOLS)
        if (port.port, port.protocol) in seen_ports:
            errs.append(duplicate(p, {"port": port.port, "protocol": port.protocol}))
        seen_ports.add((port.port, port.protocol))
        if spec.type != "ExternalName":
            errs += int_or_string_port(f"{p}.targetPort", port.target_port)
        if port.node_port and spec.type not in ("NodePort", "LoadBalancer"):
            errs.append(forbidden(f"{p}.nodePort", f"may not be used when `type` is '{spec.type}'"))
    errs += labels("spec.selector", spec.selector)
    errs += _enum("spec.sessionAffinity", spec.session_affinity, ("None", "ClientIP"))
    if spec.session_affinity == "ClientIP":
        t = spec.session_affinity_config.client_ip.timeout_seconds
        if not 0 < t <= 86400:
            errs.append(invalid("spec.sessionAffinityConfig.clientIP.timeoutSeconds", t,
                                "must be greater than 0 and less than 86400"))
    for i, ip in enumerate(spec.external_ips):
        errs += _ip(f"spec.externalIPs[{i}]", ip)
    if spec.load_balancer_ip:
        errs += _ip("spec.loadBalancerIP", spec.load_balancer_ip)
    if spec.external_traffic_policy:
        errs += _enum("spec.externalTrafficPolicy", spec.external_traffic_policy,
                      ("Cluster", "Local"))
    return errs


def endpoints(obj: Any) -> Errors:
    errs: Errors = []
    for i, subset in enumerate(obj.subsets):
        for group, json in ((subset.addresses, "addresses"),
                            (subset.not_ready_addresses, "notReadyAddresses")):
            for j, addr in enumerate(group):
                errs += _ip(f"subsets[{i}].{json}[{j}].ip", addr.ip)
        for j, port in enumerate(subset.ports):
            errs += _port(f"subsets[{i}].ports[{j}].port", port.port)
            errs += _enum(f"subsets[{i}].ports[{j}].protocol", port.protocol or "TCP", PROTOCOLS)
    return errs


def _config_keys(path: str, keys: Iterable[str]) -> Errors:
    errs: Errors = []
    for key in keys:
        if len(key) > 253 or not _CONFIG_KEY.match(key):
            errs.append(invalid(path, key, "a valid config key must consist of alphanumeric "
                                "characters, '-', '_' or '.'"))
    return errs


def config_map(obj: Any) -> Errors:
    errs = _config_keys("data", obj.data) + _config_keys("binaryData", obj.binary_data)
    for key in set(obj.data) & set(obj.binary_data):
        errs.append(invalid("data", key, "duplicate of key present in binaryData"))
    return errs


def secret(obj: Any) -> Errors:
    errs = _config_keys("data", obj.data)
    if sum(len(v) for v in obj.data.values()) > 1024 * 1024:
        errs.append(FieldError("data", "Too long", "must have at most 1048576 bytes"))
    return errs


def _pvc_spec(path: str, spec: Any) -> Errors:
    errs: Errors = []
    if not spec.access_modes:
        errs.append(required(f"{path}.accessModes", "at least 1 access mode is required"))
    for i, mode in enumerate(spec.access_modes):
        errs += _enum(f"{path}.accessModes[{i}]", mode,
                      ("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"))
    storage = spec.resources.requests.get("storage")
    if not storage:
        errs.append(required(f"{path}.resources[storage]"))
    else:
        errs += resources(f"{path}.resources", spec.resources)
    return errs


def persistent_volume_claim(obj: Any) -> Errors:
    return _pvc_spec("spec", obj.spec)


def ingress(obj: Any) -> Errors:
    errs: Errors = []
    for i, rule in enumerate(obj.spec.rules):
        if rule.host:
            host = rule.host[2:] if rule.host.startswith("*.") else rule.host
            errs += [invalid(f"spec.rules[{i}].host", rule.host, e)
                     for e in names.dns1123_subdomain(host)]
        for j, path in enumerate(rule.http.paths):
            p = f"spec.rules[{i}].http.paths[{j}]"
            if not path.path_type:
                errs.append(required(f"{p}.pathType", "pathType must be specified"))
            else:
                errs += _enum(f"{p}.pathType", path.path_type,
                              ("Exact", "Prefix", "ImplementationSpecific"))
            if path.path and not path.path.startswith("/"):
                errs.append(invalid(f"{p}.path", path.path, "must be an absolute path"))
            svc = path.backend.service
            if not svc.name:
                errs.append(required(f"{p}.backend.service.name"))
            if not svc.port.name and not svc.port.number:
                errs.append(required(f"{p}.backend.service.port",
                                     "port name or number is required"))
    return errs


_HPA_RESOURCES = ("cpu", "memory")
MAX_STABILIZATION_SECONDS = 3600
MAX_POLICY_PERIOD_SECONDS = 1800


def _scaling_rules(path: str, rules: Any) -> Errors:
    errs: Errors = []
    if rules.HasField("stabilization_window_seconds") and not \
            0 <= rules.stabilization_window_seconds <= MAX_STABILIZATION_SECONDS:
        errs.append(invalid(f"{path}.stabilizationWindowSeconds",
                            rules.stabilization_window_seconds,
                            f"must be less than or equal to {MAX_STABILIZATION_SECONDS}"
                            if rules.stabilization_window_seconds > 0 else
                            "must be greater than or equal to 0"))
    if rules.select_policy:
        errs += _enum(f"{path}.selectPolicy", rules.select_policy, ("Max", "Min", "Disabled"))
    for i, policy in enumerate(rules.policies):
        p = f"{path}.policies[{i}]"
        errs += _enum(f"{p}.type", policy.type, ("Pods", "Percent"))
        if policy.value <= 0:
            errs.append(invalid(f"{p}.value", policy.value, "must be greater than zero"))
        if not 0 < policy.period_seconds <= MAX_POLICY_PERIOD_SECONDS:
            errs.append(invalid(f"{p}.periodSeconds", policy.period_seconds,
                                "must be greater than zero and less than or equal to "
                                f"{MAX_POLICY_PERIOD_SECONDS}"))
    return errs


def _metric_target(path: str, target: Any) -> Errors:
    errs = _enum(f"{path}.type", target.type, ("Utilization", "AverageValue"))
    if target.type == "Utilization":
        if not target.HasField("average_utilization"):
            errs.append(required(f"{path}.averageUtilization",
                                 "must set averageUtilization for type Utilization"))
        elif target.average_utilization <= 0:
            errs.append(invalid(f"{path}.averageUtilization", target.average_utilization,
                                "must be greater than 0"))
    if target.type == "AverageValue":
        if not target.average_value:
            errs.append(required(f"{path}.averageValue",
                                 "must set averageValue for type AverageValue"))
        else:
            try:
                if quantity.parse(target.average_value) <= 0:
                    errs.append(invalid(f"{path}.averageValue", target.average_value,
                                        "must be positive"))
            except quantity.QuantityError as e:
                errs.append(invalid(f"{path}.averageValue", target.average_value, str(e)))
    return errs


def horizontal_pod_autoscaler(obj: Any) -> Errors:
    """autoscaling/v2 as Kubernetes validates it, for the Resource metrics kemu serves."""
    spec = obj.spec
    ref = spec.scale_target_ref
    errs: Errors = []
    if not ref.kind:
        errs.append(required("spec.scaleTargetRef.kind"))
    if not ref.name:
        errs.append(required("spec.scaleTargetRef.name"))
    else:
        errs += [invalid("spec.scaleTargetRef.name", ref.name, e)
                 for e in names.dns1123_subdomain(ref.name)]
    if spec.HasField("min_replicas") and spec.min_replicas < 1:
        errs.append(invalid("spec.minReplicas", spec.min_replicas,
                            "must be greater than or equal to 1"))
    if spec.max_replicas < 1:
        errs.append(invalid("spec.maxReplicas", spec.max_replicas, "must be greater than 0"))
    elif spec.HasField("min_replicas") and spec.max_replicas < spec.min_replicas:
        errs.append(invalid("spec.maxReplicas", spec.max_replicas,
                            "must be greater than or equal to `minReplicas`"))
    for i, metric in enumerate(spec.metrics):
        p = f"spec.metrics[{i}]"
        if not metric.type:
            errs.append(required(f"{p}.type"))
            continue
        errs += _enum(f"{p}.type", metric.type, ("Resource",))
        if metric.type != "Resource":
            continue
        if not metric.HasField("resource"):
            errs.append(required(f"{p}.resource",
                                 "must populate information for the given metric source"))
            continue
        if not metric.resource.name:
            errs.append(required(f"{p}.resource.name"))
        else:
            errs += _enum(f"{p}.resource.name", metric.resource.name, _HPA_RESOURCES)
        errs += _metric_target(f"{p}.resource.target", metric.resource.target)
    for attr, json in (("scale_up", "scaleUp"), ("scale_down", "scaleDown")):
        if spec.behavior.HasField(attr):
            errs += _scaling_rules(f"spec.behavior.{json}", getattr(spec.behavior, attr))
    return errs


def node(obj: Any) -> Errors:
    errs: Errors = []
    for i, cidr in enumerate(obj.spec.pod_cidrs or ([obj.spec.pod_cidr] if obj.spec.pod_cidr
                                                     else [])):
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            errs.append(invalid(f"spec.podCIDRs[{i}]", cidr, "must be a valid CIDR"))
    for i, taint in enumerate(obj.spec.taints):
        if not taint.key:
            errs.append(required(f"spec.taints[{i}].key"))
        errs += _enum(f"spec.taints[{i}].effect", taint.effect,
                      ("NoSchedule", "PreferNoSchedule", "NoExecute"))
    return errs


def lease(obj: Any) -> Errors:
    spec = obj.spec
    if spec.HasField("lease_duration_seconds") and spec.lease_duration_seconds <= 0:
        return [invalid("spec.leaseDurationSeconds", spec.lease_duration_seconds,
                        "must be greater than 0")]
    return []


def pod(obj: Any) -> Errors:
    return pod_spec("spec", obj.spec)


def event(obj: Any) -> Errors:
    ref = obj.involved_object
    if ref.namespace and obj.metadata.namespace and ref.namespace != obj.metadata.namespace:
        return [invalid("involvedObject.namespace", ref.namespace,
                        "does not match event.namespace")]
    return []


# google.protobuf.Timestamp's range: what RFC 3339 (and so the JSON form) can spell.
_TIMESTAMP_SECONDS = (-62135596800, 253402300799)  # 0001-01-01T00:00:00Z, 9999-12-31T23:59:59Z


def representable(msg: Any, path: str = "") -> Errors:
    """Values protobuf carries but the manifest form cannot: times outside years 1-9999 or
    with nanos outside [0, 1e9), int-or-string values that are neither or not finite.
    Checked on every write, status included, so every stored object can be shown as YAML
    or JSON and applied again (a gRPC client can send what no manifest can spell)."""
    errs: Errors = []
    for f, value in msg.ListFields():
        p = f"{path}.{f.json_name}" if path else f.json_name
        sub = f.message_type
        if sub is None:
            continue
        if sub.GetOptions().map_entry:
            vf = sub.fields_by_name["value"]
            if vf.message_type is not None:
                for key, item in value.items():
                    errs += _representable_one(vf.message_type.full_name, item, f"{p}.{key}")
            continue
        items = value if f.is_repeated else [value]
        for i, item in enumerate(items):
            errs += _representable_one(sub.full_name, item,
                                       f"{p}[{i}]" if f.is_repeated else p)
    return errs


def _representable_one(type_name: str, item: Any, path: str) -> Errors:
    if type_name == "google.protobuf.Timestamp":
        low, high = _TIMESTAMP_SECONDS
        if not low <= item.seconds <= high or not 0 <= item.nanos < 1_000_000_000:
            return [invalid(path, f"{item.seconds}s {item.nanos}ns",
                            "must be a time between 0001-01-01T00:00:00Z and "
                            "9999-12-31T23:59:59Z")]
        return []
    if type_name == "google.protobuf.Value":
        which = item.WhichOneof("kind")
        if which == "number_value" and not math.isfinite(item.number_value):
            return [invalid(path, str(item.number_value), "must be a finite number")]
        if which not in (None, "number_value", "string_value"):
            return [invalid(path, which, "must be an integer or a string")]
        return []
    return representable(item, path)


VALIDATORS: dict[str, Callable[[Any], Errors]] = {
    "pod": pod, "service": service, "deployment": deployment, "replica_set": replica_set,
    "replication_controller": replication_controller, "daemon_set": daemon_set,
    "stateful_set": stateful_set, "job": job, "cron_job": cron_job, "endpoints": endpoints,
    "config_map": config_map, "secret": secret, "persistent_volume_claim": persistent_volume_claim,
    "ingress": ingress, "node": node, "lease": lease, "event": event,
    "horizontal_pod_autoscaler": horizontal_pod_autoscaler,
}


# --- update rules: what may not change -----------------------------------------------------

def _immutable(path: str, new: Any, old: Any) -> Errors:
    if new != old:
        return [invalid(path, "", "field is immutable")]
    return []


def _selector_immutable(new: Any, old: Any) -> Errors:
    return _immutable("spec.selector", new.spec.selector, old.spec.selector)


def _pod_update(new: Any, old: Any) -> Errors:
    a, b = type(new.spec)(), type(old.spec)()
    a.CopyFrom(new.spec)
    b.CopyFrom(old.spec)
    for spec in (a, b):
        for c in (*spec.containers, *spec.init_containers):
            c.image = ""
        spec.ClearField("active_deadline_seconds")
        spec.ClearField("tolerations")
    if old.spec.node_name:
        b.node_name = a.node_name = ""
        if new.spec.node_name != old.spec.node_name:
            return [forbidden("spec.nodeName", "may not be changed once set")]
    if a != b:
        return [forbidden("spec", "pod updates may not change fields other than "
                          "`spec.containers[*].image`, `spec.initContainers[*].image`, "
                          "`spec.activeDeadlineSeconds` or `spec.tolerations` (only additions "
                          "to existing tolerations)")]
    return []


def _service_update(new: Any, old: Any) -> Errors:
    if old.spec.cluster_ip and new.spec.cluster_ip != old.spec.cluster_ip and \
            "ExternalName" not in (new.spec.type, old.spec.type):
        return [invalid("spec.clusterIPs[0]", new.spec.cluster_ip,
                        "may not change once set")]
    return []


def _stateful_set_update(new: Any, old: Any) -> Errors:
    a, b = type(new.spec)(), type(old.spec)()
    a.CopyFrom(new.spec)
    b.CopyFrom(old.spec)
    for spec in (a, b):
        for f in ("replicas", "template", "update_strategy", "min_ready_seconds",
                  "revision_history_limit", "persistent_volume_claim_retention_policy",
                  "ordinals"):
            if f in spec.DESCRIPTOR.fields_by_name:
                spec.ClearField(f)
    if a != b:
        return [forbidden("spec", "updates to statefulset spec for fields other than "
                          "'replicas', 'ordinals', 'template', 'updateStrategy', "
                          "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are "
                          "forbidden")]
    return []


def _job_update(new: Any, old: Any) -> Errors:
    errs = _selector_immutable(new, old)
    errs += _immutable("spec.template", new.spec.template, old.spec.template) \
        if not new.spec.suspend else []
    errs += _immutable("spec.completions", new.spec.completions, old.spec.completions)
    return errs


def _immutable_data(new: Any, old: Any) -> Errors:
    if old.immutable:
        errs: Errors = []
        if new.data != old.data:
            errs.append(forbidden("data", "field is immutable when `immutable` is set"))
        if not new.immutable:
            errs.append(forbidden("immutable", "field is immutable when `immutable` is set"))
        return errs
    return []


UPDATE_VALIDATORS: dict[str, Callable[[Any, Any], Errors]] = {
    "pod": _pod_update, "service": _service_update, "deployment": _selector_immutable,
    "replica_set": _selector_immutable, "daemon_set": _selector_immutable,
    "stateful_set": _stateful_set_update, "job": _job_update,
    "config_map": _immutable_data, "secret": _immutable_data,
}


# --- rbac.authorization.k8s.io: Role, ClusterRole, RoleBinding, ClusterRoleBinding ------------
# Kubernetes' pkg/apis/rbac/validation, with its messages.

RBAC_GROUP = "rbac.authorization.k8s.io"


def rbac_name(value: str) -> list[str]:
    """ValidateRBACName (path.IsValidPathSegmentName): `system:node` is a valid name."""
    if value in (".", ".."):
        return [f"may not be '{value}'"]
    return [f"may not contain '{c}'" for c in ("/", "%") if c in value]


_NAME_RULES.update({"role": rbac_name, "cluster_role": rbac_name, "role_binding": rbac_name,
                    "cluster_role_binding": rbac_name})


def policy_rule(path: str, rule: Any, *, namespaced: bool) -> Errors:
    errs: Errors = []
    if not rule.verbs:
        errs.append(required(f"{path}.verbs", "verbs must contain at least one value"))
    if rule.non_resource_urls:
        urls = _go_strings(rule.non_resource_urls)
        if namespaced:
            errs.append(invalid(f"{path}.nonResourceURLs", urls,
                                "namespaced rules cannot apply to non-resource URLs"))
        if rule.api_groups or rule.resources or rule.resource_names:
            errs.append(invalid(f"{path}.nonResourceURLs", urls, "rules cannot apply to both "
                                "regular resources and non-resource URLs"))
        return errs
    if not rule.api_groups:
        errs.append(required(f"{path}.apiGroups",
                             "resource rules must supply at least one api group"))
    if not rule.resources:
        errs.append(required(f"{path}.resources",
                             "resource rules must supply at least one resource"))
    return errs


def role(obj: Any) -> Errors:
    errs: Errors = []
    for i, rule in enumerate(obj.rules):
        errs += policy_rule(f"rules[{i}]", rule, namespaced=True)
    return errs


def cluster_role(obj: Any) -> Errors:
    errs: Errors = []
    for i, rule in enumerate(obj.rules):
        errs += policy_rule(f"rules[{i}]", rule, namespaced=False)
    if obj.HasField("aggregation_rule"):
        path = "aggregationRule.clusterRoleSelectors"
        if not obj.aggregation_rule.cluster_role_selectors:
            errs.append(required(path, "at least one clusterRoleSelector required if "
                                 "aggregationRule is non-nil"))
        for i, sel in enumerate(obj.aggregation_rule.cluster_role_selectors):
            errs += labels(f"{path}[{i}].matchLabels", sel.match_labels)
            errs += _match_expressions(f"{path}[{i}].matchExpressions", sel.match_expressions)
    return errs


def _subject(path: str, subject: Any, *, namespaced: bool) -> Errors:
    """ValidateRoleBindingSubject."""
    errs: Errors = []
    if not subject.name:
        errs.append(required(f"{path}.name"))
    if subject.kind == "ServiceAccount":
        if subject.name:
            errs += [invalid(f"{path}.name", subject.name, e)
                     for e in names.dns1123_subdomain(subject.name)]
        if subject.api_group:
            errs.append(unsupported(f"{path}.apiGroup", subject.api_group, ("",)))
        if not namespaced and not subject.namespace:
            errs.append(required(f"{path}.namespace"))
    elif subject.kind in ("User", "Group"):
        if subject.api_group != RBAC_GROUP:
            errs.append(unsupported(f"{path}.apiGroup", subject.api_group, (RBAC_GROUP,)))
    else:
        errs.append(unsupported(f"{path}.kind", subject.kind,
                                ("ServiceAccount", "User", "Group")))
    return errs


def _binding(obj: Any, role_kinds: tuple[str, ...], *, namespaced: bool) -> Errors:
    errs: Errors = []
    ref = obj.role_ref
    if ref.api_group != RBAC_GROUP:
        errs.append(unsupported("roleRef.apiGroup", ref.api_group, (RBAC_GROUP,)))
    if ref.kind not in role_kinds:
        errs.append(unsupported("roleRef.kind", ref.kind, role_kinds))
    if not ref.name:
        errs.append(required("roleRef.name"))
    else:
        errs += [invalid("roleRef.name", ref.name, e) for e in rbac_name(ref.name)]
    for i, subject in enumerate(obj.subjects):
        errs += _subject(f"subjects[{i}]", subject, namespaced=namespaced)
    return errs


def role_binding(obj: Any) -> Errors:
    return _binding(obj, ("Role", "ClusterRole"), namespaced=True)


def cluster_role_binding(obj: Any) -> Errors:
    return _binding(obj, ("ClusterRole",), namespaced=False)


class _GoValue:
    """An invalid value printed as Kubernetes prints a non-scalar one (Go's %#v)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def __str__(self) -> str:
        return self.text


def _go_strings(items: Iterable[str]) -> _GoValue:
    return _GoValue("[]string{" + ", ".join(f'"{i}"' for i in items) + "}")


def _go_role_ref(r: Any) -> _GoValue:
    return _GoValue(f'rbac.RoleRef{{APIGroup:"{r.api_group}", Kind:"{r.kind}", '
                    f'Name:"{r.name}"}}')


def _role_ref_immutable(new: Any, old: Any) -> Errors:
    """ValidateRoleBindingUpdate: a binding's role cannot change (delete and recreate)."""
    if new.role_ref != old.role_ref:
        return [invalid("roleRef", _go_role_ref(new.role_ref), "cannot change roleRef")]
    return []


VALIDATORS.update({"role": role, "cluster_role": cluster_role, "role_binding": role_binding,
                   "cluster_role_binding": cluster_role_binding})
UPDATE_VALIDATORS.update({"role_binding": _role_ref_immutable,
                          "cluster_role_binding": _role_ref_immutable})
