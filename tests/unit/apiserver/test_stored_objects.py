"""The watch cache's current objects, kept as stored bytes: every read decodes a fresh
object as the apiserver serves it (resourceVersion and type meta filled in)."""

from __future__ import annotations

from kemu.api import kinds, manifest, objects
from kemu.services.apiserver.registry import encode
from kemu.services.apiserver.stored import StoredObjects

CM = kinds.resolve("configmaps")


def test_reads_decode_a_fresh_object_with_its_revision_and_type_meta() -> None:
    obj = manifest.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                              "metadata": {"name": "a", "namespace": "ns"}, "data": {"k": "v"}})
    key = CM.store_key("ns", "a")
    current = StoredObjects({key: (encode(obj), 42)})
    first = current.get(key)
    assert first is not None
    assert objects.meta(first).resource_version == "42"
    assert (first.config_map.api_version, first.config_map.kind) == ("v1", "ConfigMap")
    assert dict(first.config_map.data) == {"k": "v"}
    first.config_map.data["k"] = "changed by a caller"
    assert dict(current[key].config_map.data) == {"k": "v"}
    assert current.get("/registry/configmaps/ns/missing") is None
    assert key in current and len(current) == 1 and list(current) == [key]
    assert [objects.meta(o).name for o in current.values()] == ["a"]
