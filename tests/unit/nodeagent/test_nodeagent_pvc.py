"""The local-path provisioner against a fake API: binding, directories, errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client.errors import NotFound
from kemu.nodeagent.pvc import LocalPathProvisioner
from kemu.nodeagent.volumes import MountError


class FakeAPI:
    def __init__(self) -> None:
        self.objects: dict[tuple[str, str], api_pb2.Object] = {}
        self.updates: list[str] = []

    async def get(self, resource: str, name: str, namespace: str = "") -> api_pb2.Object:
        if (namespace, name) not in self.objects:
            raise NotFound(f'persistentvolumeclaims "{name}" not found')
        obj = api_pb2.Object()
        obj.CopyFrom(self.objects[(namespace, name)])
        return obj

    async def update(self, obj: api_pb2.Object) -> api_pb2.Object:
        m = obj.persistent_volume_claim.metadata
        self.objects[(m.namespace, m.name)].persistent_volume_claim.spec.CopyFrom(
            obj.persistent_volume_claim.spec)
        self.objects[(m.namespace, m.name)].persistent_volume_claim.metadata.CopyFrom(m)
        self.updates.append("spec")
        return obj

    async def update_status(self, obj: api_pb2.Object) -> api_pb2.Object:
        m = obj.persistent_volume_claim.metadata
        self.objects[(m.namespace, m.name)].persistent_volume_claim.status.CopyFrom(
            obj.persistent_volume_claim.status)
        self.updates.append("status")
        return obj


def claim(api: FakeAPI, name: str = "data") -> None:
    api.objects[("ns", name)] = manifest.from_dict({
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": name, "namespace": "ns", "uid": "c-uid"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "2Gi"}}},
    })


async def test_unbound_claim_is_provisioned_and_bound(tmp_path: Path) -> None:
    api = FakeAPI()
    claim(api)
    prov = LocalPathProvisioner(api, tmp_path, "node-1")  # type: ignore[arg-type]
    path = await prov.claim_path("ns", "data")
    assert path == tmp_path / "volumes" / "pvc-c-uid" and path.is_dir()
    pvc = api.objects[("ns", "data")].persistent_volume_claim
    assert pvc.spec.volume_name == "pvc-c-uid"
    assert pvc.metadata.annotations["volume.kubernetes.io/selected-node"] == "node-1"
    assert (pvc.status.phase, dict(pvc.status.capacity), list(pvc.status.access_modes)) == (
        "Bound", {"storage": "2Gi"}, ["ReadWriteOnce"])
    assert api.updates == ["spec", "status"]
    (path / "kept").write_text("x")
    assert await prov.claim_path("ns", "data") == path  # bound: same directory, no writes
    assert api.updates == ["spec", "status"] and (path / "kept").exists()


async def test_missing_claim_is_a_mount_error(tmp_path: Path) -> None:
    prov = LocalPathProvisioner(FakeAPI(), tmp_path, "n")  # type: ignore[arg-type]
    with pytest.raises(MountError, match='persistentvolumeclaim "nope" not found'):
        await prov.claim_path("ns", "nope")
