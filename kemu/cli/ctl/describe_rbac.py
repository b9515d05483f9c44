"""`kemuctl describe` of roles and bindings, laid out as kubectl's RoleDescriber (the
PolicyRule table) and RoleBindingDescriber (Role, then Subjects); like kubectl, neither
prints a Namespace line or Events."""

from __future__ import annotations

from typing import Any

from kemu.cli.ctl import rbacrules
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.describe_base import Writer, annotations_multiline, labels_multiline


def _head(w: Writer, meta: Any) -> None:
    w.line(0, "Name:", meta.name)
    labels_multiline(w, "Labels", meta.labels)
    annotations_multiline(w, "Annotations", meta.annotations)


def describe_role(w: Writer, ctx: Ctx, role: Any, now: float) -> None:
    _head(w, role.metadata)
    w.write(0, "PolicyRule:\n")
    w.line(1, "Resources", "Non-Resource URLs", "Resource Names", "Verbs")
    w.line(1, "---------", "-----------------", "--------------", "-----")
    for cells in rbacrules.table_rows(rbacrules.Rule.of(r) for r in role.rules):
        w.line(1, *cells)


def describe_binding(w: Writer, ctx: Ctx, binding: Any, now: float) -> None:
    _head(w, binding.metadata)
    w.write(0, "Role:\n")
    w.line(1, "Kind:", binding.role_ref.kind)
    w.line(1, "Name:", binding.role_ref.name)
    w.write(0, "Subjects:\n")
    w.line(1, "Kind", "Name", "Namespace")
    w.line(1, "----", "----", "---------")
    for s in binding.subjects:
        w.line(1, s.kind, s.name, s.namespace)
