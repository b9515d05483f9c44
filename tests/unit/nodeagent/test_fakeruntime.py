"""The fake runtime (`kemu agent --runtime fake`): containers in memory, sandbox IPs from
the network's subnet shared by the pod's containers, nothing that blocks."""

from __future__ import annotations

import pytest

from kemu.nodeagent.fakeruntime import FAKE_RUNTIME_VERSION, NO_OUTPUT, FakeRuntime
from kemu.nodeagent.runtime import ContainerNotFound, ContainerRuntime, CreateSpec


async def test_pod_lifecycle_in_memory() -> None:
    rt: ContainerRuntime = FakeRuntime()
    assert await rt.version() == FAKE_RUNTIME_VERSION == "fake://kemu-simulated"
    await rt.ping()
    await rt.ensure_network("kemu-n1", "10.244.3.0/24", {"owner": "n1"})
    labels = {"io.kemu.pod.name": "web", "io.kemu.container": "POD"}
    sandbox = await rt.create(CreateSpec("k_POD_web", "kemu/pause:3.9", labels,
                                         network="kemu-n1"))
    app = await rt.create(CreateSpec("k_app_web", "kemu/bootcamp:v1",
                                     {**labels, "io.kemu.container": "app"},
                                     network_mode=f"container:{sandbox}"))
    other = await rt.create(CreateSpec("k_POD_db", "kemu/pause:3.9", {},
                                       network="kemu-n1"))
    for cid in (sandbox, app, other):
        await rt.start(cid)
    s, a, o = [await rt.inspect(c) for c in (sandbox, app, other)]
    assert s.running and a.running
    assert s.ip == a.ip == "10.244.3.2" and o.ip == "10.244.3.3"
    assert {c.id for c in await rt.list_containers({"io.kemu.pod.name": "web"})} == {
        sandbox, app}
    assert await rt.image_present("anything:latest")
    assert await rt.exec(app, ["true"], 1.0) == (0, b"")
    assert [c async for c in rt.logs(app, follow=True, tail=0, timestamps=False,
                                     since=0)] == [NO_OUTPUT]
    await rt.stop(app, 30)
    info = await rt.inspect(app)
    assert info.exited and info.exit_code == 0 and info.finished_at is not None
    await rt.remove(app)
    with pytest.raises(ContainerNotFound):
        await rt.inspect(app)
    fake = FakeRuntime()
    await fake.ensure_network("n", "10.0.0.0/30", {})
    assert await fake.network_subnet("n") == ("10.0.0.0/30", 0)
    await fake.remove_network("n")
    assert await fake.network_subnet("n") is None
