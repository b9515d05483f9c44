"""A container's environment, resolved as the kubelet's `makeEnvironmentVariables` does.

Pure functions over the pod, its container and lookups for ConfigMaps, Secrets and
Services, so the rules (precedence, `$(VAR)` expansion, optional references, the error
texts shown as CreateContainerConfigError) are tested without a cluster.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from decimal import ROUND_CEILING, Decimal
from typing import Any

from kemu.api import quantity

ConfigMapLookup = Callable[[str, str], Any | None]  # (namespace, name) -> ConfigMap | None
SecretLookup = Callable[[str, str], Any | None]

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class ConfigError(Exception):
    """The container cannot be configured yet (CreateContainerConfigError)."""


def expand(text: str, lookup: Callable[[str], str | None]) -> str:
    """Kubernetes' `$(VAR)` expansion: `$$` escapes, unknown references stay as written."""
    out: list[str] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2:end]
                    value = lookup(name)
                    out.append(value if value is not None else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(ch)
        i += 1
    return "".join(out)


def _field_ref(pod: Any, path: str, host_ip: str, pod_ip: str) -> str:
    m = re.match(r"^metadata\.(labels|annotations)\['(.+)'\]$", path)
    if m:
        source = pod.metadata.labels if m[1] == "labels" else pod.metadata.annotations
        return str(source.get(m[2], ""))
    values = {
        "metadata.name": pod.metadata.name,
        "metadata.namespace": pod.metadata.namespace,
        "metadata.uid": pod.metadata.uid,
        "spec.nodeName": pod.spec.node_name,
        "spec.serviceAccountName": pod.spec.service_account_name,
        "status.hostIP": host_ip,
        "status.hostIPs": host_ip,
        "status.podIP": pod_ip,
        "status.podIPs": pod_ip,
    }
    if path not in values:
        raise ConfigError(f"unsupported fieldPath: {path}")
    return str(values[path])


def _resource_ref(pod: Any, container: Any, ref: Any, node_allocatable: dict[str, str]) -> str:
    target = container
    if ref.container_name:
        target = next((c for c in (*pod.spec.containers, *pod.spec.init_containers)
                       if c.name == ref.container_name), container)
    kind, _, resource = ref.resource.partition(".")
    source = target.resources.limits if kind == "limits" else target.resources.requests
    text = source.get(resource) or (node_allocatable.get(resource, "0")
                                    if kind == "limits" else "0")
    divisor = quantity.parse(ref.divisor) if ref.divisor else Decimal(1)
    if divisor == 0:
        divisor = Decimal(1)
    value = (quantity.parse(text) / divisor).to_integral_value(rounding=ROUND_CEILING)
    return str(int(value))


def service_env(services: Iterable[Any]) -> dict[str, str]:
    """`<SVC>_SERVICE_HOST`, `<SVC>_SERVICE_PORT` and the Docker-link style `<SVC>_PORT_*`
    variables for every Service with a ClusterIP."""
    env: dict[str, str] = {}
    for svc in sorted(services, key=lambda s: s.metadata.name):
        ip = svc.spec.cluster_ip
        if not ip or ip == "None" or svc.spec.type == "ExternalName" or not svc.spec.ports:
            continue
        name = svc.metadata.name.upper().replace("-", "_")
        first = svc.spec.ports[0]
        env[f"{name}_SERVICE_HOST"] = ip
        env[f"{name}_SERVICE_PORT"] = str(first.port)
        for p in svc.spec.ports:
            if p.name:
                env[f"{name}_SERVICE_PORT_{p.name.upper().replace('-', '_')}"] = str(p.port)
        proto0 = (first.protocol or "TCP").lower()
        env[f"{name}_PORT"] = f"{proto0}://{ip}:{first.port}"
        for p in svc.spec.ports:
            proto = (p.protocol or "TCP")
            prefix = f"{name}_PORT_{p.port}_{proto.upper()}"
            env[prefix] = f"{proto.lower()}://{ip}:{p.port}"
            env[f"{prefix}_PROTO"] = proto.lower()
            env[f"{prefix}_PORT"] = str(p.port)
            env[f"{prefix}_ADDR"] = ip
    return env


def resolve(pod: Any, container: Any, *, configmaps: ConfigMapLookup, secrets: SecretLookup,
            services: Iterable[Any] = (), host_ip: str = "", pod_ip: str = "",
            node_allocatable: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """The container's environment in order: envFrom, then env (later wins), then the
    service variables that are not already set. ConfigError when a required ConfigMap,
    Secret or key is missing."""
    ns = pod.metadata.namespace
    env: dict[str, str] = {}
    for src in container.env_from:
        if src.HasField("config_map_ref"):
            ref = src.config_map_ref
            cm = configmaps(ns, ref.name)
            if cm is None:
                if ref.optional:
                    continue
                raise ConfigError(f'configmap "{ref.name}" not found')
            items: dict[str, str] = dict(cm.data)
            items.update({k: v.decode(errors="replace") for k, v in cm.binary_data.items()})
        elif src.HasField("secret_ref"):
            sref = src.secret_ref
            sec = secrets(ns, sref.name)
            if sec is None:
                if sref.optional:
                    continue
                raise ConfigError(f'secret "{sref.name}" not found')
            items = {k: v.decode(errors="replace") for k, v in sec.data.items()}
        else:
            continue
        for key, value in items.items():
            name = src.prefix + key
            if _ENV_NAME.match(name):
                env[name] = value
    svc_env = service_env(services)

    def lookup(name: str) -> str | None:
        if name in env:
            return env[name]
        return svc_env.get(name)

    for var in container.env:
        if var.HasField("value_from"):
            vf = var.value_from
            which = vf.WhichOneof("source")
            if which == "field_ref":
                env[var.name] = _field_ref(pod, vf.field_ref.field_path, host_ip, pod_ip)
            elif which == "resource_field_ref":
                env[var.name] = _resource_ref(pod, container, vf.resource_field_ref,
                                              node_allocatable or {})
            elif which == "config_map_key_ref":
                ref = vf.config_map_key_ref
                cm = configmaps(ns, ref.name)
                if cm is None:
                    if ref.optional:
                        continue
                    raise ConfigError(f'configmap "{ref.name}" not found')
                if ref.key in cm.data:
                    env[var.name] = cm.data[ref.key]
                elif ref.key in cm.binary_data:
                    env[var.name] = cm.binary_data[ref.key].decode(errors="replace")
                elif not ref.optional:
                    raise ConfigError(f"couldn't find key {ref.key} in ConfigMap {ns}/{ref.name}")
            elif which == "secret_key_ref":
                skr = vf.secret_key_ref
                sec = secrets(ns, skr.name)
                if sec is None:
                    if skr.optional:
                        continue
                    raise ConfigError(f'secret "{skr.name}" not found')
                if skr.key in sec.data:
                    env[var.name] = sec.data[skr.key].decode(errors="replace")
                elif not skr.optional:
                    raise ConfigError(f"couldn't find key {skr.key} in Secret {ns}/{skr.name}")
        else:
            env[var.name] = expand(var.value, lookup)
    result = list(env.items())
    result += [(k, v) for k, v in svc_env.items() if k not in env]
    return result


def expand_command(args: Iterable[str], env: list[tuple[str, str]]) -> list[str]:
    """command and args with `$(VAR)` references to the container's environment."""
    values = dict(env)
    return [expand(a, values.get) for a in args]
