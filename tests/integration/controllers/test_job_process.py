"""The Job controller in-process against a real store + apiserver: pods with controller
references and job-name labels up to parallelism, an Indexed Job, completion from pod
status written by hand (no node agent runs here), backoffLimit with replacements (Never)
and with container restarts in place (OnFailure), activeDeadlineSeconds, suspend and
resume, ttlSecondsAfterFinished and the Job's events.

The controller is not wired into the controller manager yet, so `jobs_running` runs it
(and the CronJob controller for the CronJob tests) as asyncio tasks over informers of
their own, as the manager would.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2, core_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import NotFound
from kemu.client.informer import Informer
from kemu.services.controllers import cronjob as cjc
from kemu.services.controllers import job as jobc
from tests.conftest import Cluster
from tests.integration.controllers.test_gc_process import until as wait_until

pytestmark = pytest.mark.integration
_ids = itertools.count()


@contextlib.asynccontextmanager
async def jobs_running(server: str, *, cron: dict[str, Any] | None = None,
                       backoff: float = 0.0) -> AsyncIterator[AsyncClient]:
    """A client, started informers, the Job controller (and with `cron`, the CronJob
    controller made with those keyword arguments) running as tasks; raises if one died."""
    client = AsyncClient(server, timeout=15)
    names = set(jobc.INFORMERS) | (set(cjc.INFORMERS) if cron is not None else set())
    infs = {r: Informer(client, r) for r in sorted(names)}
    for inf in infs.values():
        inf.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        for inf in infs.values():
            await inf.wait_synced(15)
        tasks.append(asyncio.create_task(jobc.JobController(
            client, infs, workers=2, pod_failure_backoff=backoff).run()))
        if cron is not None:
            tasks.append(asyncio.create_task(cjc.CronJobController(
                client, infs, workers=2, **cron).run()))
        yield client
        for t in tasks:
            assert not t.done(), t.exception()
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        for inf in infs.values():
            await inf.stop()
        await client.close()


async def new_namespace(client: AsyncClient) -> str:
    ns = f"job-{next(_ids)}-{uuid.uuid4().hex[:5]}"
    await client.create(manifest.from_dict({"apiVersion": "v1", "kind": "Namespace",
                                            "metadata": {"name": ns}}))
    return ns


def job_manifest(ns: str, name: str, *, restart: str = "Never", **spec: Any) -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns},
        "spec": {**spec, "template": {"spec": {
            "restartPolicy": restart, "containers": [{"name": "c", "image": "x"}]}}}})


async def job_pods(client: AsyncClient, ns: str, name: str, *, phase: str | None = None
                   ) -> list[core_pb2.Pod]:
    items = (await client.list("pods", ns, label_selector=f"job-name={name}")).items
    return [o.pod for o in items if not o.pod.metadata.HasField("deletion_timestamp")
            and (phase is None or o.pod.status.phase == phase)]


async def set_phase(client: AsyncClient, pod: core_pb2.Pod, phase: str) -> None:
    obj = await client.get("pods", pod.metadata.name, pod.metadata.namespace)
    obj.pod.status.phase = phase
    await client.update_status(obj)


async def finish_running(client: AsyncClient, ns: str, name: str, phase: str) -> int:
    """Finish every unfinished pod of the Job with `phase`; how many there were."""
    pods = [p for p in await job_pods(client, ns, name)
            if p.status.phase not in ("Succeeded", "Failed")]
    for p in pods:
        await set_phase(client, p, phase)
    return len(pods)


async def job_status(client: AsyncClient, ns: str, name: str) -> Any:
    return (await client.get("jobs", name, ns)).job.status


def condition(status: Any, type_: str) -> tuple[str, str] | None:
    for c in status.conditions:
        if c.type == type_:
            return (c.status, c.reason)
    return None


async def event_reasons(client: AsyncClient, ns: str, kind: str, name: str) -> list[str]:
    return [o.event.reason for o in (await client.list("events", ns)).items
            if o.event.involved_object.kind == kind and o.event.involved_object.name == name]


async def test_completions_with_parallelism(cluster: Cluster) -> None:
    async with jobs_running(cluster.server) as client:
        ns = await new_namespace(client)
        created = await client.create(job_manifest(ns, "pi", completions=3, parallelism=2))
        uid = created.job.metadata.uid
        pods = await wait_until("2 pods", lambda: _n_pods(client, ns, "pi", 2))
        for p in pods:
            ref = p.metadata.owner_references[0]
            assert (ref.kind, ref.name, ref.uid, ref.controller) == ("Job", "pi", uid, True)
            assert p.metadata.labels["batch.kubernetes.io/job-name"] == "pi"
            assert p.metadata.labels["batch.kubernetes.io/controller-uid"] == uid
            assert p.metadata.generate_name == "pi-"
        await wait_until("active 2", lambda: _status_is(client, ns, "pi", active=2))
        await finish_running(client, ns, "pi", "Succeeded")
        await wait_until("the third pod", lambda: _n_pods(client, ns, "pi", 1, "Pending"))
        await finish_running(client, ns, "pi", "Succeeded")
        status = await wait_until("Complete", lambda: _finished(client, ns, "pi", "Complete"))
        assert (status.succeeded, status.failed, status.active) == (3, 0, 0)
        assert status.HasField("completion_time") and status.HasField("start_time")
        assert len(await job_pods(client, ns, "pi")) == 3
        reasons = await wait_until("events", lambda: _reasons_with(client, ns, "pi",
                                                                     "Completed"))
        assert reasons.count("SuccessfulCreate") == 3


async def test_indexed_job(cluster: Cluster) -> None:
    async with jobs_running(cluster.server) as client:
        ns = await new_namespace(client)
        await client.create(job_manifest(ns, "idx", completions=2, parallelism=2,
                                         completionMode="Indexed"))
        pods = await wait_until("2 pods", lambda: _n_pods(client, ns, "idx", 2))
        key = "batch.kubernetes.io/job-completion-index"
        assert sorted(p.metadata.annotations[key] for p in pods) == ["0", "1"]
        assert sorted(p.spec.hostname for p in pods) == ["idx-0", "idx-1"]
        await finish_running(client, ns, "idx", "Succeeded")
        status = await wait_until("Complete", lambda: _finished(client, ns, "idx", "Complete"))
        assert (status.completed_indexes, status.succeeded) == ("0-1", 2)


async def test_backoff_limit_replaces_then_fails(cluster: Cluster) -> None:
    async with jobs_running(cluster.server) as client:
        ns = await new_namespace(client)
        await client.create(job_manifest(ns, "flaky", completions=1, backoffLimit=1))
        for n in (1, 2):
            await wait_until(f"pod {n}", lambda: _n_pods(client, ns, "flaky", 1))
            await finish_running(client, ns, "flaky", "Failed")
        status = await wait_until("Failed", lambda: _finished(client, ns, "flaky", "Failed"))
        assert condition(status, "Failed") == ("True", "BackoffLimitExceeded")
        assert status.failed == 2 and status.active == 0
        await wait_until("event", lambda: _reasons_with(client, ns, "flaky",
                                                        "BackoffLimitExceeded"))


async def test_on_failure_restarts_count_toward_backoff_limit(cluster: Cluster) -> None:
    async with jobs_running(cluster.server) as client:
        ns = await new_namespace(client)
        await client.create(job_manifest(ns, "retry", restart="OnFailure", backoffLimit=2))
        (pod,) = await wait_until("a pod", lambda: _n_pods(client, ns, "retry", 1))
        for restarts in (1, 2):  # the kubelet restarting the container in place
            obj = await client.get("pods", pod.metadata.name, ns)
            obj.pod.status.phase = "Running"
            del obj.pod.status.container_statuses[:]
            obj.pod.status.container_statuses.add(name="c", restart_count=restarts)
            await client.update_status(obj)
        status = await wait_until("Failed", lambda: _finished(client, ns, "retry", "Failed"))
        assert condition(status, "Failed") == ("True", "BackoffLimitExceeded")
        assert await job_pods(client, ns, "retry") == [] and status.failed == 1


async def test_active_deadline_and_ttl(cluster: Cluster) -> None:
    async with jobs_running(cluster.server) as client:
        ns = await new_namespace(client)
        await client.create(job_manifest(ns, "slow", activeDeadlineSeconds=1,
                                         ttlSecondsAfterFinished=1))
        await wait_until("a pod", lambda: _n_pods(client, ns, "slow", 1))
        status = await wait_until("Failed", lambda: _finished(client, ns, "slow", "Failed"))
        assert condition(status, "Failed") == ("True", "DeadlineExceeded")
        assert await job_pods(client, ns, "slow") == []
        await wait_until("the Job deleted after its TTL", lambda: _gone(client, ns, "slow"))


async def test_suspend_and_resume(cluster: Cluster) -> None:
    async with jobs_running(cluster.server) as client:
        ns = await new_namespace(client)
        await client.create(job_manifest(ns, "held", completions=2, parallelism=2))
        await wait_until("2 pods", lambda: _n_pods(client, ns, "held", 2))
        await _set_suspend(client, ns, "held", True)
        await wait_until("pods deleted", lambda: _n_pods(client, ns, "held", 0))
        status = await wait_until("Suspended", lambda: _cond(client, ns, "held", "Suspended",
                                                             "True"))
        assert status.active == 0 and status.failed == 0
        await _set_suspend(client, ns, "held", False)
        await wait_until("pods again", lambda: _n_pods(client, ns, "held", 2))
        await wait_until("resumed", lambda: _cond(client, ns, "held", "Suspended", "False"))
        await finish_running(client, ns, "held", "Succeeded")
        await wait_until("Complete", lambda: _finished(client, ns, "held", "Complete"))


# ---- helpers ------------------------------------------------------------------------------


async def _n_pods(client: AsyncClient, ns: str, name: str, n: int,
                  phase: str | None = None) -> list[core_pb2.Pod] | bool:
    pods = await job_pods(client, ns, name)
    if phase is not None:
        pods = [p for p in pods if p.status.phase in (phase, "")]
        return pods if len(pods) == n else False
    unfinished = [p for p in pods if p.status.phase not in ("Succeeded", "Failed")]
    if len(unfinished) != n:
        return False
    return unfinished or True


async def _status_is(client: AsyncClient, ns: str, name: str, *, active: int) -> bool:
    return bool((await job_status(client, ns, name)).active == active)


async def _finished(client: AsyncClient, ns: str, name: str, type_: str) -> Any:
    status = await job_status(client, ns, name)
    return status if condition(status, type_) is not None and \
        condition(status, type_)[0] == "True" else None  # type: ignore[index]


async def _cond(client: AsyncClient, ns: str, name: str, type_: str, value: str) -> Any:
    status = await job_status(client, ns, name)
    c = condition(status, type_)
    return status if c is not None and c[0] == value else None


async def _reasons_with(client: AsyncClient, ns: str, name: str, reason: str
                        ) -> list[str] | None:
    reasons = await event_reasons(client, ns, "Job", name)
    return reasons if reason in reasons else None


async def _gone(client: AsyncClient, ns: str, name: str) -> bool:
    try:
        await client.get("jobs", name, ns)
    except NotFound:
        return True
    return False


async def _set_suspend(client: AsyncClient, ns: str, name: str, value: bool) -> None:
    for _ in range(5):
        obj = await client.get("jobs", name, ns)
        obj.job.spec.suspend = value
        try:
            await client.update(obj)
            return
        except Exception:  # a status write in between: read again
            await asyncio.sleep(0.05)
    raise AssertionError("could not update the Job")
