"""The authorizer as Kubernetes decides: RBAC rules (verbs, groups, resources and
subresources, wildcards, resourceNames), ClusterRoles bound in a namespace by RoleBindings,
aggregation, system:masters, the Node authorizer and node restriction, the union's order,
and the Forbidden message word for word."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kemu.api import manifest
from kemu.services.apiserver import bootstrappolicy
from kemu.services.apiserver.authorizer import (
    Attributes,
    Authorization,
    Decision,
    ModeError,
    StaticView,
    forbidden,
    parse_modes,
)
from kemu.services.apiserver.errors import Forbidden
from kemu.services.apiserver.identity import Identity
from kemu.services.apiserver.rbac import RBACAuthorizer

POLICY = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: pod-reader, namespace: dev}
rules:
- {apiGroups: [""], resources: [pods, pods/log], verbs: [get, list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: jane-reads-pods, namespace: dev}
subjects: [{kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: Role, name: pod-reader, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: deploy-scaler}
rules:
- {apiGroups: [apps], resources: [deployments/scale], verbs: [update]}
- {apiGroups: [apps], resources: [deployments], verbs: [get], resourceNames: [web]}
- {apiGroups: [""], resources: ["*/status"], verbs: [update]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: ops-scale, namespace: prod}
subjects: [{kind: Group, name: ops, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: deploy-scaler, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: everything-batch}
rules:
- {apiGroups: [batch], resources: ["*"], verbs: ["*"]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: robot-batch}
subjects: [{kind: ServiceAccount, name: robot, namespace: ci}]
roleRef: {kind: ClusterRole, name: everything-batch, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: local-sa, namespace: ci}
subjects: [{kind: ServiceAccount, name: builder}]
roleRef: {kind: ClusterRole, name: view, apiGroup: rbac.authorization.k8s.io}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring}
aggregationRule:
  clusterRoleSelectors: [{matchLabels: {aggregate-to-monitoring: "true"}}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: monitoring-nodes, labels: {aggregate-to-monitoring: "true"}}
rules:
- {apiGroups: [""], resources: [nodes], verbs: [list]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: prometheus}
subjects: [{kind: User, name: prometheus, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: monitoring, apiGroup: rbac.authorization.k8s.io}
"""

JANE = Identity("jane", ("devs", "system:authenticated"))
OPS = Identity("sam", ("ops",))
ROBOT = Identity("system:serviceaccount:ci:robot")
BUILDER = Identity("system:serviceaccount:ci:builder")
ADMIN = Identity("root", ("system:masters",))
PROM = Identity("prometheus")
NODE1 = Identity("system:node:n1", ("system:nodes", "system:authenticated"))


def _pod(name: str, namespace: str, node: str, **spec: Any) -> Any:
    return manifest.from_dict({"apiVersion": "v1", "kind": "Pod",
                               "metadata": {"name": name, "namespace": namespace},
                               "spec": {"nodeName": node,
                                        "containers": [{"name": "c", "image": "x"}], **spec}})


def _view() -> StaticView:
    objs = [manifest.from_dict(d) for d in yaml.safe_load_all(POLICY)]
    objs += bootstrappolicy.policy()
    objs += [_pod("mine", "dev", "n1", volumes=[{"name": "v", "secret": {"secretName": "s1"}}],
                  imagePullSecrets=[{"name": "pull"}]),
             _pod("theirs", "dev", "n2", volumes=[{"name": "v", "configMap": {"name": "c2"}}])]
    return StaticView(objs)


AUTH = Authorization(("Node", "RBAC"), _view())


def a(user: Identity, verb: str, resource: str, namespace: str = "", name: str = "", *,
      group: str = "", object_name: str = "") -> Attributes:
    base, _, sub = resource.partition("/")
    return Attributes(user, verb, group, base, sub, namespace, name, object_name)


@pytest.mark.parametrize(("attrs", "allowed"), [
    pytest.param(a(JANE, "get", "pods", "dev", "web-0"), True, id="role-binding-get"),
    pytest.param(a(JANE, "list", "pods", "dev"), True, id="role-binding-list"),
    pytest.param(a(JANE, "list", "pods", "prod"), False, id="other-namespace"),
    pytest.param(a(JANE, "list", "pods"), False, id="all-namespaces-needs-cluster-binding"),
    pytest.param(a(JANE, "delete", "pods", "dev", "web-0"), False, id="verb-not-granted"),
    pytest.param(a(JANE, "get", "pods/log", "dev", "web-0"), True, id="subresource-granted"),
    pytest.param(a(JANE, "create", "pods/exec", "dev", "web-0"), False,
                 id="pods-does-not-cover-subresources"),
    pytest.param(a(JANE, "get", "pods", "dev", group="apps"), False, id="group-must-match"),
    pytest.param(a(OPS, "update", "deployments/scale", "prod", "web", group="apps"), True,
                 id="clusterrole-via-rolebinding"),
    pytest.param(a(OPS, "update", "deployments/scale", "dev", "web", group="apps"), False,
                 id="clusterrole-via-rolebinding-only-there"),
    pytest.param(a(OPS, "get", "deployments", "prod", "web", group="apps"), True,
                 id="resource-name-match"),
    pytest.param(a(OPS, "get", "deployments", "prod", "api", group="apps"), False,
                 id="resource-name-mismatch"),
    pytest.param(a(OPS, "list", "deployments", "prod", group="apps"), False,
                 id="resource-names-never-cover-list"),
    pytest.param(a(OPS, "update", "pods/status", "prod", "p"), True, id="star-subresource"),
    pytest.param(a(OPS, "update", "pods", "prod", "p"), False, id="star-sub-not-parent"),
    pytest.param(a(ROBOT, "delete", "cronjobs", "any", "x", group="batch"), True,
                 id="service-account-star-verbs"),
    pytest.param(a(ROBOT, "delete", "deployments", "any", "x", group="apps"), False,
                 id="service-account-other-group"),
    pytest.param(a(BUILDER, "list", "pods", "ci"), True, id="sa-namespace-from-binding"),
    pytest.param(a(BUILDER, "list", "secrets", "ci"), False, id="view-hides-secrets"),
    pytest.param(a(PROM, "list", "nodes"), True, id="aggregated-clusterrole"),
    pytest.param(a(PROM, "get", "nodes", name="n1"), False, id="aggregated-only-listed-verbs"),
    pytest.param(a(ADMIN, "deletecollection", "anything", "x", group="made.up"), True,
                 id="system-masters"),
    pytest.param(a(Identity("nobody"), "get", "namespaces", name="default"), False,
                 id="nobody"),
])
def test_rbac_table(attrs: Attributes, allowed: bool) -> None:
    assert AUTH.review(attrs).allowed is allowed


@pytest.mark.parametrize(("attrs", "allowed", "reason"), [
    pytest.param(a(NODE1, "get", "nodes", name="n2"), True, "", id="read-any-node"),
    pytest.param(a(NODE1, "update", "nodes", name="n1"), True, "", id="update-own-node"),
    pytest.param(a(NODE1, "update", "nodes/status", name="n1"), True, "", id="own-status"),
    pytest.param(a(NODE1, "update", "nodes/status", name="n2"), False,
                 'node "n1" is not allowed to modify node "n2"', id="other-node-status"),
    pytest.param(a(NODE1, "create", "nodes", object_name="n2"), False,
                 'node "n1" is not allowed to modify node "n2"', id="create-other-node"),
    pytest.param(a(NODE1, "create", "nodes", object_name="n1"), True, "", id="register"),
    pytest.param(a(NODE1, "update", "pods/status", "dev", "mine"), True, "", id="own-pod"),
    pytest.param(a(NODE1, "update", "pods/status", "dev", "theirs"), False,
                 'node "n1" can only update pod status for pods with spec.nodeName set to '
                 "itself", id="other-pod-status"),
    pytest.param(a(NODE1, "delete", "pods", "dev", "theirs"), False,
                 'node "n1" can only delete pods with spec.nodeName set to itself',
                 id="delete-other-pod"),
    pytest.param(a(NODE1, "update", "pods", "dev", "mine"), False, "", id="pod-spec"),
    pytest.param(a(NODE1, "watch", "pods"), True, "", id="watch-pods"),
    pytest.param(a(NODE1, "create", "events", "dev"), True, "", id="events"),
    pytest.param(a(NODE1, "update", "leases", "kube-node-lease", "n1",
                   group="coordination.k8s.io"), True, "", id="own-lease"),
    pytest.param(a(NODE1, "update", "leases", "kube-node-lease", "n2",
                   group="coordination.k8s.io"), False,
                 "can only access node lease with the same name as the requesting node",
                 id="other-lease"),
    pytest.param(a(NODE1, "get", "secrets", "dev", "s1"), True, "", id="secret-of-its-pod"),
    pytest.param(a(NODE1, "get", "secrets", "dev", "pull"), True, "", id="pull-secret"),
    pytest.param(a(NODE1, "get", "configmaps", "dev", "c2"), False,
                 "no relationship found between node 'n1' and this object",
                 id="configmap-of-other-node"),
    pytest.param(a(NODE1, "create", "deployments", "dev", group="apps"), False, "",
                 id="nothing-else"),
    pytest.param(a(JANE, "update", "nodes", name="n2"), False, "", id="not-a-node"),
])
def test_node_table(attrs: Attributes, allowed: bool, reason: str) -> None:
    verdict = AUTH.review(attrs)
    assert (verdict.allowed, "" if verdict.allowed else verdict.reason) == (allowed, reason)


def test_node_restriction_holds_even_when_rbac_allows() -> None:
    """A node in system:masters' rules via RBAC still modifies only its own Node."""
    view = _view()
    crb = bootstrappolicy.binding("nodes-admin", "cluster-admin", [("Group", "system:nodes")])
    view.by_plural["clusterrolebindings"].append(crb)
    auth = Authorization(("RBAC", "Node"), view)
    assert auth.review(a(NODE1, "create", "deployments", "dev", group="apps")).allowed
    assert not auth.review(a(NODE1, "update", "nodes", name="n2")).allowed


def test_allow_reason_names_the_binding() -> None:
    assert AUTH.review(a(JANE, "get", "pods", "dev", "x")).reason == (
        'RBAC: allowed by RoleBinding "jane-reads-pods/dev" of Role "pod-reader" to User "jane"')
    assert AUTH.review(a(Identity("x", ("system:masters",)), "get", "pods")).decision is \
        Decision.ALLOW


@pytest.mark.parametrize(("attrs", "message"), [
    pytest.param(a(JANE, "list", "deployments", "default", group="apps"),
                 'deployments.apps is forbidden: User "jane" cannot list resource '
                 '"deployments" in API group "apps" in the namespace "default"', id="list"),
    pytest.param(a(JANE, "get", "nodes", name="n1"),
                 'nodes "n1" is forbidden: User "jane" cannot get resource "nodes" in API '
                 'group "" at the cluster scope', id="cluster-scope"),
    pytest.param(a(JANE, "create", "pods/exec", "dev", "web"),
                 'pods "web" is forbidden: User "jane" cannot create resource "pods/exec" in '
                 'API group "" in the namespace "dev"', id="subresource"),
])
def test_forbidden_message(attrs: Attributes, message: str) -> None:
    with pytest.raises(Forbidden) as err:
        AUTH.check(attrs)
    assert str(err.value) == message
    assert err.value.about["kind"] == attrs.resource


def test_forbidden_carries_the_reason() -> None:
    assert str(forbidden(a(NODE1, "get", "configmaps", "dev", "c2"), "no relationship")) == (
        'configmaps "c2" is forbidden: User "system:node:n1" cannot get resource "configmaps" '
        'in API group "" in the namespace "dev": no relationship')


def test_always_allow_checks_nothing_and_rules_list() -> None:
    auth = Authorization(("AlwaysAllow",), _view())
    assert auth.authorizer is None
    auth.check(a(Identity("anyone"), "delete", "nodes", name="x"))
    rules = RBACAuthorizer(_view()).rules_for(JANE, "dev")
    assert [list(r.resources) for r in rules] == [["pods", "pods/log"]]
    rules, incomplete = AUTH.rules_for(NODE1, "dev")
    assert incomplete and rules


@pytest.mark.parametrize(("text", "modes"), [
    pytest.param("RBAC,Node", ("RBAC", "Node"), id="two"),
    pytest.param(" AlwaysAllow ", ("AlwaysAllow",), id="spaces"),
])
def test_parse_modes(text: str, modes: tuple[str, ...]) -> None:
    assert parse_modes(text) == modes


@pytest.mark.parametrize("text", ["", "RBAC,RBAC", "ABAC"])
def test_parse_modes_errors(text: str) -> None:
    with pytest.raises(ModeError):
        parse_modes(text)


def test_bootstrap_policy_validates() -> None:
    from kemu.services.apiserver import defaults, validation

    for obj in bootstrappolicy.policy():
        defaults.apply_defaults(obj)
        field = obj.WhichOneof("kind")
        inner = getattr(obj, field)
        assert validation.VALIDATORS[field](inner) == [], inner.metadata.name
        assert validation.metadata(inner.metadata, field, False) == []


SCHEDULER = Identity("system:kube-scheduler", ("system:authenticated",))
CONTROLLERS = Identity("system:kube-controller-manager", ("system:authenticated",))
DNS = Identity("system:serviceaccount:kube-system:kube-dns")


@pytest.mark.parametrize("attrs", [
    pytest.param(a(SCHEDULER, "watch", "pods"), id="scheduler-watches-pods"),
    pytest.param(a(SCHEDULER, "list", "nodes"), id="scheduler-lists-nodes"),
    pytest.param(a(SCHEDULER, "create", "pods/binding", "dev", "p"), id="scheduler-binds"),
    pytest.param(a(SCHEDULER, "update", "pods/status", "dev", "p"), id="scheduler-conditions"),
    pytest.param(a(SCHEDULER, "get", "events", "dev", "e"), id="scheduler-reads-its-events"),
    pytest.param(a(SCHEDULER, "update", "events", "dev", "e"), id="scheduler-counts-events"),
    pytest.param(a(SCHEDULER, "update", "leases", "kube-system", "kube-scheduler",
                   group="coordination.k8s.io"), id="scheduler-leader-election"),
    pytest.param(a(CONTROLLERS, "delete", "rolebindings", "dev", "x",
                   group="rbac.authorization.k8s.io"), id="namespace-controller-deletes-all"),
    pytest.param(a(CONTROLLERS, "create", "pods", "dev"), id="replicaset-creates-pods"),
    pytest.param(a(DNS, "watch", "endpoints"), id="dns-watches-endpoints"),
    pytest.param(a(DNS, "list", "pods"), id="dns-lists-pods"),
])
def test_components_may_do_their_work_under_rbac(attrs: Attributes) -> None:
    """The default bindings give kemu's components (their certificates' users) what their
    informers and writes need."""
    assert AUTH.review(attrs).allowed


@pytest.mark.parametrize("attrs", [
    pytest.param(a(SCHEDULER, "delete", "nodes", name="n1"), id="scheduler-no-node-delete"),
    pytest.param(a(SCHEDULER, "get", "secrets", "dev", "s"), id="scheduler-no-secrets"),
    pytest.param(a(DNS, "create", "services", "dev"), id="dns-read-only"),
])
def test_components_are_limited(attrs: Attributes) -> None:
    assert not AUTH.review(attrs).allowed


def _role_obj(kind: str, name: str, namespace: str, *rules: dict[str, Any]) -> Any:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return manifest.from_dict({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
                               "metadata": meta, "rules": list(rules)})


def _binding_obj(kind: str, name: str, namespace: str, role_kind: str, role: str) -> Any:
    meta = {"name": name, **({"namespace": namespace} if namespace else {})}
    return manifest.from_dict({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind,
                               "metadata": meta, "subjects": [{"kind": "User", "name": "x"}],
                               "roleRef": {"apiGroup": "rbac.authorization.k8s.io",
                                           "kind": role_kind, "name": role}})


@pytest.mark.parametrize(("who", "obj", "allowed"), [
    pytest.param(JANE, _role_obj("Role", "r", "dev", {"apiGroups": [""], "resources": ["pods"],
                                                      "verbs": ["get", "list"]}), True,
                 id="role-within-held-rules"),
    pytest.param(JANE, _role_obj("Role", "r", "dev", {"apiGroups": [""], "resources": ["pods"],
                                                      "verbs": ["delete"]}), False,
                 id="role-with-a-verb-not-held"),
    pytest.param(JANE, _role_obj("Role", "r", "prod", {"apiGroups": [""],
                                                       "resources": ["pods"],
                                                       "verbs": ["get"]}), False,
                 id="held-in-another-namespace-only"),
    pytest.param(OPS, _role_obj("Role", "r", "prod", {"apiGroups": [""],
                                                      "resources": ["services/status"],
                                                      "verbs": ["update"]}), True,
                 id="covered-by-star-subresource"),
    pytest.param(JANE, _binding_obj("RoleBinding", "b", "dev", "Role", "pod-reader"), True,
                 id="bind-a-role-held"),
    pytest.param(JANE, _binding_obj("RoleBinding", "b", "dev", "ClusterRole", "cluster-admin"),
                 False, id="bind-cluster-admin"),
    pytest.param(JANE, _binding_obj("RoleBinding", "b", "dev", "ClusterRole", "absent"), True,
                 id="bind-absent-role-grants-nothing"),
    pytest.param(ADMIN, _binding_obj("ClusterRoleBinding", "b", "", "ClusterRole",
                                     "cluster-admin"), True, id="masters-may-escalate"),
])
def test_escalation(who: Identity, obj: Any, allowed: bool) -> None:
    from kemu.services.apiserver import escalation

    if allowed:
        escalation.check(AUTH, who, obj)
    else:
        with pytest.raises(Forbidden, match="is attempting to grant RBAC permissions not "
                                            "currently held"):
            escalation.check(AUTH, who, obj)


def test_escalation_message() -> None:
    from kemu.services.apiserver import escalation

    obj = _role_obj("Role", "r", "dev", {"apiGroups": ["", "apps"], "resources": ["pods"],
                                         "verbs": ["get", "delete"]})
    with pytest.raises(Forbidden) as err:
        escalation.check(AUTH, JANE, obj)
    assert str(err.value) == (
        'roles.rbac.authorization.k8s.io "r" is forbidden: user "jane" (groups=["devs" '
        '"system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["delete"]}\n'
        '{APIGroups:["apps"], Resources:["pods"], Verbs:["get"]}\n'
        '{APIGroups:["apps"], Resources:["pods"], Verbs:["delete"]}')
