"""Resource arguments as kubectl reads them: `TYPE`, `TYPE1,TYPE2`, `TYPE NAME...`,
`TYPE/NAME...` and the `all` category, resolved through the kind table (so short names,
singulars, kinds and `plural.group` all work and unknown types fail with kubectl's words).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from kemu.api import kinds
from kemu.api.kinds import Kind
from kemu.cli.ctl.errors import CtlError

# kubectl's `all` category, in the order kubectl prints it.
ALL = ("pods", "replicationcontrollers", "services", "daemonsets", "deployments",
       "replicasets", "statefulsets", "cronjobs", "jobs")


@dataclass
class Group:
    """One resource type and the names asked for (empty: every object of the type)."""

    kind: Kind
    names: list[str] = field(default_factory=list)


@dataclass
class Selection:
    groups: list[Group]
    named: bool

    @property
    def single(self) -> bool:
        """Exactly one object was named: -o yaml prints it bare rather than as a List."""
        return self.named and len(self.groups) == 1 and len(self.groups[0].names) == 1

    @property
    def kinds(self) -> list[Kind]:
        seen: list[Kind] = []
        for g in self.groups:
            if g.kind not in seen:
                seen.append(g.kind)
        return seen


def resolve_types(text: str) -> list[Kind]:
    """`deploy,svc` or `all` to their kinds, without duplicates, in order."""
    found: list[Kind] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        expanded = [kinds.resolve(p) for p in ALL] if part.lower() == "all" \
            else [kinds.resolve(part)]
        found += [k for k in expanded if k not in found]
    if not found:
        raise CtlError(f'resource type "{text}" is empty')
    return found


def parse(args: Sequence[str], *, verb: str = "get") -> Selection:
    """Parse a verb's positional arguments into what they select."""
    if not args:
        raise CtlError(f"you must specify the type of resource to {verb}. Use \"kemuctl "
                       "api-resources\" for a complete list of supported resources")
    slashed = [a for a in args if "/" in a]
    if slashed:
        if len(slashed) != len(args):
            raise CtlError("there is no need to specify a resource type as a separate argument "
                           "when passing arguments in resource/name form (e.g. 'kemuctl get "
                           "resource/<resource_name>' instead of 'kemuctl get resource "
                           "resource/<resource_name>')")
        groups: list[Group] = []
        for arg in args:
            type_text, _, name = arg.partition("/")
            if not name:
                raise CtlError(f"arguments in resource/name form must have a single resource "
                               f"and name: {arg!r}")
            kind = kinds.resolve(type_text)
            existing = next((g for g in groups if g.kind == kind), None)
            if existing is None:
                groups.append(Group(kind, [name]))
            else:
                existing.names.append(name)
        return Selection(groups, named=True)
    types = resolve_types(args[0])
    names = list(args[1:])
    return Selection([Group(k, list(names)) for k in types], named=bool(names))
