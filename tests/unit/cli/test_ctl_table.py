"""What the get flags do to a table: -A, --show-labels, -L, several types, -o wide."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import kinds, manifest
from kemu.cli.ctl.table import TableOptions, headers, label_header, render, row

NOW = 1_700_000_000.0


def deployment(name: str = "web", namespace: str = "team-a") -> Any:
    return manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace,
                     "creationTimestamp": "2023-11-14T22:13:15Z",
                     "labels": {"app": "web", "app.kubernetes.io/version": "1.2"}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": [
            {"name": "c", "image": "i"}]}}}})


DEPLOY = kinds.resolve("deploy")
NODE = kinds.resolve("no")


@pytest.mark.parametrize(("opts", "head", "cells"), [
    pytest.param(TableOptions(), ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
                 ["web", "0/1", "0", "0", "5s"], id="plain"),
    pytest.param(TableOptions(namespace_column=True),
                 ["NAMESPACE", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
                 ["team-a", "web", "0/1", "0", "0", "5s"], id="all-namespaces"),
    pytest.param(TableOptions(with_kind=True),
                 ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
                 ["deployment.apps/web", "0/1", "0", "0", "5s"], id="several-types"),
    pytest.param(TableOptions(show_labels=True),
                 ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "LABELS"],
                 ["web", "0/1", "0", "0", "5s", "app=web,app.kubernetes.io/version=1.2"],
                 id="show-labels"),
    pytest.param(TableOptions(label_columns=("app", "app.kubernetes.io/version", "none")),
                 ["NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE", "APP", "VERSION", "NONE"],
                 ["web", "0/1", "0", "0", "5s", "web", "1.2", ""], id="label-columns"),
    pytest.param(TableOptions(event_column=True),
                 ["EVENT", "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"],
                 ["ADDED", "web", "0/1", "0", "0", "5s"], id="watch-events"),
])
def test_options(opts: TableOptions, head: list[str], cells: list[str]) -> None:
    assert headers(DEPLOY, opts) == head
    assert row(deployment(), opts, NOW, "ADDED") == cells


def test_namespace_column_only_for_namespaced_kinds() -> None:
    assert headers(NODE, TableOptions(namespace_column=True))[0] == "NAME"


def test_label_header_uses_last_path_segment() -> None:
    assert label_header("app.kubernetes.io/name") == "NAME"


def test_render_aligns_rows() -> None:
    text = render(DEPLOY, [deployment("web"), deployment("api-server")], TableOptions(), NOW)
    assert text.splitlines() == [
        "NAME         READY   UP-TO-DATE   AVAILABLE   AGE",
        "web          0/1     0            0           5s",
        "api-server   0/1     0            0           5s",
    ]
