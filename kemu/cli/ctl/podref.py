"""Which pod and which container `logs` and `exec` mean, as kubectl decides it.

`POD`, `pod/POD`, or a workload (`deploy/web`, `job/x`, `svc/web`, `rs/...`, `sts/...`,
`ds/...`, `rc/...`): a workload means the first of the pods its selector matches, ordered
as kubectl orders them for logs (assigned before unassigned, Running before Pending, ready
before not, ready longer first, more restarts first, older first), and kubectl says which
it chose when there were several. The container is `-c`, else the pod's
`kubectl.kubernetes.io/default-container` annotation, else the first container; the
functions that pick it are pure so their messages are unit-tested.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from kemu.api import kinds, labels, objects
from kemu.api.kinds import Kind
from kemu.cli.ctl.age import seconds_of
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError
from kemu.cli.ctl.podwait import wait_for_pods

DEFAULT_CONTAINER_ANNOTATION = "kubectl.kubernetes.io/default-container"
# Resources whose pods are found through a label selector (kubectl's SelectorsForObject).
SELECTING = frozenset({"deployments", "replicasets", "replicationcontrollers", "statefulsets",
                       "daemonsets", "jobs", "services"})


def parse_ref(arg: str) -> tuple[Kind, str]:
    """`web-1` and `pod/web-1` name a pod; `TYPE/NAME` names any resource."""
    type_text, slash, name = arg.partition("/")
    if not slash:
        return kinds.resolve("pods"), arg
    if not name:
        raise CtlError(f"arguments in resource/name form must have a single resource and name: "
                       f"{arg!r}")
    return kinds.resolve(type_text), name


def selector_of(kind: Kind, obj: Any) -> str:
    """The label selector of a workload or Service, in string form."""
    if kind.plural not in SELECTING:
        raise CtlError(f"cannot select pods of {kind.singular}/{obj.metadata.name}: "
                       f"selector for {kind.kind} not implemented")
    spec = obj.spec
    if kind.plural in ("services", "replicationcontrollers"):
        selector = labels.from_map(spec.selector)
    else:
        selector = labels.from_label_selector(spec.selector)
        if selector.empty() and kind.plural == "jobs":
            selector = labels.from_map(spec.template.metadata.labels)
    if selector.empty():
        raise CtlError(f"cannot select pods of {kind.singular}/{obj.metadata.name}: it has no "
                       "selector")
    return str(selector)


def _ready_since(pod: Any) -> float | None:
    for c in pod.status.conditions:
        if c.type == "Ready" and c.status == "True":
            return seconds_of(c.last_transition_time) or 0.0
    return None


_PHASE_RANK = {"Running": 0, "Unknown": 1, "Pending": 2}
_LATEST = float("inf")


def logging_order(pod: Any) -> tuple[Any, ...]:
    """kubectl's podutils.ByLogging as a sort key: the best pod to read sorts first."""
    ready = _ready_since(pod)
    restarts = max((s.restart_count for s in pod.status.container_statuses), default=0)
    created = seconds_of(pod.metadata.creation_timestamp)
    return (not pod.spec.node_name, _PHASE_RANK.get(pod.status.phase, 0), ready is None,
            ready if ready is not None else 0.0, -restarts,
            created if created is not None else _LATEST)


def choose(pods: Sequence[Any]) -> Any:
    return sorted(pods, key=logging_order)[0]


def resolve_pod(ctx: Ctx, arg: str, *, timeout: float = 20.0) -> Any:
    """The pod `arg` names (a Pod message), choosing one of a workload's pods."""
    kind, name = parse_ref(arg)
    namespace = ctx.namespace
    if kind.plural == "pods":
        return ctx.client.get("pods", name, namespace).pod
    selected = objects.unwrap(ctx.client.get(kind.plural, name, namespace))
    pods = wait_for_pods(ctx, namespace, selector_of(kind, selected), timeout)
    pod = choose(pods)
    if len(pods) > 1:
        ctx.error(f"Found {len(pods)} pods, using pod/{pod.metadata.name}")
    return pod


# ---- containers ------------------------------------------------------------------------

def all_container_names(pod: Any) -> str:
    """`a, b, setup (init)`: kubectl's podcmd.AllContainerNames."""
    names = [c.name for c in pod.spec.containers]
    names += [f"{c.name} (init)" for c in pod.spec.init_containers]
    return ", ".join(names)


def find_container(pod: Any, name: str) -> Any | None:
    for c in (*pod.spec.containers, *pod.spec.init_containers):
        if c.name == name:
            return c
    return None


def _check(pod: Any, name: str) -> str:
    if find_container(pod, name) is None:
        raise CtlError(f"container {name} is not valid for pod {pod.metadata.name} out of: "
                       f"{all_container_names(pod)}")
    return name


def exec_container(pod: Any, requested: str, warn: Callable[[str], None]) -> str:
    """kubectl's FindOrDefaultContainerByName: -c, the annotation, else the first
    container, saying so when there was a choice."""
    if not pod.spec.containers:
        raise CtlError(f"pod {pod.metadata.namespace}/{pod.metadata.name} does not have any "
                       "containers")
    name = requested or pod.metadata.annotations.get(DEFAULT_CONTAINER_ANNOTATION, "")
    if name:
        return _check(pod, name)
    first = pod.spec.containers[0].name
    if len(pod.spec.containers) > 1 or pod.spec.init_containers:
        warn(f'Defaulted container "{first}" out of: {all_container_names(pod)}')
    return str(first)


def _go_list(names: Sequence[str]) -> str:
    return "[" + " ".join(names) + "]"


def logs_container(pod: Any, requested: str) -> str:
    """-c, the annotation, or the only container; several and no choice is kubectl's
    `a container name must be specified` error, listing them."""
    name = requested or pod.metadata.annotations.get(DEFAULT_CONTAINER_ANNOTATION, "")
    if name:
        return _check(pod, name)
    containers = [c.name for c in pod.spec.containers]
    if len(containers) == 1:
        return str(containers[0])
    if not containers:
        raise CtlError(f"pod {pod.metadata.namespace}/{pod.metadata.name} does not have any "
                       "containers")
    message = f"a container name must be specified for pod {pod.metadata.name}, choose one " \
              f"of: {_go_list(containers)}"
    if pod.spec.init_containers:
        message += f" or one of the init containers: " \
                   f"{_go_list([c.name for c in pod.spec.init_containers])}"
    raise CtlError(message)


def all_containers(pod: Any) -> list[str]:
    """Every container, in kubectl's --all-containers order: init containers first."""
    return [c.name for c in (*pod.spec.init_containers, *pod.spec.containers)]
