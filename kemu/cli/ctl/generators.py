"""Objects that `kemuctl create <type>` and `kemuctl run` build from flags, as kubectl's
generators build them: `create deployment web --image=nginx` labels everything `app=web`
and names the container after the image; `create service nodeport web --tcp=80:8080`
selects `app=web`; `run web --image=nginx` makes a bare Pod labelled `run=web` whose one
container is named `web`. Pure functions, so the unit tests check the objects without a
server."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from kemu.api import objects
from kemu.api.v1 import api_pb2, apps_pb2, core_pb2
from kemu.cli.ctl.errors import CtlError


def namespace(name: str) -> api_pb2.Object:
    ns = core_pb2.Namespace()
    ns.metadata.name = name
    return objects.wrap(ns)


def container_name(image: str) -> str:
    """`registry:5000/team/web-app:1.2` -> `web-app`, as kubectl names containers."""
    name = image.rsplit("/", 1)[-1].split("@", 1)[0].split(":", 1)[0]
    name = re.sub(r"[^a-z0-9-]", "-", name.lower()).strip("-")
    return name or "container"


def deployment(name: str, images: Sequence[str], *, replicas: int = 1, port: int = 0,
               command: Sequence[str] = ()) -> api_pb2.Object:
    if not images:
        raise CtlError("required flag(s) \"image\" not set")
    d = apps_pb2.Deployment()
    d.metadata.name = name
    d.metadata.labels["app"] = name
    d.spec.replicas = replicas
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    used: set[str] = set()
    for image in images:
        base = container_name(image)
        cname, n = base, 1
        while cname in used:
            cname, n = f"{base}-{n}", n + 1
        used.add(cname)
        c = d.spec.template.spec.containers.add(name=cname, image=image)
        if command and len(images) == 1:
            c.command.extend(command)
    if port:
        d.spec.template.spec.containers[0].ports.add(container_port=port)
    return objects.wrap(d)


def _key_value(text: str, flag: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise CtlError(f"invalid {flag} {text!r}: expected KEY=VALUE")
    return key, value


def _files(spec: str) -> list[tuple[str, Path]]:
    key, sep, path_text = spec.partition("=")
    if not sep:
        key, path_text = "", spec
    path = Path(path_text)
    if not path.exists():
        raise CtlError(f'the path "{path_text}" does not exist')
    if path.is_dir():
        if key:
            raise CtlError(f"cannot give a key name for a directory path: {spec}")
        return [(p.name, p) for p in sorted(path.iterdir()) if p.is_file()]
    return [(key or path.name, path)]


def data_from(literals: Sequence[str], files: Sequence[str],
              env_files: Sequence[str] = ()) -> dict[str, bytes]:
    """--from-literal, --from-file and --from-env-file, in that order; duplicates fail."""
    data: dict[str, bytes] = {}

    def put(key: str, value: bytes) -> None:
        if key in data:
            raise CtlError(f"cannot add key {key}, another key by that name already exists")
        data[key] = value

    for lit in literals:
        key, value = _key_value(lit, "--from-literal")
        put(key, value.encode())
    for spec in files:
        for key, path in _files(spec):
            put(key, path.read_bytes())
    for env in env_files:
        for line in Path(env).read_text().splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                key, value = _key_value(line, "--from-env-file line")
                put(key, value.encode())
    return data


def configmap(name: str, data: dict[str, bytes]) -> api_pb2.Object:
    cm = core_pb2.ConfigMap()
    cm.metadata.name = name
    for key, value in data.items():
        try:
            cm.data[key] = value.decode("utf-8")
        except UnicodeDecodeError:
            cm.binary_data[key] = value
    return objects.wrap(cm)


def secret(name: str, data: dict[str, bytes], secret_type: str = "Opaque") -> api_pb2.Object:
    s = core_pb2.Secret()
    s.metadata.name = name
    s.type = secret_type or "Opaque"
    for key, value in data.items():
        s.data[key] = value
    return objects.wrap(s)


SERVICE_TYPES = {"clusterip": "ClusterIP", "nodeport": "NodePort",
                 "loadbalancer": "LoadBalancer", "externalname": "ExternalName"}


def service(kind: str, name: str, tcp: Sequence[str], *, node_port: int = 0,
            cluster_ip: str = "", external_name: str = "") -> api_pb2.Object:
    svc_type = SERVICE_TYPES.get(kind.lower())
    if svc_type is None:
        raise CtlError(f"unknown service type {kind!r}: use clusterip, nodeport, loadbalancer "
                       "or externalname")
    svc = core_pb2.Service()
    svc.metadata.name = name
    svc.metadata.labels["app"] = name
    svc.spec.type = svc_type
    if svc_type == "ExternalName":
        if not external_name:
            raise CtlError("--external-name is required for an ExternalName service")
        svc.spec.external_name = external_name
        return objects.wrap(svc)
    if not tcp and cluster_ip != "None":
        raise CtlError('required flag(s) "tcp" not set')
    svc.spec.selector["app"] = name
    if cluster_ip:
        svc.spec.cluster_ip = cluster_ip
    for spec in tcp:
        port_text, _, target_text = spec.partition(":")
        target_text = target_text or port_text
        if not port_text.isdigit():
            raise CtlError(f"invalid --tcp {spec!r}: expected PORT[:TARGET]")
        port = svc.spec.ports.add(name=f"{port_text}-{target_text}", protocol="TCP",
                                  port=int(port_text))
        if target_text.isdigit():
            port.target_port.number_value = int(target_text)
        else:
            port.target_port.string_value = target_text
        if node_port and svc_type == "NodePort":
            port.node_port = node_port
    return objects.wrap(svc)


# ---- kubectl run -------------------------------------------------------------------------

RESTART_POLICIES = ("Always", "OnFailure", "Never")
PULL_POLICIES = ("Always", "IfNotPresent", "Never")


@dataclass(frozen=True)
class RunSpec:
    """What `kemuctl run` was asked for, flags already split into pairs."""

    name: str
    image: str
    port: int = 0
    env: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    restart: str = "Always"
    image_pull_policy: str = ""
    # The words after `--`: the container's args, or with `command` its command.
    words: tuple[str, ...] = ()
    command: bool = False
    stdin: bool = False
    tty: bool = False
    leave_stdin_open: bool = False
    privileged: bool = False


def pairs(items: Sequence[str], flag: str, *, split_commas: bool = False
          ) -> tuple[tuple[str, str], ...]:
    """`K=V` flag values (`--labels a=1,b=2` splits on commas; `--env` values keep them)."""
    texts = [p for item in items for p in (item.split(",") if split_commas else [item])]
    out: list[tuple[str, str]] = []
    for text in texts:
        key, sep, value = text.partition("=")
        if not sep or not key:
            raise CtlError(f"invalid {flag}: {text!r}: expected KEY=VALUE")
        out.append((key, value))
    return tuple(out)


def run_pod(spec: RunSpec) -> api_pb2.Object:
    """The Pod of `kubectl run`: labels `run=NAME` unless --labels, one container named
    NAME, `--command` deciding whether the words after `--` are command or args."""
    if not spec.image:
        raise CtlError("--image is required")
    if spec.restart not in RESTART_POLICIES:
        raise CtlError(f"invalid restart policy: {spec.restart}")
    if spec.image_pull_policy and spec.image_pull_policy not in PULL_POLICIES:
        raise CtlError(f"invalid image pull policy: {spec.image_pull_policy}")
    if spec.tty and not spec.stdin:
        raise CtlError("-i/--stdin is required for containers with -t/--tty=true")
    if spec.command and not spec.words:
        raise CtlError("--command needs a command after --")
    pod = core_pb2.Pod()
    pod.metadata.name = spec.name
    for key, value in spec.labels or (("run", spec.name),):
        pod.metadata.labels[key] = value
    for key, value in spec.annotations:
        pod.metadata.annotations[key] = value
    pod.spec.restart_policy = spec.restart
    c = pod.spec.containers.add(name=spec.name, image=spec.image)
    if spec.image_pull_policy:
        c.image_pull_policy = spec.image_pull_policy
    (c.command if spec.command else c.args).extend(spec.words)
    if spec.port:
        c.ports.add(container_port=spec.port)
    for key, value in spec.env:
        c.env.add(name=key, value=value)
    if spec.stdin:
        c.stdin = True
        c.stdin_once = not spec.leave_stdin_open
    c.tty = spec.tty
    if spec.privileged:
        c.security_context.privileged = True
    return objects.wrap(pod)


def run_service(name: str, port: int, selector: Sequence[tuple[str, str]]) -> api_pb2.Object:
    """The ClusterIP Service of `run --expose --port=P`: port P to target P, selecting the
    pod's labels."""
    svc = core_pb2.Service()
    svc.metadata.name = name
    svc.spec.type = "ClusterIP"
    for key, value in selector:
        svc.spec.selector[key] = value
    p = svc.spec.ports.add(protocol="TCP", port=port)
    p.target_port.number_value = port
    return objects.wrap(svc)
