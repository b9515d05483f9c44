"""describe for pods and the pod templates of workloads: containers (image, ports, state,
ready, restarts, probes, environment, mounts), conditions and volumes, in kubectl's
layout and wording."""

from __future__ import annotations

from typing import Any

from kemu.cli.ctl.age import human_duration, rfc1123z, seconds_of
from kemu.cli.ctl.describe_base import Writer, annotations_multiline, labels_multiline


def _bool(value: bool) -> str:
    return "True" if value else "False"


def _intstr(value: Any) -> str:
    which = value.WhichOneof("kind")
    if which == "number_value":
        return str(int(value.number_value))
    if which == "string_value":
        return str(value.string_value)
    return ""


def describe_probe(probe: Any) -> str:
    def opt(name: str) -> int:
        return int(getattr(probe, name)) if probe.HasField(name) else 0

    attrs = (f"delay={opt('initial_delay_seconds')}s timeout={opt('timeout_seconds')}s "
             f"period={opt('period_seconds')}s #success={opt('success_threshold')} "
             f"#failure={opt('failure_threshold')}")
    if probe.HasField("exec"):
        return f"exec [{' '.join(probe.exec.command)}] {attrs}"
    if probe.HasField("http_get"):
        get = probe.http_get
        port = _intstr(get.port)
        host = f"{get.host}:{port}" if port else get.host
        return f"http-get {(get.scheme or 'HTTP').lower()}://{host}{get.path} {attrs}"
    if probe.HasField("tcp_socket"):
        return f"tcp-socket {probe.tcp_socket.host}:{_intstr(probe.tcp_socket.port)} {attrs}"
    if probe.HasField("grpc"):
        service = probe.grpc.service if probe.grpc.HasField("service") else ""
        return f"grpc <pod>:{probe.grpc.port} {service} {attrs}"
    return f"unknown {attrs}"


def _state(w: Writer, title: str, state: Any) -> None:
    if state.HasField("running"):
        w.line(2, f"{title}:", "Running")
        w.line(3, "Started:", rfc1123z(state.running.started_at))
    elif state.HasField("terminated"):
        t = state.terminated
        w.line(2, f"{title}:", "Terminated")
        if t.reason:
            w.line(3, "Reason:", t.reason)
        if t.message:
            w.line(3, "Message:", t.message)
        w.line(3, "Exit Code:", t.exit_code)
        if t.signal > 0:
            w.line(3, "Signal:", t.signal)
        w.line(3, "Started:", rfc1123z(t.started_at))
        w.line(3, "Finished:", rfc1123z(t.finished_at))
    else:
        w.line(2, f"{title}:", "Waiting")
        if state.HasField("waiting") and state.waiting.reason:
            w.line(3, "Reason:", state.waiting.reason)


def _env_value(e: Any) -> str:
    src = e.value_from
    if src.HasField("field_ref"):
        return f"({src.field_ref.api_version}:{src.field_ref.field_path})"
    if src.HasField("resource_field_ref"):
        return f"({src.resource_field_ref.resource})"
    if src.HasField("secret_key_ref"):
        ref = src.secret_key_ref
        optional = ref.HasField("optional") and ref.optional
        return f"<set to the key '{ref.key}' in secret '{ref.name}'>\tOptional: " \
               f"{str(optional).lower()}"
    if src.HasField("config_map_key_ref"):
        ref = src.config_map_key_ref
        optional = ref.HasField("optional") and ref.optional
        return f"<set to the key '{ref.key}' of config map '{ref.name}'>\tOptional: " \
               f"{str(optional).lower()}"
    return ""


def _environment(w: Writer, c: Any) -> None:
    for src in c.env_from:
        if src.HasField("config_map_ref"):
            w.line(2, "Environment Variables from:")
            w.line(3, src.config_map_ref.name, f"ConfigMap  Optional: "
                   f"{str(src.config_map_ref.optional).lower()}")
        elif src.HasField("secret_ref"):
            w.line(2, "Environment Variables from:")
            w.line(3, src.secret_ref.name, f"Secret  Optional: "
                   f"{str(src.secret_ref.optional).lower()}")
    if not c.env:
        w.line(2, "Environment:", "<none>")
        return
    w.write(2, "Environment:\n")
    for e in c.env:
        if e.HasField("value_from"):
            w.line(3, f"{e.name}:", _env_value(e))
            continue
        for i, part in enumerate(e.value.split("\n")):
            w.line(3, f"{e.name}:" if i == 0 else "", part)


def _mounts(w: Writer, c: Any) -> None:
    if not c.volume_mounts:
        w.line(2, "Mounts:", "<none>")
        return
    w.write(2, "Mounts:\n")
    for m in sorted(c.volume_mounts, key=lambda m: m.mount_path):
        flags = ["ro" if m.read_only else "rw"]
        if m.sub_path:
            flags.append(f'path="{m.sub_path}"')
        w.write(3, f"{m.mount_path} from {m.name} ({','.join(flags)})\n")


def _resources(w: Writer, resources: Any) -> None:
    for title, values in (("Limits", resources.limits), ("Requests", resources.requests)):
        if values:
            w.write(2, f"{title}:\n")
            for key in sorted(values):
                w.line(3, f"{key}:", values[key])


def containers(w: Writer, title: str, specs: Any, statuses: Any, *,
               template: bool = False) -> None:
    by_name = {s.name: s for s in statuses}
    w.write(0, f"{'  ' if template else ''}{title}:\n")
    for c in specs:
        status = by_name.get(c.name)
        w.write(1, f"{' ' if template else ''}{c.name}:\n")
        if status is not None:
            w.line(2, "Container ID:", status.container_id)
        w.line(2, "Image:", c.image)
        if status is not None:
            w.line(2, "Image ID:", status.image_id)
        ports = ", ".join(f"{p.container_port}/{p.protocol or 'TCP'}" for p in c.ports)
        host_ports = ", ".join(f"{p.host_port}/{p.protocol or 'TCP'}" for p in c.ports)
        w.line(2, "Ports:" if "," in ports else "Port:", ports or "<none>")
        w.line(2, "Host Ports:" if "," in host_ports else "Host Port:", host_ports or "<none>")
        for label, words in (("Command", c.command), ("Args", c.args)):
            if words:
                w.write(2, f"{label}:\n")
                for word in words:
                    for part in word.split("\n"):
                        w.write(3, part + "\n")
        if status is not None:
            _state(w, "State", status.state)
            if status.last_state.HasField("terminated"):
                _state(w, "Last State", status.last_state)
            w.line(2, "Ready:", _bool(status.ready))
            w.line(2, "Restart Count:", status.restart_count)
        _resources(w, c.resources)
        for label, name in (("Liveness", "liveness_probe"), ("Readiness", "readiness_probe"),
                            ("Startup", "startup_probe")):
            if c.HasField(name):
                w.line(2, f"{label}:", describe_probe(getattr(c, name)))
        _environment(w, c)
        _mounts(w, c)


_VOLUME_TYPES = {
    "host_path": "HostPath (bare host directory volume)",
    "empty_dir": "EmptyDir (a temporary directory that shares a pod's lifetime)",
    "secret": "Secret (a volume populated by a Secret)",
    "config_map": "ConfigMap (a volume populated by a ConfigMap)",
    "persistent_volume_claim": "PersistentVolumeClaim (a reference to a "
                               "PersistentVolumeClaim in the same namespace)",
    "nfs": "NFS (an NFS mount that lasts the lifetime of a pod)",
    "downward_api": "DownwardAPI (a volume populated by information about the pod)",
    "projected": "Projected (a volume that contains injected data from multiple sources)",
}


def volumes(w: Writer, vols: Any, *, template: bool = False) -> None:
    space = "  " if template else ""
    if not vols:
        w.line(0, f"{space}Volumes:", "<none>")
        return
    w.write(0, f"{space}Volumes:\n")
    for v in vols:
        w.write(1, f"{' ' if template else ''}{v.name}:\n")
        source = v.WhichOneof("source")
        if source is None:
            w.write(2, "<unknown>\n")
            continue
        w.line(2, "Type:", _VOLUME_TYPES.get(source, source))
        src = getattr(v, source)
        if source == "host_path":
            w.line(2, "Path:", src.path)
            w.line(2, "HostPathType:", src.type)
        elif source == "empty_dir":
            w.line(2, "Medium:", src.medium)
            w.line(2, "SizeLimit:", src.size_limit if src.HasField("size_limit") else "<unset>")
        elif source == "secret":
            w.line(2, "SecretName:", src.secret_name)
            w.line(2, "Optional:", str(src.optional).lower())
        elif source == "config_map":
            w.line(2, "Name:", src.name)
            w.line(2, "Optional:", str(src.optional).lower())
        elif source == "persistent_volume_claim":
            w.line(2, "ClaimName:", src.claim_name)
            w.line(2, "ReadOnly:", str(src.read_only).lower())
        elif source == "nfs":
            w.line(2, "Server:", src.server)
            w.line(2, "Path:", src.path)
            w.line(2, "ReadOnly:", str(src.read_only).lower())


def tolerations(w: Writer, tols: Any, *, level: int = 0, title: str = "Tolerations") -> None:
    if not tols:
        w.line(level, f"{title}:", "<none>")
        return
    for i, t in enumerate(tols):
        text = t.key
        if t.value:
            text += f"={t.value}"
        if t.effect:
            text += f":{t.effect}"
        if t.operator == "Exists" and not t.value:
            text += " op=Exists"
        if t.HasField("toleration_seconds"):
            text += f" for {t.toleration_seconds}s"
        w.line(level, f"{title}:" if i == 0 else "", text)


def pod_template(w: Writer, template: Any) -> None:
    w.write(0, "Pod Template:\n")
    labels_multiline(w, "Labels", template.metadata.labels, level=1)
    if template.metadata.annotations:
        annotations_multiline(w, "Annotations", template.metadata.annotations, level=1)
    spec = template.spec
    if spec.service_account_name:
        w.line(1, "Service Account:", spec.service_account_name)
    if spec.init_containers:
        containers(w, "Init Containers", spec.init_containers, [], template=True)
    containers(w, "Containers", spec.containers, [], template=True)
    volumes(w, spec.volumes, template=True)
    labels_multiline(w, "Node-Selectors", spec.node_selector, level=1)
    tolerations(w, spec.tolerations, level=1)


def qos_class(pod: Any) -> str:
    if pod.status.qos_class:
        return str(pod.status.qos_class)
    requests = limits = False
    guaranteed = bool(pod.spec.containers)
    for c in pod.spec.containers:
        res = c.resources
        requests = requests or bool(res.requests)
        limits = limits or bool(res.limits)
        for key in ("cpu", "memory"):
            if key not in res.limits or res.requests.get(key, res.limits[key]) != res.limits[key]:
                guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def describe_pod(w: Writer, pod: Any, now: float) -> None:
    meta, spec, status = pod.metadata, pod.spec, pod.status
    w.line(0, "Name:", meta.name)
    w.line(0, "Namespace:", meta.namespace)
    w.line(0, "Priority:", spec.priority if spec.HasField("priority") else 0)
    if spec.priority_class_name:
        w.line(0, "Priority Class Name:", spec.priority_class_name)
    w.line(0, "Service Account:", spec.service_account_name or "default")
    node = spec.node_name or "<none>"
    if spec.node_name and status.host_ip:
        node = f"{spec.node_name}/{status.host_ip}"
    w.line(0, "Node:", node)
    if seconds_of(status.start_time) is not None:
        w.line(0, "Start Time:", rfc1123z(status.start_time))
    labels_multiline(w, "Labels", meta.labels)
    annotations_multiline(w, "Annotations", meta.annotations)
    if meta.HasField("deletion_timestamp"):
        left = (seconds_of(meta.deletion_timestamp) or now) - now
        w.line(0, "Status:", f"Terminating (lasts {human_duration(max(left, 0))})")
        if meta.HasField("deletion_grace_period_seconds"):
            w.line(0, "Termination Grace Period:", f"{meta.deletion_grace_period_seconds}s")
    else:
        w.line(0, "Status:", status.phase)
    if status.reason:
        w.line(0, "Reason:", status.reason)
    if status.message:
        w.line(0, "Message:", status.message)
    w.line(0, "IP:", status.pod_ip)
    if status.pod_ips:
        w.write(0, "IPs:\n")
        for ip in status.pod_ips:
            w.line(1, "IP:", ip.ip)
    else:
        w.line(0, "IPs:", "<none>")
    for ref in meta.owner_references:
        if ref.HasField("controller") and ref.controller:
            w.line(0, "Controlled By:", f"{ref.kind}/{ref.name}")
    if status.nominated_node_name:
        w.line(0, "NominatedNodeName:", status.nominated_node_name)
    if spec.init_containers:
        containers(w, "Init Containers", spec.init_containers, status.init_container_statuses)
    containers(w, "Containers", spec.containers, status.container_statuses)
    if spec.readiness_gates:
        w.write(0, "Readiness Gates:\n")
        w.line(1, "Type", "Status")
        for gate in spec.readiness_gates:
            value = next((c.status for c in status.conditions
                          if c.type == gate.condition_type), "<none>")
            w.line(1, gate.condition_type, value)
    if status.conditions:
        w.write(0, "Conditions:\n")
        w.line(1, "Type", "Status")
        for c in status.conditions:
            w.line(1, f"{c.type} ", f"{c.status} ")
    volumes(w, spec.volumes)
    w.line(0, "QoS Class:", qos_class(pod))
    labels_multiline(w, "Node-Selectors", spec.node_selector)
    tolerations(w, spec.tolerations)
