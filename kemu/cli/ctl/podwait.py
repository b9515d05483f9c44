"""Waiting on pods by watching them, with a deadline: until one pod reaches a state
(`run` waits for Running, then for completion) or until a selector matches a pod (`logs
deploy/web` right after the Deployment was created).

A watch resumes from the resourceVersion of the read that preceded it, so a change
between the read and the watch is never missed; a watch that ends early (server restart,
compaction) reads again and carries on, until the deadline, which is kubectl's
`timed out waiting for the condition`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kemu.api.v1 import api_pb2
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError
from kemu.client.errors import Gone

TIMED_OUT = "timed out waiting for the condition"


def _remaining(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise CtlError(TIMED_OUT)
    return left


def wait_for_pod(ctx: Ctx, namespace: str, name: str, done: Callable[[Any], bool],
                 timeout: float) -> Any:
    """The pod once `done(pod)` holds. NotFound if it does not exist (or is deleted while
    waiting, worded as kubectl words it); CtlError at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        pod = ctx.client.get("pods", name, namespace).pod
        if done(pod):
            return pod
        version = pod.metadata.resource_version
        try:
            for ev in ctx.client.watch("pods", namespace, field_selector=f"metadata.name={name}",
                                       resource_version=version,
                                       timeout=_remaining(deadline)):
                if ev.type == api_pb2.WatchEvent.DELETED:
                    raise CtlError(f'pods "{name}" not found')
                if ev.type in (api_pb2.WatchEvent.ADDED, api_pb2.WatchEvent.MODIFIED) and \
                        done(ev.object.pod):
                    return ev.object.pod
        except Gone:
            pass
        _remaining(deadline)


def wait_for_pods(ctx: Ctx, namespace: str, selector: str, timeout: float) -> list[Any]:
    """The pods the selector matches, waiting (up to `timeout`) for the first to appear."""
    deadline = time.monotonic() + timeout
    while True:
        listed = ctx.client.list("pods", namespace, label_selector=selector)
        if listed.items:
            return [o.pod for o in listed.items]
        try:
            for ev in ctx.client.watch("pods", namespace, label_selector=selector,
                                       resource_version=listed.resource_version,
                                       timeout=_remaining(deadline)):
                if ev.type == api_pb2.WatchEvent.ADDED:
                    break
        except Gone:
            pass
        _remaining(deadline)
