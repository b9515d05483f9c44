"""An exit with code 137 that Docker has not (yet) marked OOMKilled: Docker may set
OOMKilled a moment after the exit is seen, so the pod worker neither writes reason `Error`,
nor makes the pod terminal, nor restarts the container until the exit has settled; the
inspect cache of the real runtime takes such an exit again too."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from kemu.nodeagent.runtime import SETTLE_SECONDS, ContainerInfo, DockerRuntime
from tests.unit.nodeagent.test_nodeagent_podworker import Rig


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def _oom_now(rig: Rig, cid: str) -> None:
    """Docker's late OOM event: the exit is marked OOMKilled after it was seen."""
    rig.runtime.containers[cid] = replace(rig.runtime.containers[cid], oom_killed=True)


def _creates(rig: Rig) -> int:
    return sum(1 for c in rig.runtime.calls if c[0] == "create")


async def test_never_pod_waits_for_oom_killed_then_reports_it(rig: Rig) -> None:
    rig.put(restartPolicy="Never")
    assert (await rig.sync()).phase == "Running"
    writes, timers = len(rig.client.statuses), rig.queue.waiting
    app = rig.runtime.named("app")[0].id
    rig.runtime.exit(app, 137)  # SIGKILLed; OOMKilled not recorded yet
    await rig.sync()
    assert len(rig.client.statuses) == writes  # no terminal status, no reason Error
    assert rig.queue.waiting == timers + 1  # looked at again shortly
    assert rig.pods.store["shop/web"].pod.status.phase == "Running"
    rig.clock.advance(1)
    _oom_now(rig, app)
    st = await rig.sync()
    t = st.container_statuses[0].state.terminated
    assert (st.phase, t.exit_code, t.reason) == ("Failed", 137, "OOMKilled")


async def test_never_pod_settles_as_error_after_the_window(rig: Rig) -> None:
    rig.put(restartPolicy="Never")
    await rig.sync()
    writes = len(rig.client.statuses)
    rig.runtime.exit(rig.runtime.named("app")[0].id, 137)  # a plain kill -9
    await rig.sync()
    rig.clock.advance(SETTLE_SECONDS - 0.5)
    await rig.sync()
    assert len(rig.client.statuses) == writes  # still inside the window
    rig.clock.advance(1)
    st = await rig.sync()
    t = st.container_statuses[0].state.terminated
    assert (st.phase, t.exit_code, t.reason) == ("Failed", 137, "Error")


async def test_restart_waits_and_last_state_says_oom_killed(rig: Rig) -> None:
    rig.put()  # restartPolicy Always
    await rig.sync()
    creates = _creates(rig)
    first = rig.runtime.named("app")[0].id
    rig.runtime.exit(first, 137)
    await rig.sync()
    assert _creates(rig) == creates  # no restart decision on the first look
    rig.clock.advance(0.5)
    _oom_now(rig, first)
    st = await rig.sync()
    assert _creates(rig) == creates + 1
    cs = st.container_statuses[0]
    assert cs.restart_count == 1 and cs.state.HasField("running")
    assert (cs.last_state.terminated.exit_code, cs.last_state.terminated.reason) == (
        137, "OOMKilled")


async def test_other_exit_codes_are_acted_on_at_once(rig: Rig) -> None:
    rig.put(restartPolicy="Never")
    await rig.sync()
    rig.runtime.exit(rig.runtime.named("app")[0].id, 1)
    st = await rig.sync()
    assert (st.phase, st.container_statuses[0].state.terminated.reason) == ("Failed", "Error")


async def test_a_container_the_agent_killed_is_not_waited_for(rig: Rig) -> None:
    rig.put(activeDeadlineSeconds=30, terminationGracePeriodSeconds=0)
    await rig.sync()
    rig.clock.advance(31)
    st = await rig.sync()  # the agent stops the app with grace 0: exit 137, its own doing
    assert rig.runtime.named("app")[0].exit_code == 137
    t = st.container_statuses[0].state.terminated
    assert (st.phase, st.reason, t.reason) == ("Failed", "DeadlineExceeded", "Error")


def test_settle_left() -> None:
    done = datetime(2024, 1, 1, tzinfo=UTC)
    info = ContainerInfo(id="c", name="c", labels={}, state="exited", exit_code=137,
                         finished_at=done)
    assert info.settle_left(done + timedelta(seconds=1)) == pytest.approx(SETTLE_SECONDS - 1)
    assert not info.exit_settled(done + timedelta(seconds=1))
    assert info.exit_settled(done + timedelta(seconds=SETTLE_SECONDS))
    assert replace(info, oom_killed=True).exit_settled(done)
    assert replace(info, exit_code=1).exit_settled(done)
    assert replace(info, state="running", exit_code=0, finished_at=None).exit_settled(done)


class _Api:
    """The two docker APIClient calls list_containers makes; counts inspects."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc
        self.inspects = 0

    def containers(self, **_: Any) -> list[dict[str, Any]]:
        return [{"Id": self.doc["Id"], "State": self.doc["State"]["Status"]}]

    def inspect_container(self, container_id: str) -> dict[str, Any]:
        self.inspects += 1
        return self.doc


def _docker_runtime(api: _Api) -> DockerRuntime:
    from concurrent.futures import ThreadPoolExecutor

    rt = DockerRuntime.__new__(DockerRuntime)
    rt.api = api
    rt._base_url = "fake"
    rt._pool = ThreadPoolExecutor(max_workers=1)
    rt._inspected = {}
    return rt


def _rfc3339(dt: datetime) -> str:
    return dt.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


async def test_inspect_cache_takes_an_unsettled_exit_again() -> None:
    now = datetime.now(UTC)
    doc: dict[str, Any] = {"Id": "abc", "Name": "/x", "Config": {"Labels": {}},
                           "State": {"Status": "exited", "ExitCode": 137, "OOMKilled": False,
                                     "FinishedAt": _rfc3339(now)}}
    api = _Api(doc)
    rt = _docker_runtime(api)
    try:
        assert not (await rt.list_containers({}))[0].oom_killed
        doc["State"]["OOMKilled"] = True  # Docker's late OOM event
        assert (await rt.list_containers({}))[0].oom_killed  # not served from the cache
        assert api.inspects == 2
        await rt.list_containers({})  # settled (OOMKilled): the cache serves it
        assert api.inspects == 2
        # An inspect taken after the window is final even without OOMKilled.
        old = now - timedelta(seconds=SETTLE_SECONDS + 1)
        doc["State"].update(OOMKilled=False, FinishedAt=_rfc3339(old))
        rt.invalidate("abc")
        await rt.list_containers({})
        await rt.list_containers({})
        assert api.inspects == 3
    finally:
        await rt.close()
