"""The namespace deletion conditions: what `describe namespace` shows while content stays."""

from __future__ import annotations

from collections import Counter

from kemu.services.controllers.namespace import CONTENT, Remaining, conditions


def by_type(rem: Remaining) -> dict[str, tuple[str, str, str]]:
    return {c.type: (c.status, c.reason, c.message) for c in conditions(rem, 1000.0)}


def test_content_and_finalizers_remaining() -> None:
    rem = Remaining(Counter({"pods": 2}), Counter({"foregroundDeletion": 1}))
    got = by_type(rem)
    assert got["NamespaceContentRemaining"] == (
        "True", "SomeResourcesRemain", "Some resources are remaining: pods has 2 resource "
        "instances")
    assert got["NamespaceFinalizersRemaining"] == (
        "True", "SomeFinalizersRemain", "Some content in the namespace has finalizers "
        "remaining: foregroundDeletion in 1 resource instances")
    assert got["NamespaceDeletionContentFailure"][0] == "False"
    assert bool(rem)


def test_failures_are_reported_and_hold_the_namespace() -> None:
    rem = Remaining(failures=["deleting pods/p: boom"])
    assert bool(rem)
    assert by_type(rem)["NamespaceDeletionContentFailure"] == (
        "True", "ContentDeletionFailed", "deleting pods/p: boom")


def test_nothing_left() -> None:
    rem = Remaining()
    assert not rem
    assert {s for s, _, _ in by_type(rem).values()} == {"False"}


def test_every_namespaced_kind_events_last() -> None:
    assert CONTENT[-1].kind == "Event"
    assert all(k.namespaced for k in CONTENT)
    assert {"pods", "leases", "configmaps", "deployments"} <= {k.plural for k in CONTENT}
