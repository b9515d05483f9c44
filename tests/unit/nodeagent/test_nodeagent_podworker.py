"""The pod worker against a fake runtime: create, crash-loop back-off, image pull errors,
adoption of running containers, and deletion."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client.informer import Informer
from kemu.client.workqueue import WorkQueue
from kemu.nodeagent.clock import FakeClock
from kemu.nodeagent.config import AgentConfig
from kemu.nodeagent.podworker import PodWorker
from kemu.nodeagent.probes import ProbeManager
from tests.unit.nodeagent.fakes import FakeClient, FakeProvisioner, FakeRecorder, FakeRuntime

KEY = "shop/web"


class Rig:
    def __init__(self, tmp: Path) -> None:
        self.clock = FakeClock()
        self.runtime = FakeRuntime(self.clock, images={"pause", "app:1"})
        self.client = FakeClient()
        self.recorder = FakeRecorder()
        self.queue: WorkQueue[str] = WorkQueue()
        self.pods = Informer(None, "pods")  # type: ignore[arg-type]
        empty = [Informer(None, r) for r in ("configmaps", "secrets", "services")]  # type: ignore[arg-type]
        cfg = AgentConfig(apiserver="x:1", node_name="n1", node_ip="192.0.2.1",
                          data_dir=tmp, pause_image="pause", backoff_initial=10,
                          backoff_max=300)
        self.probes = ProbeManager(self.runtime, self.clock, on_change=self.queue.add,  # type: ignore[arg-type]
                                   on_failure=lambda *a: None)
        self.worker = PodWorker(config=cfg, client=self.client, runtime=self.runtime,  # type: ignore[arg-type]
                                clock=self.clock, pods=self.pods, configmaps=empty[0],
                                secrets=empty[1], services=empty[2], recorder=self.recorder,
                                provisioner=FakeProvisioner(tmp / "pv"),  # type: ignore[arg-type]
                                probes=self.probes,
                                queue=self.queue)

    def put(self, **spec: Any) -> api_pb2.Object:
        doc = {"apiVersion": "v1", "kind": "Pod",
               "metadata": {"name": "web", "namespace": "shop", "uid": "u1",
                            "resourceVersion": "5"},
               "spec": {"nodeName": "n1", "restartPolicy": "Always",
                        "terminationGracePeriodSeconds": 30,
                        "containers": [{"name": "app", "image": "app:1",
                                        "imagePullPolicy": "IfNotPresent"}], **spec}}
        obj = manifest.from_dict(doc)
        self.pods.store[KEY] = obj
        return obj

    def last_status(self) -> Any:
        obj = self.client.statuses[-1]
        self.pods.store[KEY].pod.status.CopyFrom(obj.pod.status)
        return obj.pod.status

    async def sync(self) -> Any:
        await self.worker.sync(KEY)
        return self.last_status() if self.client.statuses else None


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


async def test_new_pod_gets_sandbox_and_container(rig: Rig) -> None:
    rig.put()
    st = await rig.sync()
    assert [c for c in rig.runtime.calls if c[0] in ("create", "start")] == [
        ("create", "kemu_POD_web_shop_u1_0"), ("start", "kemu_POD_web_shop_u1_0"),
        ("create", "kemu_app_web_shop_u1_0"), ("start", "kemu_app_web_shop_u1_0")]
    app = rig.runtime.named("app")[0]
    sb = rig.runtime.named("POD")[0]
    assert rig.runtime.specs[app.id].network_mode == f"container:{sb.id}"
    assert st.phase == "Running" and st.pod_ip == sb.ip and st.host_ip == "192.0.2.1"
    assert st.container_statuses[0].ready
    assert rig.recorder.reasons() == ["Pulled", "Created", "Started"]
    writes = len(rig.client.statuses)
    await rig.sync()  # nothing changed: no Docker call, no status write
    assert len(rig.client.statuses) == writes
    assert sum(1 for c in rig.runtime.calls if c[0] == "create") == 2


async def test_crash_loop_back_off(rig: Rig) -> None:
    rig.put()
    await rig.sync()
    first = rig.runtime.named("app")[0].id
    rig.runtime.exit(first, 1)
    st = await rig.sync()  # first restart: at once
    assert st.container_statuses[0].restart_count == 1
    second = next(c.id for c in rig.runtime.named("app") if c.id != first)
    rig.runtime.exit(second, 1)
    st = await rig.sync()
    cs = st.container_statuses[0]
    assert cs.state.waiting.reason == "CrashLoopBackOff"
    assert cs.state.waiting.message.startswith("back-off 10s restarting failed container=app")
    assert cs.last_state.terminated.exit_code == 1 and cs.restart_count == 1
    assert st.phase == "Running"
    rig.clock.advance(5)
    st = await rig.sync()
    assert st.container_statuses[0].state.waiting.reason == "CrashLoopBackOff"
    rig.clock.advance(6)
    st = await rig.sync()
    assert st.container_statuses[0].restart_count == 2
    assert st.container_statuses[0].state.HasField("running")
    assert len(rig.runtime.named("app")) == 2  # the current one and the one before it
    assert "BackOff" in rig.recorder.reasons()


async def test_missing_image_err_image_pull_then_back_off(rig: Rig) -> None:
    rig.put(containers=[{"name": "app", "image": "missing:1", "imagePullPolicy": "IfNotPresent"}])
    st = await rig.sync()
    assert st.container_statuses[0].state.waiting.reason == "ErrImagePull"
    assert st.phase == "Pending"
    st = await rig.sync()
    assert st.container_statuses[0].state.waiting.reason == "ImagePullBackOff"
    assert st.container_statuses[0].state.waiting.message == 'Back-off pulling image "missing:1"'
    assert [c for c in rig.runtime.calls if c[0] == "pull"] == [("pull", "missing:1")]
    rig.clock.advance(11)
    st = await rig.sync()
    assert st.container_statuses[0].state.waiting.reason == "ErrImagePull"


async def test_always_pull_falls_back_to_the_local_image(rig: Rig) -> None:
    rig.put(containers=[{"name": "app", "image": "app:1", "imagePullPolicy": "Always"}])
    st = await rig.sync()
    assert st.container_statuses[0].state.HasField("running")
    assert ("pull", "app:1") in rig.runtime.calls


async def test_never_pull_policy(rig: Rig) -> None:
    rig.put(containers=[{"name": "app", "image": "absent:1", "imagePullPolicy": "Never"}])
    st = await rig.sync()
    assert st.container_statuses[0].state.waiting.reason == "ErrImageNeverPull"
    assert not [c for c in rig.runtime.calls if c[0] == "pull"]


async def test_restart_of_the_agent_adopts_running_containers(rig: Rig, tmp_path: Path) -> None:
    rig.put()
    await rig.sync()
    before = dict(rig.runtime.containers)
    other = Rig(tmp_path)  # a new agent process: empty memory, same Docker
    other.runtime = rig.runtime
    other.worker.runtime = rig.runtime
    other.pods.store[KEY] = rig.pods.store[KEY]
    calls = len(rig.runtime.calls)
    await other.worker.sync(KEY)
    assert rig.runtime.containers == before
    assert rig.runtime.calls[calls:] == []


async def test_deletion_stops_with_grace_and_deletes_with_uid(rig: Rig) -> None:
    obj = rig.put()
    await rig.sync()
    obj.pod.metadata.deletion_timestamp.GetCurrentTime()
    obj.pod.metadata.deletion_grace_period_seconds = 7
    await rig.worker.sync(KEY)
    await rig.worker.sync(KEY)  # while stopping: not started twice
    await asyncio.gather(*rig.worker._terminating.values())
    # The grace period less the moment since the stop began (microseconds, at most).
    stops = [float(c[1].rpartition("/")[2]) for c in rig.runtime.calls
             if c[0] == "stop" and c[1].startswith("kemu_app_web_shop_u1_0/")]
    assert stops[0] == pytest.approx(7, abs=0.5)
    assert rig.runtime.containers == {}
    assert rig.client.deletes == [("pods", "shop", "web", 0, "u1")]
    assert "Killing" in rig.recorder.reasons()


async def test_pod_gone_from_the_api_removes_its_containers(rig: Rig) -> None:
    rig.put()
    await rig.sync()
    del rig.pods.store[KEY]
    await rig.worker.sync(KEY)
    assert rig.runtime.containers == {}


async def test_init_containers_in_order(rig: Rig) -> None:
    rig.put(initContainers=[{"name": "one", "image": "app:1"}, {"name": "two", "image": "app:1"}])
    st = await rig.sync()
    assert [c.name for c in rig.runtime.containers.values()] == [
        "kemu_POD_web_shop_u1_0", "kemu_one_web_shop_u1_0"]
    assert st.phase == "Pending"
    assert st.container_statuses[0].state.waiting.reason == "PodInitializing"
    rig.runtime.exit(rig.runtime.named("one")[0].id, 0)
    await rig.sync()
    assert rig.runtime.named("two") and not rig.runtime.named("app")
    rig.runtime.exit(rig.runtime.named("two")[0].id, 0)
    st = await rig.sync()
    assert rig.runtime.named("app") and st.phase == "Running"
    assert [s.state.terminated.reason for s in st.init_container_statuses] == [
        "Completed", "Completed"]


async def test_never_policy_terminal_stops_sandbox(rig: Rig) -> None:
    rig.put(restartPolicy="Never")
    await rig.sync()
    rig.runtime.exit(rig.runtime.named("app")[0].id, 2)
    st = await rig.sync()
    assert st.phase == "Failed"
    assert not rig.runtime.named("POD")[0].running
    calls = len(rig.runtime.calls)
    await rig.sync()  # terminal: no new sandbox, nothing restarted
    assert [c for c in rig.runtime.calls[calls:] if c[0] == "create"] == []


async def test_active_deadline_fails_the_pod(rig: Rig) -> None:
    rig.put(activeDeadlineSeconds=30)
    st = await rig.sync()
    assert st.phase == "Running"
    rig.clock.advance(31)
    st = await rig.sync()
    assert (st.phase, st.reason) == ("Failed", "DeadlineExceeded")
    assert not any(c.running for c in rig.runtime.containers.values())
    writes = len(rig.client.statuses)
    await rig.sync()
    assert len(rig.client.statuses) == writes  # stable: no rewrite
    assert "DeadlineExceeded" in rig.recorder.reasons()


async def test_container_created_but_never_started_is_started(rig: Rig) -> None:
    rig.put()
    await rig.sync()
    app = rig.runtime.named("app")[0]
    from dataclasses import replace

    rig.runtime.containers[app.id] = replace(app, state="created", started_at=None)
    st = await rig.sync()
    assert rig.runtime.containers[app.id].running and len(rig.runtime.named("app")) == 1
    assert st.container_statuses[0].state.HasField("running")
