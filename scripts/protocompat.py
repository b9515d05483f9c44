"""Check that the protos under protos/kemu/ stay compatible with the last released API.

Clients compile kemu's .proto files, or read them over server reflection, and keep
running while kemu moves on; a message or rpc that disappears, a field that changes
its number, type or JSON name, breaks them silently.  The descriptor set of the last
release is kept in protos/released/; this script compiles the current protos with
protoc and compares the two descriptor sets, never the .proto text, so comments and
layout are free to change.  The rules follow buf's FILE and WIRE_JSON categories and
are written down in docs/compatibility.md.

    python scripts/protocompat.py             # check; exit 1 and one line per problem
    python scripts/protocompat.py --release   # on a release: rewrite protos/released/

Only scripts and tests use this module; the runtime never imports it.
"""

from __future__ import annotations

import argparse
import hashlib
import re
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Generic, TypeVar

from google.protobuf import descriptor_pb2 as d

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
RELEASED = PROTOS / "released" / "kemu.binpb"
# Files of kemu's own API: every .proto under protos/kemu/ (kemu.v1 today, a kemu.v2
# beside it one day).  The etcd subset under protos/etcd/ follows etcd, not these rules.
SCOPE = "kemu/"

Field = d.FieldDescriptorProto


class CompileError(Exception):
    """protoc rejected the protos."""


# ---------------------------------------------------------------------------
# Compiling and loading
# ---------------------------------------------------------------------------


def compile_protos(protos: Path) -> d.FileDescriptorSet:
    """Compile every .proto under ``protos/kemu/`` with its imports into one set."""
    import grpc_tools  # type: ignore[import-untyped]

    sources = sorted(str(p.relative_to(protos)) for p in (protos / SCOPE).rglob("*.proto"))
    if not sources:
        raise CompileError(f"no .proto files under {protos / SCOPE}")
    include = Path(grpc_tools.__file__).parent / "_proto"
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "set.binpb"
        cmd = [
            sys.executable, "-m", "grpc_tools.protoc",
            f"-I{protos}", f"-I{include}",
            "--include_imports", f"--descriptor_set_out={out}",
            *sources,
        ]
        done = subprocess.run(cmd, cwd=protos, capture_output=True, text=True)
        if done.returncode != 0:
            raise CompileError(done.stderr.strip() or f"protoc exited {done.returncode}")
        fds = d.FileDescriptorSet.FromString(out.read_bytes())
    for f in fds.file:  # protoc adds none without --include_source_info; be sure
        f.ClearField("source_code_info")
    return fds


def load(path: Path) -> d.FileDescriptorSet:
    return d.FileDescriptorSet.FromString(path.read_bytes())


# ---------------------------------------------------------------------------
# An index of one descriptor set by full name
# ---------------------------------------------------------------------------


P = TypeVar("P", d.DescriptorProto, d.EnumDescriptorProto, d.ServiceDescriptorProto)


@dataclass(frozen=True)
class Element(Generic[P]):
    """A message, enum or service, and the file that declares it."""

    file: str
    proto: P
    nested: bool = False  # declared inside a message: it moves with that message


@dataclass
class Index:
    """The elements of the in-scope files of one set, by fully qualified name."""

    files: dict[str, d.FileDescriptorProto] = field(default_factory=dict)
    messages: dict[str, Element[d.DescriptorProto]] = field(default_factory=dict)
    enums: dict[str, Element[d.EnumDescriptorProto]] = field(default_factory=dict)
    services: dict[str, Element[d.ServiceDescriptorProto]] = field(default_factory=dict)
    # every message of the set, imports too: map fields are told by their entry type
    all_messages: dict[str, d.DescriptorProto] = field(default_factory=dict)

    @classmethod
    def of(cls, fds: d.FileDescriptorSet) -> Index:
        index = cls()
        for f in fds.file:
            in_scope = f.name.startswith(SCOPE)
            if in_scope:
                index.files[f.name] = f
            prefix = f.package
            for m in f.message_type:
                index._add_message(f.name, prefix, m, nested=False, in_scope=in_scope)
            if not in_scope:
                continue
            for e in f.enum_type:
                index.enums[_join(prefix, e.name)] = Element(f.name, e)
            for s in f.service:
                index.services[_join(prefix, s.name)] = Element(f.name, s)
        return index

    def _add_message(
        self, file: str, prefix: str, m: d.DescriptorProto, *, nested: bool, in_scope: bool
    ) -> None:
        name = _join(prefix, m.name)
        self.all_messages[name] = m
        if in_scope and not m.options.map_entry:
            self.messages[name] = Element(file, m, nested)
        for e in m.enum_type:
            if in_scope:
                self.enums[_join(name, e.name)] = Element(file, e, nested=True)
        for n in m.nested_type:
            self._add_message(file, name, n, nested=True, in_scope=in_scope)


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


# ---------------------------------------------------------------------------
# How a field reads: its type, label, oneof
# ---------------------------------------------------------------------------


def _map_entry(f: Field, index: Index) -> d.DescriptorProto | None:
    if f.label != Field.LABEL_REPEATED or f.type != Field.TYPE_MESSAGE:
        return None
    entry = index.all_messages.get(f.type_name.lstrip("."))
    return entry if entry is not None and entry.options.map_entry else None


def _scalar_or_named(f: Field) -> str:
    if f.type in (Field.TYPE_MESSAGE, Field.TYPE_ENUM, Field.TYPE_GROUP):
        return f.type_name.lstrip(".")
    return Field.Type.Name(f.type).removeprefix("TYPE_").lower()


def _type(f: Field, index: Index) -> str:
    entry = _map_entry(f, index)
    if entry is not None:
        key, value = sorted(entry.field, key=lambda x: x.number)
        return f"map<{_scalar_or_named(key)}, {_scalar_or_named(value)}>"
    return _scalar_or_named(f)


def _label(f: Field, index: Index) -> str:
    if f.label == Field.LABEL_REPEATED:
        return "map" if _map_entry(f, index) is not None else "repeated"
    if f.label == Field.LABEL_REQUIRED:
        return "required"
    # `optional Foo x` and `Foo x` are the same for a message field: both have presence.
    if f.proto3_optional and f.type != Field.TYPE_MESSAGE:
        return "optional"
    return "singular"


def _declaration(f: Field, index: Index) -> str:
    label, type_ = _label(f, index), _type(f, index)
    return type_ if label in ("singular", "map") else f"{label} {type_}"


def _oneof(f: Field, m: d.DescriptorProto) -> str:
    """The field's real oneof; proto3 `optional` fields sit in a synthetic one."""
    if not f.HasField("oneof_index") or f.proto3_optional:
        return "(none)"
    return m.oneof_decl[f.oneof_index].name


# ---------------------------------------------------------------------------
# Reserved numbers and names
# ---------------------------------------------------------------------------

# Message reserved ranges end exclusive, enum reserved ranges end inclusive; both are
# kept here as [start, end) pairs.
Ranges = list[tuple[int, int]]


def _message_reserved(m: d.DescriptorProto) -> Ranges:
    return [(r.start, r.end) for r in m.reserved_range]


def _enum_reserved(e: d.EnumDescriptorProto) -> Ranges:
    return [(r.start, r.end + 1) for r in e.reserved_range]


def _covers(ranges: Ranges, number: int) -> bool:
    return any(start <= number < end for start, end in ranges)


def _unreserved(number: int, name: str, ranges: Ranges, names: Iterable[str]) -> str:
    """What of a removed field or value is left to reserve: "number and name", or ""."""
    missing = [what for what, done in (("number", _covers(ranges, number)),
                                       ("name", name in names)) if not done]
    return " and ".join(missing)


def _uncovered(old: Ranges, new: Ranges) -> Iterator[tuple[int, int]]:
    """The parts of the ``old`` ranges that no ``new`` range covers."""
    for start, end in old:
        at = start
        for s, e in sorted(new):
            if e <= at or s >= end:
                continue
            if s > at:
                yield (at, s)
            at = max(at, e)
            if at >= end:
                break
        if at < end:
            yield (at, end)


def _show(start: int, end: int, *, top: int) -> str:
    last = end - 1
    if start == last:
        return str(start)
    return f"{start} to {'max' if last >= top else last}"


_FIELD_MAX = 536870911  # 2**29 - 1, the highest field number
_ENUM_MAX = 2147483647


def _reserved_problems(
    subject: str, old: Ranges, new: Ranges, old_names: list[str], new_names: list[str],
    *, top: int,
) -> Iterator[str]:
    for start, end in _uncovered(old, new):
        yield f"{subject}: reserved number {_show(start, end, top=top)} no longer reserved"
    for name in old_names:
        if name not in new_names:
            yield f'{subject}: reserved name "{name}" no longer reserved'


# ---------------------------------------------------------------------------
# The comparison
# ---------------------------------------------------------------------------


def compare(old_set: d.FileDescriptorSet, new_set: d.FileDescriptorSet) -> list[str]:
    """Every breaking change from ``old_set`` to ``new_set``, one line each."""
    old, new = Index.of(old_set), Index.of(new_set)
    problems: list[str] = []
    moved_package: set[str] = set()  # files whose package changed: reported once, there
    for name, f in old.files.items():
        g = new.files.get(name)
        if g is None:
            problems.append(f"{name}: file removed")
            continue
        problems.extend(_file_problems(f, g))
        if f.package != g.package:
            moved_package.add(name)

    for name, m0, m1 in _kept("message", old.messages, new.messages, moved_package, problems):
        problems.extend(_message_problems(name, m0, m1, old, new))
    for name, e0, e1 in _kept("enum", old.enums, new.enums, moved_package, problems):
        problems.extend(_enum_problems(name, e0, e1))
    for name, s0, s1 in _kept("service", old.services, new.services, moved_package, problems):
        problems.extend(_service_problems(name, s0, s1))
    return problems


def _kept(
    kind: str, old: dict[str, Element[P]], new: dict[str, Element[P]],
    moved_package: set[str], problems: list[str],
) -> Iterator[tuple[str, P, P]]:
    """The elements still there, old and new; those gone or moved go to ``problems``."""
    for name, was in old.items():
        now = new.get(name)
        if now is None:
            if was.file not in moved_package:
                problems.append(f"{name}: {kind} removed")
            continue
        if not was.nested and now.file != was.file:
            problems.append(f"{name}: {kind} moved from {was.file} to {now.file}")
        yield name, was.proto, now.proto


def _file_problems(f: d.FileDescriptorProto, g: d.FileDescriptorProto) -> Iterator[str]:
    if f.package != g.package:
        yield f"{f.name}: package changed {f.package} -> {g.package}"
    old_syntax, new_syntax = f.syntax or "proto2", g.syntax or "proto2"
    if old_syntax != new_syntax:
        yield f"{f.name}: syntax changed {old_syntax} -> {new_syntax}"
    # go_package, java_package, csharp_namespace...: generated code moves with them.
    old_opts = {fd.name: v for fd, v in f.options.ListFields()}
    new_opts = {fd.name: v for fd, v in g.options.ListFields()}
    for opt in sorted(old_opts.keys() | new_opts.keys()):
        if opt == "deprecated":
            continue
        before, after = old_opts.get(opt, "(unset)"), new_opts.get(opt, "(unset)")
        if before != after:
            yield f"{f.name}: file option {opt} changed {before!r} -> {after!r}"


def _message_problems(
    name: str, m: d.DescriptorProto, n: d.DescriptorProto, old: Index, new: Index
) -> Iterator[str]:
    by_number = {f.number: f for f in n.field}
    by_name = {f.name: f for f in n.field}
    reserved = _message_reserved(n)
    for f in m.field:
        subject = f"{name}.{f.name}"
        g = by_number.get(f.number)
        if g is None:
            moved = by_name.get(f.name)
            if moved is not None:
                yield f"{subject}: field number changed {f.number} -> {moved.number}"
                continue
            missing = _unreserved(f.number, f.name, reserved, n.reserved_name)
            if missing:
                yield f"{subject}: field {f.number} removed; reserve its {missing}"
            continue
        if g.name != f.name:
            old_names = {x.name for x in m.field}
            if g.name in old_names or _declaration(f, old) != _declaration(g, new):
                # Another field now has the number: old data reads as the wrong field.
                yield f"{subject}: field {f.number} removed; its number is reused by {g.name}"
                continue
            yield f"{subject}: field name changed {f.name} -> {g.name} (number {f.number})"
        elif g.json_name != f.json_name:
            yield f'{subject}: JSON name changed "{f.json_name}" -> "{g.json_name}"'
        old_label, new_label = _label(f, old), _label(g, new)
        if old_label != new_label and _type(f, old) == _type(g, new):
            yield f"{subject}: field label changed {old_label} -> {new_label}"
        elif _declaration(f, old) != _declaration(g, new):
            yield (f"{subject}: field type changed {_declaration(f, old)} -> "
                   f"{_declaration(g, new)}")
        old_oneof, new_oneof = _oneof(f, m), _oneof(g, n)
        if old_oneof != new_oneof:
            yield f"{subject}: oneof membership changed {old_oneof} -> {new_oneof}"
    yield from _reserved_problems(
        name, _message_reserved(m), reserved, list(m.reserved_name), list(n.reserved_name),
        top=_FIELD_MAX,
    )


def _enum_problems(name: str, e: d.EnumDescriptorProto, n: d.EnumDescriptorProto) -> Iterator[str]:
    by_name = {v.name: v for v in n.value}
    by_number: dict[int, list[str]] = {}
    for v in n.value:
        by_number.setdefault(v.number, []).append(v.name)
    reserved = _enum_reserved(n)
    for v in e.value:
        subject = f"{name}.{v.name}"
        w = by_name.get(v.name)
        if w is not None:
            if w.number != v.number:
                yield f"{subject}: enum value number changed {v.number} -> {w.number}"
            continue
        if v.number in by_number:
            now = ", ".join(by_number[v.number])
            yield f"{subject}: enum value name changed {v.name} -> {now} (number {v.number})"
            continue
        missing = _unreserved(v.number, v.name, reserved, n.reserved_name)
        if missing:
            yield f"{subject}: enum value {v.number} removed; reserve its {missing}"
    yield from _reserved_problems(
        name, _enum_reserved(e), reserved, list(e.reserved_name), list(n.reserved_name),
        top=_ENUM_MAX,
    )


def _service_problems(
    name: str, s: d.ServiceDescriptorProto, t: d.ServiceDescriptorProto
) -> Iterator[str]:
    methods = {m.name: m for m in t.method}
    for m in s.method:
        subject = f"{name}.{m.name}"
        n = methods.get(m.name)
        if n is None:
            yield f"{subject}: method removed"
            continue
        for what, before, after, was_stream, is_stream in (
            ("request", m.input_type, n.input_type, m.client_streaming, n.client_streaming),
            ("response", m.output_type, n.output_type, m.server_streaming, n.server_streaming),
        ):
            if before != after:
                yield f"{subject}: {what} type changed {before.lstrip('.')} -> {after.lstrip('.')}"
            if was_stream != is_stream:
                yield (f"{subject}: {what} streaming changed "
                       f"{_streaming(was_stream)} -> {_streaming(is_stream)}")


def _streaming(stream: bool) -> str:
    return "stream" if stream else "unary"


# ---------------------------------------------------------------------------
# Releasing
# ---------------------------------------------------------------------------


def kemu_version(root: Path = ROOT) -> str:
    with (root / "pyproject.toml").open("rb") as f:
        version: str = tomllib.load(f)["project"]["version"]
    return version


README = """\
# The released kemu API

`{set_name}` is the protobuf descriptor set (`FileDescriptorSet`, with imports, without
source info) of every .proto under protos/kemu/ as released in **kemu {version}**.

- packages: {packages}
- files: {files}
- sha256: `{digest}`

`make test` compares the current protos against it (`python scripts/protocompat.py`)
and fails on a breaking change; the rules are in docs/compatibility.md.  On a release,
after the check passes, refresh it with

    python scripts/protocompat.py --release

Generated by that command; do not edit.
"""

_RELEASED_VERSION = re.compile(r"as released in \*\*kemu (\S+)\*\*")


def release(fds: d.FileDescriptorSet, path: Path, *, version: str) -> None:
    """Write ``fds`` to ``path`` and a README naming the release beside it."""
    data = fds.SerializeToString(deterministic=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    scoped = [f for f in fds.file if f.name.startswith(SCOPE)]
    (path.parent / "README.md").write_text(README.format(
        set_name=path.name,
        version=version,
        packages=", ".join(sorted({f.package for f in scoped})),
        files=", ".join(sorted(f.name for f in scoped)),
        digest=hashlib.sha256(data).hexdigest(),
    ))


def released_version(path: Path) -> str:
    readme = path.parent / "README.md"
    found = _RELEASED_VERSION.search(readme.read_text()) if readme.exists() else None
    return found.group(1) if found else "(unknown version)"


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------


def _shown(path: Path) -> str:
    """``path`` relative to the repository when it is inside it, for shorter lines."""
    resolved = path.resolve()
    return str(resolved.relative_to(ROOT)) if resolved.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--protos", type=Path, default=PROTOS,
                        help="the proto root holding kemu/ (default: protos/)")
    parser.add_argument("--released", type=Path, default=RELEASED,
                        help="the released descriptor set (default: protos/released/kemu.binpb)")
    parser.add_argument("--release", action="store_true",
                        help="write the current protos as the released set, if compatible")
    args = parser.parse_args(argv)

    try:
        current = compile_protos(args.protos)
    except CompileError as e:
        print(f"protocompat: protoc failed:\n{e}", file=sys.stderr)
        return 2
    released: Path = args.released
    problems = compare(load(released), current) if released.exists() else []
    for line in problems:
        print(line)
    against = f"kemu {released_version(released)} ({_shown(released)})"
    if problems:
        print(f"protocompat: {len(problems)} breaking change(s) against {against}; "
              "see docs/compatibility.md", file=sys.stderr)
        if args.release:
            print("protocompat: not releasing an API that breaks the last release",
                  file=sys.stderr)
        return 1
    if args.release:
        version = kemu_version()
        release(current, released, version=version)
        print(f"protocompat: wrote {_shown(released)} for kemu {version}", file=sys.stderr)
        return 0
    if not released.exists():
        print(f"protocompat: no released set at {_shown(released)}; "
              "run `python scripts/protocompat.py --release`", file=sys.stderr)
        return 2
    print(f"protocompat: compatible with {against}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
