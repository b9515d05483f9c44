"""CacheView over caches that hold stored bytes: authorizers see the current objects, and
what they derive from an object is reused until the cache holds new bytes for it."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.services.apiserver.authorizer import CacheView
from kemu.services.apiserver.registry import encode
from kemu.services.apiserver.stored import StoredObjects


def _pod(name: str, node: str) -> api_pb2.Object:
    return manifest.from_dict({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": name, "namespace": "default"},
                               "spec": {"nodeName": node,
                                        "containers": [{"name": "c", "image": "i"}]}})


def _key(name: str) -> str:
    return f"/registry/pods/default/{name}"


def test_derived_values_are_reused_until_the_object_changes() -> None:
    current = StoredObjects({_key("a"): (encode(_pod("a", "n1")), 5),
                             _key("b"): (encode(_pod("b", "n2")), 6)})
    view = CacheView({"pods": SimpleNamespace(current=current)})
    seen: list[str] = []

    def node_of(obj: Any) -> str:
        seen.append(obj.pod.metadata.name)
        return f"{obj.pod.metadata.name}@{obj.pod.spec.node_name}"

    assert sorted(view.project("pods", node_of)) == ["a@n1", "b@n2"]
    assert sorted(view.project("pods", node_of)) == ["a@n1", "b@n2"]
    assert sorted(seen) == ["a", "b"]  # decoded once each
    current.raw[_key("a")] = (encode(_pod("a", "n3")), 7)  # a changed
    del current.raw[_key("b")]  # b deleted
    current.raw[_key("c")] = (encode(_pod("c", "n1")), 8)  # c created
    assert sorted(view.project("pods", node_of)) == ["a@n3", "c@n1"]
    assert sorted(seen) == ["a", "a", "b", "c"]


def test_objects_and_get_read_the_current_bytes() -> None:
    current = StoredObjects({_key("a"): (encode(_pod("a", "n1")), 5)})
    view = CacheView({"pods": SimpleNamespace(current=current)})
    got = view.get("pods", "default", "a")
    assert got is not None and got.pod.spec.node_name == "n1"
    assert got.pod.metadata.resource_version == "5"
    assert view.get("pods", "default", "a") is got  # unchanged: the same decoded object
    current.raw[_key("a")] = (encode(_pod("a", "n2")), 9)
    again = view.get("pods", "default", "a")
    assert again is not None and again.pod.spec.node_name == "n2"
    assert [o.pod.spec.node_name for o in view.objects("pods")] == ["n2"]
    assert view.get("pods", "default", "missing") is None
