"""A local-path provisioner: a PersistentVolumeClaim used by a pod on this node is bound to
a directory under the agent's data dir.

There is no PersistentVolume kind in kemu; as Rancher's local-path provisioner does with a
PV, the claim is bound to a volume named `pvc-<claim uid>` (spec.volumeName) whose data is
the directory `<data-dir>/volumes/pvc-<uid>`. The directory outlives pods, so a pod that is
deleted and made again with the same claim finds its data; it is removed with the claim
(not done here: the claim's data is kept, as with reclaimPolicy Retain).
"""

from __future__ import annotations

import logging
from pathlib import Path

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.client.aio import AsyncClient
from kemu.client.errors import Conflict, NotFound
from kemu.nodeagent.volumes import MountError

log = logging.getLogger(__name__)
SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONER = "volume.kubernetes.io/storage-provisioner"
PROVISIONER_NAME = "kemu.io/local-path"


def volume_name(claim_uid: str) -> str:
    return f"pvc-{claim_uid}"


class LocalPathProvisioner:
    """Binds claims to directories on this node, on demand of the pods that use them."""

    def __init__(self, client: AsyncClient, data_dir: Path, node_name: str) -> None:
        self.client = client
        self.root = data_dir / "volumes"
        self.node_name = node_name

    def path_of(self, volume: str) -> Path:
        return self.root / volume

    async def claim_path(self, namespace: str, claim: str) -> Path:
        """The directory of `claim`, provisioning and binding it first if needed."""
        for _attempt in range(5):
            try:
                obj = await self.client.get("persistentvolumeclaims", claim, namespace)
            except NotFound:
                raise MountError(f'persistentvolumeclaim "{claim}" not found') from None
            pvc = obj.persistent_volume_claim
            if pvc.metadata.HasField("deletion_timestamp"):
                raise MountError(f'persistentvolumeclaim "{claim}" is being deleted')
            volume = pvc.spec.volume_name or volume_name(pvc.metadata.uid)
            path = self.path_of(volume)
            path.mkdir(parents=True, exist_ok=True)
            path.chmod(0o777)
            try:
                if not pvc.spec.volume_name:
                    obj = await self._bind(obj, volume)
                if obj.persistent_volume_claim.status.phase != "Bound":
                    await self._set_bound(obj)
            except Conflict:
                continue
            return path
        raise MountError(f'persistentvolumeclaim "{claim}" keeps changing; retrying')

    async def _bind(self, obj: api_pb2.Object, volume: str) -> api_pb2.Object:
        pvc = obj.persistent_volume_claim
        pvc.spec.volume_name = volume
        pvc.metadata.annotations[SELECTED_NODE] = self.node_name
        pvc.metadata.annotations[PROVISIONER] = PROVISIONER_NAME
        pvc.metadata.annotations["pv.kubernetes.io/bind-completed"] = "yes"
        updated = await self.client.update(obj)
        log.info("provisioned %s for pvc %s/%s at %s", volume, pvc.metadata.namespace,
                 pvc.metadata.name, self.path_of(volume))
        return updated

    async def _set_bound(self, obj: api_pb2.Object) -> None:
        pvc = obj.persistent_volume_claim
        status = pvc.status
        status.phase = "Bound"
        del status.access_modes[:]
        status.access_modes.extend(pvc.spec.access_modes or ["ReadWriteOnce"])
        status.capacity.clear()
        storage = pvc.spec.resources.requests.get("storage")
        if storage:
            status.capacity["storage"] = storage
        await self.client.update_status(obj)
        log.info("pvc %s bound to %s", objects.ref(obj), pvc.spec.volume_name)
