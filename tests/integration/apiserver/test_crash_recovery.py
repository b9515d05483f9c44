"""Acknowledged objects survive kill -9 of the store and the apiserver, and watches resume."""

from __future__ import annotations

import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from kemu.api import manifest, objects
from kemu.client import Client
from tests.support import processes

pytestmark = pytest.mark.integration

MANIFEST = """
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "nginx:1.25", ports: [{containerPort: 80}]}]
---
apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{port: 80, targetPort: 80}]
"""


def test_objects_survive_kill_9_of_store_and_apiserver(tmp_path: Path) -> None:
    store_port, api_port = processes.free_port(), processes.free_port()
    store = processes.kemu_store(tmp_path, port=store_port)
    api = processes.kemu_apiserver(tmp_path, store.address, port=api_port)
    store.start().wait_ready()
    api.start().wait_ready()
    try:
        client = Client(api.address, timeout=10, read_retry_seconds=20)
        for obj in manifest.load_all(MANIFEST):
            client.apply(obj)
        before = {k: objects.to_dict(client.get(k, "web")) for k in ("deploy", "svc")}
        rv = client.list("configmaps").resource_version

        store.kill9()
        api.kill9()
        store = processes.kemu_store(tmp_path, port=store_port)  # same data dir
        api = processes.kemu_apiserver(tmp_path, store.address, port=api_port)
        store.start().wait_ready()
        api.start().wait_ready()

        after = {k: objects.to_dict(client.get(k, "web")) for k in ("deploy", "svc")}
        assert after == before
        assert after["svc"]["spec"]["clusterIP"]
        # The revision continues, so a watch resumes from a version read before the crash.
        created = client.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "after"}}))
        assert int(objects.meta(created).resource_version) > int(rv)
        events = client.watch("configmaps", resource_version=str(int(rv)), timeout=10)
        first = next(iter(events))
        assert objects.meta(first.object).name == "after"
        client.close()
    finally:
        api.stop()
        store.stop()


def kemuctl(server: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kemu.cli.kemuctl", "--server", server, *args],
                          capture_output=True, text=True, timeout=60, cwd=processes.ROOT)


def test_kemuctl_apply_then_kill_9_everything(tmp_path: Path) -> None:
    """The issue's acceptance scenario, as a user types it."""
    store_port, api_port = processes.free_port(), processes.free_port()
    store = processes.kemu_store(tmp_path, port=store_port)
    api = processes.kemu_apiserver(tmp_path, store.address, port=api_port)
    store.start().wait_ready()
    api.start().wait_ready()
    try:
        applied = kemuctl(api.address, "apply", "-f", "examples/web.yaml")
        assert applied.returncode == 0, applied.stderr
        assert applied.stdout.splitlines() == ["deployment.apps/web created",
                                               "service/web created"]
        shown = kemuctl(api.address, "get", "deploy,svc", "-o", "yaml")
        assert shown.returncode == 0, shown.stderr
        listing = yaml.safe_load(shown.stdout)
        by_name = {(i["kind"], i["metadata"]["name"]): i for i in listing["items"]}
        deploy, svc = by_name["Deployment", "web"], by_name["Service", "web"]
        assert deploy["spec"]["strategy"] == {
            "type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}
        assert deploy["spec"]["template"]["spec"]["restartPolicy"] == "Always"
        assert ipaddress.ip_address(svc["spec"]["clusterIP"]) in ipaddress.ip_network(
            "10.96.0.0/12")

        store.kill9()
        api.kill9()
        store = processes.kemu_store(tmp_path, port=store_port)
        api = processes.kemu_apiserver(tmp_path, store.address, port=api_port)
        store.start().wait_ready()
        api.start().wait_ready()

        again = kemuctl(api.address, "get", "deploy,svc", "-o", "yaml")
        assert again.returncode == 0, again.stderr
        assert yaml.safe_load(again.stdout) == listing
        reapplied = kemuctl(api.address, "apply", "-f", "examples/web.yaml")
        assert reapplied.stdout.splitlines() == ["deployment.apps/web unchanged",
                                                 "service/web unchanged"]
    finally:
        api.stop()
        store.stop()
