"""Authorization end to end: a real apiserver with `--authorization-mode RBAC,Node` and a
token file of users and groups, driven by the real kemuctl with each user's token:
`auth can-i` answers yes/no with kubectl's exit codes (and --list, --as), a denial prints
kubectl's `Error from server (Forbidden): ...` line, a RoleBinding grants in its namespace,
and a node identity may touch only its own Node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.kemuctl.conftest import Kemuctl
from tests.support import processes

pytestmark = pytest.mark.integration

TOKENS = """\
admin-token,root,1,"system:masters"
jane-token,jane,2,"devs"
node1-token,system:node:n1,3,"system:nodes"
"""


class AsUser(Kemuctl):
    """kemuctl with one user's bearer token."""

    def __init__(self, server: str, token: str) -> None:
        super().__init__(server)
        self.token = token

    def __call__(self, *args: str, stdin: str = "") -> object:  # type: ignore[override]
        return super().__call__("--token", self.token, *args, stdin=stdin)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("rbac")
    tokens = tmp / "tokens.csv"
    tokens.write_text(TOKENS)
    store = processes.kemu_store(tmp)
    api = processes.kemu_apiserver(tmp, store.address, extra=(
        "--insecure", "--token-file", str(tokens), "--authorization-mode", "RBAC,Node"))
    with processes.running(store, api):
        yield api.address


def _as(server: str, token: str) -> Kemuctl:
    return AsUser(server, token)


def test_can_i_and_forbidden(server: str, tmp_path: Path) -> None:
    admin, jane = _as(server, "admin-token"), _as(server, "jane-token")
    assert admin.ok("auth", "can-i", "delete", "nodes").out == "yes\n"
    no = jane("auth", "can-i", "list", "deployments", "-n", "default")
    assert (no.code, no.out, no.err) == (1, "no\n", "")
    assert jane("auth", "can-i", "list", "pods", "-q").out == ""
    denied = jane("get", "deployments", "-n", "default")
    assert denied.code == 1
    assert denied.err_lines == [
        'Error from server (Forbidden): deployments.apps is forbidden: User "jane" cannot '
        'list resource "deployments" in API group "apps" in the namespace "default"']
    # jane cannot ask about others; root can
    assert "cannot impersonate resource" in jane("auth", "can-i", "get", "pods", "--as",
                                                 "bob").err
    assert admin("auth", "can-i", "get", "pods", "--as", "jane").code == 1

    admin.ok("create", "namespace", "team")
    admin.ok("apply", "-f", "-", stdin="""
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: devs-edit, namespace: team}
subjects: [{kind: Group, name: devs, apiGroup: rbac.authorization.k8s.io}]
roleRef: {kind: ClusterRole, name: edit, apiGroup: rbac.authorization.k8s.io}
""")
    for _ in range(100):  # the binding reaches the authorizer through the watch cache
        if jane("auth", "can-i", "create", "deployments", "-n", "team").code == 0:
            break
    assert jane.ok("auth", "can-i", "create", "deployments.apps", "-n", "team").out == "yes\n"
    assert jane.ok("auth", "can-i", "get", "pods", "--subresource", "log", "-n",
                   "team").out == "yes\n"
    assert jane("auth", "can-i", "create", "rolebindings", "-n", "team").out == "no\n"
    assert jane("auth", "can-i", "list", "pods", "-A").out == "no\n"
    assert admin.ok("auth", "can-i", "create", "deployments", "-n", "team", "--as", "jane",
                    "--as-group", "devs").out == "yes\n"
    jane.ok("create", "configmap", "settings", "-n", "team", "--from-literal", "a=1")
    assert jane.ok("get", "configmaps", "-n", "team").lines[1].split()[0] == "settings"
    listed = jane.ok("auth", "can-i", "--list", "-n", "team").lines
    assert listed[0].split() == ["Resources", "Non-Resource", "URLs", "Resource", "Names",
                                 "Verbs"]
    assert any(line.split()[0] == "deployments.apps/scale" for line in listed[1:])
    warned = jane("auth", "can-i", "get", "widgets.example.com")
    assert (warned.code, warned.out) == (1, "no\n")
    assert "Warning: the server doesn't have a resource type 'widgets.example.com'" in warned.err


def test_default_roles_and_node_identity(server: str) -> None:
    admin, node = _as(server, "admin-token"), _as(server, "node1-token")
    names = [line.split()[0] for line in admin.ok("get", "clusterroles").lines[1:]]
    for expected in ("admin", "cluster-admin", "edit", "system:kube-controller-manager",
                     "system:kube-scheduler", "system:node", "view"):
        assert expected in names
    row = admin.ok("get", "clusterrolebinding", "cluster-admin", "-o", "wide").lines[1].split()
    assert row[:2] == ["cluster-admin", "ClusterRole/cluster-admin"]
    assert row[-1] == "system:masters"
    for name in ("n1", "n2"):
        admin.ok("apply", "-f", "-", stdin=f"apiVersion: v1\nkind: Node\nmetadata:\n"
                 f"  name: {name}\n")
    assert node.ok("auth", "can-i", "update", "nodes/n1").out == "yes\n"
    no = node("auth", "can-i", "update", "nodes/n2")
    assert (no.code, no.out) == (1, 'no - node "n1" is not allowed to modify node "n2"\n')
    denied = node("label", "node", "n2", "zone=a")
    assert denied.code == 1
    assert 'Error from server (Forbidden): nodes "n2" is forbidden: User "system:node:n1" ' \
        'cannot patch resource "nodes"' in denied.err or \
        'Error from server (Forbidden): nodes "n2" is forbidden: User "system:node:n1" ' \
        'cannot update resource "nodes"' in denied.err, denied.err
    node.ok("label", "node", "n1", "zone=a")
    assert node("get", "secrets", "-n", "default").code == 0  # the agent informs on them
    assert node("get", "deployments", "-A").code == 1


def test_global_as_acts_as_another_user(server: str) -> None:
    """kubectl's --as on any verb: root sees what jane would; jane may not act as root."""
    admin, jane = _as(server, "admin-token"), _as(server, "jane-token")
    denied = admin("get", "deployments", "-n", "default", "--as", "jane")
    assert denied.code == 1
    assert denied.err_lines == [
        'Error from server (Forbidden): deployments.apps is forbidden: User "jane" cannot '
        'list resource "deployments" in API group "apps" in the namespace "default"']
    # jane's groups are exactly those asked for: as a member of system:masters she may
    assert admin.ok("get", "deployments", "-n", "default", "--as", "jane",
                    "--as-group", "system:masters").code == 0
    escalate = jane("get", "nodes", "--as", "root")
    assert escalate.code == 1
    assert escalate.err_lines == [
        'Error from server (Forbidden): users "root" is forbidden: User "jane" cannot '
        'impersonate resource "users" in API group "" at the cluster scope']
    admin.ok("apply", "-f", "-", stdin="apiVersion: v1\nkind: Node\nmetadata:\n  name: n1\n")
    node = admin("annotate", "node", "n1", "a=b", "--as", "system:node:n2",
                 "--as-group", "system:nodes")
    assert node.code == 1 and "Forbidden" in node.err, node.err
    assert "requesting groups" in admin("get", "pods", "--as-group", "devs").err
