"""create generators, scale, edit, api-resources, cluster-info and version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.kemuctl.conftest import Kemuctl

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(("args", "printed", "check"), [
    pytest.param(["deployment", "web", "--image=nginx:1.25", "--replicas=3", "--port=80"],
                 "deployment.apps/web created",
                 ("deploy", "web", "{.spec.replicas} {.spec.template.spec.containers[0].name}",
                  "3 nginx"), id="deployment"),
    pytest.param(["configmap", "cfg", "--from-literal=a=1", "--from-literal=b=2"],
                 "configmap/cfg created", ("cm", "cfg", "{.data.a}{.data.b}", "12"),
                 id="configmap"),
    pytest.param(["secret", "generic", "pw", "--from-literal=password=hunter2"],
                 "secret/pw created", ("secret", "pw", "{.data.password}", "aHVudGVyMg=="),
                 id="secret"),
    pytest.param(["service", "nodeport", "web", "--tcp=80:8080"], "service/web created",
                 ("svc", "web", "{.spec.type} {.spec.ports[0].targetPort}", "NodePort 8080"),
                 id="service"),
])
def test_create_generators(ctl: Kemuctl, ns: str, args: list[str], printed: str,
                           check: tuple[str, str, str, str]) -> None:
    assert ctl.ok("create", *args, "-n", ns).lines == [printed]
    kind, name, template, expected = check
    assert ctl.ok("get", kind, name, "-n", ns, "-o", f"jsonpath={template}").out == expected


def test_create_dry_run_client_prints_yaml_and_writes_nothing(ctl: Kemuctl, ns: str) -> None:
    out = ctl.ok("create", "deployment", "web", "--image=nginx", "-n", ns, "--dry-run=client",
                 "-o", "yaml").out
    doc = yaml.safe_load(out)
    assert doc["kind"] == "Deployment" and doc["metadata"]["namespace"] == ns
    assert ctl("get", "deploy", "-n", ns).err_lines == [f"No resources found in {ns} namespace."]


def test_scale(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("create", "deployment", "web", "--image=nginx", "-n", ns)
    assert ctl.ok("scale", "deploy", "web", "--replicas=4", "-n", ns).lines == [
        "deployment.apps/web scaled"]
    assert ctl.ok("get", "deploy/web", "-n", ns, "-o", "jsonpath={.spec.replicas}").out == "4"
    refused = ctl("scale", "deploy/web", "--replicas=1", "--current-replicas=2", "-n", ns)
    assert refused.err_lines == ["error: Expected replicas to be 2, was 4"]


def test_edit_writes_what_the_editor_saved(ctl: Kemuctl, ns: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    ctl.ok("create", "cm", "cfg", "--from-literal=mode=slow", "-n", ns)
    editor = tmp_path / "editor.py"
    editor.write_text("import sys, pathlib\np = pathlib.Path(sys.argv[1])\n"
                      "p.write_text(p.read_text().replace('mode: slow', 'mode: fast'))\n")
    monkeypatch.setenv("KUBE_EDITOR", f"{sys.executable} {editor}")
    assert ctl.ok("edit", "cm", "cfg", "-n", ns).lines == ["configmap/cfg edited"]
    assert ctl.ok("get", "cm", "cfg", "-n", ns, "-o", "jsonpath={.data.mode}").out == "fast"
    monkeypatch.setenv("KUBE_EDITOR", "true")
    assert ctl.ok("edit", "cm/cfg", "-n", ns).lines == ["Edit cancelled, no changes made."]


def test_api_resources(ctl: Kemuctl) -> None:
    lines = ctl.ok("api-resources").lines
    assert lines[0].split() == ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["deployments"] == ["deployments", "deploy", "apps/v1", "true", "Deployment"]
    assert rows["nodes"] == ["nodes", "no", "v1", "false", "Node"]
    names = ctl.ok("api-resources", "-o", "name", "--namespaced=false").out.split()
    assert "namespaces" in names and "pods" not in names


def test_cluster_info_and_version(ctl: Kemuctl) -> None:
    assert ctl.ok("cluster-info").lines == [f"kemu control plane is running at {ctl.server}"]
    ctl.ok("apply", "-f", "-", stdin=(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: kube-dns\n  namespace: kube-system\n"
        "spec:\n  clusterIP: 10.96.0.10\n  selector: {k8s-app: kube-dns}\n"
        "  ports: [{name: dns, port: 53, protocol: UDP}, {name: dns-tcp, port: 53}]\n"))
    assert ctl.ok("cluster-info").lines == [
        f"kemu control plane is running at {ctl.server}",
        "kube-dns is running at 10.96.0.10:53/UDP,53/TCP"]
    lines = ctl.ok("version").lines
    assert lines[0].startswith("Client Version: v") and lines[1].startswith("Server Version: v")
    doc = json.loads(ctl.ok("version", "-o", "json").out)
    assert doc["serverVersion"]["apiVersion"] == "kemu.v1"


@pytest.mark.parametrize("source", ["environment", "config-file"])
def test_server_without_flag(ctl: Kemuctl, tmp_path: Path, source: str) -> None:
    config = tmp_path / "config"
    env = {k: v for k, v in os.environ.items() if k != "KEMU_SERVER"}
    env["KEMU_CONFIG"] = str(config)
    if source == "environment":
        env["KEMU_SERVER"] = ctl.server
    else:
        config.write_text(yaml.safe_dump({"current-cluster": "lab", "clusters": {
            "lab": {"server": ctl.server}}}))
    done = subprocess.run([sys.executable, "-m", "kemu.cli.kemuctl", "get", "ns", "default",
                           "-o", "name"], capture_output=True, text=True, env=env, timeout=60,
                          check=False)
    assert (done.returncode, done.stdout) == (0, "namespace/default\n"), done.stderr
