"""`kemuctl create job` (from an image and command, and `--from=cronjob/NAME` as kubectl
runs a CronJob by hand) and `kemuctl get jobs|cronjobs` columns, against a real
apiserver; Job status is written by hand, as the Job controller would."""

from __future__ import annotations

import pytest

from kemu.api import manifest
from kemu.client import Client
from tests.integration.kemuctl.conftest import Kemuctl

pytestmark = pytest.mark.integration


def make_cronjob(api: Client, ns: str, name: str) -> str:
    created = api.create(manifest.from_dict({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"schedule": "*/5 * * * *", "timeZone": "Europe/Paris",
                 "jobTemplate": {"metadata": {"labels": {"team": "a"},
                                              "annotations": {"note": "kept"}},
                                 "spec": {"backoffLimit": 2, "template": {"spec": {
                                     "restartPolicy": "OnFailure",
                                     "containers": [{"name": "c", "image": "x"}]}}}}}}))
    return created.cron_job.metadata.uid


def test_create_job_with_image_and_command(ctl: Kemuctl, ns: str, api: Client) -> None:
    assert ctl.ok("create", "job", "pi", "--image=perl:5", "-n", ns, "--", "perl", "-e",
                  "print 1").lines == ["job.batch/pi created"]
    job = api.get("jobs", "pi", ns).job
    (c,) = job.spec.template.spec.containers
    assert (c.name, c.image, list(c.command)) == ("pi", "perl:5", ["perl", "-e", "print 1"])
    assert job.spec.template.spec.restart_policy == "Never"
    assert job.spec.template.metadata.labels["job-name"] == "pi"


def test_create_job_from_cronjob(ctl: Kemuctl, ns: str, api: Client) -> None:
    uid = make_cronjob(api, ns, "nightly")
    assert ctl.ok("create", "job", "by-hand", "--from=cronjob/nightly", "-n", ns).lines == \
        ["job.batch/by-hand created"]
    job = api.get("jobs", "by-hand", ns).job
    assert job.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job.metadata.annotations["note"] == "kept"
    assert job.metadata.labels["team"] == "a"
    ref = job.metadata.owner_references[0]
    assert (ref.kind, ref.api_version, ref.name, ref.uid, ref.controller) == \
        ("CronJob", "batch/v1", "nightly", uid, True)
    assert job.spec.backoff_limit == 2
    assert job.spec.template.spec.restart_policy == "OnFailure"


@pytest.mark.parametrize(("args", "message"), [
    pytest.param(("create", "job", "x"), "either --image or --from must be specified",
                 id="neither"),
    pytest.param(("create", "job", "x", "--image=a", "--from=cronjob/y"),
                 "either --image or --from must be specified", id="both"),
    pytest.param(("create", "job", "x", "--from=deployment/y"), "unknown object type",
                 id="not-a-cronjob"),
    pytest.param(("create", "job", "x", "--from=cronjob/missing"), "not found",
                 id="missing-cronjob"),
])
def test_create_job_refusals(ctl: Kemuctl, ns: str, args: tuple[str, ...],
                             message: str) -> None:
    result = ctl(*args, "-n", ns)
    assert result.code != 0 and message in result.err


def test_get_jobs_and_cronjobs_columns(ctl: Kemuctl, ns: str, api: Client) -> None:
    make_cronjob(api, ns, "nightly")
    ctl.ok("create", "job", "done", "--image=x", "-n", ns)
    obj = api.get("jobs", "done", ns)
    obj.job.status.succeeded = 1
    obj.job.status.start_time.FromSeconds(1_700_000_000)
    obj.job.status.completion_time.FromSeconds(1_700_000_042)
    obj.job.status.conditions.add(type="Complete", status="True")
    api.update_status(obj)
    lines = ctl.ok("get", "jobs", "-n", ns).lines
    assert lines[0].split() == ["NAME", "STATUS", "COMPLETIONS", "DURATION", "AGE"]
    assert lines[1].split()[:4] == ["done", "Complete", "1/1", "42s"]
    lines = ctl.ok("get", "cronjobs", "-n", ns).lines
    assert lines[0].split() == ["NAME", "SCHEDULE", "TIMEZONE", "SUSPEND", "ACTIVE", "LAST",
                                "SCHEDULE", "AGE"]
    assert lines[1].split()[:7] == ["nightly", "*/5", "*", "*", "*", "*", "Europe/Paris"]
    assert lines[1].split()[7:9] == ["False", "0"] and "<none>" in lines[1]
