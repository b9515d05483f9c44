"""What the fuzz tests feed the code: seed manifests of every kind, hostile values, and
hypothesis strategies that mutate a valid manifest into a bad one.

A mutation walks to a random place in the document (any mapping key or list item at any
depth) and replaces, deletes, retypes or stretches what is there; the result is what a
careless or hostile client could send. Every served kind has a seed, so every kind's
manifest loading, defaulting and validation is reached.
"""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import yaml
from google.protobuf.descriptor import FieldDescriptor as FieldDescriptorType
from hypothesis import strategies as st

from kemu.api import kinds

SEEDS_DIR = Path(__file__).resolve().parents[1] / "unit" / "api" / "manifests"
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"


def _load_seeds() -> dict[str, dict[str, Any]]:
    seeds: dict[str, dict[str, Any]] = {}
    for path in sorted(SEEDS_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind"):
                seeds.setdefault(f"{doc['kind']}:{path.stem}", doc)
    return seeds


SEEDS = _load_seeds()
SEED_NAMES = sorted(SEEDS)
SEEDED_KINDS = {name.split(":")[0] for name in SEED_NAMES}


def seed(name: str) -> dict[str, Any]:
    """A fresh deep copy of one seed document."""
    return copy.deepcopy(SEEDS[name])


# Values chosen to sit on or past a boundary: integer widths, lengths, odd characters.
EDGE_INTS = (0, -1, 1, 65535, 65536, 2**31 - 1, 2**31, -(2**31) - 1, 2**32, 2**53 + 1,
             2**63 - 1, 2**63, -(2**63) - 1, 2**64, 10**30)
EDGE_FLOATS = (0.5, -0.0, 1e308, -1e308, float("inf"), float("-inf"), float("nan"), 1.0, 3.0)
EDGE_STRINGS = ("", " ", "-", ".", "a" * 63, "a" * 64, "a" * 253, "a" * 254, "A_B", "UPPER",
                "a/b", "/", "a" * 254 + "/x", "x/" + "a" * 64, "ü", "\x00", "\u202e", "1",
                "-1", "1.5", "12Mi", "1e400", "1e-400", "0x10", "%", "50%", "500%", "-5%",
                "true", "null", "*", "*.", "..", "a..b", "10.0.0.1", "::1", "256.1.1.1",
                "10.0.0.0/33", "None", "Exists", "In", "TCP", "tcp", "ClusterIP", "NodePort",
                "ExternalName", "LoadBalancer", "Always", "Never", "9" * 30, "9" * 30 + "Ei",
                "1" + "0" * 400, "1e999999999", "Ki", ".5", "+", "é" * 70)
EDGE_SCALARS = st.one_of(
    st.sampled_from(EDGE_INTS), st.sampled_from(EDGE_FLOATS), st.sampled_from(EDGE_STRINGS),
    st.booleans(), st.none(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.text(max_size=20),
)

# Any document YAML or JSON can express (mapping keys may be any scalar in YAML).
YAML_KEYS = st.one_of(st.text(max_size=12), st.integers(), st.booleans(), st.none(),
                      st.floats(allow_nan=False))
JSONISH = st.recursive(
    EDGE_SCALARS | st.floats(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(YAML_KEYS, inner, max_size=4),
    max_leaves=20,
)


def _paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in the document: mapping keys and list indices, at every depth."""
    out: list[tuple[Any, ...]] = []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out.append((*prefix, k))
            out += _paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out.append((*prefix, i))
            out += _paths(v, (*prefix, i))
    return out


def _parent(doc: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        doc = doc[part]
    return doc


def _stretch(value: Any) -> Any:
    """The same type of value, past a limit."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return -value - 1 if value else 2**63
    if isinstance(value, str):
        return (value or "x") * (254 // max(1, len(value or "x")) + 1)
    if isinstance(value, list):
        return value * 3 + value
    return value


def _same_type(value: Any) -> st.SearchStrategy[Any]:
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.sampled_from(EDGE_INTS) | st.integers(-5, 70000)
    if isinstance(value, float):
        return st.sampled_from(EDGE_FLOATS)
    if isinstance(value, str):
        return st.sampled_from(EDGE_STRINGS) | st.text(max_size=20)
    if isinstance(value, dict):
        return st.dictionaries(st.sampled_from(EDGE_STRINGS) | st.text(max_size=10),
                               st.sampled_from(EDGE_STRINGS), max_size=3).map(
            lambda extra: {**value, **extra})
    return st.just([])


@st.composite
def mutated(draw: st.DrawFn, names: list[str] | None = None) -> dict[str, Any]:
    """A seed manifest with one to four mutations."""
    doc = seed(draw(st.sampled_from(names or SEED_NAMES)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        paths = _paths(doc)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        if path[0] in ("apiVersion", "kind") and draw(st.integers(0, 9)) > 0:
            continue  # mostly keep the kind, so the kind's own rules are reached
        parent, last = _parent(doc, path), path[-1]
        op = draw(st.sampled_from(("replace", "same-type", "same-type", "same-type", "delete",
                                   "stretch", "unknown", "nest", "duplicate")))
        if op == "same-type":  # the kind of value the field holds, mostly a valid load
            parent[last] = draw(_same_type(parent[last]))
        elif op == "replace":
            parent[last] = draw(JSONISH)
        elif op == "delete":
            del parent[last]
        elif op == "stretch":
            parent[last] = _stretch(parent[last])
        elif op == "unknown" and isinstance(parent[last], dict):
            parent[last][draw(YAML_KEYS)] = draw(EDGE_SCALARS)
        elif op == "nest":
            parent[last] = draw(st.sampled_from(([parent[last]], {"x": parent[last]})))
        elif op == "duplicate" and isinstance(parent, list):
            parent.append(copy.deepcopy(parent[last]))
    return doc


def report(capsys: Any, what: str, count: int) -> None:
    """One line on the real stderr with the number of cases tried (visible under -q)."""
    with capsys.disabled():
        sys.stderr.write(f"\n[fuzz] {what}: {count} cases\n")


SERVED_KINDS = {k.kind for k in kinds.KINDS}


# --- protobuf-level mutation: what a gRPC client (not a manifest) can send ----------------

def _message_fields(msg: Any, prefix: str = "") -> list[tuple[Any, Any, str]]:
    """(message, field descriptor, path) for every field of every message set in `msg`."""
    out = []
    for f in msg.DESCRIPTOR.fields:
        path = f"{prefix}.{f.name}" if prefix else f.name
        out.append((msg, f, path))
        if f.message_type is None or f.message_type.GetOptions().map_entry:
            continue
        if f.is_repeated:
            for i, item in enumerate(getattr(msg, f.name)):
                out += _message_fields(item, f"{path}[{i}]")
        elif msg.HasField(f.name):
            out += _message_fields(getattr(msg, f.name), path)
    return out


_INT_RANGES = {
    FieldDescriptorType.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptorType.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptorType.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptorType.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptorType.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptorType.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptorType.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptorType.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptorType.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptorType.TYPE_FIXED64: (0, 2**64 - 1),
    FieldDescriptorType.TYPE_ENUM: (-(2**31), 2**31 - 1),
}
PROTO_STRINGS = st.one_of(st.sampled_from(EDGE_STRINGS), st.text(max_size=30),
                          st.text(max_size=300, alphabet="a.-/"))


def _scalar(draw: st.DrawFn, f: Any) -> Any:
    t = f.type
    if t in _INT_RANGES:
        lo, hi = _INT_RANGES[t]
        return draw(st.sampled_from((lo, hi, 0, -1, 1)) | st.integers(lo, hi))
    if t == FieldDescriptorType.TYPE_BOOL:
        return draw(st.booleans())
    if t in (FieldDescriptorType.TYPE_DOUBLE, FieldDescriptorType.TYPE_FLOAT):
        return draw(st.sampled_from(EDGE_FLOATS) | st.floats(width=32))
    if t == FieldDescriptorType.TYPE_BYTES:
        return draw(st.binary(max_size=40))
    return draw(PROTO_STRINGS)


def _set_random(draw: st.DrawFn, msg: Any, f: Any) -> None:
    name = f.name
    if f.message_type is not None and f.message_type.GetOptions().map_entry:
        target = getattr(msg, name)
        key = draw(PROTO_STRINGS)
        vf = f.message_type.fields_by_name["value"]
        if vf.message_type is None:
            target[key] = _scalar(draw, vf)
        else:
            target[key].SetInParent()
        return
    if f.message_type is not None:
        if f.message_type.full_name == "google.protobuf.Value":
            value = getattr(msg, name).add() if f.is_repeated else getattr(msg, name)
            which = draw(st.sampled_from(("number", "string", "bool", "null", "list", "struct")))
            if which == "number":
                value.number_value = draw(st.sampled_from(EDGE_FLOATS) | st.floats())
            elif which == "string":
                value.string_value = draw(PROTO_STRINGS)
            elif which == "bool":
                value.bool_value = draw(st.booleans())
            elif which == "null":
                value.null_value = 0
            elif which == "list":
                value.list_value.values.add().string_value = "x"
            else:
                value.struct_value.fields["x"].number_value = 1
            return
        if f.is_repeated:
            getattr(msg, name).add()
        else:
            getattr(msg, name).SetInParent()
        return
    if f.is_repeated:
        getattr(msg, name).append(_scalar(draw, f))
    else:
        setattr(msg, name, _scalar(draw, f))


@st.composite
def proto_mutated(draw: st.DrawFn, names: list[str] | None = None) -> Any:
    """A seed manifest as an Object with one to five fields set, cleared or grown at the
    protobuf level: out-of-range enums and integers, NaN, oneof values a manifest cannot
    spell, empty sub-messages, map entries with odd keys."""
    from kemu.api import manifest, objects

    obj = manifest.from_dict(seed(draw(st.sampled_from(names or SEED_NAMES))))
    inner = objects.unwrap(obj)
    for _ in range(draw(st.integers(min_value=1, max_value=5))):
        fields = _message_fields(inner)
        msg, f, _path = draw(st.sampled_from(fields))
        op = draw(st.sampled_from(("set", "set", "set", "clear")))
        if op == "clear":
            msg.ClearField(f.name)
        else:
            _set_random(draw, msg, f)
    return obj
