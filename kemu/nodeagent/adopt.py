"""Restart without loss: what the agent finds in Docker when it starts, and the periodic
sweep for containers nobody owns any more.

Nothing about a pod's containers lives only in the agent's memory: the labels on each
container say which node, pod incarnation (uid), container, attempt and restart count it
is, and which sandbox it joined. So adoption is just this: list the node's containers, and
let the level-triggered pod worker sync every pod it knows; a running sandbox is reused, a
running container is left alone, restart counts continue from the labels and pod IPs stay
what they were. Containers whose pod is gone (deleted while the agent was down, or force
deleted) are orphans: their keys are queued, and the worker, finding no pod, removes them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from kemu.client.informer import Informer
from kemu.client.workqueue import WorkQueue
from kemu.nodeagent import naming
from kemu.nodeagent.podworker import remove_pod_dirs
from kemu.nodeagent.runtime import ContainerRuntime

log = logging.getLogger(__name__)


async def sweep(runtime: ContainerRuntime, node: str, pods: Informer, queue: WorkQueue[str],
                data_dir: Path, *, initial: bool = False) -> int:
    """Queue every pod of this node, and the keys of containers whose pod is unknown (the
    worker removes those). Remove directories of pods that are gone. Returns the number of
    orphan pod keys found."""
    found = await runtime.list_containers({naming.NODE: node})
    known_uids = {o.pod.metadata.uid for o in pods.list()}
    orphan_keys: set[str] = set()
    running = 0
    for info in found:
        uid = info.labels.get(naming.UID, "")
        if uid not in known_uids:
            ns, name = info.labels.get(naming.NAMESPACE, ""), info.labels.get(naming.POD, "")
            if ns and name:
                orphan_keys.add(f"{ns}/{name}")
        elif info.running:
            running += 1
    for obj in pods.list():
        queue.add(f"{obj.pod.metadata.namespace}/{obj.pod.metadata.name}")
    for key in orphan_keys:
        queue.add(key)
    if initial:
        log.info("adopting %d running containers of %d pods; %d orphaned pods to clean up",
                 running, len(known_uids), len(orphan_keys))
    await remove_pod_dirs(data_dir, known_uids | {info.labels.get(naming.UID, "")
                                                 for info in found})
    return len(orphan_keys)
