"""Helpers over the `Object` envelope: wrap, unwrap, metadata, dict form.

Every RPC carries objects in the envelope; code that works on any kind (the apiserver's
generic paths, kemuctl's printers) goes through these helpers instead of switching on
the oneof itself.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import json_format, message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from kemu.api import kinds
from kemu.api.v1 import api_pb2, meta_pb2

Object = api_pb2.Object


def kind_of(obj: api_pb2.Object) -> kinds.Kind:
    """The Kind held by the envelope; ValueError when it is empty."""
    field = obj.WhichOneof("kind")
    if field is None:
        raise ValueError("object is empty: no kind is set")
    return kinds.by_envelope_field(field)


def unwrap(obj: api_pb2.Object) -> Any:
    """The typed message inside the envelope (a live reference: edits change `obj`)."""
    return getattr(obj, kind_of(obj).envelope_field)


def wrap(msg: Message) -> api_pb2.Object:
    """Put a typed message (Pod, Deployment...) into a new envelope (copied)."""
    kind = kinds.by_kind(msg.DESCRIPTOR.name)
    if kind is None:
        raise ValueError(f"{msg.DESCRIPTOR.name} is not a served kind")
    obj = api_pb2.Object()
    getattr(obj, kind.envelope_field).CopyFrom(msg)
    return obj


def meta(obj: api_pb2.Object) -> meta_pb2.ObjectMeta:
    """The object's metadata (a live reference)."""
    m: meta_pb2.ObjectMeta = unwrap(obj).metadata
    return m


def message_class(kind: kinds.Kind) -> type[Message]:
    """The generated class for a kind, e.g. Pod for pods."""
    field = api_pb2.Object.DESCRIPTOR.fields_by_name[kind.envelope_field]
    assert field.message_type is not None
    cls: type[Message] = message_factory.GetMessageClass(field.message_type)
    return cls


def ref(obj: api_pb2.Object) -> str:
    """`kind/namespace/name` for logs and messages."""
    m = meta(obj)
    k = kind_of(obj)
    return f"{k.singular}/{m.namespace}/{m.name}" if k.namespaced else f"{k.singular}/{m.name}"


def fill_type_meta(obj: api_pb2.Object) -> api_pb2.Object:
    """Set apiVersion and kind from the envelope, as the server returns them."""
    k = kind_of(obj)
    inner = unwrap(obj)
    inner.api_version = k.api_version
    inner.kind = k.kind
    return obj


def _integral(value: Any) -> Any:
    """MessageToDict prints int-or-string numbers (google.protobuf.Value) as floats: 80.0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _integral(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_integral(v) for v in value]
    return value


_INT64 = frozenset({FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64,
                    FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_FIXED64,
                    FieldDescriptor.TYPE_SFIXED64})


def _int64_as_numbers(desc: Descriptor, doc: dict[str, Any]) -> None:
    """protobuf's JSON mapping writes int64 as strings ("30"); Kubernetes writes numbers."""
    by_json = {f.json_name: f for f in desc.fields}
    for key, value in doc.items():
        f = by_json.get(key)
        if f is None:
            continue
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            vf = f.message_type.fields_by_name["value"]
            if vf.message_type is not None and isinstance(value, dict):
                for v in value.values():
                    if isinstance(v, dict):
                        _int64_as_numbers(vf.message_type, v)
            continue
        items = value if f.is_repeated and isinstance(value, list) else [value]
        if f.type in _INT64:
            converted = [int(v) if isinstance(v, str) else v for v in items]
            doc[key] = converted if f.is_repeated else converted[0]
        elif f.message_type is not None and not f.message_type.full_name.startswith(
                "google.protobuf."):
            for item in items:
                if isinstance(item, dict):
                    _int64_as_numbers(f.message_type, item)


_FIRST = ("apiVersion", "kind", "metadata", "spec")


def to_dict(obj: api_pb2.Object) -> dict[str, Any]:
    """The object as a Kubernetes manifest dict: apiVersion, kind, metadata, spec first."""
    fill_type_meta(obj)
    inner = unwrap(obj)
    raw = _integral(json_format.MessageToDict(inner))
    _int64_as_numbers(inner.DESCRIPTOR, raw)
    ordered = {k: raw.pop(k) for k in _FIRST if k in raw}
    ordered.update(raw)
    return ordered
