"""Every bad input gives exactly one line on stderr and a non-zero exit, never a traceback.
These run kemuctl as a separate program, as a user would."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.integration.kemuctl.conftest import Kemuctl, Result
from tests.support.processes import free_port

pytestmark = pytest.mark.integration

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def one_line(result: Result) -> str:
    assert result.code != 0, result
    assert "Traceback" not in result.err, result.err
    assert len(result.err_lines) == 1, result.err
    return result.err_lines[0]


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x\n",
                 "error: error parsing f.yaml: line 4 column 1: invalid YAML: ", id="malformed"),
    pytest.param("apiVersion: v1\nkind: Widget\nmetadata: {name: x}\n",
                 'error: error parsing f.yaml: no matches for kind "Widget" in version "v1"',
                 id="unknown-kind"),
    pytest.param("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n"
                 "  template:\n    spec:\n      containers: [{name: c, image: i, imagePullPolicyy: "
                 "Always}]\n",
                 'error: error parsing f.yaml: Deployment "x": strict decoding error: unknown '
                 'field "spec.template.spec.containers[0].imagePullPolicyy"', id="unknown-field"),
    pytest.param(CM.format(name="Not_Valid"),
                 'The ConfigMap "Not_Valid" is invalid: metadata.name: Invalid value: ',
                 id="invalid-name"),
])
@pytest.mark.parametrize("verb", ["apply", "create"])
def test_bad_manifests(ctl: Kemuctl, ns: str, tmp_path: Path, text: str, expected: str,
                       verb: str, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    assert one_line(ctl.process(verb, "-n", ns, "-f", "f.yaml")).startswith(expected)


def test_duplicate_create(ctl: Kemuctl, ns: str, tmp_path: Path,
                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("f.yaml").write_text(CM.format(name="dup"))
    ctl.ok("create", "-n", ns, "-f", "f.yaml")
    Path("f.yaml").write_text(CM.format(name="dup") + "---\n" + CM.format(name="fresh"))
    result = ctl.process("create", "-n", ns, "-f", "f.yaml")
    assert one_line(result) == ('Error from server (AlreadyExists): error when creating '
                                '"f.yaml": configmaps "dup" already exists')
    assert result.lines == ["configmap/fresh created"]  # the other document still goes in


def test_stale_update_is_a_conflict(ctl: Kemuctl, ns: str, tmp_path: Path) -> None:
    ctl.ok("create", "cm", "shared", "-n", ns, "--from-literal=k=v1")
    stale = tmp_path / "stale.yaml"
    stale.write_text(ctl.ok("get", "cm", "shared", "-n", ns, "-o", "yaml").out)
    ctl.ok("label", "cm", "shared", "changed=yes", "-n", ns)  # someone else writes meanwhile
    doc = yaml.safe_load(stale.read_text())
    doc["data"]["k"] = "v2"
    stale.write_text(yaml.safe_dump(doc))
    assert one_line(ctl.process("replace", "-f", str(stale))) == (
        f'Error from server (Conflict): error when replacing "{stale}": Operation cannot be '
        'fulfilled on configmaps "shared": the object has been modified; please apply your '
        "changes to the latest version and try again")
    fresh = yaml.safe_load(ctl.ok("get", "cm", "shared", "-n", ns, "-o", "yaml").out)
    fresh["data"]["k"] = "v2"
    current = tmp_path / "current.yaml"
    current.write_text(yaml.safe_dump(fresh))
    assert ctl.ok("replace", "-f", str(current)).lines == ["configmap/shared replaced"]


@pytest.mark.parametrize("args", [
    pytest.param(["get", "pods"], id="get"),
    pytest.param(["apply", "-f", "-"], id="apply"),
    pytest.param(["version"], id="version"),
])
def test_unreachable_server(ctl: Kemuctl, args: list[str]) -> None:
    port = free_port()
    result = Kemuctl(f"127.0.0.1:{port}").process(*args, stdin=CM.format(name="x"), timeout=30)
    assert one_line(result) == (f"The connection to the server 127.0.0.1:{port} was refused - "
                                "did you specify the right host or port?")


@pytest.mark.parametrize(("args", "expected"), [
    pytest.param(["get", "widgets"], 'error: the server doesn\'t have a resource type "widgets"',
                 id="unknown-type"),
    pytest.param(["apply", "-f", "no-such-file.yaml"],
                 'error: the path "no-such-file.yaml" does not exist', id="missing-file"),
    pytest.param(["get", "pods", "-o", "xml"],
                 'error: unable to match a printer suitable for the output format "xml", '
                 "allowed formats are: go-template,go-template-file,json,jsonpath,"
                 "jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml",
                 id="bad-output"),
    pytest.param(["get", "pods", "-l", "a in (b"], "Error from server (BadRequest): ",
                 id="bad-selector"),
    pytest.param(["get", "pods", "--field-selector", "spec.bogus=1"],
                 "Error from server (BadRequest): field label not supported: spec.bogus",
                 id="bad-field-selector"),
    pytest.param(["get", "pods", "-w", "--request-timeout", "soon"],
                 "error: invalid duration 'soon'", id="bad-duration"),
])
def test_other_bad_input(ctl: Kemuctl, args: list[str], expected: str) -> None:
    assert one_line(ctl.process(*args)).startswith(expected)


def test_logs_and_exec_print_the_servers_one_line(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\n"
        "spec: {nodeName: node-1, containers: [{name: c, image: busybox}]}\n"))
    # The pod names a node that has no Node object, so no agent can be found for it.
    assert one_line(ctl.process("logs", "p", "-n", ns)) == (
        'Error from server (NotFound): nodes "node-1" not found')
    assert one_line(ctl.process("exec", "p", "-n", ns, "--", "ls", "-l")) == (
        'Error from server (NotFound): nodes "node-1" not found')
    assert one_line(ctl.process("logs", "nope", "-n", ns)) == (
        'Error from server (NotFound): pods "nope" not found')
