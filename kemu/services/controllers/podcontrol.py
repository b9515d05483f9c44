"""Creating and deleting a controller's pods, and Kubernetes' slow-start batching.

Pods are made from the owner's template as `controller.GetPodFromTemplate` does: the
template's labels, annotations and finalizers, generateName `<owner>-`, and the owner's
controller reference, so the server names them and the garbage collector (later) can find
them. `slow_start_batch` issues creates in batches of 1, 2, 4, ... and stops at the first
batch with an error: when every create fails (a quota, an admission error, a terminating
namespace) a controller sends one failing request instead of hundreds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from kemu.api.v1 import api_pb2, core_pb2, meta_pb2
from kemu.client.errors import Conflict, NotFound
from kemu.services.controllers.controllerref import WorkloadClient

SLOW_START_INITIAL_BATCH = 1  # controller.SlowStartInitialBatchSize


class NoLabels(ValueError):
    """The template has no labels, so no selector could ever count the pod."""


def pod_from_template(template: core_pb2.PodTemplateSpec, namespace: str, owner_name: str,
                      ref: meta_pb2.OwnerReference | None) -> core_pb2.Pod:
    """The pod to create for an owner (GetPodFromTemplate)."""
    if not template.metadata.labels:
        raise NoLabels("unable to create pods, no labels")
    pod = core_pb2.Pod()
    m = pod.metadata
    m.namespace = namespace
    m.generate_name = f"{owner_name}-"
    m.labels.update(template.metadata.labels)
    m.annotations.update(template.metadata.annotations)
    m.finalizers.extend(template.metadata.finalizers)
    if ref is not None:
        m.owner_references.append(ref)
    pod.spec.CopyFrom(template.spec)
    return pod


class PodControl:
    """Pod writes of a workload controller (Kubernetes' PodControlInterface)."""

    def __init__(self, client: WorkloadClient) -> None:
        self.client = client

    async def create(self, namespace: str, template: core_pb2.PodTemplateSpec,
                     owner_name: str, ref: meta_pb2.OwnerReference) -> api_pb2.Object:
        obj = api_pb2.Object()
        obj.pod.CopyFrom(pod_from_template(template, namespace, owner_name, ref))
        return await self.client.create(obj)

    async def delete(self, namespace: str, name: str, uid: str) -> bool:
        """Delete the pod with that uid; False when it (that incarnation) is already gone."""
        try:
            await self.client.delete("pods", name, namespace, uid=uid)
        except (NotFound, Conflict):
            return False
        return True


async def slow_start_batch(count: int, fn: Callable[[], Awaitable[None]], *,
                           initial: int = SLOW_START_INITIAL_BATCH
                           ) -> tuple[int, Exception | None]:
    """Call `fn` `count` times in doubling concurrent batches; stop after a failing batch.

    Returns (successes, first error or None). Calls not made because an earlier batch
    failed are neither successes nor errors: the caller retries them on a later sync.
    """
    remaining, successes = count, 0
    batch = min(remaining, initial)
    while batch > 0:
        results = await asyncio.gather(*(fn() for _ in range(batch)), return_exceptions=True)
        errors = [r for r in results if isinstance(r, BaseException)]
        successes += batch - len(errors)
        for e in errors:
            if not isinstance(e, Exception):
                raise e
        if errors:
            first = errors[0]
            assert isinstance(first, Exception)
            return successes, first
        remaining -= batch
        batch = min(2 * batch, remaining)
    return successes, None
