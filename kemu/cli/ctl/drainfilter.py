"""Which pods `kemuctl drain` may delete, and kubectl's words when it may not.

kubectl runs every pod on the node through a chain of filters (already being deleted,
DaemonSet-managed, mirror pod, local storage, no controller); the first filter that says
"do not delete" decides, and its message is either a warning (the drain goes on) or an
error (the drain stops before deleting anything). Errors and warnings are grouped by
message: `cannot delete Pods declare no controller (use --force to override): ns/a, ns/b`.
Pure: the DaemonSet lookup is passed in, so the unit tests need no server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from kemu.cli.ctl.age import seconds_of

DAEMONSET_FATAL = "DaemonSet-managed Pods (use --ignore-daemonsets to ignore)"
DAEMONSET_WARNING = "ignoring DaemonSet-managed Pods"
LOCAL_STORAGE_FATAL = "Pods with local storage (use --delete-emptydir-data to override)"
LOCAL_STORAGE_WARNING = "deleting Pods with local storage"
UNMANAGED_FATAL = "Pods declare no controller (use --force to override)"
UNMANAGED_WARNING = "deleting Pods that declare no controller"
MIRROR_ANNOTATION = "kubernetes.io/config.mirror"

OKAY, SKIP, WARNING, ERROR = "Okay", "Skip", "Warning", "Error"

# (namespace, name) of a DaemonSet -> None when it exists, else the error message.
DaemonSetLookup = Callable[[str, str], "str | None"]


@dataclass(frozen=True)
class Options:
    force: bool = False
    ignore_daemonsets: bool = False
    delete_emptydir_data: bool = False
    skip_wait_for_delete_timeout: int = 0


@dataclass(frozen=True)
class Decision:
    """kubectl's PodDelete: the pod, whether to delete it, and why (or why not)."""

    pod: Any
    delete: bool
    reason: str = OKAY
    message: str = ""

    @property
    def ref(self) -> str:
        return f"{self.pod.metadata.namespace}/{self.pod.metadata.name}"


def controller_of(pod: Any) -> Any | None:
    for ref in pod.metadata.owner_references:
        if ref.HasField("controller") and ref.controller:
            return ref
    return None


def finished(pod: Any) -> bool:
    return pod.status.phase in ("Succeeded", "Failed")


def should_skip(pod: Any, skip_seconds: int, now: float) -> bool:
    """Being deleted for longer than --skip-wait-for-delete-timeout: not waited for."""
    deleted = seconds_of(pod.metadata.deletion_timestamp)
    return skip_seconds > 0 and deleted is not None and int(now - deleted) > skip_seconds


def _skip_deleted(pod: Any, opts: Options, ds: DaemonSetLookup, now: float) -> Decision:
    if should_skip(pod, opts.skip_wait_for_delete_timeout, now):
        return Decision(pod, False, SKIP)
    return Decision(pod, True)


def _daemonset(pod: Any, opts: Options, ds: DaemonSetLookup, now: float) -> Decision:
    ref = controller_of(pod)
    if ref is None or ref.kind != "DaemonSet" or finished(pod):
        return Decision(pod, True)
    missing = ds(pod.metadata.namespace, ref.name)
    if missing is not None:
        if opts.force:  # an orphan of a deleted DaemonSet goes, with a warning
            return Decision(pod, True, WARNING, missing)
        return Decision(pod, False, ERROR, missing)
    if not opts.ignore_daemonsets:
        return Decision(pod, False, ERROR, DAEMONSET_FATAL)
    return Decision(pod, False, WARNING, DAEMONSET_WARNING)


def _mirror(pod: Any, opts: Options, ds: DaemonSetLookup, now: float) -> Decision:
    if MIRROR_ANNOTATION in pod.metadata.annotations:
        return Decision(pod, False, SKIP)
    return Decision(pod, True)


def _local_storage(pod: Any, opts: Options, ds: DaemonSetLookup, now: float) -> Decision:
    if not any(v.HasField("empty_dir") for v in pod.spec.volumes) or finished(pod):
        return Decision(pod, True)
    if not opts.delete_emptydir_data:
        return Decision(pod, False, ERROR, LOCAL_STORAGE_FATAL)
    return Decision(pod, True, WARNING, LOCAL_STORAGE_WARNING)


def _unreplicated(pod: Any, opts: Options, ds: DaemonSetLookup, now: float) -> Decision:
    if finished(pod) or controller_of(pod) is not None:
        return Decision(pod, True)
    if opts.force:
        return Decision(pod, True, WARNING, UNMANAGED_WARNING)
    return Decision(pod, False, ERROR, UNMANAGED_FATAL)


FILTERS = (_skip_deleted, _daemonset, _mirror, _local_storage, _unreplicated)


def classify(pods: Iterable[Any], opts: Options, daemonset_missing: DaemonSetLookup,
             now: float) -> list[Decision]:
    """Each pod's decision: the first filter that refuses deletion wins, else the last."""
    decisions = []
    for pod in pods:
        decision = Decision(pod, True)
        for f in FILTERS:
            decision = f(pod, opts, daemonset_missing, now)
            if not decision.delete:
                break
        decisions.append(decision)
    return decisions


def _grouped(decisions: Sequence[Decision], reason: str, fallback: str) -> list[tuple[str, str]]:
    groups: dict[str, list[str]] = {}
    for d in decisions:
        if d.reason == reason:
            groups.setdefault(d.message or fallback, []).append(d.ref)
    return [(message, ", ".join(refs)) for message, refs in groups.items()]


def errors(decisions: Sequence[Decision]) -> list[str]:
    """`cannot delete <why>: ns/a, ns/b`, one per reason, in the order first met."""
    return [f"cannot delete {message}: {refs}"
            for message, refs in _grouped(decisions, ERROR, "unexpected error")]


def warnings(decisions: Sequence[Decision]) -> str:
    """`<why>: ns/a; <why>: ns/b`, or empty."""
    return "; ".join(f"{message}: {refs}"
                     for message, refs in _grouped(decisions, WARNING, "unexpected warning"))


def to_delete(decisions: Sequence[Decision]) -> list[Any]:
    return [d.pod for d in decisions if d.delete]


def aggregate(messages: Sequence[str]) -> str:
    """Go's utilerrors aggregate: one message as is, several as `[a, b]`, duplicates once."""
    unique = list(dict.fromkeys(messages))
    if len(unique) == 1:
        return unique[0]
    return "[" + ", ".join(unique) + "]"


def go_duration(seconds: float) -> str:
    """A time.Duration as Go prints it: 500ms, 1s, 1m30s, 2h0m0s."""
    if seconds < 1:
        ms = round(seconds * 1000)
        return f"{ms}ms" if ms else "0s"
    whole = int(seconds)
    frac = seconds - whole
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    sec_text = f"{secs + frac:g}s" if frac else f"{secs}s"
    if hours:
        return f"{hours}h{minutes}m{sec_text}"
    if minutes:
        return f"{minutes}m{sec_text}"
    return sec_text
