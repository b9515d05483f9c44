"""The Jobs `kemuctl create job` builds, as kubectl's `create job` builds them: from an
image and command, and from a CronJob's jobTemplate; how --from is read; and a client
dry run, which needs no server."""

from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout

import pytest
import yaml

from kemu.api import manifest
from kemu.cli.ctl import cmd_create
from kemu.cli.ctl.errors import CtlError
from kemu.cli.kemuctl import main


def test_job_from_image() -> None:
    job = cmd_create.job("pi", "perl:5", ["perl", "-e", "1"]).job
    (c,) = job.spec.template.spec.containers
    assert (job.metadata.name, c.name, c.image, list(c.command)) == \
        ("pi", "pi", "perl:5", ["perl", "-e", "1"])
    assert job.spec.template.spec.restart_policy == "Never"
    assert not job.spec.HasField("completions")  # left to the apiserver's defaults


def test_job_from_cronjob() -> None:
    cj = manifest.from_dict({
        "apiVersion": "batch/v1", "kind": "CronJob",
        "metadata": {"name": "nightly", "namespace": "ops", "uid": "u-1"},
        "spec": {"schedule": "@daily",
                 "jobTemplate": {"metadata": {"labels": {"team": "a"},
                                              "annotations": {"note": "kept"}},
                                 "spec": {"parallelism": 2, "template": {"spec": {
                                     "restartPolicy": "Never",
                                     "containers": [{"name": "c", "image": "x"}]}}}}}}
    ).cron_job
    job = cmd_create.job_from_cronjob("now", cj).job
    assert (job.metadata.name, job.metadata.namespace) == ("now", "ops")
    assert dict(job.metadata.annotations) == {"note": "kept",
                                              "cronjob.kubernetes.io/instantiate": "manual"}
    assert dict(job.metadata.labels) == {"team": "a"}
    ref = job.metadata.owner_references[0]
    assert (ref.api_version, ref.kind, ref.name, ref.uid, ref.controller,
            ref.block_owner_deletion) == ("batch/v1", "CronJob", "nightly", "u-1", True, False)
    assert job.spec.parallelism == 2


@pytest.mark.parametrize("source", ["cronjob/n", "cronjobs/n", "cj/n", "cronjobs.batch/n",
                                    "CronJob/n"])
def test_from_names_a_cronjob(source: str) -> None:
    assert cmd_create._cronjob_name(source) == "n"


@pytest.mark.parametrize(("source", "message"), [
    pytest.param("nightly", "of the form TYPE/NAME", id="no-type"),
    pytest.param("cronjob/", "of the form TYPE/NAME", id="no-name"),
    pytest.param("deployment/web", "unknown object type Deployment", id="other-kind"),
    pytest.param("widgets/w", "doesn't have a resource type", id="unknown-type"),
])
def test_from_refusals(source: str, message: str) -> None:
    with pytest.raises(CtlError, match=message):
        cmd_create._cronjob_name(source)


def test_client_dry_run_prints_the_job() -> None:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--server", "127.0.0.1:1", "create", "job", "pi", "--image=perl",
                     "--dry-run=client", "-o", "yaml", "--", "perl", "-v"])
    assert code == 0, err.getvalue()
    doc = yaml.safe_load(out.getvalue())
    assert (doc["apiVersion"], doc["kind"], doc["metadata"]["name"]) == ("batch/v1", "Job",
                                                                          "pi")
    assert doc["spec"]["template"]["spec"]["containers"][0]["command"] == ["perl", "-v"]


def test_from_and_command_refused() -> None:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--server", "127.0.0.1:1", "create", "job", "pi", "--from=cronjob/x",
                     "--", "echo"])
    assert code != 0 and "cannot specify --from and command" in err.getvalue()
