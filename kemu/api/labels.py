"""Label selectors: Kubernetes' string syntax and the typed LabelSelector, one matcher.

Syntax (as `kubectl get -l`): comma-separated requirements, each one of
`key=value`, `key==value`, `key!=value`, `key in (a,b)`, `key notin (a,b)`,
`key` (exists) and `!key` (does not exist). All must hold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from kemu.api import names


class SelectorError(ValueError):
    """A selector string or LabelSelector that cannot be parsed."""


@dataclass(frozen=True)
class Requirement:
    """One requirement; `op` is one of =, !=, in, notin, exists, !exists."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        if self.op == "exists":
            return has
        if self.op == "!exists":
            return not has
        if self.op in ("=", "in"):
            return has and labels[self.key] in self.values
        # != and notin also match objects without the label, as in Kubernetes.
        return not has or labels[self.key] not in self.values

    def __str__(self) -> str:
        if self.op == "exists":
            return self.key
        if self.op == "!exists":
            return f"!{self.key}"
        if self.op in ("=", "!="):
            return f"{self.key}{self.op}{next(iter(self.values))}"
        return f"{self.key} {self.op} ({','.join(sorted(self.values))})"


@dataclass(frozen=True)
class Selector:
    """A conjunction of requirements; the empty selector matches everything."""

    requirements: tuple[Requirement, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(r.matches(labels) for r in self.requirements)

    def empty(self) -> bool:
        return not self.requirements

    def __str__(self) -> str:
        return ",".join(str(r) for r in self.requirements)


EVERYTHING = Selector()
_TOKEN = re.compile(
    r"\s*(?:(?P<neg>!)\s*(?P<nkey>[^\s,=!()]+)"
    r"|(?P<key>[^\s,=!()]+)\s*(?:(?P<op>==|=|!=)\s*(?P<value>[^\s,=!()]*)"
    r"|\s+(?P<setop>in|notin)\s*\((?P<set>[^)]*)\))?)\s*(?:,|$)"
)


def parse(text: str) -> Selector:
    """Parse Kubernetes' label selector syntax."""
    text = text.strip()
    if not text:
        return EVERYTHING
    reqs: list[Requirement] = []
    pos = 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None or m.end() == pos:
            raise SelectorError(f"unable to parse requirement: {text[pos:]!r} in selector {text!r}")
        pos = m.end()
        if m["neg"]:
            reqs.append(Requirement(m["nkey"], "!exists"))
        elif m["op"]:
            reqs.append(Requirement(m["key"], "!=" if m["op"] == "!=" else "=",
                                    frozenset([m["value"]])))
        elif m["setop"]:
            values = frozenset(v.strip() for v in m["set"].split(",") if v.strip())
            reqs.append(Requirement(m["key"], m["setop"], values))
        else:
            reqs.append(Requirement(m["key"], "exists"))
    for req in reqs:
        _check_syntax(req)
    return Selector(tuple(reqs))


def _check_syntax(req: Requirement) -> None:
    """Keys must be qualified names and values label values, as Kubernetes' parser says."""
    for problem in names.qualified_name(req.key):
        raise SelectorError(f'unable to parse requirement: key: Invalid value: "{req.key}": '
                            f"{problem}")
    for value in sorted(req.values):
        for problem in names.label_value(value):
            raise SelectorError(f"unable to parse requirement: values[0][{req.key}]: Invalid "
                                f'value: "{value}": {problem}')


class LabelSelectorLike(Protocol):
    """The shape of kemu.v1.LabelSelector (kept structural to avoid importing generated code)."""

    @property
    def match_labels(self) -> Mapping[str, str]: ...
    @property
    def match_expressions(self) -> Sequence[RequirementLike]: ...


class RequirementLike(Protocol):
    @property
    def key(self) -> str: ...
    @property
    def operator(self) -> str: ...
    @property
    def values(self) -> Sequence[str]: ...


_OPERATORS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}


def from_label_selector(sel: LabelSelectorLike) -> Selector:
    """Turn a typed LabelSelector (matchLabels + matchExpressions) into a Selector."""
    reqs = [Requirement(k, "=", frozenset([v])) for k, v in sorted(sel.match_labels.items())]
    for expr in sel.match_expressions:
        op = _OPERATORS.get(expr.operator)
        if op is None:
            raise SelectorError(f"{expr.operator!r} is not a valid label selector operator")
        reqs.append(Requirement(expr.key, op, frozenset(expr.values)))
    return Selector(tuple(reqs))


def from_map(match: Mapping[str, str]) -> Selector:
    """An equality selector, as Service and ReplicationController selectors are."""
    return Selector(tuple(Requirement(k, "=", frozenset([v])) for k, v in sorted(match.items())))
