"""`kemuctl create role|clusterrole|rolebinding|clusterrolebinding` build what kubectl's
generators build: one rule per API group (sorted), short names resolved, subresources kept,
subjects users then groups then service accounts; kubectl's errors for missing flags."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import objects
from kemu.cli.ctl import cmd_create
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.errors import CtlError


def generate(*argv: str) -> dict[str, Any]:
    p = cli.Parser(prog="kemuctl create")
    cmd_create.add_arguments(p, "create")
    return objects.to_dict(cmd_create.generate(p.parse_intermixed_args(list(argv))))


def test_role_rules_per_group() -> None:
    doc = generate("role", "deployer", "--verb=get,list", "--verb", "update",
                   "--resource=deploy,pods,rs.apps/scale", "--resource-name", "web")
    assert doc["rules"] == [
        {"verbs": ["get", "list", "update"], "apiGroups": [""], "resources": ["pods"],
         "resourceNames": ["web"]},
        {"verbs": ["get", "list", "update"], "apiGroups": ["apps"],
         "resources": ["deployments", "replicasets/scale"], "resourceNames": ["web"]},
    ]
    assert (doc["kind"], doc["metadata"]["name"]) == ("Role", "deployer")


def test_clusterrole_with_non_resource_urls_and_aggregation() -> None:
    doc = generate("clusterrole", "health", "--verb=get", "--non-resource-url=/healthz")
    assert doc["rules"] == [{"verbs": ["get"], "nonResourceURLs": ["/healthz"]}]
    doc = generate("clusterrole", "monitoring", "--aggregation-rule=team=mon")
    assert doc["aggregationRule"] == {"clusterRoleSelectors": [{"matchLabels": {
        "team": "mon"}}]}


def test_bindings() -> None:
    doc = generate("rolebinding", "b", "--clusterrole=view", "--serviceaccount=ci:bot",
                   "--group=devs", "--user=jane")
    assert doc["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                              "name": "view"}
    assert [(s["kind"], s["name"]) for s in doc["subjects"]] == [
        ("User", "jane"), ("Group", "devs"), ("ServiceAccount", "bot")]
    assert doc["subjects"][2]["namespace"] == "ci"
    doc = generate("clusterrolebinding", "c", "--clusterrole=cluster-admin", "--user=root")
    assert doc["kind"] == "ClusterRoleBinding" and doc["roleRef"]["name"] == "cluster-admin"


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(("role", "r", "--resource=pods"), "at least one verb must be specified",
                 id="no-verb"),
    pytest.param(("role", "r", "--verb=get"), "at least one resource must be specified",
                 id="no-resource"),
    pytest.param(("role", "r", "--verb=fly", "--resource=pods"), "invalid verb: 'fly'",
                 id="bad-verb"),
    pytest.param(("rolebinding", "b", "--user=x"),
                 "exactly one of clusterrole or role must be specified", id="no-role"),
    pytest.param(("rolebinding", "b", "--role=r", "--serviceaccount=bot"),
                 "serviceaccount must be <namespace>:<name>", id="bad-sa"),
])
def test_errors(argv: tuple[str, ...], message: str) -> None:
    with pytest.raises(CtlError, match=message):
        generate(*argv)
