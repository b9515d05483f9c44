"""Kubernetes manifests (YAML or JSON) to typed `Object`s, strictly.

The typed messages' JSON mapping equals Kubernetes' field names, so protobuf's own
ParseDict does the conversion. Before it, one walk over the document along the message
descriptors gives what ParseDict does not: an error naming the full field path
(`spec.template.spec.containers[0].imagePullPolicyy`), nulls treated as unset (as
Kubernetes does) and numeric quantities (`cpu: 1`) accepted as Kubernetes accepts them.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import reprlib
from collections.abc import Iterator
from typing import Any

import yaml
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from kemu.api import kinds, objects
from kemu.api.v1 import api_pb2

# Map fields whose values are Kubernetes quantities, where `cpu: 1` means "1".
QUANTITY_MAPS = frozenset({"limits", "requests", "capacity", "allocatable", "hard", "used"})
# Metadata a real Kubernetes server writes that kemu does not keep; dropped on load so
# that `kubectl get -o yaml` output from a real cluster can be applied here.
SERVER_ONLY_METADATA = frozenset({"managedFields", "selfLink"})
_WELL_KNOWN = {
    "google.protobuf.Timestamp": "timestamp",
    "google.protobuf.Value": "int-or-string",
}


_INT64 = frozenset({FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64,
                    FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_FIXED64,
                    FieldDescriptor.TYPE_SFIXED64})


class ManifestError(ValueError):
    """A manifest that cannot become a typed object; the message names the problem."""


_REPR = reprlib.Repr()  # bounded depth and width (keyword arguments need Python 3.12)
_REPR.maxlevel, _REPR.maxstring, _REPR.maxother = 3, 40, 40


def _describe(value: Any) -> str:
    try:
        text = _REPR.repr(value)
    except (ValueError, RecursionError):  # an int past Python's 4300-digit str limit
        return f"a {type(value).__name__}"
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: Any) -> str:
    """A document's kind, apiVersion or name for a message, whatever its type."""
    return value if isinstance(value, str) else _describe(value)


def _clean_scalar(field: FieldDescriptor, value: Any, path: str, quantity: bool) -> Any:
    t = field.type
    if t == FieldDescriptor.TYPE_STRING:
        if quantity and isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        if not isinstance(value, str):
            raise ManifestError(f"{path}: expected a string, got {_describe(value)} (quote it)")
        return value
    if t == FieldDescriptor.TYPE_BOOL:
        if not isinstance(value, bool):
            raise ManifestError(f"{path}: expected true or false, got {_describe(value)}")
        return value
    if t == FieldDescriptor.TYPE_BYTES:
        if not isinstance(value, str):
            raise ManifestError(f"{path}: expected a base64 string, got {_describe(value)}")
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raise ManifestError(f"{path}: illegal base64 data") from None
        return value
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ManifestError(f"{path}: expected a number, got {_describe(value)}")
        return value
    if t == FieldDescriptor.TYPE_ENUM:
        return value
    # integers; 64-bit ones may be strings, as protobuf's JSON mapping writes them
    if t in _INT64 and isinstance(value, str) and value.lstrip("-").isdigit():
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(f"{path}: expected an integer, got {_describe(value)}")
    return value


def _clean_value(field: FieldDescriptor, value: Any, path: str, quantity: bool = False) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        assert field.message_type is not None
        wk = _WELL_KNOWN.get(field.message_type.full_name)
        if wk == "timestamp":
            if isinstance(value, datetime.datetime):  # YAML reads unquoted times itself
                aware = value if value.tzinfo else value.replace(tzinfo=datetime.UTC)
                return aware.isoformat().replace("+00:00", "Z")
            if not isinstance(value, str):
                raise ManifestError(f"{path}: expected an RFC 3339 time, got {_describe(value)}")
            return value
        if wk == "int-or-string":
            if isinstance(value, bool) or not isinstance(value, int | str):
                raise ManifestError(
                    f"{path}: expected an integer or a string, got {_describe(value)}")
            return value
        return _clean_message(field.message_type, value, path)
    return _clean_scalar(field, value, path, quantity)


def _clean_message(desc: Descriptor, doc: Any, path: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        where = path or "the document"
        raise ManifestError(f"{where}: expected an object, got {_describe(doc)}")
    by_json = {f.json_name: f for f in desc.fields}
    out: dict[str, Any] = {}
    for key, value in doc.items():
        sub = f"{path}.{key}" if path else str(key)
        if desc.full_name == "kemu.v1.ObjectMeta" and key in SERVER_ONLY_METADATA:
            continue
        field = by_json.get(key) if isinstance(key, str) else None
        if field is None:
            raise ManifestError(f'strict decoding error: unknown field "{sub}"')
        if value is None:
            continue
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            if not isinstance(value, dict):
                raise ManifestError(f"{sub}: expected a map, got {_describe(value)}")
            value_field = field.message_type.fields_by_name["value"]
            quantity = key in QUANTITY_MAPS
            out[key] = {
                str(k): _clean_value(value_field, v, f"{sub}.{k}", quantity)
                for k, v in value.items() if v is not None
            }
        elif field.is_repeated:
            if not isinstance(value, list):
                raise ManifestError(f"{sub}: expected a list, got {_describe(value)}")
            out[key] = [_clean_value(field, v, f"{sub}[{i}]") for i, v in enumerate(value)]
        else:
            out[key] = _clean_value(field, value, sub)
    return out


def from_dict(doc: Any, *, source: str = "") -> api_pb2.Object:
    """Convert one manifest document (already parsed) into an `Object`."""
    where = f"{source}: " if source else ""
    if not isinstance(doc, dict):
        raise ManifestError(f"{where}a manifest must be a mapping, got {_describe(doc)}")
    kind_name, api_version = doc.get("kind"), doc.get("apiVersion")
    if not kind_name:
        raise ManifestError(f"{where}Object 'Kind' is missing")
    if not api_version:
        raise ManifestError(f"{where}Object 'apiVersion' is missing")
    kind = kinds.by_kind(kind_name) if isinstance(kind_name, str) else None
    if kind is None or kind.api_version != api_version:
        raise ManifestError(f'{where}no matches for kind "{_text(kind_name)}" in version '
                            f'"{_text(api_version)}"')
    msg_cls = objects.message_class(kind)
    try:
        cleaned = _clean_message(msg_cls.DESCRIPTOR, doc, "")  # type: ignore[arg-type]
        msg = json_format.ParseDict(cleaned, msg_cls())
    except ManifestError as e:
        raise ManifestError(f"{where}{kind.kind} {_name_of(doc)}{e}") from None
    except json_format.ParseError as e:
        raise ManifestError(f"{where}{kind.kind} {_name_of(doc)}{e}") from None
    return objects.wrap(msg)


def _name_of(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    return f'"{_text(name)}": ' if name else ": "


def iter_documents(text: str, *, source: str = "") -> Iterator[Any]:
    """The non-empty documents of a YAML or JSON stream; a `kind: List` is flattened."""
    try:
        docs = list(yaml.safe_load_all(text))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ManifestError(f"{source or 'input'}:{where}: invalid YAML: {problem}") from None
    except ValueError as e:  # PyYAML's constructors: `month: 13` in a timestamp, huge ints
        raise ManifestError(f"{source or 'input'}: invalid YAML: {e}") from None
    except RecursionError:
        raise ManifestError(f"{source or 'input'}: invalid YAML: nested too deeply") from None
    for doc in docs:
        if doc is None:
            continue
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(
                doc.get("items"), list):
            yield from doc["items"]
        else:
            yield doc


def load_all(text: str, *, source: str = "") -> list[api_pb2.Object]:
    """Parse every document of a stream; the first bad document raises, nothing is returned."""
    return [from_dict(doc, source=source) for doc in iter_documents(text, source=source)]
