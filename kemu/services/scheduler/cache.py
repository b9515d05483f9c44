"""The scheduler's cache: nodes and the pods counted on them, including assumed ones.

The informers lag the scheduler's own decisions: a pod bound a millisecond ago is still
unassigned in the pod informer. So the scheduler *assumes* a pod onto its node the moment
it decides, before the Bind RPC returns, and the next cycle already sees the node's
resources, ports and spread counts reduced. The informer's event for the bound pod later
confirms the assumption (replacing it); a failed bind forgets it. This is what keeps a
burst of pods from overcommitting a node (kube-scheduler's AssumePod / ForgetPod).

Pods whose node the cache has not seen yet are kept on a placeholder NodeInfo, so their
requests count as soon as the node appears.
"""

from __future__ import annotations

import logging

from kemu.api.v1 import core_pb2
from kemu.services.scheduler.nodeinfo import NodeInfo, PodInfo

log = logging.getLogger("kemu.scheduler.cache")


class Cache:
    """Node name -> NodeInfo, and where every counted pod is."""

    def __init__(self) -> None:
        self.nodes: dict[str, NodeInfo] = {}
        self._pod_node: dict[str, str] = {}
        self._assumed: set[str] = set()
        self._list: list[NodeInfo] | None = None

    # ---- nodes ---------------------------------------------------------------------------

    def set_node(self, node: core_pb2.Node) -> NodeInfo:
        name = node.metadata.name
        info = self.nodes.get(name)
        if info is None:
            info = self.nodes[name] = NodeInfo(name)
        if not info.present:
            self._list = None
        info.set_node(node)
        return info

    def remove_node(self, name: str) -> None:
        info = self.nodes.get(name)
        if info is None:
            return
        self._list = None
        if info.pods:
            # Keep the pods' accounting until they are deleted too; offer the node no more.
            info.present = False
            info.node = core_pb2.Node()
        else:
            del self.nodes[name]

    def node_list(self) -> list[NodeInfo]:
        """The nodes a cycle may choose from (a list reused until nodes come or go)."""
        if self._list is None:
            self._list = [n for n in self.nodes.values() if n.present]
        return self._list

    # ---- pods ----------------------------------------------------------------------------

    def _place(self, info: PodInfo, node_name: str) -> None:
        current = self._pod_node.get(info.key)
        if current is not None and current != node_name:
            self._take_out(info.key, current)
        node = self.nodes.get(node_name)
        if node is None:
            node = self.nodes[node_name] = NodeInfo(node_name)
        node.add_pod(info)
        self._pod_node[info.key] = node_name

    def _take_out(self, key: str, node_name: str) -> None:
        node = self.nodes.get(node_name)
        if node is None:
            return
        node.remove_pod(key)
        if not node.present and not node.pods:
            del self.nodes[node_name]

    def add_pod(self, info: PodInfo, node_name: str) -> None:
        """A pod the informer shows bound to node_name (confirms an assumption)."""
        self._assumed.discard(info.key)
        self._place(info, node_name)

    def confirm(self, pod: core_pb2.Pod, key: str) -> bool:
        """The informer shows a pod bound to a node that already counts it (this scheduler
        assumed it, or an earlier event placed it): confirm the assumption, keep the
        informer's copy of the pod (the older one is freed: a decoded pod weighs about
        5 KB), and answer True, so the caller need not rebuild its PodInfo on every status
        update. A bound pod's requests do not change (no in-place resize here)."""
        node_name = pod.spec.node_name
        if self._pod_node.get(key) != node_name:
            return False
        node = self.nodes.get(node_name)
        info = node.pods.get(key) if node is not None else None
        if info is None or info.uid != pod.metadata.uid:
            return False
        info.pod = pod
        self._assumed.discard(key)
        return True

    def remove_pod(self, key: str) -> bool:
        """Stop counting the pod (deleted, or finished); True if it was counted."""
        self._assumed.discard(key)
        node_name = self._pod_node.pop(key, None)
        if node_name is None:
            return False
        self._take_out(key, node_name)
        return True

    def assume(self, info: PodInfo, node_name: str) -> None:
        """Count the pod on node_name now, before the bind is confirmed."""
        self._place(info, node_name)
        self._assumed.add(info.key)

    def forget(self, key: str) -> None:
        """Undo an assumption (the bind failed); a confirmed pod stays counted."""
        if key in self._assumed:
            self.remove_pod(key)

    def is_assumed(self, key: str) -> bool:
        return key in self._assumed

    def node_of(self, key: str) -> str | None:
        return self._pod_node.get(key)

    @property
    def assumed_count(self) -> int:
        return len(self._assumed)

    @property
    def pod_count(self) -> int:
        return len(self._pod_node)
