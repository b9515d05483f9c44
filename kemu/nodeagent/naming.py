"""Labels and names of the Docker objects the agent creates.

The labels are the agent's memory: after a restart it rebuilds every pod's state (which
containers belong to which pod incarnation, restart counts, the spec hash each container was
made from) from `docker ps` alone. Names follow the kubelet's dockershim
(`k8s_<container>_<pod>_<namespace>_<uid>_<attempt>`) with a `kemu_` prefix.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from google.protobuf import json_format

NODE = "io.kemu.node"
NAMESPACE = "io.kemu.pod.namespace"
POD = "io.kemu.pod.name"
UID = "io.kemu.pod.uid"
CONTAINER = "io.kemu.container"
# Not in the design's required set: the agent's own bookkeeping.
KIND = "io.kemu.container.kind"  # sandbox | init | app
RESTART_COUNT = "io.kemu.container.restart-count"
ATTEMPT = "io.kemu.container.attempt"
HASH = "io.kemu.container.hash"
SANDBOX_ID = "io.kemu.sandbox.id"  # the pause container an app/init container joined
NETWORK_OWNER = "io.kemu.network.node"

SANDBOX = "POD"  # the kubelet's name for the pause container
KIND_SANDBOX, KIND_INIT, KIND_APP = "sandbox", "init", "app"


def container_name(container: str, pod: str, namespace: str, uid: str, attempt: int) -> str:
    """A Docker name unique per pod incarnation and attempt."""
    return f"kemu_{container}_{pod}_{namespace}_{uid}_{attempt}"


def spec_hash(container: Any) -> str:
    """A short hash of a container's spec; a running container made from another hash is
    restarted (pods may change their images in place)."""
    doc = json_format.MessageToDict(container, preserving_proto_field_name=True)
    data = json.dumps(doc, sort_keys=True).encode()
    return hashlib.sha256(data).hexdigest()[:12]


def pod_labels(node: str, namespace: str, pod: str, uid: str, container: str,
               kind: str) -> dict[str, str]:
    return {NODE: node, NAMESPACE: namespace, POD: pod, UID: uid, CONTAINER: container,
            KIND: kind}
