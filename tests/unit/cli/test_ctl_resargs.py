"""Resource arguments: short names, TYPE/NAME, several types, `all`, and kubectl's errors."""

from __future__ import annotations

import pytest

from kemu.api.kinds import UnknownResourceError
from kemu.cli.ctl import resargs
from kemu.cli.ctl.errors import CtlError


@pytest.mark.parametrize(("short", "plural"), [
    pytest.param(s, p, id=s) for s, p in [
        ("po", "pods"), ("svc", "services"), ("deploy", "deployments"), ("rs", "replicasets"),
        ("rc", "replicationcontrollers"), ("ds", "daemonsets"), ("sts", "statefulsets"),
        ("cm", "configmaps"), ("ns", "namespaces"), ("no", "nodes"), ("ep", "endpoints"),
        ("cj", "cronjobs"), ("pvc", "persistentvolumeclaims"), ("ing", "ingresses"),
        ("deployments.apps", "deployments"), ("Deployment", "deployments"), ("pod", "pods"),
    ]
])
def test_short_names(short: str, plural: str) -> None:
    assert resargs.parse([short]).groups[0].kind.plural == plural


@pytest.mark.parametrize(("args", "groups", "single"), [
    pytest.param(["pods"], [("pods", [])], False, id="type"),
    pytest.param(["po", "a"], [("pods", ["a"])], True, id="type-name"),
    pytest.param(["po", "a", "b"], [("pods", ["a", "b"])], False, id="type-names"),
    pytest.param(["deploy,svc"], [("deployments", []), ("services", [])], False,
                 id="several-types"),
    pytest.param(["deploy/web", "svc/web", "deploy/api"],
                 [("deployments", ["web", "api"]), ("services", ["web"])], False,
                 id="slashed"),
    pytest.param(["pod/x"], [("pods", ["x"])], True, id="one-slashed"),
])
def test_parse(args: list[str], groups: list[tuple[str, list[str]]], single: bool) -> None:
    sel = resargs.parse(args)
    assert [(g.kind.plural, g.names) for g in sel.groups] == groups
    assert sel.single is single


def test_all_expands_in_kubectl_order() -> None:
    sel = resargs.parse(["all"])
    assert [k.plural for k in sel.kinds] == list(resargs.ALL)


@pytest.mark.parametrize(("args", "error", "message"), [
    pytest.param([], CtlError, "you must specify the type of resource to get", id="nothing"),
    pytest.param(["foo"], UnknownResourceError,
                 'the server doesn\'t have a resource type "foo"', id="unknown-type"),
    pytest.param(["pods", "pod/x"], CtlError, "there is no need to specify a resource type",
                 id="mixed-forms"),
    pytest.param(["pod/"], CtlError, "must have a single resource and name", id="empty-name"),
])
def test_errors(args: list[str], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        resargs.parse(args)
