"""The part of kubectl's JSONPath templates people actually type:
`{.metadata.name}`, `{.items[*].metadata.name}`, `{.spec.ports[0].nodePort}`,
`{.status.conditions[?(@.type=="Ready")].status}`, `{range .items[*]}...{"\\n"}{end}`.

Enough to script against kemuctl output (`-o jsonpath=...`) without jq; anything outside
this subset is a clear `error: ...` rather than a silently wrong answer.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any


class JSONPathError(ValueError):
    """The template cannot be parsed or evaluated."""


@dataclass
class _Node:
    kind: str  # "text", "expr", "range"
    value: str = ""
    body: list[_Node] = field(default_factory=list)


_LITERAL = re.compile(r'^\s*(?:"((?:[^"\\]|\\.)*)"|\'((?:[^\'\\]|\\.)*)\')\s*$')


def _parse(template: str) -> list[_Node]:
    root: list[_Node] = []
    stack: list[list[_Node]] = [root]
    pos = 0
    while pos < len(template):
        start = template.find("{", pos)
        if start < 0:
            stack[-1].append(_Node("text", template[pos:]))
            break
        if start > pos:
            stack[-1].append(_Node("text", template[pos:start]))
        end = template.find("}", start)
        if end < 0:
            raise JSONPathError(f"unclosed action in template {template!r}")
        expr = template[start + 1:end].strip()
        pos = end + 1
        if expr.startswith("range "):
            node = _Node("range", expr[len("range "):].strip())
            stack[-1].append(node)
            stack.append(node.body)
        elif expr == "end":
            if len(stack) == 1:
                raise JSONPathError("{end} without a matching {range}")
            stack.pop()
        else:
            literal = _LITERAL.match(expr)
            if literal:
                raw = literal.group(1) if literal.group(1) is not None else literal.group(2)
                stack[-1].append(_Node("text", raw.encode().decode("unicode_escape")))
            else:
                stack[-1].append(_Node("expr", expr))
    if len(stack) != 1:
        raise JSONPathError("{range} without a matching {end}")
    return root


_STEP = re.compile(r"\.\.(?P<rec>[\w\-/]+|\*)|\.(?P<field>[\w\-/]+|\*)|\[(?P<bracket>[^\]]*)\]"
                   r"|(?P<bare>^[A-Za-z_][\w\-]*)")
_FILTER = re.compile(r"^\?\(\s*@\.(?P<path>[\w.\-/]+)\s*(?:(?P<op>==|!=)\s*(?P<value>.+?))?\s*\)$")


def _children(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return list(value.values())
    if isinstance(value, list):
        return list(value)
    return []


def _descendants(value: Any) -> list[Any]:
    found = [value]
    for child in _children(value):
        found += _descendants(child)
    return found


def _literal_value(text: str) -> Any:
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1]
    try:
        return json.loads(text)
    except ValueError:
        return text


def _bracket(values: list[Any], inner: str) -> list[Any]:
    inner = inner.strip()
    out: list[Any] = []
    filt = _FILTER.match(inner)
    if filt:
        path = filt.group("path").split(".")
        for v in values:
            for item in _children(v) if isinstance(v, list) else [v]:
                got = _walk_fields(item, path)
                if filt.group("op") is None:
                    if got:
                        out.append(item)
                    continue
                want = _literal_value(filt.group("value"))
                equal = any(g == want or str(g) == str(want) for g in got)
                if equal == (filt.group("op") == "=="):
                    out.append(item)
        return out
    if inner == "*":
        return [c for v in values for c in _children(v)]
    if inner[:1] in "\"'":
        key = _literal_value(inner)
        return [v[key] for v in values if isinstance(v, dict) and key in v]
    if ":" in inner:
        parts = [int(p) if p.strip() else None for p in inner.split(":")]
        sl = slice(*parts[:3])
        return [c for v in values if isinstance(v, list) for c in v[sl]]
    try:
        index = int(inner)
    except ValueError:
        raise JSONPathError(f"unsupported subscript [{inner}]") from None
    for v in values:
        if isinstance(v, list) and -len(v) <= index < len(v):
            out.append(v[index])
    return out


def _walk_fields(value: Any, path: list[str]) -> list[Any]:
    current = [value]
    for part in path:
        current = [c[part] for c in current if isinstance(c, dict) and part in c]
    return current


def evaluate(expr: str, data: Any) -> list[Any]:
    """Every value the path expression selects from `data`."""
    text = expr.strip()
    if text.startswith("$"):
        text = text[1:]
    values = [data]
    pos = 0
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None or m.end() == pos:
            raise JSONPathError(f"unrecognized character in {expr!r} at {pos}: {text[pos]!r}")
        pos = m.end()
        if m.group("rec") is not None:
            name = m.group("rec")
            pool = [d for v in values for d in _descendants(v)]
            values = ([c for d in pool for c in _children(d)] if name == "*" else
                      [d[name] for d in pool if isinstance(d, dict) and name in d])
        elif m.group("field") is not None or m.group("bare") is not None:
            name = m.group("field") or m.group("bare")
            values = ([c for v in values for c in _children(v)] if name == "*" else
                      [v[name] for v in values if isinstance(v, dict) and name in v])
        else:
            values = _bracket(values, m.group("bracket"))
    return values


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), sort_keys=True)
    return str(value)


def _render(nodes: list[_Node], data: Any, out: list[str]) -> None:
    for node in nodes:
        if node.kind == "text":
            out.append(node.value)
        elif node.kind == "expr":
            out.append(" ".join(_text(v) for v in evaluate(node.value, data)))
        else:
            for item in evaluate(node.value, data):
                _render(node.body, item, out)


def render(template: str, data: Any) -> str:
    """Fill a kubectl JSONPath template from `data` (a manifest-shaped dict)."""
    out: list[str] = []
    _render(_parse(template), data, out)
    return "".join(out)
