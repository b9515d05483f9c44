"""apply: created / unchanged / configured like kubectl, server-side defaults visible in
-o yaml, namespaces created in the same batch, and all-or-nothing validation."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest
import yaml

from tests.integration.kemuctl.conftest import Kemuctl, unique

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
WEB = (ROOT / "examples" / "web.yaml").read_text()


def test_apply_create_unchanged_configured(ctl: Kemuctl, ns: str) -> None:
    first = ctl.ok("apply", "-n", ns, "-f", str(ROOT / "examples" / "web.yaml"))
    assert first.lines == ["deployment.apps/web created", "service/web created"]
    again = ctl.ok("apply", "-n", ns, "-f", "-", stdin=WEB)
    assert again.lines == ["deployment.apps/web unchanged", "service/web unchanged"]
    changed = WEB.replace("kemu/bootcamp:1", "kemu/bootcamp:2")
    third = ctl.ok("apply", "-n", ns, "-f", "-", stdin=changed)
    assert third.lines == ["deployment.apps/web configured", "service/web unchanged"]
    image = ctl.ok("get", "deploy", "web", "-n", ns, "-o",
                   "jsonpath={.spec.template.spec.containers[0].image}")
    assert image.out == "kemu/bootcamp:2"


def test_get_yaml_shows_server_defaults(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("apply", "-n", ns, "-f", "-", stdin=WEB)
    doc = yaml.safe_load(ctl.ok("get", "deploy,svc", "-n", ns, "-o", "yaml").out)
    assert doc["kind"] == "List"
    deploy, svc = doc["items"]
    assert deploy["kind"] == "Deployment" and svc["kind"] == "Service"
    assert deploy["spec"]["strategy"] == {
        "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
    assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in ipaddress.ip_network("10.96.0.0/12")
    assert 30000 <= svc["spec"]["ports"][0]["nodePort"] <= 32767
    assert svc["spec"]["ports"][0]["targetPort"] == "http"
    one = yaml.safe_load(ctl.ok("get", "svc/web", "-n", ns, "-o", "yaml").out)
    assert one["kind"] == "Service"  # one named object prints bare, not as a List


def test_namespace_and_its_objects_in_one_apply(ctl: Kemuctl, tmp_path: Path) -> None:
    name = unique("fresh")
    (tmp_path / "10-app.yaml").write_text(
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: {name}\n"
        "data:\n  a: '1'\n")
    (tmp_path / "20-ns.yaml").write_text(
        f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n")
    result = ctl.ok("apply", "-f", str(tmp_path))
    assert result.lines == [f"namespace/{name} created", "configmap/cfg created"]
    assert ctl.ok("get", "cm", "cfg", "-n", name, "-o", "name").out == "configmap/cfg\n"


def test_recursive_directory(ctl: Kemuctl, ns: str, tmp_path: Path) -> None:
    (tmp_path / "deep").mkdir()
    (tmp_path / "deep" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\n")
    (tmp_path / "top.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: top\n")
    assert ctl.ok("apply", "-n", ns, "-f", str(tmp_path)).lines == ["configmap/top created"]
    assert ctl.ok("apply", "-n", ns, "-R", "-f", str(tmp_path)).lines == [
        "configmap/deep created", "configmap/top unchanged"]


BAD_SECOND = [
    pytest.param("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: Bad_Name\n"
                 "spec:\n  selector: {matchLabels: {a: b}}\n  template:\n"
                 "    metadata: {labels: {a: b}}\n"
                 "    spec: {containers: [{name: c, image: i}]}\n",
                 'The Deployment.apps "Bad_Name" is invalid: metadata.name', id="invalid-name"),
    pytest.param("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\ndatta: {}\n",
                 'strict decoding error: unknown field "datta"', id="unknown-field"),
    pytest.param("apiVersion: v1\nkind: Frobnicator\nmetadata:\n  name: x\n",
                 'no matches for kind "Frobnicator" in version "v1"', id="unknown-kind"),
    pytest.param("apiVersion: v1\nkind: ConfigMap\nmetadata: [\n", "invalid YAML",
                 id="malformed-yaml"),
    pytest.param("apiVersion: v1\nkind: Service\nmetadata:\n  name: svc\nspec:\n"
                 "  type: NodePort\n  ports: [{port: 80, nodePort: 80}]\n",
                 "spec.ports[0].nodePort", id="server-side-validation"),
]


@pytest.mark.parametrize(("bad", "message"), BAD_SECOND)
def test_one_bad_document_writes_nothing(ctl: Kemuctl, ns: str, bad: str, message: str) -> None:
    good = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: first\n"
    result = ctl.process("apply", "-n", ns, "-f", "-", stdin=f"{good}---\n{bad}")
    assert result.code == 1
    assert len(result.err_lines) == 1, result.err
    assert message in result.err
    assert "Traceback" not in result.err
    assert result.out == ""
    missing = ctl("get", "cm", "first", "-n", ns)
    assert missing.code == 1
    assert missing.err_lines == ['Error from server (NotFound): configmaps "first" not found']


def test_namespace_flag_conflicting_with_manifest(ctl: Kemuctl, ns: str) -> None:
    doc = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: elsewhere\n"
    result = ctl("apply", "-n", ns, "-f", "-", stdin=doc)
    assert result.code == 1
    assert result.err_lines == [
        f'error: the namespace from the provided object "elsewhere" does not match the namespace '
        f"\"{ns}\". You must pass '--namespace=elsewhere' to perform this operation."]


def test_server_dry_run_writes_nothing(ctl: Kemuctl, ns: str) -> None:
    result = ctl.ok("apply", "-n", ns, "--dry-run=server", "-f", "-", stdin=WEB)
    assert result.lines == ["deployment.apps/web created (server dry run)",
                            "service/web created (server dry run)"]
    assert ctl("get", "deploy", "-n", ns).err_lines == [
        f"No resources found in {ns} namespace."]
