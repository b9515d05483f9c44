"""Authorization in the apiserver's service layer, against a real store: an in-process
apiserver started with `--authorization-mode RBAC,Node` whose servicers are called as given
users (identity.set_current, the seam authentication fills), so each RPC's verb and resource,
the Kubernetes denial message, PERMISSION_DENIED with reason Forbidden, the default roles,
the node restriction and AccessReview are checked without a token file."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from kemu.api import manifest
from kemu.api.v1 import api_pb2, metrics_pb2
from kemu.services.apiserver import identity
from kemu.services.apiserver.identity import Identity
from kemu.services.apiserver.metrics import MetricsServicer
from kemu.services.apiserver.server import APIServer, APIServerConfig
from kemu.services.apiserver.service import ResourcesServicer
from tests.support import processes

pytestmark = pytest.mark.integration

ADMIN = Identity("root", ("system:masters", "system:authenticated"))
JANE = Identity("jane", ("system:authenticated",))
NODE1 = Identity("system:node:n1", ("system:nodes", "system:authenticated"))


class Aborted(Exception):
    def __init__(self, status: grpc.Status) -> None:
        super().__init__(status.details)
        self.code, self.details = status.code, status.details
        raw = dict(status.trailing_metadata)["grpc-status-details-bin"]
        info = error_details_pb2.ErrorInfo()
        status_pb2.Status.FromString(raw).details[0].Unpack(info)
        self.reason = info.reason


class Context:
    """What the servicers use of grpc.aio.ServicerContext."""

    async def abort_with_status(self, status: grpc.Status) -> None:
        raise Aborted(status)


@contextlib.contextmanager
def as_user(who: Identity) -> Iterator[None]:
    token = identity.set_current(who)
    try:
        yield
    finally:
        identity.reset(token)


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    proc = processes.kemu_store(tmp_path_factory.mktemp("authz"))
    with processes.running(proc):
        yield proc.address


class Served:
    def __init__(self, server: APIServer) -> None:
        self.server = server
        self.resources = ResourcesServicer(server.registry, server.caches,
                                           authorization=server.authorization)
        self.metrics = MetricsServicer(server.registry, self.resources.proxy,
                                       authorization=server.authorization)
        self.ctx: Any = Context()

    async def call(self, who: Identity, method: str, request: Any) -> Any:
        with as_user(who):
            return await getattr(self.resources, method)(request, self.ctx)

    async def denied(self, who: Identity, method: str, request: Any) -> Aborted:
        with pytest.raises(Aborted) as err:
            await self.call(who, method, request)
        assert (err.value.code, err.value.reason) == (grpc.StatusCode.PERMISSION_DENIED,
                                                      "Forbidden"), err.value.details
        return err.value

    async def create(self, doc: dict[str, Any]) -> api_pb2.Object:
        return await self.call(ADMIN, "Create",  # type: ignore[no-any-return]
                               api_pb2.CreateRequest(object=manifest.from_dict(doc)))

    async def review(self, who: Identity, verb: str, resource: str, namespace: str = "",
                     name: str = "", group: str = "") -> bool:
        base, _, sub = resource.partition("/")
        resp = await self.call(who, "AccessReview", api_pb2.AccessReviewRequest(
            verb=verb, group=group, resource=base, subresource=sub, namespace=namespace,
            name=name))
        return bool(resp.allowed)

    async def until_allowed(self, who: Identity, *args: str) -> None:
        """Bindings reach the authorizer through the watch cache: wait for it."""
        for _ in range(100):
            if await self.review(who, *args):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"{who.user} never allowed {args}")


@pytest.fixture
async def served(store: str) -> AsyncIterator[Served]:
    server = APIServer(APIServerConfig(listen=f"127.0.0.1:{processes.free_port()}",
                                       store=(store,),
                                       authorization_modes=("RBAC", "Node")))
    await server.start()
    await server.wait_ready()
    try:
        yield Served(server)
    finally:
        await server.stop(0)


def _ns(name: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


async def test_default_roles_and_masters(served: Served) -> None:
    names = {o.cluster_role.metadata.name for o in (await served.call(
        ADMIN, "List", api_pb2.ListRequest(resource="clusterroles"))).items}
    assert {"cluster-admin", "admin", "edit", "view", "system:kube-scheduler",
            "system:kube-controller-manager", "system:node"} <= names
    crb = await served.call(ADMIN, "Get", api_pb2.GetRequest(key=api_pb2.ObjectKey(
        resource="clusterrolebindings", name="cluster-admin")))
    assert [(s.kind, s.name) for s in crb.cluster_role_binding.subjects] == [
        ("Group", "system:masters")]
    sched = Identity("system:kube-scheduler")
    await served.until_allowed(sched, "create", "pods/binding", "default", "p")
    assert not await served.review(sched, "delete", "nodes", "", "n1")


async def test_denials_are_kubernetes_forbidden(served: Served) -> None:
    err = await served.denied(JANE, "List", api_pb2.ListRequest(resource="deploy",
                                                                namespace="default"))
    assert err.details == ('deployments.apps is forbidden: User "jane" cannot list resource '
                           '"deployments" in API group "apps" in the namespace "default"')
    err = await served.denied(JANE, "Get", api_pb2.GetRequest(key=api_pb2.ObjectKey(
        resource="nodes", name="n9")))
    assert err.details == ('nodes "n9" is forbidden: User "jane" cannot get resource "nodes" '
                           'in API group "" at the cluster scope')
    err = await served.denied(JANE, "Scale", api_pb2.ScaleRequest(key=api_pb2.ObjectKey(
        resource="deployments", namespace="default", name="web"), replicas=2))
    assert 'cannot update resource "deployments/scale" in API group "apps"' in err.details
    err = await served.denied(JANE, "Bind", api_pb2.BindRequest(
        namespace="default", name="p", node_name="n1"))
    assert 'cannot create resource "pods/binding"' in err.details
    with as_user(JANE), pytest.raises(Aborted) as metrics_err:
        await served.metrics.ListPodMetrics(metrics_pb2.ListPodMetricsRequest(
            namespace="default"), served.ctx)
    assert metrics_err.value.details == (
        'pods.metrics.k8s.io is forbidden: User "jane" cannot list resource "pods" in API '
        'group "metrics.k8s.io" in the namespace "default"')
    with as_user(JANE), pytest.raises(Aborted) as logs_err:
        async for _ in served.resources.Logs(api_pb2.LogsRequest(namespace="default",
                                                                 name="p"), served.ctx):
            pass
    assert logs_err.value.code == grpc.StatusCode.PERMISSION_DENIED
    assert 'cannot get resource "pods/log"' in logs_err.value.details
    with as_user(JANE), pytest.raises(Aborted) as watch_err:
        async for _ in served.resources.Watch(api_pb2.WatchRequest(resource="pods"),
                                              served.ctx):
            pass
    assert watch_err.value.details == ('pods is forbidden: User "jane" cannot watch resource '
                                       '"pods" in API group "" at the cluster scope')


async def test_role_binding_grants_in_its_namespace(served: Served) -> None:
    await served.create(_ns("dev"))
    await served.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                         "metadata": {"name": "jane-edit", "namespace": "dev"},
                         "subjects": [{"kind": "User", "name": "jane"}],
                         "roleRef": {"kind": "ClusterRole", "name": "edit"}})
    await served.until_allowed(JANE, "create", "configmaps", "dev")
    cm = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "dev"},
          "data": {"a": "1"}}
    applied = await served.call(JANE, "Apply", api_pb2.ApplyRequest(
        object=manifest.from_dict(cm)))
    assert applied.result == api_pb2.ApplyResponse.CREATED
    cm["data"] = {"a": "2"}
    applied = await served.call(JANE, "Apply", api_pb2.ApplyRequest(
        object=manifest.from_dict(cm)))
    assert applied.result == api_pb2.ApplyResponse.CONFIGURED
    listed = await served.call(JANE, "List", api_pb2.ListRequest(resource="configmaps",
                                                                 namespace="dev"))
    assert [o.config_map.metadata.name for o in listed.items] == ["c"]
    await served.denied(JANE, "List", api_pb2.ListRequest(resource="configmaps",
                                                          namespace="default"))
    await served.denied(JANE, "Create", api_pb2.CreateRequest(object=manifest.from_dict({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
        "metadata": {"name": "r", "namespace": "dev"}})))  # edit does not manage roles
    await served.call(JANE, "Delete", api_pb2.DeleteRequest(key=api_pb2.ObjectKey(
        resource="configmaps", namespace="dev", name="c")))


async def test_node_restriction(served: Served) -> None:
    node = {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}}
    await served.call(NODE1, "Create", api_pb2.CreateRequest(object=manifest.from_dict(node)))
    err = await served.denied(NODE1, "Create", api_pb2.CreateRequest(object=manifest.from_dict(
        {**node, "metadata": {"name": "n2"}})))
    assert err.details == ('nodes is forbidden: User "system:node:n1" cannot create resource '
                           '"nodes" in API group "" at the cluster scope: node "n1" is not '
                           'allowed to modify node "n2"')
    await served.create({**node, "metadata": {"name": "n2"}})
    mine = await served.call(NODE1, "Get", api_pb2.GetRequest(key=api_pb2.ObjectKey(
        resource="nodes", name="n1")))
    mine.node.status.phase = "Running"
    await served.call(NODE1, "UpdateStatus", api_pb2.UpdateRequest(object=mine))
    other = await served.call(NODE1, "Get", api_pb2.GetRequest(key=api_pb2.ObjectKey(
        resource="nodes", name="n2")))
    await served.denied(NODE1, "UpdateStatus", api_pb2.UpdateRequest(object=other))
    pods = []
    for name, on in (("on-n1", "n1"), ("on-n2", "n2")):
        pods.append(await served.create({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"nodeName": on, "containers": [{"name": "c", "image": "x"}]}}))
    await served.until_allowed(NODE1, "update", "pods/status", "default", "on-n1")
    pods[0].pod.status.phase = "Running"
    await served.call(NODE1, "UpdateStatus", api_pb2.UpdateRequest(object=pods[0]))
    err = await served.denied(NODE1, "UpdateStatus", api_pb2.UpdateRequest(object=pods[1]))
    assert err.details.endswith('node "n1" can only update pod status for pods with '
                                "spec.nodeName set to itself")
    await served.denied(NODE1, "Delete", api_pb2.DeleteRequest(key=api_pb2.ObjectKey(
        resource="pods", namespace="default", name="on-n2")))
    lease = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
             "metadata": {"name": "n1", "namespace": "kube-node-lease"},
             "spec": {"holderIdentity": "n1", "leaseDurationSeconds": 40}}
    await served.call(NODE1, "Create", api_pb2.CreateRequest(object=manifest.from_dict(lease)))
    lease["metadata"] = {"name": "n2", "namespace": "kube-node-lease"}
    await served.denied(NODE1, "Create", api_pb2.CreateRequest(object=manifest.from_dict(lease)))
    await served.call(NODE1, "Create", api_pb2.CreateRequest(object=manifest.from_dict({
        "apiVersion": "v1", "kind": "Event", "metadata": {"name": "e1", "namespace": "default"},
        "involvedObject": {"kind": "Node", "name": "n1"}, "reason": "Starting"})))
    await served.denied(NODE1, "List", api_pb2.ListRequest(resource="deployments"))


async def test_access_review(served: Served) -> None:
    assert await served.review(ADMIN, "delete", "nodes", "", "n1")
    assert not await served.review(JANE, "list", "secrets", "kube-system")
    request = api_pb2.AccessReviewRequest(verb="list", resource="pods", namespace="default",
                                          user="system:node:n1", groups=["system:nodes"])
    assert (await served.call(ADMIN, "AccessReview", request)).allowed
    err = await served.denied(JANE, "AccessReview", request)
    assert err.details == ('users "system:node:n1" is forbidden: User "jane" cannot '
                           'impersonate resource "users" in API group "" at the cluster scope')
    rules = await served.call(ADMIN, "AccessReview", api_pb2.AccessReviewRequest(
        list_rules=True, namespace="default"))
    assert [list(r.verbs) for r in rules.resource_rules][:1] == [["*"]]


async def test_no_escalation_through_roles_and_bindings(served: Served) -> None:
    await served.create(_ns("esc"))
    await served.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                         "metadata": {"name": "jane-admin", "namespace": "esc"},
                         "subjects": [{"kind": "User", "name": "jane"}],
                         "roleRef": {"kind": "ClusterRole", "name": "admin"}})
    await served.until_allowed(JANE, "create", "rolebindings", "esc", "",
                               "rbac.authorization.k8s.io")

    def binding(name: str, role: str) -> api_pb2.CreateRequest:
        return api_pb2.CreateRequest(object=manifest.from_dict({
            "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": "esc"},
            "subjects": [{"kind": "User", "name": "bob"}],
            "roleRef": {"kind": "ClusterRole", "name": role}}))
    await served.call(JANE, "Create", binding("bob-view", "view"))
    err = await served.denied(JANE, "Create", binding("bob-root", "cluster-admin"))
    assert err.details.startswith(
        'rolebindings.rbac.authorization.k8s.io "bob-root" is forbidden: user "jane" '
        '(groups=["system:authenticated"]) is attempting to grant RBAC permissions not '
        "currently held:\n")
    everything = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                  "metadata": {"name": "all", "namespace": "esc"},
                  "rules": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}]}
    await served.denied(JANE, "Apply", api_pb2.ApplyRequest(
        object=manifest.from_dict(everything)))
    everything["rules"] = [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}]
    await served.call(JANE, "Apply", api_pb2.ApplyRequest(object=manifest.from_dict(everything)))


async def test_impersonate_verb_for_access_reviews(served: Served) -> None:
    await served.create({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                         "metadata": {"name": "impersonate-bob"},
                         "rules": [{"apiGroups": [""], "resources": ["users"],
                                    "verbs": ["impersonate"], "resourceNames": ["bob"]}]})
    await served.create({"apiVersion": "rbac.authorization.k8s.io/v1",
                         "kind": "ClusterRoleBinding", "metadata": {"name": "jane-as-bob"},
                         "subjects": [{"kind": "User", "name": "jane"}],
                         "roleRef": {"kind": "ClusterRole", "name": "impersonate-bob"}})
    await served.until_allowed(JANE, "impersonate", "users", "", "bob")
    as_bob = api_pb2.AccessReviewRequest(verb="get", resource="pods", namespace="default",
                                         user="bob")
    assert not (await served.call(JANE, "AccessReview", as_bob)).allowed
    err = await served.denied(JANE, "AccessReview", api_pb2.AccessReviewRequest(
        verb="get", resource="pods", user="bob", groups=["system:masters"]))
    assert err.details == ('groups "system:masters" is forbidden: User "jane" cannot '
                           'impersonate resource "groups" in API group "" at the cluster scope')
