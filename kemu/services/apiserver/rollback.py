"""Deployment rollback: copy an earlier ReplicaSet's pod template back into the Deployment.

This is what `kubectl rollout undo` does; the revision of a ReplicaSet is its
`deployment.kubernetes.io/revision` annotation, and revision 0 means the previous one.
"""

from __future__ import annotations

from kemu.api import kinds
from kemu.api.v1 import api_pb2
from kemu.services.apiserver.errors import FailedPrecondition
from kemu.services.apiserver.registry import Registry

REVISION = "deployment.kubernetes.io/revision"
HASH_LABEL = "pod-template-hash"
CHANGE_CAUSE = "kubernetes.io/change-cause"


async def rollback(registry: Registry, namespace: str, name: str,
                   to_revision: int) -> api_pb2.Object:
    deployments, replicasets = kinds.resolve("deployments"), kinds.resolve("replicasets")
    deploy = (await registry.get(deployments, namespace, name)).deployment
    listed = await registry.list(replicasets, deploy.metadata.namespace)
    owned = [o.replica_set for o in listed.items
             if any(ref.uid == deploy.metadata.uid
                    for ref in o.replica_set.metadata.owner_references)]
    by_revision = {int(rs.metadata.annotations.get(REVISION, "0") or 0): rs for rs in owned}
    if not by_revision:
        raise FailedPrecondition(f'no rollout history found for deployment "{name}"')
    if to_revision == 0:
        older = sorted(by_revision)[:-1]
        if not older:
            raise FailedPrecondition(f'no previous revision found for deployment "{name}"')
        to_revision = older[-1]
    target = by_revision.get(to_revision)
    if target is None:
        raise FailedPrecondition(f"unable to find specified revision {to_revision} in history")

    def change(obj: api_pb2.Object) -> None:
        template = obj.deployment.spec.template
        template.CopyFrom(target.spec.template)
        template.metadata.labels.pop(HASH_LABEL, None)
        cause = target.metadata.annotations.get(CHANGE_CAUSE)
        if cause:
            obj.deployment.metadata.annotations[CHANGE_CAUSE] = cause
        else:
            obj.deployment.metadata.annotations.pop(CHANGE_CAUSE, None)
    return await registry.mutate(deployments, namespace, name, change)
