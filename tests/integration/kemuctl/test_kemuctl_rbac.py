"""The RBAC kinds through the real kemuctl and apiserver: Kubernetes manifests apply as
they are, `get` prints kubectl's columns, `describe` kubectl's layout, and a binding's
roleRef cannot be changed."""

from __future__ import annotations

import re

import pytest

from tests.integration.kemuctl.conftest import Kemuctl, unique

pytestmark = pytest.mark.integration

MANIFESTS = """
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: pod-reader
rules:
- apiGroups: [""] # "" indicates the core API group
  resources: ["pods", "pods/log"]
  verbs: ["get", "watch", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: read-pods
subjects:
- kind: User
  name: jane
  apiGroup: rbac.authorization.k8s.io
- kind: ServiceAccount
  name: ci
roleRef:
  kind: Role
  name: pod-reader
  apiGroup: rbac.authorization.k8s.io
"""


def test_apply_get_describe_namespaced(ctl: Kemuctl, ns: str) -> None:
    out = ctl.ok("apply", "-n", ns, "-f", "-", stdin=MANIFESTS).lines
    assert out == ["role.rbac.authorization.k8s.io/pod-reader created",
                   "rolebinding.rbac.authorization.k8s.io/read-pods created"]
    lines = ctl.ok("get", "roles", "-n", ns).lines
    assert re.fullmatch(r"NAME\s+CREATED AT", lines[0])
    assert re.fullmatch(r"pod-reader\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", lines[1])
    lines = ctl.ok("get", "rolebinding", "-n", ns, "-o", "wide").lines
    assert lines[0].split() == ["NAME", "ROLE", "AGE", "USERS", "GROUPS", "SERVICEACCOUNTS"]
    assert lines[1].split()[:2] == ["read-pods", "Role/pod-reader"]
    assert lines[1].split()[3:] == ["jane", "ci"]  # no namespace given: kubectl shows the name
    described = ctl.ok("describe", "role", "pod-reader", "-n", ns).lines
    assert described == [
        "Name:         pod-reader",
        "Labels:       <none>",
        "Annotations:  <none>",
        "PolicyRule:",
        "  Resources  Non-Resource URLs  Resource Names  Verbs",
        "  ---------  -----------------  --------------  -----",
        "  pods/log   []                 []              [get watch list]",
        "  pods       []                 []              [get watch list]",
    ]
    described = ctl.ok("describe", "rolebinding", "read-pods", "-n", ns).lines
    assert described[3:] == ["Role:", "  Kind:  Role", "  Name:  pod-reader", "Subjects:",
                             "  Kind            Name  Namespace",
                             "  ----            ----  ---------",
                             "  User            jane  ",
                             "  ServiceAccount  ci    "]


def test_cluster_kinds_and_immutable_role_ref(ctl: Kemuctl) -> None:
    role, binding = unique("reader"), unique("readers")
    ctl.ok("apply", "-f", "-", stdin=f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {{name: {role}}}
rules:
- apiGroups: ["apps"]
  resources: ["deployments", "deployments/scale"]
  verbs: ["get", "update"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {binding}}}
subjects: [{{kind: Group, name: devs}}]
roleRef: {{kind: ClusterRole, name: {role}}}
""")
    lines = ctl.ok("get", "clusterrolebindings", binding).lines
    assert lines[0].split() == ["NAME", "ROLE", "AGE"]
    assert lines[1].split()[:2] == [binding, f"ClusterRole/{role}"]
    rows = [line.split() for line in ctl.ok("describe", "clusterrole", role).lines[6:]]
    assert rows == [["deployments.apps/scale", "[]", "[]", "[get", "update]"],
                    ["deployments.apps", "[]", "[]", "[get", "update]"]]
    bad = ctl("apply", "-f", "-", stdin=f"""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {{name: {binding}}}
subjects: [{{kind: Group, name: devs}}]
roleRef: {{kind: ClusterRole, name: cluster-admin}}
""")
    assert bad.code == 1
    assert f'ClusterRoleBinding.rbac.authorization.k8s.io "{binding}" is invalid: roleRef: ' \
        'Invalid value: rbac.RoleRef{APIGroup:"rbac.authorization.k8s.io", ' \
        'Kind:"ClusterRole", Name:"cluster-admin"}: cannot change roleRef' in bad.err
    bad = ctl("create", "-f", "-", stdin="""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: empty-verbs}
rules: [{apiGroups: [""], resources: [pods]}]
""")
    assert bad.code == 1
    assert "rules[0].verbs: Required value: verbs must contain at least one value" in bad.err


def test_create_generators(ctl: Kemuctl, ns: str) -> None:
    assert ctl.ok("create", "role", "pod-reader", "-n", ns, "--verb=get,list",
                  "--resource=pods,pods/log").out == \
        "role.rbac.authorization.k8s.io/pod-reader created\n"
    assert ctl.ok("create", "rolebinding", "readers", "-n", ns, "--role=pod-reader",
                  "--user=jane", "--serviceaccount", f"{ns}:ci").out == \
        "rolebinding.rbac.authorization.k8s.io/readers created\n"
    row = ctl.ok("get", "rolebinding", "readers", "-n", ns, "-o", "wide").lines[1].split()
    assert row[1] == "Role/pod-reader" and row[3:] == ["jane", f"{ns}/ci"]
    role = ctl.ok("get", "role", "pod-reader", "-n", ns, "-o", "yaml").out
    assert "- pods/log" in role and "- list" in role
