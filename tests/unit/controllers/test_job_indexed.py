"""Indexed Jobs: completedIndexes written as Kubernetes writes them, which indexes start
(the lowest free ones, at most parallelism), duplicates and finished indexes deleted,
and each pod's index in its annotation, label, JOB_COMPLETION_INDEX and hostname."""

from __future__ import annotations

import pytest

from kemu.api.v1 import api_pb2
from kemu.services.controllers import job_indexed as ji
from tests.unit.controllers.test_job_controller import (
    NS,
    conditions,
    finish,
    get_job,
    job,
    pods,
    setup,
    sync,
)


@pytest.mark.parametrize(("indexes", "text"), [
    pytest.param(set(), "", id="none"),
    pytest.param({0}, "0", id="one"),
    pytest.param({1, 3, 4, 5, 7}, "1,3-5,7", id="ranges"),
    pytest.param({0, 1, 2}, "0-2", id="all"),
])
def test_format_and_parse(indexes: set[int], text: str) -> None:
    assert ji.format_indexes(indexes) == text
    assert ji.parse_indexes(text) == indexes


def test_parse_skips_garbage() -> None:
    assert ji.parse_indexes("1,x,3-4,5-") == {1, 3, 4}


def index_of(p: object) -> str:
    return p.pod.metadata.annotations[ji.INDEX_KEY]  # type: ignore[attr-defined, no-any-return]


async def test_indexed_job_runs_each_index_once() -> None:
    ctrl, api, _, _ = setup()
    api.put(job(spec={"completions": 3, "parallelism": 2, "completionMode": "Indexed"}))
    await sync(ctrl)
    started = pods(api)
    assert sorted(index_of(p) for p in started) == ["0", "1"]
    for p in started:
        i = index_of(p)
        assert p.pod.metadata.labels[ji.INDEX_KEY] == i
        assert p.pod.metadata.generate_name == f"pi-{i}-"
        assert p.pod.spec.hostname == f"pi-{i}"
        assert [(e.name, e.value) for e in p.pod.spec.containers[0].env] == \
            [(ji.INDEX_ENV, i)]
    first = next(p for p in started if index_of(p) == "0")
    finish(api, first, "Succeeded")
    await sync(ctrl)
    assert get_job(api).status.completed_indexes == "0"
    assert sorted(index_of(p) for p in pods(api) if p.pod.status.phase != "Succeeded") == \
        ["1", "2"]
    for p in pods(api):
        if p.pod.status.phase != "Succeeded":
            finish(api, p, "Succeeded")
    await sync(ctrl)
    status = get_job(api).status
    assert (status.completed_indexes, status.succeeded) == ("0-2", 3)
    assert conditions(api)["Complete"][0] == "True"


async def test_failed_index_is_retried_and_duplicates_deleted() -> None:
    ctrl, api, _, _ = setup()
    api.put(job(spec={"completions": 2, "parallelism": 2, "completionMode": "Indexed"}))
    await sync(ctrl)
    zero = next(p for p in pods(api) if index_of(p) == "0")
    finish(api, zero, "Failed")
    await sync(ctrl)
    running = [index_of(p) for p in pods(api) if p.pod.status.phase != "Failed"]
    assert sorted(running) == ["0", "1"] and get_job(api).status.failed == 1
    dup = api_pb2.Object()
    dup.CopyFrom(api.objects[("pods", f"{NS}/{zero.pod.metadata.name}")])
    dup.pod.metadata.name = "extra-zero"
    dup.pod.metadata.uid = "uid-extra"
    dup.pod.status.phase = "Running"
    api.put(dup)
    await sync(ctrl)  # two pods for index 0: the one further along (Running) is kept
    alive = [p for p in pods(api) if p.pod.status.phase != "Failed"]
    assert sorted(index_of(p) for p in alive) == ["0", "1"]
    assert "extra-zero" in [p.pod.metadata.name for p in alive]
