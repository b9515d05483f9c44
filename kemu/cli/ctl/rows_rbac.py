"""Table rows of the RBAC kinds, as `kubectl get` prints them: roles and cluster roles with
the server's default NAME and CREATED AT (RFC 3339), bindings with ROLE as `Kind/name`
and, with -o wide, their users, groups and service accounts."""

from __future__ import annotations

from typing import Any

from kemu.cli.ctl.columns import Columns, age


def created_at(msg: Any) -> str:
    ts = msg.metadata.creation_timestamp
    return ts.ToJsonString().replace(".000Z", "Z") if ts.seconds else ""


def role_row(role: Any, now: float, wide: bool) -> list[str]:
    return [role.metadata.name, created_at(role)]


def subjects_strings(subjects: Any) -> tuple[list[str], list[str], list[str]]:
    """rbac.SubjectsStrings: users, groups and service accounts (`namespace/name`)."""
    users, groups, sas = [], [], []
    for s in subjects:
        if s.kind == "ServiceAccount":
            sas.append(f"{s.namespace}/{s.name}" if s.namespace else s.name)
        elif s.kind == "User":
            users.append(s.name)
        elif s.kind == "Group":
            groups.append(s.name)
    return users, groups, sas


def binding_row(binding: Any, now: float, wide: bool) -> list[str]:
    ref = binding.role_ref
    row = [binding.metadata.name, f"{ref.kind}/{ref.name}", age(binding, now)]
    if wide:
        row += [", ".join(names) for names in subjects_strings(binding.subjects)]
    return row


_BINDINGS = Columns(("NAME", "ROLE", "AGE"), binding_row,
                    ("USERS", "GROUPS", "SERVICEACCOUNTS"))
COLUMNS: dict[str, Columns] = {
    "roles": Columns(("NAME", "CREATED AT"), role_row),
    "clusterroles": Columns(("NAME", "CREATED AT"), role_row),
    "rolebindings": _BINDINGS,
    "clusterrolebindings": _BINDINGS,
}
