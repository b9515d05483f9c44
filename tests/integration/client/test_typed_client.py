"""kemu.client.typed against a real apiserver: typed verbs, Conflict on a stale write, and
list_and_watch missing nothing across resumed streams and a relist after Gone."""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import pytest

from kemu.api.v1 import apps_pb2, core_pb2
from kemu.client import Client, Conflict, Invalid, NotFound, typed
from tests.support import processes

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    tmp = tmp_path_factory.mktemp("typed")
    store = processes.kemu_store(tmp)
    # A small watch cache, so a watch resumed from an old version gets Gone.
    apiserver = processes.kemu_apiserver(tmp, store.address,
                                         extra=("--watch-cache-size", "50"))
    with processes.running(store, apiserver), Client(apiserver.address, timeout=15,
                                                    read_retry_seconds=5) as c:
        yield c


def _deployment(name: str) -> apps_pb2.Deployment:
    d = apps_pb2.Deployment()
    d.metadata.name, d.metadata.namespace = name, "default"
    d.spec.replicas = 1
    d.spec.selector.match_labels["app"] = name
    d.spec.template.metadata.labels["app"] = name
    d.spec.template.spec.containers.add(name="web", image="kemu/bootcamp:v1")
    return d


def _configmap(name: str, namespace: str = "default", **data: str) -> core_pb2.ConfigMap:
    cm = core_pb2.ConfigMap()
    cm.metadata.name, cm.metadata.namespace = name, namespace
    cm.data.update(data)
    return cm


def test_typed_verbs_use_the_kinds_own_message(client: Client) -> None:
    deployments = typed.resource(client, apps_pb2.Deployment)
    made = deployments.create(_deployment("typed"))
    assert isinstance(made, apps_pb2.Deployment) and made.metadata.uid
    got = deployments.get("typed", "default")
    assert got.spec.template.spec.containers[0].image == "kemu/bootcamp:v1"
    assert [d.metadata.name for d in deployments.list("default")] == ["typed"]

    stale = apps_pb2.Deployment()
    stale.CopyFrom(got)
    got.spec.replicas = 2
    assert deployments.update(got).spec.replicas == 2
    stale.spec.replicas = 5
    with pytest.raises(Conflict):
        deployments.update(stale)
    assert deployments.scale("typed", 4, "default").spec.replicas == 4

    deployments.delete("typed", "default")
    with pytest.raises(NotFound):
        deployments.get("typed", "default")


def test_a_message_that_is_not_a_kind_is_refused(client: Client) -> None:
    with pytest.raises(ValueError, match="not a kind"):
        typed.resource(client, core_pb2.Container)


def _events(client: Client, namespace: str, *, stream_seconds: float
            ) -> tuple[queue.Queue[tuple[str, str, dict[str, str]]], threading.Event]:
    """list_and_watch in a thread; (event, name, data) into a queue until `stop` is set."""
    got: queue.Queue[tuple[str, str, dict[str, str]]] = queue.Queue()
    stop = threading.Event()

    def run() -> None:
        configmaps = typed.resource(client, core_pb2.ConfigMap)
        for event, cm in configmaps.list_and_watch(namespace, stream_seconds=stream_seconds):
            got.put((event, cm.metadata.name, dict(cm.data)))
            if stop.is_set():
                return

    threading.Thread(target=run, daemon=True).start()
    return got, stop


def _next(got: queue.Queue[tuple[str, str, dict[str, str]]]) -> tuple[str, str, dict[str, str]]:
    return got.get(timeout=10)


def test_list_and_watch_sees_every_change_across_resumed_streams(client: Client) -> None:
    ns = core_pb2.Namespace()
    ns.metadata.name = "watched"
    typed.resource(client, core_pb2.Namespace).create(ns)
    configmaps = typed.resource(client, core_pb2.ConfigMap)
    configmaps.create(_configmap("before", "watched", v="0"))
    # Streams of half a second: the changes below span several resumed watches.
    got, stop = _events(client, "watched", stream_seconds=0.5)
    assert _next(got) == ("ADDED", "before", {"v": "0"})
    for i in range(1, 4):
        cm = configmaps.get("before", "watched")
        cm.data["v"] = str(i)
        configmaps.update(cm)
        assert _next(got) == ("MODIFIED", "before", {"v": str(i)})
    configmaps.create(_configmap("after", "watched"))
    assert _next(got) == ("ADDED", "after", {})
    stop.set()
    configmaps.delete("before", "watched")
    assert _next(got) == ("DELETED", "before", {"v": "3"})


def test_list_and_watch_relists_after_gone_and_reports_the_difference(client: Client) -> None:
    """Consume nothing while far more changes than the watch cache holds happen: the resumed
    watch is Gone, and a new list yields what changed in the meantime, nothing more."""
    ns = core_pb2.Namespace()
    ns.metadata.name = "relisted"
    typed.resource(client, core_pb2.Namespace).create(ns)
    configmaps = typed.resource(client, core_pb2.ConfigMap)
    configmaps.create(_configmap("kept", "relisted"))
    configmaps.create(_configmap("changed", "relisted", v="old"))
    configmaps.create(_configmap("removed", "relisted"))
    stream = configmaps.list_and_watch("relisted", stream_seconds=0.2)
    assert sorted(next(stream)[1].metadata.name for _ in range(3)) == [
        "changed", "kept", "removed"]
    for value in ("mid", "new"):  # a replayed watch would show both; a relist only "new"
        cm = configmaps.get("changed", "relisted")
        cm.data["v"] = value
        configmaps.update(cm)
    configmaps.delete("removed", "relisted")
    configmaps.create(_configmap("added", "relisted"))
    for i in range(120):  # unrelated churn pushes the watch cache past the version held
        configmaps.create(_configmap(f"churn-{i}"))
    seen = {(event, cm.metadata.name, dict(cm.data).get("v", ""))
            for event, cm in (next(stream) for _ in range(3))}
    assert seen == {("MODIFIED", "changed", "new"), ("DELETED", "removed", ""),
                    ("ADDED", "added", "")}
    stream.close()


def test_invalid_objects_say_which_fields(client: Client) -> None:
    """docs/client-python.md's error example."""
    bad = apps_pb2.Deployment()
    bad.metadata.name, bad.metadata.namespace = "bad", "default"
    bad.spec.replicas = -1
    with pytest.raises(Invalid) as caught:
        typed.resource(client, apps_pb2.Deployment).create(bad)
    e = caught.value
    assert e.reason == "Invalid"
    assert {k: e.metadata[k] for k in ("kind", "group", "name")} == {
        "kind": "Deployment", "group": "apps", "name": "bad"}
    fields = [v.field for v in e.field_violations]
    assert "spec.replicas" in fields
    assert next(v.description for v in e.field_violations
                if v.field == "spec.replicas").startswith("Invalid value: -1")
