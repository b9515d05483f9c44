"""What a node agent may do: Kubernetes' Node authorizer and NodeRestriction admission.

A node agent calls as `system:node:NAME` in the group `system:nodes` (its token or client
certificate says so). With `--authorization-mode ...,Node`:

NodeAuthorizer (allow or no opinion) grants a node what its agent needs, simplified from
Kubernetes' graph of node -> pod -> secret/configmap/claim:
- get of a Secret, ConfigMap or PersistentVolumeClaim that a pod bound to the node uses
  (volumes, env and envFrom, imagePullSecrets), and update of such a claim and its status
  (kemu's agent provisions local volumes); nothing else of those kinds
  (`no relationship found between node 'n1' and this object`), except that list and watch
  of Secrets and ConfigMaps are allowed: kemu's agent informs on all of them, where
  Kubernetes' kubelet watches each one by name (a gap to close in the agent);
- its own Lease in kube-node-lease (get, create, update, patch, delete);
- the rest as Kubernetes' system:node rules (bootstrappolicy.NODE_RULES): read nodes,
  pods, services and endpoints; create, update and delete nodes; update nodes/status and
  pods/status; delete pods; create and update events.

NodeRestriction (deny or no opinion) then narrows the writes to the node's own objects,
whatever the other authorizers allow, as the admission plugin does after authorization:
a node modifies only its own Node, its own Lease, and the status of (or deletes) only pods
whose spec.nodeName is its name. kemu checks it before the other authorizers rather than at
admission, so the denial comes as PERMISSION_DENIED with NodeRestriction's words as the
reason. Pods are read from the watch cache, which is at least as fresh as what the node's
own watch has shown it.
"""

from __future__ import annotations

from typing import Any

from kemu.services.apiserver.authorizer import Attributes, Decision, Verdict, View
from kemu.services.apiserver.bootstrappolicy import NODE_RULES
from kemu.services.apiserver.rbac import rules_allow

LEASE_NAMESPACE = "kube-node-lease"
LEASE_VERBS = ("get", "create", "update", "patch", "delete")
WRITE_VERBS = ("create", "update", "patch", "delete")
# Resources a node reaches only through its pods: verb -> subresources allowed.
# kemu's agent informs on every Secret and ConfigMap (list and watch, which name none):
# those verbs are allowed; Kubernetes' kubelet instead watches each one by name.
GRAPH: dict[str, dict[str, tuple[str, ...]]] = {
    "secrets": {"get": ("",)},
    "configmaps": {"get": ("",)},
    "persistentvolumeclaims": {"get": ("",), "update": ("", "status"), "patch": ("", "status")},
}


def _placement(obj: Any) -> tuple[str, str, frozenset[tuple[str, str]]]:
    """What the Node authorizer needs of a pod: its node, namespace and `references`
    (a small tuple the view keeps per pod instead of the decoded pod)."""
    pod = obj.pod
    return pod.spec.node_name, pod.metadata.namespace, frozenset(references(pod))


def references(pod: Any) -> set[tuple[str, str]]:
    """(resource, name) of every Secret, ConfigMap and claim that `pod` uses."""
    found: set[tuple[str, str]] = set()
    spec = pod.spec
    for ref in spec.image_pull_secrets:
        found.add(("secrets", ref.name))
    for vol in spec.volumes:
        if vol.HasField("secret"):
            found.add(("secrets", vol.secret.secret_name))
        if vol.HasField("config_map"):
            found.add(("configmaps", vol.config_map.name))
        if vol.HasField("persistent_volume_claim"):
            found.add(("persistentvolumeclaims", vol.persistent_volume_claim.claim_name))
        if vol.HasField("projected"):
            for src in vol.projected.sources:
                if src.HasField("secret"):
                    found.add(("secrets", src.secret.name))
                if src.HasField("config_map"):
                    found.add(("configmaps", src.config_map.name))
    for c in (*spec.init_containers, *spec.containers):
        for env in c.env:
            if env.value_from.HasField("secret_key_ref"):
                found.add(("secrets", env.value_from.secret_key_ref.name))
            if env.value_from.HasField("config_map_key_ref"):
                found.add(("configmaps", env.value_from.config_map_key_ref.name))
        for src in c.env_from:
            if src.HasField("secret_ref"):
                found.add(("secrets", src.secret_ref.name))
            if src.HasField("config_map_ref"):
                found.add(("configmaps", src.config_map_ref.name))
    return found


def _no_relationship(node: str) -> Verdict:
    return Verdict(Decision.NO_OPINION,
                   f"no relationship found between node '{node}' and this object")


class NodeAuthorizer:
    """Allows a node what its agent needs; no opinion on anything else or anyone else."""

    def __init__(self, view: View) -> None:
        self.view = view

    def authorize(self, attrs: Attributes) -> Verdict:
        node = attrs.user.node_name
        if node is None:
            return Verdict(Decision.NO_OPINION)
        if attrs.group == "" and attrs.resource in GRAPH:
            return self._through_pods(attrs, node)
        if attrs.group == "coordination.k8s.io" and attrs.resource == "leases":
            return self._lease(attrs, node)
        if rules_allow(attrs, NODE_RULES):
            return Verdict(Decision.ALLOW)
        return Verdict(Decision.NO_OPINION)

    def _through_pods(self, attrs: Attributes, node: str) -> Verdict:
        if attrs.verb in ("list", "watch") and not attrs.subresource and \
                attrs.resource in ("secrets", "configmaps"):
            return Verdict(Decision.ALLOW)
        if attrs.subresource not in GRAPH[attrs.resource].get(attrs.verb, ()) or not attrs.name:
            return Verdict(Decision.NO_OPINION,
                           "can only get individual resources of this type")
        wanted = (attrs.resource, attrs.name)
        for pod_node, namespace, refs in self.view.project("pods", _placement):
            if pod_node == node and namespace == attrs.namespace and wanted in refs:
                return Verdict(Decision.ALLOW)
        return _no_relationship(node)

    @staticmethod
    def _lease(attrs: Attributes, node: str) -> Verdict:
        if attrs.verb not in LEASE_VERBS:
            return Verdict(Decision.NO_OPINION,
                           "can only get, create, update, patch, or delete a node lease")
        if attrs.namespace != LEASE_NAMESPACE:
            return Verdict(Decision.NO_OPINION, f'can only access leases in the '
                           f'"{LEASE_NAMESPACE}" system namespace')
        if (attrs.name or attrs.object_name) != node:
            return Verdict(Decision.NO_OPINION, "can only access node lease with the same "
                           "name as the requesting node")
        return Verdict(Decision.ALLOW)


class NodeRestriction:
    """Denies a node's writes to what is not its own; no opinion on everything else."""

    def __init__(self, view: View) -> None:
        self.view = view

    def authorize(self, attrs: Attributes) -> Verdict:
        node = attrs.user.node_name
        if node is None or attrs.group not in ("", "coordination.k8s.io"):
            return Verdict(Decision.NO_OPINION)
        target = attrs.name or attrs.object_name
        if attrs.resource == "nodes" and attrs.verb in WRITE_VERBS and target != node:
            return Verdict(Decision.DENY, f'node "{node}" is not allowed to modify node '
                           f'"{target}"')
        if attrs.resource == "leases" and attrs.namespace == LEASE_NAMESPACE and \
                attrs.verb in WRITE_VERBS and target != node:
            return Verdict(Decision.DENY, "can only access node lease with the same name as "
                           "the requesting node")
        if attrs.resource == "pods" and attrs.name:
            if attrs.subresource == "status" and attrs.verb in ("update", "patch"):
                return self._own_pod(attrs, node, "update pod status for")
            if not attrs.subresource and attrs.verb == "delete":
                return self._own_pod(attrs, node, "delete")
        return Verdict(Decision.NO_OPINION)

    def _own_pod(self, attrs: Attributes, node: str, doing: str) -> Verdict:
        found = self.view.get("pods", attrs.namespace, attrs.name)
        if found is not None and found.pod.spec.node_name != node:
            return Verdict(Decision.DENY, f'node "{node}" can only {doing} pods with '
                           "spec.nodeName set to itself")
        return Verdict(Decision.NO_OPINION)
