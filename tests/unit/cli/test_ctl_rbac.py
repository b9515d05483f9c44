"""kemuctl's RBAC tables and describers, fed objects: kubectl's columns (NAME, CREATED AT
for roles; NAME, ROLE, AGE and the wide subject columns for bindings) and the PolicyRule
table of `describe` with rules broken down, compacted and sorted as kubectl does."""

from __future__ import annotations

from typing import Any

import yaml

from kemu.api import manifest
from kemu.cli.ctl import describe_rbac, rbacrules, rows_rbac
from kemu.cli.ctl.describe_base import Writer

NOW = 1_700_000_000.0


def _obj(text: str) -> Any:
    obj = manifest.from_dict(yaml.safe_load(text))
    inner = getattr(obj, obj.WhichOneof("kind"))
    inner.metadata.creation_timestamp.FromSeconds(int(NOW) - 90)
    return inner


ROLE = _obj("""
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: deployer}
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "watch", "list"]
- apiGroups: ["apps"]
  resources: ["deployments", "deployments/scale"]
  verbs: ["update"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get"]
- apiGroups: [""]
  resources: ["configmaps"]
  resourceNames: ["settings"]
  verbs: ["get"]
- nonResourceURLs: ["/healthz"]
  verbs: ["get"]
""")
BINDING = _obj("""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: read-pods, namespace: default}
subjects:
- {kind: User, name: jane, apiGroup: rbac.authorization.k8s.io}
- {kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}
- {kind: ServiceAccount, name: ci, namespace: tools}
roleRef: {kind: ClusterRole, name: view, apiGroup: rbac.authorization.k8s.io}
""")


def test_role_row_is_name_and_created_at() -> None:
    assert rows_rbac.COLUMNS["clusterroles"].headers == ("NAME", "CREATED AT")
    assert rows_rbac.role_row(ROLE, NOW, False) == ["deployer", "2023-11-14T22:11:50Z"]


def test_binding_rows() -> None:
    cols = rows_rbac.COLUMNS["rolebindings"]
    assert (cols.headers, cols.wide) == (("NAME", "ROLE", "AGE"),
                                         ("USERS", "GROUPS", "SERVICEACCOUNTS"))
    assert cols.row(BINDING, NOW, False) == ["read-pods", "ClusterRole/view", "90s"]
    assert cols.row(BINDING, NOW, True)[3:] == ["jane", "devs", "tools/ci"]


def test_rules_table_breaks_down_compacts_and_sorts() -> None:
    rows = rbacrules.table_rows(rbacrules.Rule.of(r) for r in ROLE.rules)
    assert rows == [  # sorted by Go's PolicyRule.String(), which starts with the verbs
        ["pods", "[]", "[]", "[get watch list]"],
        ["", "[/healthz]", "[]", "[get]"],
        ["configmaps", "[]", "[settings]", "[get]"],
        ["deployments.apps", "[]", "[]", "[update get]"],
        ["deployments.apps/scale", "[]", "[]", "[update]"],
    ]


def test_describe_role_and_binding() -> None:
    w = Writer()
    describe_rbac.describe_role(w, None, ROLE, NOW)  # type: ignore[arg-type]
    assert w.text().splitlines()[:6] == [
        "Name:         deployer",
        "Labels:       <none>",
        "Annotations:  <none>",
        "PolicyRule:",
        "  Resources               Non-Resource URLs  Resource Names  Verbs",
        "  ---------               -----------------  --------------  -----",
    ]
    w = Writer()
    describe_rbac.describe_binding(w, None, BINDING, NOW)  # type: ignore[arg-type]
    assert w.text() == (
        "Name:         read-pods\n"
        "Labels:       <none>\n"
        "Annotations:  <none>\n"
        "Role:\n"
        "  Kind:  ClusterRole\n"
        "  Name:  view\n"
        "Subjects:\n"
        "  Kind            Name  Namespace\n"
        "  ----            ----  ---------\n"
        "  User            jane  \n"
        "  Group           devs  \n"
        "  ServiceAccount  ci    tools\n")
