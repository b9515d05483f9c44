"""Acknowledged objects survive kill -9 of the store and the apiserver, and watches resume."""

from __future__ import annotations

from pathlib import Path

import pytest

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
