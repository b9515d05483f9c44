"""drain's pod filter: which pods go, which stop the drain, and kubectl's messages."""

from __future__ import annotations

from typing import Any

import pytest

from kemu.api import manifest
from kemu.cli.ctl import drainfilter as df

NOW = 1_700_000_000.0


def pod(name: str, *, owner: str = "", phase: str = "Running", empty_dir: bool = False,
        annotations: dict[str, str] | None = None, deleted: str = "") -> Any:
    meta: dict[str, Any] = {"name": name, "namespace": "ns", "annotations": annotations or {}}
    if owner:
        kind, _, owner_name = owner.partition("/")
        meta["ownerReferences"] = [{"apiVersion": "apps/v1", "kind": kind, "name": owner_name,
                                    "uid": "u", "controller": True}]
    if deleted:
        meta["deletionTimestamp"] = deleted
    spec: dict[str, Any] = {"containers": [{"name": "c", "image": "x"}]}
    if empty_dir:
        spec["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    return manifest.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": meta,
                               "spec": spec, "status": {"phase": phase}}).pod


def existing(ns: str, name: str) -> str | None:
    return None if name != "gone" else 'daemonsets.apps "gone" not found'


def decide(p: Any, **opts: Any) -> tuple[bool, str, str]:
    [d] = df.classify([p], df.Options(**opts), existing, NOW)
    return d.delete, d.reason, d.message


@pytest.mark.parametrize(("p", "opts", "expected"), [
    pytest.param(pod("rs", owner="ReplicaSet/web"), {}, (True, df.OKAY, ""), id="managed"),
    pytest.param(pod("bare"), {}, (False, df.ERROR, df.UNMANAGED_FATAL), id="bare"),
    pytest.param(pod("bare"), {"force": True}, (True, df.WARNING, df.UNMANAGED_WARNING),
                 id="bare-forced"),
    pytest.param(pod("bare", phase="Succeeded"), {}, (True, df.OKAY, ""),
                 id="bare-but-finished"),
    pytest.param(pod("ds", owner="DaemonSet/agent"), {},
                 (False, df.ERROR, df.DAEMONSET_FATAL), id="daemonset"),
    pytest.param(pod("ds", owner="DaemonSet/agent"), {"ignore_daemonsets": True},
                 (False, df.WARNING, df.DAEMONSET_WARNING), id="daemonset-ignored"),
    pytest.param(pod("ds", owner="DaemonSet/gone"), {"ignore_daemonsets": True},
                 (False, df.ERROR, 'daemonsets.apps "gone" not found'),
                 id="orphan-of-a-deleted-daemonset"),
    pytest.param(pod("ds", owner="DaemonSet/gone"), {"force": True}, (True, df.OKAY, ""),
                 id="orphan-forced-warning-dropped-by-later-filter-as-kubectl"),
    pytest.param(pod("ds", owner="DaemonSet/agent", phase="Failed"), {}, (True, df.OKAY, ""),
                 id="finished-daemonset-pod"),
    pytest.param(pod("scratch", owner="ReplicaSet/web", empty_dir=True), {},
                 (False, df.ERROR, df.LOCAL_STORAGE_FATAL), id="emptydir"),
    pytest.param(pod("scratch", owner="ReplicaSet/web", empty_dir=True),
                 {"delete_emptydir_data": True}, (True, df.OKAY, ""),
                 id="emptydir-allowed-warning-dropped-by-later-filter-as-kubectl"),
    pytest.param(pod("scratch", empty_dir=True), {"delete_emptydir_data": True},
                 (False, df.ERROR, df.UNMANAGED_FATAL), id="emptydir-allowed-but-bare"),
    pytest.param(pod("mirror", annotations={df.MIRROR_ANNOTATION: "x"}), {},
                 (False, df.SKIP, ""), id="mirror"),
    pytest.param(pod("old", owner="ReplicaSet/web", deleted="2023-11-14T22:00:00Z"),
                 {"skip_wait_for_delete_timeout": 60}, (False, df.SKIP, ""),
                 id="deleted-long-ago-skipped"),
    pytest.param(pod("new", owner="ReplicaSet/web", deleted="2023-11-14T22:13:00Z"),
                 {"skip_wait_for_delete_timeout": 60}, (True, df.OKAY, ""),
                 id="deleted-recently-waited-for"),
])
def test_classify(p: Any, opts: dict[str, Any], expected: tuple[bool, str, str]) -> None:
    assert decide(p, **opts) == expected


def test_errors_and_warnings_group_by_message_in_order() -> None:
    pods = [pod("ds-1", owner="DaemonSet/agent"), pod("bare-1"),
            pod("ds-2", owner="DaemonSet/agent"), pod("bare-2"), pod("web", owner="ReplicaSet/web")]
    decisions = df.classify(pods, df.Options(), existing, NOW)
    assert df.errors(decisions) == [
        "cannot delete DaemonSet-managed Pods (use --ignore-daemonsets to ignore): "
        "ns/ds-1, ns/ds-2",
        "cannot delete Pods declare no controller (use --force to override): ns/bare-1, "
        "ns/bare-2"]
    decisions = df.classify(pods, df.Options(force=True, ignore_daemonsets=True), existing, NOW)
    assert df.errors(decisions) == []
    assert df.warnings(decisions) == ("ignoring DaemonSet-managed Pods: ns/ds-1, ns/ds-2; "
                                      "deleting Pods that declare no controller: ns/bare-1, "
                                      "ns/bare-2")
    assert [p.metadata.name for p in df.to_delete(decisions)] == ["bare-1", "bare-2", "web"]


@pytest.mark.parametrize(("messages", "expected"), [
    pytest.param(["a"], "a", id="one"),
    pytest.param(["a", "b"], "[a, b]", id="several"),
    pytest.param(["a", "a"], "a", id="duplicates"),
])
def test_aggregate(messages: list[str], expected: str) -> None:
    assert df.aggregate(messages) == expected


@pytest.mark.parametrize(("seconds", "expected"), [
    pytest.param(0.5, "500ms", id="ms"), pytest.param(1, "1s", id="s"),
    pytest.param(90, "1m30s", id="m"), pytest.param(60, "1m0s", id="whole-minute"),
    pytest.param(7200, "2h0m0s", id="h"), pytest.param(1.5, "1.5s", id="fraction"),
])
def test_go_duration(seconds: float, expected: str) -> None:
    assert df.go_duration(seconds) == expected
