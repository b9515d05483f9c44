"""Read what a resource selection names: named objects one GET each, whole types one LIST
each. NotFound for a named object is collected rather than raised, so `get pod a b` still
prints `a` when `b` is missing and then reports `b`, as kubectl does."""

from __future__ import annotations

from dataclasses import dataclass, field

from kemu.api.kinds import Kind
from kemu.api.v1 import api_pb2
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, server_error
from kemu.cli.ctl.resargs import Selection
from kemu.client.errors import NotFound


@dataclass
class Fetched:
    """Objects grouped by type, in the order asked for, and one error line per miss."""

    groups: list[tuple[Kind, list[api_pb2.Object]]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    @property
    def items(self) -> list[api_pb2.Object]:
        return [o for _, objs in self.groups for o in objs]

    def add(self, kind: Kind, objs: list[api_pb2.Object]) -> None:
        for k, existing in self.groups:
            if k == kind:
                existing.extend(objs)
                return
        self.groups.append((kind, list(objs)))


def check_flags(sel: Selection, *, all_namespaces: bool, label_selector: str,
                field_selector: str) -> None:
    if sel.named and all_namespaces:
        raise CtlError("a resource cannot be retrieved by name across all namespaces")
    if sel.named and (label_selector or field_selector):
        raise CtlError("name cannot be provided when a selector is specified")


def fetch(ctx: Ctx, sel: Selection, *, all_namespaces: bool = False, label_selector: str = "",
          field_selector: str = "", ignore_not_found: bool = False,
          namespace: str | None = None) -> Fetched:
    """`namespace` overrides -n (objects from files carry their own)."""
    check_flags(sel, all_namespaces=all_namespaces, label_selector=label_selector,
                field_selector=field_selector)
    if namespace is None:
        namespace = "" if all_namespaces else ctx.namespace
    found = Fetched()
    for group in sel.groups:
        ns = namespace if group.kind.namespaced else ""
        if not group.names:
            listed = ctx.client.list(group.kind.plural, ns, label_selector=label_selector,
                                     field_selector=field_selector)
            found.add(group.kind, list(listed.items))
            continue
        objs = []
        for name in group.names:
            try:
                objs.append(ctx.client.get(group.kind.plural, name, ns))
            except NotFound as e:
                if not ignore_not_found:
                    found.errors.append(server_error(e))
        found.add(group.kind, objs)
    return found


def nothing_found(ctx: Ctx, kinds: list[Kind], all_namespaces: bool) -> str:
    """kubectl's `No resources found in default namespace.`"""
    if all_namespaces or not any(k.namespaced for k in kinds):
        return "No resources found"
    return f"No resources found in {ctx.namespace} namespace."
