"""From a pod's container spec to Docker's create request (pure).

Kubernetes' `command` is Docker's entrypoint and `args` its command; limits become cgroup
limits (cpu as NanoCpus, memory in bytes); a cpu request becomes CPU shares as the kubelet
computes them (1024 per core, at least 2). The container joins the sandbox's network and
IPC namespaces (and its PID namespace with shareProcessNamespace).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kemu.api import quantity
from kemu.nodeagent import naming
from kemu.nodeagent.envs import expand_command
from kemu.nodeagent.runtime import CreateSpec

MIN_SHARES = 2


@dataclass(frozen=True)
class Resources:
    nano_cpus: int
    cpu_shares: int
    mem_limit: int


def resources(container: Any) -> Resources:
    limits, requests = container.resources.limits, container.resources.requests
    nano = quantity.millicores(limits["cpu"]) * 1_000_000 if "cpu" in limits else 0
    req = requests.get("cpu") or limits.get("cpu")
    shares = max(MIN_SHARES, quantity.millicores(req) * 1024 // 1000) if req else 0
    mem = quantity.to_bytes(limits["memory"]) if "memory" in limits else 0
    return Resources(nano, shares, mem)


def qos_class(pod: Any) -> str:
    """Guaranteed, Burstable or BestEffort, as Kubernetes classifies a pod."""
    containers = [*pod.spec.init_containers, *pod.spec.containers]
    any_set = False
    guaranteed = True
    for c in containers:
        lim, req = c.resources.limits, c.resources.requests
        if lim or req:
            any_set = True
        for res in ("cpu", "memory"):
            if res not in lim or (res in req and req[res] != lim[res]):
                guaranteed = False
    if not any_set:
        return "BestEffort"
    return "Guaranteed" if guaranteed else "Burstable"


def container_spec(pod: Any, container: Any, *, node: str, kind: str, sandbox_id: str,
                   attempt: int, restart_count: int, env: list[tuple[str, str]],
                   binds: list[str]) -> CreateSpec:
    m = pod.metadata
    labels = naming.pod_labels(node, m.namespace, m.name, m.uid, container.name, kind)
    labels[naming.RESTART_COUNT] = str(restart_count)
    labels[naming.ATTEMPT] = str(attempt)
    labels[naming.HASH] = naming.spec_hash(container)
    labels[naming.SANDBOX_ID] = sandbox_id
    res = resources(container)
    sc = container.security_context
    user = ""
    run_as = sc.run_as_user if sc.HasField("run_as_user") else (
        pod.spec.security_context.run_as_user
        if pod.spec.security_context.HasField("run_as_user") else None)
    if run_as is not None:
        user = str(run_as)
        group = sc.run_as_group if sc.HasField("run_as_group") else (
            pod.spec.security_context.run_as_group
            if pod.spec.security_context.HasField("run_as_group") else None)
        if group is not None:
            user += f":{group}"
    share_pid = pod.spec.HasField("share_process_namespace") and \
        pod.spec.share_process_namespace
    return CreateSpec(
        name=naming.container_name(container.name, m.name, m.namespace, m.uid, attempt),
        image=container.image, labels=labels,
        entrypoint=expand_command(container.command, env) if container.command else None,
        command=expand_command(container.args, env) if container.args else None,
        env=[f"{k}={v}" for k, v in env], working_dir=container.working_dir,
        network_mode=f"container:{sandbox_id}",
        ipc_mode="host" if pod.spec.host_ipc else f"container:{sandbox_id}",
        pid_mode="host" if pod.spec.host_pid else (
            f"container:{sandbox_id}" if share_pid else ""),
        binds=binds, nano_cpus=res.nano_cpus, cpu_shares=res.cpu_shares,
        mem_limit=res.mem_limit, tty=container.tty, stdin_open=container.stdin,
        user=user, privileged=sc.HasField("privileged") and sc.privileged,
        cap_add=list(sc.capabilities.add), cap_drop=list(sc.capabilities.drop),
        read_only=sc.HasField("read_only_root_filesystem") and sc.read_only_root_filesystem)
