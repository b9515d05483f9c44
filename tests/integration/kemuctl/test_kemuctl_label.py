"""label and annotate: add, change with --overwrite, remove, and kubectl's refusal."""

from __future__ import annotations

import json

import pytest

from tests.integration.kemuctl.conftest import Kemuctl

pytestmark = pytest.mark.integration


def labels(ctl: Kemuctl, ns: str, field: str = "labels") -> dict[str, str]:
    out = ctl.ok("get", "cm", "x", "-n", ns, "-o", f"jsonpath={{.metadata.{field}}}").out
    return dict(json.loads(out)) if out else {}


def test_label_lifecycle(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("create", "cm", "x", "-n", ns, "--from-literal=k=v")
    assert ctl.ok("label", "cm", "x", "tier=web", "team=a", "-n", ns).lines == [
        "configmap/x labeled"]
    assert labels(ctl, ns) == {"tier": "web", "team": "a"}
    refused = ctl("label", "cm", "x", "tier=db", "-n", ns)
    assert refused.code == 1
    assert refused.err_lines == ["error: 'tier' already has a value (web), and --overwrite is "
                                 "false"]
    assert labels(ctl, ns)["tier"] == "web"
    assert ctl.ok("label", "configmap/x", "tier=db", "--overwrite", "-n", ns).lines == [
        "configmap/x labeled"]
    assert ctl.ok("label", "cm", "x", "team-", "-n", ns).lines == ["configmap/x labeled"]
    assert labels(ctl, ns) == {"tier": "db"}
    assert ctl.ok("label", "cm", "x", "tier=db", "-n", ns).lines == ["configmap/x not labeled"]


def test_label_by_selector(ctl: Kemuctl, ns: str) -> None:
    for name in ("a", "b"):
        ctl.ok("create", "cm", name, "-n", ns)
    ctl.ok("label", "cm", "a", "pick=yes", "-n", ns)
    result = ctl.ok("label", "cm", "-l", "pick=yes", "picked=true", "-n", ns)
    assert result.lines == ["configmap/a labeled"]


def test_annotate(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("create", "cm", "x", "-n", ns)
    assert ctl.ok("annotate", "cm", "x", "note=hello world", "-n", ns).lines == [
        "configmap/x annotated"]
    assert labels(ctl, ns, "annotations") == {"note": "hello world"}
    refused = ctl("annotate", "cm", "x", "note=bye", "-n", ns)
    assert refused.err_lines == ["error: 'note' already has a value (hello world), and "
                                 "--overwrite is false"]
    ctl.ok("annotate", "cm", "x", "note-", "-n", ns)
    assert labels(ctl, ns, "annotations") == {}


def test_invalid_label(ctl: Kemuctl, ns: str) -> None:
    ctl.ok("create", "cm", "x", "-n", ns)
    result = ctl("label", "cm", "x", "bad key=1", "-n", ns)
    assert result.code == 1 and len(result.err_lines) == 1
    assert result.err.startswith("error: invalid label spec: bad key=1")
