"""Write docs/api.md, the reference of the kemu.v1 gRPC API, from the .proto comments.

Why generated: clients in other languages compile protos/kemu/v1/*.proto, so the
comments there are the contract; a hand-written reference would drift from them.
protoc (from grpcio-tools) compiles the files with ``--include_source_info`` into a
descriptor set, and this script renders every service, method, message, field, enum
and enum value with its leading comment. The output depends only on the .proto
files, so ``--check`` can compare it byte for byte with the committed file.

    python scripts/gen_api_docs.py            # rewrite docs/api.md
    python scripts/gen_api_docs.py --check    # exit 1 if docs/api.md is stale
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"
PACKAGE_DIR = "kemu/v1"
OUTPUT = ROOT / "docs" / "api.md"
STALE = "docs/api.md is stale: run make api-docs"

# Field numbers of the descriptor messages, as used in SourceCodeInfo.Location.path.
FILE_MESSAGE, FILE_ENUM, FILE_SERVICE, FILE_SYNTAX = 4, 5, 6, 12
MESSAGE_FIELD, MESSAGE_NESTED, MESSAGE_ENUM, MESSAGE_ONEOF = 2, 3, 4, 8
ENUM_VALUE = 2
SERVICE_METHOD = 2

FDP = descriptor_pb2.FieldDescriptorProto
SCALARS = {
    FDP.TYPE_DOUBLE: "double", FDP.TYPE_FLOAT: "float", FDP.TYPE_INT64: "int64",
    FDP.TYPE_UINT64: "uint64", FDP.TYPE_INT32: "int32", FDP.TYPE_FIXED64: "fixed64",
    FDP.TYPE_FIXED32: "fixed32", FDP.TYPE_BOOL: "bool", FDP.TYPE_STRING: "string",
    FDP.TYPE_BYTES: "bytes", FDP.TYPE_UINT32: "uint32", FDP.TYPE_SFIXED32: "sfixed32",
    FDP.TYPE_SFIXED64: "sfixed64", FDP.TYPE_SINT32: "sint32", FDP.TYPE_SINT64: "sint64",
}
WELL_KNOWN = "https://protobuf.dev/reference/protobuf/google.protobuf/#"


def compile_protos() -> descriptor_pb2.FileDescriptorSet:
    """Compile every kemu.v1 .proto (and its imports) into a descriptor set with comments."""
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    protos = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / PACKAGE_DIR).glob("*.proto"))
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "api.binpb"
        args = ["protoc", f"-I{PROTOS}", f"-I{include}", "--include_imports",
                "--include_source_info", f"--descriptor_set_out={out}", *protos]
        if protoc.main(args) != 0:
            raise SystemExit("protoc failed")
        return descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())


def api_files(fds: descriptor_pb2.FileDescriptorSet) -> list[descriptor_pb2.FileDescriptorProto]:
    """The kemu.v1 files of a descriptor set, by name."""
    files = [f for f in fds.file if f.name.startswith(PACKAGE_DIR + "/")]
    return sorted(files, key=lambda f: f.name)


class Comments:
    """The comments of one file, looked up by descriptor path."""

    def __init__(self, fd: descriptor_pb2.FileDescriptorProto) -> None:
        self._by_path: dict[tuple[int, ...], descriptor_pb2.SourceCodeInfo.Location] = {}
        for loc in fd.source_code_info.location:
            self._by_path.setdefault(tuple(loc.path), loc)

    def leading(self, path: tuple[int, ...]) -> str:
        """The leading comment at ``path`` (trailing when there is none), normalised."""
        loc = self._by_path.get(path)
        if loc is None:
            return ""
        return normalise(loc.leading_comments or loc.trailing_comments)

    def header(self) -> str:
        """The file's introduction: the comment above ``syntax``."""
        loc = self._by_path.get((FILE_SYNTAX,))
        if loc is None:
            return ""
        return normalise(loc.leading_comments or "\n\n".join(loc.leading_detached_comments))


def normalise(comment: str) -> str:
    """Paragraphs separated by one blank line, the lines of a paragraph joined."""
    paragraphs: list[list[str]] = [[]]
    for line in comment.splitlines():
        line = line.strip()
        if line:
            paragraphs[-1].append(line)
        elif paragraphs[-1]:
            paragraphs.append([])
    return "\n\n".join(" ".join(p) for p in paragraphs if p)


def escape(text: str) -> str:
    """Markdown-safe text: ``<``, ``>`` and ``|`` escaped outside code spans."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):  # even parts are outside backticks
        parts[i] = parts[i].replace("<", "&lt;").replace(">", "&gt;").replace("|", "\\|")
    return "`".join(parts)


def cell(text: str) -> str:
    """A comment as one table cell."""
    return escape(text).replace("\n\n", "<br><br>")


def link(full_name: str) -> str:
    """A markdown link to the section of a message or enum (full name without the dot)."""
    if full_name.startswith("google.protobuf."):
        short = full_name.removeprefix("google.protobuf.")
        return f"[{full_name}]({WELL_KNOWN}{short.lower()})"
    return f"[{short_name(full_name)}](#{anchor(full_name)})"


def short_name(full_name: str) -> str:
    return full_name.removeprefix("kemu.v1.")


def anchor(name: str) -> str:
    """The id of a section: ``kemu.v1.ExecRequest.Start`` -> ``kemu-v1-execrequest-start``."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower())


@dataclass(frozen=True)
class Item:
    """One documented element: its kind, full name and comment."""

    kind: str
    name: str
    comment: str


@dataclass(frozen=True)
class MessageInfo:
    full_name: str
    proto: descriptor_pb2.DescriptorProto
    path: tuple[int, ...]


@dataclass(frozen=True)
class EnumInfo:
    full_name: str
    proto: descriptor_pb2.EnumDescriptorProto
    path: tuple[int, ...]


def walk(fd: descriptor_pb2.FileDescriptorProto) -> tuple[list[MessageInfo], list[EnumInfo]]:
    """Every message (nested ones after their parent, map entries left out) and enum of a file."""
    messages: list[MessageInfo] = []
    enums: list[EnumInfo] = []

    def visit(msg: descriptor_pb2.DescriptorProto, prefix: str, path: tuple[int, ...]) -> None:
        full = f"{prefix}.{msg.name}"
        messages.append(MessageInfo(full, msg, path))
        for i, enum in enumerate(msg.enum_type):
            enums.append(EnumInfo(f"{full}.{enum.name}", enum, (*path, MESSAGE_ENUM, i)))
        for i, nested in enumerate(msg.nested_type):
            if not nested.options.map_entry:
                visit(nested, full, (*path, MESSAGE_NESTED, i))

    for i, msg in enumerate(fd.message_type):
        visit(msg, fd.package, (FILE_MESSAGE, i))
    for i, enum in enumerate(fd.enum_type):
        enums.append(EnumInfo(f"{fd.package}.{enum.name}", enum, (FILE_ENUM, i)))
    return messages, enums


def items(fd: descriptor_pb2.FileDescriptorProto) -> Iterator[Item]:
    """Every element of a file that must carry a comment."""
    comments = Comments(fd)
    for si, svc in enumerate(fd.service):
        svc_name = f"{fd.package}.{svc.name}"
        yield Item("service", svc_name, comments.leading((FILE_SERVICE, si)))
        for mi, method in enumerate(svc.method):
            path = (FILE_SERVICE, si, SERVICE_METHOD, mi)
            yield Item("method", f"{svc_name}.{method.name}", comments.leading(path))
    messages, enums = walk(fd)
    for m in messages:
        yield Item("message", m.full_name, comments.leading(m.path))
        for oi, oneof in enumerate(m.proto.oneof_decl):
            if not is_synthetic(m.proto, oi):
                path = (*m.path, MESSAGE_ONEOF, oi)
                yield Item("oneof", f"{m.full_name}.{oneof.name}", comments.leading(path))
        for fi, field in enumerate(m.proto.field):
            path = (*m.path, MESSAGE_FIELD, fi)
            yield Item("field", f"{m.full_name}.{field.name}", comments.leading(path))
    for e in enums:
        yield Item("enum", e.full_name, comments.leading(e.path))
        for vi, value in enumerate(e.proto.value):
            path = (*e.path, ENUM_VALUE, vi)
            yield Item("enum value", f"{e.full_name}.{value.name}", comments.leading(path))


def is_synthetic(msg: descriptor_pb2.DescriptorProto, oneof_index: int) -> bool:
    """True for the oneof protoc makes for a proto3 ``optional`` field."""
    members = [f for f in msg.field if f.HasField("oneof_index") and f.oneof_index == oneof_index]
    return len(members) == 1 and members[0].proto3_optional


def missing_comments(fds: descriptor_pb2.FileDescriptorSet) -> list[str]:
    """``kind full.name`` of every element without a comment; empty when complete."""
    return [f"{i.kind} {i.name}" for fd in api_files(fds) for i in items(fd) if not i.comment]


def field_type(field: descriptor_pb2.FieldDescriptorProto,
               maps: dict[str, descriptor_pb2.DescriptorProto]) -> str:
    """The type column: a scalar name, a link, or ``map<key, value>``."""
    if field.type_name and field.type_name[1:] in maps:
        entry = maps[field.type_name[1:]]
        key, value = (field_type(f, maps) for f in entry.field)
        return f"map&lt;{key}, {value}&gt;"
    if field.type in (FDP.TYPE_MESSAGE, FDP.TYPE_ENUM):
        return link(field.type_name[1:])
    return SCALARS[field.type]


def field_label(msg: descriptor_pb2.DescriptorProto, field: descriptor_pb2.FieldDescriptorProto,
                maps: dict[str, descriptor_pb2.DescriptorProto]) -> str:
    if field.type_name and field.type_name[1:] in maps:
        return "map"
    if field.label == FDP.LABEL_REPEATED:
        return "repeated"
    if field.proto3_optional:
        return "optional"
    if field.HasField("oneof_index"):
        return f"oneof {msg.oneof_decl[field.oneof_index].name}"
    return ""


def map_entries(fds: descriptor_pb2.FileDescriptorSet) -> dict[str, descriptor_pb2.DescriptorProto]:
    """Every synthetic map-entry message, by full name."""
    found: dict[str, descriptor_pb2.DescriptorProto] = {}

    def visit(msg: descriptor_pb2.DescriptorProto, prefix: str) -> None:
        full = f"{prefix}.{msg.name}"
        if msg.options.map_entry:
            found[full] = msg
        for nested in msg.nested_type:
            visit(nested, full)

    for fd in fds.file:
        for msg in fd.message_type:
            visit(msg, fd.package)
    return found


def heading(level: int, full_name: str, title: str) -> list[str]:
    return [f'<a id="{anchor(full_name)}"></a>', "", f"{'#' * level} {title}", ""]


def paragraph(text: str) -> list[str]:
    return [escape(text), ""] if text else []


def render(fds: descriptor_pb2.FileDescriptorSet) -> str:
    """The whole of docs/api.md."""
    files = api_files(fds)
    maps = map_entries(fds)
    out = [
        "# kemu API reference (kemu.v1)",
        "",
        "Generated from `protos/kemu/v1/*.proto` by `scripts/gen_api_docs.py`; do not edit by",
        "hand: change the comments in the .proto files and run `make api-docs`. How to build a",
        "client in another language, authenticate, set deadlines and resume watches is in",
        "[clients.md](clients.md); what may change between versions is in",
        "[compatibility.md](compatibility.md).",
        "",
        "Field names are the proto names; the JSON column is the name in protobuf's JSON",
        "mapping, which is the Kubernetes manifest field name.",
        "",
        "## Contents",
        "",
    ]
    for fd in files:
        out.append(f"- [{fd.name}](#{anchor(fd.name)})")
        for svc in fd.service:
            out.append(f"  - service {link(f'{fd.package}.{svc.name}')}")
        messages, enums = walk(fd)
        if messages:
            out.append("  - messages: " + ", ".join(link(m.full_name) for m in messages))
        if enums:
            out.append("  - enums: " + ", ".join(link(e.full_name) for e in enums))
    out.append("")
    for fd in files:
        out += render_file(fd, maps)
    return "\n".join(out).rstrip("\n") + "\n"


def render_file(fd: descriptor_pb2.FileDescriptorProto,
                maps: dict[str, descriptor_pb2.DescriptorProto]) -> list[str]:
    comments = Comments(fd)
    out = heading(2, fd.name, fd.name) + paragraph(comments.header())
    for si, svc in enumerate(fd.service):
        svc_name = f"{fd.package}.{svc.name}"
        out += heading(3, svc_name, f"service {svc.name}")
        out += paragraph(comments.leading((FILE_SERVICE, si)))
        out += ["| Method | Request | Response | Description |", "|---|---|---|---|"]
        for mi, m in enumerate(svc.method):
            req = ("stream " if m.client_streaming else "") + link(m.input_type[1:])
            resp = ("stream " if m.server_streaming else "") + link(m.output_type[1:])
            text = cell(comments.leading((FILE_SERVICE, si, SERVICE_METHOD, mi)))
            out.append(f"| `{m.name}` | {req} | {resp} | {text} |")
        out.append("")
    messages, enums = walk(fd)
    for m in messages:
        out += heading(3, m.full_name, f"message {short_name(m.full_name)}")
        out += paragraph(comments.leading(m.path))
        for oi, oneof in enumerate(m.proto.oneof_decl):
            if not is_synthetic(m.proto, oi):
                text = comments.leading((*m.path, MESSAGE_ONEOF, oi))
                out += [f"Oneof `{oneof.name}`: {escape(text)}", ""]
        if not m.proto.field:
            out += ["No fields.", ""]
            continue
        out += ["| Field | JSON | Number | Type | Label | Description |",
                "|---|---|---|---|---|---|"]
        for fi, f in enumerate(m.proto.field):
            text = comments.leading((*m.path, MESSAGE_FIELD, fi))
            out.append(f"| `{f.name}` | `{f.json_name}` | {f.number} | {field_type(f, maps)} "
                       f"| {field_label(m.proto, f, maps)} | {cell(text)} |")
        out.append("")
    for e in enums:
        out += heading(3, e.full_name, f"enum {short_name(e.full_name)}")
        out += paragraph(comments.leading(e.path))
        out += ["| Value | Number | Description |", "|---|---|---|"]
        for vi, v in enumerate(e.proto.value):
            text = cell(comments.leading((*e.path, ENUM_VALUE, vi)))
            out.append(f"| `{v.name}` | {v.number} | {text} |")
        out.append("")
    return out


def main(argv: list[str] | None = None, *, output: Path = OUTPUT) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if docs/api.md is stale")
    args = parser.parse_args(argv)
    text = render(compile_protos())
    if args.check:
        if not output.exists() or output.read_text() != text:
            print(STALE, file=sys.stderr)
            return 1
        return 0
    output.write_text(text)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
