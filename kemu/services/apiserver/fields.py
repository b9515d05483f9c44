"""Field selectors: `metadata.name=web,status.phase!=Running`.

Kubernetes supports metadata.name and metadata.namespace for every kind and a few fields
per kind (spec.nodeName and status.phase for pods...). kemu accepts any scalar field path
in manifest spelling, which covers those and more.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message

from kemu.services.apiserver.errors import BadRequest


@dataclass(frozen=True)
class FieldRequirement:
    path: tuple[str, ...]
    equal: bool
    value: str

    def matches(self, msg: Message) -> bool:
        return (field_value(msg, self.path) == self.value) == self.equal


def _scalar_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# Message descriptor -> manifest (JSON) field name -> Python attribute name. Watches with
# a field selector look fields up for every event they are offered: built once per type.
_ATTRS: dict[Any, dict[str, str]] = {}


def _attrs(desc: Any) -> dict[str, str]:
    names = _ATTRS.get(desc)
    if names is None:
        names = _ATTRS[desc] = {f.json_name: f.name for f in desc.fields}
    return names


def field_value(msg: Message, path: tuple[str, ...]) -> str:
    """The text of a scalar field reached by manifest names; '' when unset."""
    current: Any = msg
    for part in path:
        current = getattr(current, _attrs(current.DESCRIPTOR)[part])
    return _scalar_text(current)


def _check_path(msg_type: Any, path: tuple[str, ...], text: str) -> None:
    desc = msg_type.DESCRIPTOR
    for i, part in enumerate(path):
        by_json = {f.json_name: f for f in desc.fields}
        f = by_json.get(part)
        last = i == len(path) - 1
        if f is None or f.is_repeated or (
                last and f.message_type is not None) or (not last and f.message_type is None):
            raise BadRequest(f'field label not supported: {text}')
        if not last:
            desc = f.message_type


def parse(text: str, msg_type: Any) -> list[FieldRequirement]:
    """Parse a field selector against a kind's message type; BadRequest names the problem."""
    reqs: list[FieldRequirement] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        op = next((o for o in ("!=", "==", "=") if o in part), None)
        if op is None:
            raise BadRequest(f"invalid field selector: {part!r}: expected key=value or "
                             "key!=value")
        key, _, value = part.partition(op)
        equal = op != "!="
        path = tuple(key.strip().split("."))
        _check_path(msg_type, path, key.strip())
        reqs.append(FieldRequirement(path, equal, value.strip()))
    return reqs


def matches(reqs: list[FieldRequirement], msg: Message) -> bool:
    return all(r.matches(msg) for r in reqs)
