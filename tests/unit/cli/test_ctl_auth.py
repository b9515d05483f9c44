"""`kemuctl auth can-i` without a server: which AccessReview it sends for kubectl's argument
forms (TYPE/NAME, a third NAME word, --subresource, -A, cluster-scoped types, unknown types
with kubectl's warning), its yes/no/exit code, and the --list table."""

from __future__ import annotations

import io
from typing import Any

import pytest

from kemu.api.v1 import api_pb2, rbac_pb2
from kemu.cli import kemuctl
from kemu.cli.ctl import cmd_auth
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError


class FakeResources:
    def __init__(self, response: api_pb2.AccessReviewResponse) -> None:
        self.response = response
        self.requests: list[api_pb2.AccessReviewRequest] = []

    def AccessReview(self, request: api_pb2.AccessReviewRequest, **_: Any
                     ) -> api_pb2.AccessReviewResponse:
        self.requests.append(request)
        return self.response


class FakeClient:
    server, timeout, metadata = "fake", 1.0, ()

    def __init__(self, response: api_pb2.AccessReviewResponse) -> None:
        self.resources = FakeResources(response)

    def close(self) -> None:
        pass


def run(*argv: str, allowed: bool = True, reason: str = "",
        rules: tuple[rbac_pb2.PolicyRule, ...] = (), namespace: str | None = None
        ) -> tuple[int, str, str, list[api_pb2.AccessReviewRequest]]:
    p = cli.Parser(prog="kemuctl auth")
    cmd_auth.add_arguments(p, "auth")
    args = p.parse_intermixed_args(["can-i", *argv])
    client = FakeClient(api_pb2.AccessReviewResponse(allowed=allowed, reason=reason,
                                                     resource_rules=rules))
    out, err = io.StringIO(), io.StringIO()
    ctx = Ctx(server="fake", namespace=namespace or "default",
              namespace_explicit=namespace is not None, out=out, err=err,
              _client=client)  # type: ignore[arg-type]
    code = cmd_auth.run(ctx, args)
    return code, out.getvalue(), err.getvalue(), client.resources.requests


def _fields(req: api_pb2.AccessReviewRequest) -> tuple[str, ...]:
    return (req.verb, req.group, req.resource, req.subresource, req.namespace, req.name)


@pytest.mark.parametrize(("argv", "sent"), [
    pytest.param(("list", "deploy"), ("list", "apps", "deployments", "", "default", ""),
                 id="short-name-resolved"),
    pytest.param(("get", "pods/web"), ("get", "", "pods", "", "default", "web"),
                 id="type-slash-name"),
    pytest.param(("get", "pods", "web", "--subresource", "log"),
                 ("get", "", "pods", "log", "default", "web"), id="third-word-and-subresource"),
    pytest.param(("list", "secrets", "-A"), ("list", "", "secrets", "", "", ""),
                 id="all-namespaces"),
    pytest.param(("update", "nodes/n1"), ("update", "", "nodes", "", "", "n1"),
                 id="cluster-scoped-drops-namespace"),
    pytest.param(("create", "rolebindings.rbac.authorization.k8s.io"),
                 ("create", "rbac.authorization.k8s.io", "rolebindings", "", "default", ""),
                 id="qualified"),
])
def test_request_sent(argv: tuple[str, ...], sent: tuple[str, ...]) -> None:
    code, out, err, [req] = run(*argv)
    assert (code, out, err) == (0, "yes\n", "")
    assert _fields(req) == sent


def test_no_and_quiet_and_reason() -> None:
    assert run("get", "pods", allowed=False)[:2] == (1, "no\n")
    assert run("get", "pods", "-q", allowed=False)[:2] == (1, "")
    assert run("update", "nodes/n2", allowed=False, reason='node "n1" is not allowed')[1] == \
        'no - node "n1" is not allowed\n'


def test_warnings_as_kubectl() -> None:
    code, out, err, [req] = run("get", "widgets.example.com")
    assert (code, out) == (0, "yes\n")
    assert err == "Warning: the server doesn't have a resource type 'widgets.example.com'\n\n"
    assert (req.resource, req.group) == ("widgets", "example.com")
    assert run("frobnicate", "pods")[2] == "Warning: verb 'frobnicate' is not a known verb\n\n"
    assert run("get", "nodes", namespace="dev")[2] == \
        "Warning: resource 'nodes' is not namespace scoped\n\n"


def test_global_as_flags_become_impersonation_metadata() -> None:
    """kubectl's --as/--as-group are global: every call, an access review too, carries
    them, and can-i then asks about the impersonated user without naming one itself."""
    args = kemuctl.build_parser("auth").parse_intermixed_args(
        ["can-i", "get", "pods", "--as", "jane", "--as-group", "a", "--as-group", "b"])
    ctx = kemuctl.make_context(args, io.StringIO(), io.StringIO(), io.StringIO())
    try:
        assert ctx.client.metadata[-3:] == (("impersonate-user", "jane"),
                                            ("impersonate-group", "a"),
                                            ("impersonate-group", "b"))
    finally:
        ctx.close()
    _, _, _, [req] = run("get", "pods")
    assert (req.user, list(req.groups)) == ("", [])
    lone = kemuctl.build_parser("get").parse_intermixed_args(["pods", "--as-group", "a"])
    with pytest.raises(CtlError, match="without impersonating a user"):
        kemuctl.make_context(lone, io.StringIO(), io.StringIO(), io.StringIO())


def test_argument_count() -> None:
    with pytest.raises(CtlError, match="you must specify two arguments"):
        run("get")


def test_list_table() -> None:
    rules = (rbac_pb2.PolicyRule(verbs=["get", "list"], api_groups=[""], resources=["pods"]),
             rbac_pb2.PolicyRule(verbs=["update"], api_groups=["apps"],
                                 resources=["deployments/scale"]))
    code, out, _, [req] = run("--list", rules=rules, namespace="dev")
    assert code == 0 and req.list_rules and req.namespace == "dev"
    assert out.splitlines() == [
        "Resources                Non-Resource URLs   Resource Names   Verbs",
        "pods                     []                  []               [get list]",
        "deployments.apps/scale   []                  []               [update]",
    ]
