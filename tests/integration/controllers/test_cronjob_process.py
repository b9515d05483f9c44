"""The CronJob and Job controllers in-process against a real store + apiserver: an
every-minute CronJob fires at its schedule time (the clock is shifted to just before a
minute, never waited out), and with a clock running 60 times as fast, Jobs follow one
another under Forbid, finish (pods made Succeeded by hand), leave status.active, set
lastSuccessfulTime, and the oldest are deleted beyond successfulJobsHistoryLimit."""

from __future__ import annotations

import functools
import time
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2, batch_pb2
from kemu.client.aio import AsyncClient
from kemu.services.controllers import cron_schedule as cs
from kemu.services.controllers import podutil
from tests.conftest import Cluster
from tests.integration.controllers.test_gc_process import until as wait_until
from tests.integration.controllers.test_job_process import (
    event_reasons,
    finish_running,
    jobs_running,
    new_namespace,
)

pytestmark = pytest.mark.integration


def cronjob_manifest(ns: str, name: str, **spec: Any) -> api_pb2.Object:
    return manifest.from_dict({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": name, "namespace": ns},
        "spec": {"schedule": "* * * * *", **spec, "jobTemplate": {"spec": {"template": {
            "spec": {"restartPolicy": "Never",
                     "containers": [{"name": "c", "image": "x"}]}}}}}})


async def owned_jobs(client: AsyncClient, ns: str, uid: str) -> list[batch_pb2.Job]:
    return [o.job for o in (await client.list("jobs", ns)).items
            if any(r.uid == uid and r.controller for r in o.job.metadata.owner_references)]


async def cronjob_status(client: AsyncClient, ns: str, name: str) -> batch_pb2.CronJobStatus:
    return (await client.get("cronjobs", name, ns)).cron_job.status


async def test_fires_at_the_schedule_time(cluster: Cluster) -> None:
    offset = [0.0]
    cron = {"clock": lambda: time.time() + offset[0]}
    async with jobs_running(cluster.server, cron=cron) as client:
        ns = await new_namespace(client)
        created = await client.create(cronjob_manifest(ns, "tick", suspend=True))
        cj = created.cron_job
        first = (int(podutil.seconds(cj.metadata.creation_timestamp)) // 60 + 1) * 60
        offset[0] = first - 1.0 - time.time()  # the controller's clock: 1 s before it
        obj = await client.get("cronjobs", "tick", ns)
        obj.cron_job.spec.suspend = False
        await client.update(obj)
        jobs = await wait_until("the first Job", lambda: owned_jobs(client, ns,
                                                                    cj.metadata.uid), 10)
        fired_at = time.time() + offset[0]
        # Never early; late only by the re-sync slack and the poll (a loaded machine).
        assert first <= fired_at < first + 3.0, fired_at - first
        (job,) = jobs
        assert job.metadata.name == f"tick-{first // 60}"
        assert job.metadata.annotations[cs.SCHEDULED_TIMESTAMP].startswith(
            time.strftime("%Y-%m-%dT%H:%M:00", time.gmtime(first)))
        status = await wait_until("status", lambda: _active(client, ns, "tick"))
        assert [r.name for r in status.active] == [job.metadata.name]
        assert status.last_schedule_time.seconds == first
        pods = await wait_until("the Job's pod", lambda: _pods_of(client, ns,
                                                                  job.metadata.name))
        assert pods[0].pod.metadata.labels["job-name"] == job.metadata.name
        assert "SuccessfulCreate" in await event_reasons(client, ns, "CronJob", "tick")


async def test_runs_complete_and_history_is_trimmed(cluster: Cluster) -> None:
    base = time.time()
    cron = {"clock": lambda: base + (time.time() - base) * 60, "speed": 60.0}
    async with jobs_running(cluster.server, cron=cron) as client:
        ns = await new_namespace(client)
        created = await client.create(cronjob_manifest(
            ns, "often", concurrencyPolicy="Forbid", successfulJobsHistoryLimit=2))
        uid = created.cron_job.metadata.uid
        finished: set[str] = set()
        while len(finished) < 4:
            job: str = await wait_until("a running Job",
                                        lambda: _running_job(client, ns, uid))
            assert len([j for j in await owned_jobs(client, ns, uid)
                        if not _done(j)]) == 1  # Forbid: one at a time
            await wait_until("its pod", functools.partial(_finish_pods, client, ns, job))
            await wait_until("Complete", functools.partial(_complete, client, ns, job))
            finished.add(job)
        await wait_until("history trimmed to 2", lambda: _history(client, ns, uid, 2))
        status = await cronjob_status(client, ns, "often")
        assert status.HasField("last_successful_time")
        reasons = await wait_until("events", lambda: _reasons(client, ns, "often",
                                                              "SuccessfulDelete"))
        assert "SawCompletedJob" in reasons and "UnexpectedJob" not in reasons


# ---- helpers ------------------------------------------------------------------------------


def _done(job: batch_pb2.Job) -> bool:
    return any(c.type in ("Complete", "Failed") and c.status == "True"
               for c in job.status.conditions)


async def _active(client: AsyncClient, ns: str, name: str) -> Any:
    status = await cronjob_status(client, ns, name)
    return status if status.active else None


async def _pods_of(client: AsyncClient, ns: str, job: str) -> list[api_pb2.Object]:
    return list((await client.list("pods", ns, label_selector=f"job-name={job}")).items)


async def _running_job(client: AsyncClient, ns: str, uid: str) -> str | None:
    for j in await owned_jobs(client, ns, uid):
        if not _done(j):
            return j.metadata.name
    return None


async def _finish_pods(client: AsyncClient, ns: str, job: str) -> bool:
    return await finish_running(client, ns, job, "Succeeded") > 0


async def _complete(client: AsyncClient, ns: str, job: str) -> bool:
    return _done((await client.get("jobs", job, ns)).job)


async def _history(client: AsyncClient, ns: str, uid: str, limit: int) -> bool:
    done = [j for j in await owned_jobs(client, ns, uid) if _done(j)]
    return len(done) <= limit


async def _reasons(client: AsyncClient, ns: str, name: str, reason: str) -> list[str] | None:
    reasons = await event_reasons(client, ns, "CronJob", name)
    return reasons if reason in reasons else None
