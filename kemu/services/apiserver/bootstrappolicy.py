"""The default roles and bindings an apiserver with RBAC creates at start, a subset of
Kubernetes' bootstrap policy (plugin/pkg/auth/authorizer/rbac/bootstrappolicy).

ClusterRoles:
- cluster-admin: every verb on every resource (and non-resource URL);
- admin, edit, view: the user-facing roles, meant for RoleBindings in a namespace. view
  reads what a namespace holds but Secrets (and roles); edit also writes it, reads Secrets
  and may exec, attach and read logs; admin also manages Roles and RoleBindings in the
  namespace. Kubernetes builds them by aggregation; here they carry their rules directly;
- system:kube-scheduler: what kemu's scheduler reads and writes (pods, bindings, pod
  status, events, its leader-election Lease);
- system:kube-controller-manager: every verb on every resource. Kubernetes runs each
  controller under its own service account with a narrow role; kemu's controller-manager
  is one identity whose namespace and garbage collectors may delete any kind;
- system:kube-dns: what the cluster DNS reads (services, endpoints, pods);
- system:node: what a node agent may do (NODE_RULES), which the Node authorizer grants by
  itself; like Kubernetes', its binding has no subjects.

ClusterRoleBindings: cluster-admin to the group system:masters, system:kube-scheduler and
system:kube-controller-manager to the users of those names, system:kube-dns to the
ServiceAccount kube-system/kube-dns, system:node to nobody.

Existing objects are left as they are (an administrator's edits win); missing ones are
created again at every start.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterable, Sequence
from typing import Protocol

from kemu.api.v1 import api_pb2, rbac_pb2
from kemu.services.apiserver.errors import AlreadyExists

log = logging.getLogger(__name__)
READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
RBAC_GROUP = "rbac.authorization.k8s.io"
LABELS = {"kubernetes.io/bootstrapping": "rbac-defaults"}
ANNOTATIONS = {"rbac.authorization.kubernetes.io/autoupdate": "true"}


def rule(verbs: Sequence[str], groups: Sequence[str], resources: Sequence[str],
         names: Sequence[str] = ()) -> rbac_pb2.PolicyRule:
    return rbac_pb2.PolicyRule(verbs=verbs, api_groups=groups, resources=resources,
                               resource_names=names)


NODE_RULES: tuple[rbac_pb2.PolicyRule, ...] = (
    rule(("create", *READ), [""], ["nodes"]),
    rule(("update", "patch"), [""], ["nodes", "nodes/status"]),
    rule(("delete",), [""], ["nodes"]),
    rule(("create", "update", "patch"), [""], ["events"]),
    rule(READ, [""], ["pods", "services", "endpoints"]),
    rule(("delete",), [""], ["pods"]),
    rule(("update", "patch"), [""], ["pods/status"]),
    rule(("get",), [""], ["secrets", "configmaps", "persistentvolumeclaims"]),
    rule(("list", "watch"), [""], ["secrets", "configmaps"]),
    rule(("update", "patch"), [""], ["persistentvolumeclaims/status"]),
    rule(("get", "create", "update", "patch", "delete"), ["coordination.k8s.io"], ["leases"]),
)

_VIEW_CORE = ("pods", "pods/log", "pods/status", "services", "services/status", "endpoints",
              "configmaps", "persistentvolumeclaims", "persistentvolumeclaims/status",
              "replicationcontrollers", "replicationcontrollers/scale",
              "replicationcontrollers/status", "events", "namespaces", "namespaces/status")
_VIEW_APPS = ("deployments", "deployments/scale", "deployments/status", "replicasets",
              "replicasets/scale", "replicasets/status", "statefulsets", "statefulsets/scale",
              "statefulsets/status", "daemonsets", "daemonsets/status")
_VIEW_RULES = (
    rule(READ, [""], _VIEW_CORE),
    rule(READ, ["apps"], _VIEW_APPS),
    rule(READ, ["batch"], ("jobs", "jobs/status", "cronjobs", "cronjobs/status")),
    rule(READ, ["autoscaling"], ("horizontalpodautoscalers",
                                 "horizontalpodautoscalers/status")),
    rule(READ, ["networking.k8s.io"], ("ingresses", "ingresses/status")),
    rule(READ, ["metrics.k8s.io"], ("pods",)),
)
_EDIT_RULES = (
    rule(WRITE, [""], ("pods", "pods/exec", "pods/attach", "pods/portforward", "pods/proxy",
                       "pods/eviction", "services", "endpoints", "configmaps", "secrets",
                       "persistentvolumeclaims", "replicationcontrollers",
                       "replicationcontrollers/scale")),
    rule(("get",), [""], ("pods/exec", "pods/attach")),
    rule(READ, [""], ("secrets",)),
    rule(WRITE, ["apps"], ("deployments", "deployments/scale", "deployments/rollback",
                           "replicasets", "replicasets/scale", "statefulsets",
                           "statefulsets/scale", "daemonsets")),
    rule(WRITE, ["batch"], ("jobs", "cronjobs")),
    rule(WRITE, ["autoscaling"], ("horizontalpodautoscalers",)),
    rule(WRITE, ["networking.k8s.io"], ("ingresses",)),
    rule(WRITE, ["coordination.k8s.io"], ("leases",)),
    rule(READ, ["coordination.k8s.io"], ("leases",)),
)
_ADMIN_RULES = (
    rule((*READ, *WRITE), [RBAC_GROUP], ("roles", "rolebindings")),
)


def cluster_role(name: str, rules: Iterable[rbac_pb2.PolicyRule]) -> api_pb2.Object:
    role = rbac_pb2.ClusterRole(api_version=f"{RBAC_GROUP}/v1", kind="ClusterRole",
                                rules=list(rules))
    role.metadata.name = name
    role.metadata.labels.update(LABELS)
    role.metadata.annotations.update(ANNOTATIONS)
    return api_pb2.Object(cluster_role=role)


def binding(name: str, role: str, subjects: Iterable[tuple[str, str]]) -> api_pb2.Object:
    """A ClusterRoleBinding of ClusterRole `role` to (kind, name) subjects; a ServiceAccount
    is named `namespace/name`."""
    b = rbac_pb2.ClusterRoleBinding(api_version=f"{RBAC_GROUP}/v1", kind="ClusterRoleBinding")
    b.metadata.name = name
    b.metadata.labels.update(LABELS)
    b.metadata.annotations.update(ANNOTATIONS)
    b.role_ref.api_group, b.role_ref.kind, b.role_ref.name = RBAC_GROUP, "ClusterRole", role
    for kind, who in subjects:
        if kind == "ServiceAccount":
            namespace, _, sa = who.partition("/")
            b.subjects.add(kind=kind, name=sa, namespace=namespace)
        else:
            b.subjects.add(kind=kind, name=who, api_group=RBAC_GROUP)
    return api_pb2.Object(cluster_role_binding=b)


def policy() -> list[api_pb2.Object]:
    """Every default ClusterRole, then every default ClusterRoleBinding."""
    everything = rule(("*",), ["*"], ["*"])
    admin = cluster_role("cluster-admin", [everything])
    admin.cluster_role.rules.add(verbs=["*"], non_resource_urls=["*"])
    scheduler = (
        rule((*READ, "create", "patch", "update"), ["", "events.k8s.io"], ["events"]),
        rule((*READ, "delete"), [""], ["pods"]),
        rule(("create",), [""], ["pods/binding", "bindings"]),
        rule(("patch", "update"), [""], ["pods/status"]),
        rule(READ, [""], ["nodes", "namespaces", "services", "replicationcontrollers",
                          "persistentvolumeclaims"]),
        rule(READ, ["apps"], ["replicasets", "statefulsets"]),
        rule((*READ, "create", "update"), ["coordination.k8s.io"], ["leases"]),
    )
    dns = (rule(("list", "watch"), [""], ["endpoints", "services", "pods", "namespaces"]),)
    return [
        admin,
        cluster_role("admin", [*_VIEW_RULES, *_EDIT_RULES, *_ADMIN_RULES]),
        cluster_role("edit", [*_VIEW_RULES, *_EDIT_RULES]),
        cluster_role("view", _VIEW_RULES),
        cluster_role("system:kube-scheduler", scheduler),
        cluster_role("system:kube-controller-manager", [everything]),
        cluster_role("system:kube-dns", dns),
        cluster_role("system:node", NODE_RULES),
        binding("cluster-admin", "cluster-admin", [("Group", "system:masters")]),
        binding("system:kube-scheduler", "system:kube-scheduler",
                [("User", "system:kube-scheduler")]),
        binding("system:kube-controller-manager", "system:kube-controller-manager",
                [("User", "system:kube-controller-manager")]),
        binding("system:kube-dns", "system:kube-dns", [("ServiceAccount", "kube-system/kube-dns")]),
        binding("system:node", "system:node", []),
    ]


class Creator(Protocol):
    """What `ensure` needs of the registry."""

    async def create(self, obj: api_pb2.Object, *, dry_run: bool = False) -> api_pb2.Object: ...


async def ensure(registry: Creator) -> int:
    """Create the default roles and bindings that are missing; how many were created."""
    created = 0
    for obj in policy():
        with contextlib.suppress(AlreadyExists):
            await registry.create(obj)
            created += 1
    if created:
        log.info("created %d default RBAC roles and bindings", created)
    return created
