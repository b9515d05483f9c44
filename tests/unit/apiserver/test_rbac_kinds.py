"""The RBAC kinds (rbac.authorization.k8s.io/v1): served under kubectl's names, manifests
load as is, defaults and validation as Kubernetes' (messages with field paths), and a
binding's roleRef cannot change."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from kemu.api import kinds, manifest
from kemu.services.apiserver import defaults, validation

ROLE = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {namespace: default, name: pod-reader}
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "watch", "list"]
"""
BINDING = """
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods, namespace: default}
subjects:
- {kind: User, name: jane}
- {kind: ServiceAccount, name: default}
roleRef: {kind: Role, name: pod-reader}
"""
CLUSTER_BINDING = """
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: read-secrets-global}
subjects: [{kind: Group, name: manager}]
roleRef: {kind: ClusterRole, name: secret-reader, apiGroup: rbac.authorization.k8s.io}
"""


def _load(text: str, **patch: Any) -> Any:
    doc = yaml.safe_load(text)
    doc.update(patch)
    obj = manifest.from_dict(doc)
    defaults.apply_defaults(obj)
    return obj


def _errors(text: str, **patch: Any) -> list[str]:
    obj = _load(text, **patch)
    field = obj.WhichOneof("kind")
    return [str(e) for e in validation.VALIDATORS[field](getattr(obj, field))]


@pytest.mark.parametrize(("name", "plural", "namespaced"), [
    pytest.param("role", "roles", True, id="role"),
    pytest.param("ClusterRole", "clusterroles", False, id="clusterrole"),
    pytest.param("rolebindings.rbac.authorization.k8s.io", "rolebindings", True, id="binding"),
    pytest.param("clusterrolebinding", "clusterrolebindings", False, id="clusterbinding"),
])
def test_kinds_resolve_as_kubectl_names_them(name: str, plural: str, namespaced: bool) -> None:
    kind = kinds.resolve(name)
    assert (kind.plural, kind.group, kind.namespaced, kind.short_names) == (
        plural, "rbac.authorization.k8s.io", namespaced, ())
    assert plural not in kinds.KNOWN_UNSERVED


def test_defaults_fill_the_rbac_api_group() -> None:
    b = _load(BINDING).role_binding
    assert b.role_ref.api_group == "rbac.authorization.k8s.io"
    assert [s.api_group for s in b.subjects] == ["rbac.authorization.k8s.io", ""]
    assert _errors(BINDING) == [] and _errors(ROLE) == [] and _errors(CLUSTER_BINDING) == []


@pytest.mark.parametrize(("text", "patch", "expected"), [
    pytest.param(ROLE, {"rules": [{"apiGroups": [""], "resources": ["pods"]}]},
                 ["rules[0].verbs: Required value: verbs must contain at least one value"],
                 id="verbs-required"),
    pytest.param(ROLE, {"rules": [{"verbs": ["get"]}]},
                 ["rules[0].apiGroups: Required value: resource rules must supply at least one "
                  "api group", "rules[0].resources: Required value: resource rules must supply "
                  "at least one resource"], id="resource-rule"),
    pytest.param(ROLE, {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]},
                 ['rules[0].nonResourceURLs: Invalid value: []string{"/healthz"}: namespaced rules '
                  "cannot apply to non-resource URLs"], id="namespaced-non-resource"),
    pytest.param(BINDING, {"roleRef": {"kind": "Deployment", "name": "x"}},
                 ['roleRef.kind: Unsupported value: "Deployment": supported values: "Role", '
                  '"ClusterRole"'], id="roleref-kind"),
    pytest.param(BINDING, {"roleRef": None}, [
        'roleRef.kind: Unsupported value: "": supported values: "Role", "ClusterRole"',
        "roleRef.name: Required value"], id="roleref-required"),
    pytest.param(CLUSTER_BINDING, {"roleRef": {"kind": "Role", "name": "x"}},
                 ['roleRef.kind: Unsupported value: "Role": supported values: "ClusterRole"'],
                 id="cluster-binding-needs-clusterrole"),
    pytest.param(CLUSTER_BINDING, {"subjects": [{"kind": "ServiceAccount", "name": "sa"}]},
                 ["subjects[0].namespace: Required value"], id="cluster-sa-namespace"),
    pytest.param(BINDING, {"subjects": [{"kind": "Robot", "name": "r2"}]},
                 ['subjects[0].kind: Unsupported value: "Robot": supported values: '
                  '"ServiceAccount", "User", "Group"'], id="subject-kind"),
    pytest.param(BINDING, {"subjects": [{"kind": "User"}]},
                 ["subjects[0].name: Required value"], id="subject-name"),
    pytest.param(BINDING, {"subjects": [{"kind": "User", "name": "x", "apiGroup": "v1"}]},
                 ['subjects[0].apiGroup: Unsupported value: "v1": supported values: '
                  '"rbac.authorization.k8s.io"'], id="subject-group"),
])
def test_validation_messages(text: str, patch: dict[str, Any], expected: list[str]) -> None:
    if patch.get("roleRef", {}) is None:
        doc = yaml.safe_load(text)
        del doc["roleRef"]
        text, patch = yaml.safe_dump(doc), {}
    assert _errors(text, **patch) == expected


def test_names_may_hold_colons_but_not_slashes() -> None:
    role = _load(ROLE).role
    role.metadata.name = "system:node"
    assert validation.metadata(role.metadata, "role", True) == []
    role.metadata.name = "a/b"
    assert [str(e) for e in validation.metadata(role.metadata, "role", True)] == [
        "metadata.name: Invalid value: \"a/b\": may not contain '/'"]


def test_role_ref_is_immutable() -> None:
    old, new = _load(BINDING).role_binding, _load(BINDING).role_binding
    assert validation.UPDATE_VALIDATORS["role_binding"](new, old) == []
    new.role_ref.name = "admin"
    new.role_ref.kind = "ClusterRole"
    assert [str(e) for e in validation.UPDATE_VALIDATORS["role_binding"](new, old)] == [
        'roleRef: Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", '
        'Kind:"ClusterRole", Name:"admin"}: cannot change roleRef']
