"""The API compatibility check (scripts/protocompat.py) on the real protos and on copies
broken on purpose.

Each case copies protos/kemu/ into a temporary directory, edits one declaration and
asserts that the checker reports exactly that change against the released descriptor
set; compatible edits must pass.  Cases a compiling .proto cannot express (a message
removed while still referenced, a package changed under its importers) edit the
descriptor set instead.
"""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest
from google.protobuf import descriptor_pb2 as d

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = ROOT / "scripts" / "protocompat.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("protocompat", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


pc = _load()


@pytest.fixture
def protos(tmp_path: Path) -> Path:
    """A copy of protos/kemu/ to break."""
    shutil.copytree(ROOT / "protos" / "kemu", tmp_path / "kemu")
    return tmp_path


def edit(root: Path, file: str, block: str, old: str, new: str) -> None:
    """Replace ``old`` once inside the top-level ``block`` (e.g. "message Foo") of ``file``."""
    path = root / "kemu" / "v1" / file
    text = path.read_text()
    start = text.index(f"\n{block} {{\n")
    end = text.index("\n}\n", start)
    body = text[start:end]
    assert body.count(old) == 1, f"{old!r} is not once in {block} of {file}"
    path.write_text(text[:start] + body.replace(old, new) + text[end:])


def check(root: Path) -> list[str]:
    return list(pc.compare(pc.load(pc.RELEASED), pc.compile_protos(root)))


def test_the_current_protos_are_compatible_with_the_release(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert pc.main([]) == 0, capsys.readouterr().out


def test_the_released_set_is_kemu_v1_without_source_info() -> None:
    released = pc.load(pc.RELEASED)
    ours = [f for f in released.file if f.name.startswith("kemu/")]
    assert {f.package for f in ours} == {"kemu.v1"}
    assert not any(f.HasField("source_code_info") for f in released.file)
    assert "google/protobuf/timestamp.proto" in {f.name for f in released.file}


BREAKING = [
    pytest.param("apps.proto", "message DeploymentSpec", "replicas = 1;", "replicas = 77;",
                 "kemu.v1.DeploymentSpec.replicas: field number changed 1 -> 77",
                 id="field-renumbered"),
    pytest.param("apps.proto", "message DeploymentSpec",
                 "int32 min_ready_seconds = 5;", "string min_ready_seconds = 5;",
                 "kemu.v1.DeploymentSpec.min_ready_seconds: field type changed int32 -> string",
                 id="field-type"),
    pytest.param("apps.proto", "message DeploymentSpec",
                 "int32 min_ready_seconds = 5;", "repeated int32 min_ready_seconds = 5;",
                 "kemu.v1.DeploymentSpec.min_ready_seconds: field label changed singular -> "
                 "repeated",
                 id="field-made-repeated"),
    pytest.param("apps.proto", "message DeploymentSpec", "bool paused = 7;",
                 "optional bool paused = 7;",
                 "kemu.v1.DeploymentSpec.paused: field label changed singular -> optional",
                 id="field-made-optional"),
    pytest.param("core.proto", "message NodeStatus", "map<string, string> capacity = 1;",
                 "map<string, int64> capacity = 1;",
                 "kemu.v1.NodeStatus.capacity: field type changed map<string, string> -> "
                 "map<string, int64>",
                 id="map-value-type"),
    pytest.param("apps.proto", "message DeploymentSpec", "bool paused = 7;", "",
                 "kemu.v1.DeploymentSpec.paused: field 7 removed; reserve its number and name",
                 id="field-removed"),
    pytest.param("apps.proto", "message DeploymentSpec", "bool paused = 7;", "reserved 7;",
                 "kemu.v1.DeploymentSpec.paused: field 7 removed; reserve its name",
                 id="field-removed-number-reserved"),
    pytest.param("apps.proto", "message DeploymentSpec", "bool paused = 7;",
                 "bool suspended = 7;",
                 "kemu.v1.DeploymentSpec.paused: field name changed paused -> suspended "
                 "(number 7)",
                 id="field-renamed"),
    pytest.param("apps.proto", "message DeploymentSpec", "bool paused = 7;",
                 "string suspended = 7;",
                 "kemu.v1.DeploymentSpec.paused: field 7 removed; its number is reused by "
                 "suspended",
                 id="field-number-reused"),
    pytest.param("core.proto", "message PodStatus", 'string pod_ip = 9 [json_name = "podIP"];',
                 "string pod_ip = 9;",
                 'kemu.v1.PodStatus.pod_ip: JSON name changed "podIP" -> "podIp"',
                 id="json-name"),
    pytest.param("api.proto", "message ExecRequest", "bool close_stdin = 4;\n  }",
                 "}\n  bool close_stdin = 4;",
                 "kemu.v1.ExecRequest.close_stdin: oneof membership changed input -> (none)",
                 id="field-out-of-oneof"),
    pytest.param("api.proto", "service Resources",
                 "rpc Rollback(RollbackRequest) returns (Object);", "",
                 "kemu.v1.Resources.Rollback: method removed", id="rpc-removed"),
    pytest.param("api.proto", "service Resources",
                 "rpc Watch(WatchRequest) returns (stream WatchEvent);",
                 "rpc Watch(WatchRequest) returns (WatchEvent);",
                 "kemu.v1.Resources.Watch: response streaming changed stream -> unary",
                 id="rpc-streaming"),
    pytest.param("api.proto", "service Resources", "rpc Bind(BindRequest) returns (Object);",
                 "rpc Bind(ScaleRequest) returns (Object);",
                 "kemu.v1.Resources.Bind: request type changed kemu.v1.BindRequest -> "
                 "kemu.v1.ScaleRequest",
                 id="rpc-request-type"),
    pytest.param("api.proto", "enum PropagationPolicy", "ORPHAN = 3;", "ORPHAN = 4;",
                 "kemu.v1.PropagationPolicy.ORPHAN: enum value number changed 3 -> 4",
                 id="enum-value-renumbered"),
    pytest.param("api.proto", "enum PropagationPolicy", "ORPHAN = 3;", "ORPHANED = 3;",
                 "kemu.v1.PropagationPolicy.ORPHAN: enum value name changed ORPHAN -> ORPHANED "
                 "(number 3)",
                 id="enum-value-renamed"),
    pytest.param("api.proto", "enum PropagationPolicy", "ORPHAN = 3;", "",
                 "kemu.v1.PropagationPolicy.ORPHAN: enum value 3 removed; reserve its number "
                 "and name",
                 id="enum-value-removed"),
]


@pytest.mark.parametrize(("file", "block", "old", "new", "problem"), BREAKING)
def test_a_breaking_edit_is_reported_alone(
    protos: Path, file: str, block: str, old: str, new: str, problem: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    edit(protos, file, block, old, new)
    assert pc.main(["--protos", str(protos)]) == 1
    out, err = capsys.readouterr()
    assert out.splitlines() == [problem]
    assert "1 breaking change(s) against kemu" in err


COMPATIBLE = [
    pytest.param([("apps.proto", "message DeploymentSpec", "bool paused = 7;",
                   "bool paused = 7;\n  string note = 99;")], id="field-added"),
    pytest.param([("apps.proto", "message DeploymentSpec", "bool paused = 7;",
                   'reserved 7;\n  reserved "paused";')], id="field-removed-and-reserved"),
    pytest.param([("apps.proto", "message DeploymentSpec", "bool paused = 7;",
                   "bool paused = 7 [deprecated = true];")], id="field-deprecated"),
    pytest.param([("api.proto", "enum PropagationPolicy", "ORPHAN = 3;",
                   "ORPHAN = 3;\n  CASCADE = 4;")], id="enum-value-added"),
    pytest.param([("api.proto", "enum PropagationPolicy", "ORPHAN = 3;",
                   'reserved 3;\n  reserved "ORPHAN";')], id="enum-value-removed-and-reserved"),
    pytest.param([("api.proto", "service Resources",
                   "rpc Bind(BindRequest) returns (Object);",
                   "rpc Bind(BindRequest) returns (Object);\n"
                   "  rpc Ping(PingRequest) returns (PingResponse);"),
                  ("api.proto", "enum PropagationPolicy", "ORPHAN = 3;",
                   "ORPHAN = 3;\n}\nmessage PingRequest {}\nmessage PingResponse {\n"
                   "  string pong = 1;")], id="rpc-and-messages-added"),
]


@pytest.mark.parametrize("edits", COMPATIBLE)
def test_a_compatible_edit_passes(protos: Path, edits: list[tuple[str, str, str, str]]) -> None:
    for file, block, old, new in edits:
        edit(protos, file, block, old, new)
    assert check(protos) == []


def test_comments_and_layout_do_not_count(protos: Path) -> None:
    before = pc.compile_protos(protos).SerializeToString(deterministic=True)
    for path in (protos / "kemu").rglob("*.proto"):
        text = path.read_text().replace("\nmessage ", "\n// A new comment.\n\n\nmessage ")
        path.write_text(text.replace(" = ", "  =  ") + "\n/* trailing */\n")
    assert pc.compile_protos(protos).SerializeToString(deterministic=True) == before
    assert check(protos) == []


# ---------------------------------------------------------------------------
# Changes a compiling .proto cannot make alone: edit the descriptor set instead
# ---------------------------------------------------------------------------


def _file(fds: d.FileDescriptorSet, name: str) -> d.FileDescriptorProto:
    return next(f for f in fds.file if f.name == name)


def _remove_message(fds: d.FileDescriptorSet) -> str:
    f = _file(fds, "kemu/v1/coordination.proto")
    i = next(i for i, m in enumerate(f.message_type) if m.name == "LeaseSpec")
    del f.message_type[i]
    return "kemu.v1.LeaseSpec: message removed"


def _remove_enum(fds: d.FileDescriptorSet) -> str:
    del _file(fds, "kemu/v1/api.proto").enum_type[:]
    return "kemu.v1.PropagationPolicy: enum removed"


def _remove_service(fds: d.FileDescriptorSet) -> str:
    f = _file(fds, "kemu/v1/api.proto")
    i = next(i for i, s in enumerate(f.service) if s.name == "Discovery")
    del f.service[i]
    return "kemu.v1.Discovery: service removed"


def _change_package(fds: d.FileDescriptorSet) -> str:
    _file(fds, "kemu/v1/coordination.proto").package = "kemu.v2"
    return "kemu/v1/coordination.proto: package changed kemu.v1 -> kemu.v2"


def _move_message(fds: d.FileDescriptorSet) -> str:
    source = _file(fds, "kemu/v1/coordination.proto")
    i = next(i for i, m in enumerate(source.message_type) if m.name == "LeaseSpec")
    _file(fds, "kemu/v1/core.proto").message_type.append(source.message_type[i])
    del source.message_type[i]
    return ("kemu.v1.LeaseSpec: message moved from kemu/v1/coordination.proto to "
            "kemu/v1/core.proto")


def _change_go_package(fds: d.FileDescriptorSet) -> str:
    _file(fds, "kemu/v1/meta.proto").options.go_package = "example.com/kemu"
    return ("kemu/v1/meta.proto: file option go_package changed "
            "'kemu.dev/api/kemu/v1;kemuv1' -> 'example.com/kemu'")


@pytest.mark.parametrize("change", [
    pytest.param(_remove_message, id="message-removed"),
    pytest.param(_remove_enum, id="enum-removed"),
    pytest.param(_remove_service, id="service-removed"),
    pytest.param(_change_package, id="package-changed"),
    pytest.param(_move_message, id="message-moved-file"),
    pytest.param(_change_go_package, id="go-package-changed"),
])
def test_a_breaking_descriptor_change_is_reported_alone(
    change: Callable[[d.FileDescriptorSet], str],
) -> None:
    released = pc.load(pc.RELEASED)
    changed = pc.load(pc.RELEASED)
    problem = change(changed)
    assert pc.compare(released, changed) == [problem]


def test_dropping_a_reservation_is_breaking() -> None:
    old, new = pc.load(pc.RELEASED), pc.load(pc.RELEASED)
    spec = next(m for m in _file(old, "kemu/v1/apps.proto").message_type
                if m.name == "DeploymentSpec")
    spec.reserved_range.add(start=20, end=23)
    spec.reserved_name.append("surge")
    assert pc.compare(old, new) == [
        "kemu.v1.DeploymentSpec: reserved number 20 to 22 no longer reserved",
        'kemu.v1.DeploymentSpec: reserved name "surge" no longer reserved',
    ]


def test_a_removed_file_is_reported_with_what_it_held() -> None:
    old, new = pc.load(pc.RELEASED), pc.load(pc.RELEASED)
    i = next(i for i, f in enumerate(new.file) if f.name == "kemu/v1/coordination.proto")
    held = [m.name for m in new.file[i].message_type]
    del new.file[i]
    assert pc.compare(old, new) == [
        "kemu/v1/coordination.proto: file removed",
        *(f"kemu.v1.{m}: message removed" for m in held),
    ]


@pytest.mark.parametrize(("old", "new", "left"), [
    pytest.param([(1, 10)], [(1, 10)], [], id="same"),
    pytest.param([(1, 10)], [(0, 5), (5, 12)], [], id="covered-by-two"),
    pytest.param([(1, 10)], [(3, 5)], [(1, 3), (5, 10)], id="hole-in-the-middle"),
    pytest.param([(1, 10), (20, 21)], [], [(1, 10), (20, 21)], id="all-gone"),
])
def test_uncovered_reserved_ranges(
    old: list[tuple[int, int]], new: list[tuple[int, int]], left: list[tuple[int, int]],
) -> None:
    assert list(pc._uncovered(old, new)) == left


# ---------------------------------------------------------------------------
# The command line, as `make test` and a release run it
# ---------------------------------------------------------------------------


def test_the_command_exits_1_with_one_line_per_problem(protos: Path) -> None:
    edit(protos, "apps.proto", "message DeploymentSpec", "replicas = 1;", "replicas = 7;")
    edit(protos, "apps.proto", "message DeploymentSpec", "bool paused = 7;", "")
    done = subprocess.run([sys.executable, str(SCRIPT), "--protos", str(protos)],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines() == [
        "kemu.v1.DeploymentSpec.replicas: field number changed 1 -> 7",
        "kemu.v1.DeploymentSpec.paused: field 7 removed; its number is reused by replicas",
    ]
    assert "docs/compatibility.md" in done.stderr


def test_protos_that_do_not_compile_exit_2(
    protos: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    edit(protos, "apps.proto", "message DeploymentSpec", "bool paused = 7;", "bool paused 7")
    assert pc.main(["--protos", str(protos)]) == 2
    assert "protoc failed" in capsys.readouterr().err


def test_release_writes_the_set_and_refuses_to_bless_a_break(
    protos: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    released = tmp_path / "released" / "kemu.binpb"
    assert pc.main(["--protos", str(protos), "--released", str(released)]) == 2  # none yet
    assert pc.main(["--release", "--protos", str(protos), "--released", str(released)]) == 0
    readme = (released.parent / "README.md").read_text()
    assert f"as released in **kemu {pc.kemu_version()}**" in readme
    assert pc.released_version(released) == pc.kemu_version()
    written = released.read_bytes()

    edit(protos, "apps.proto", "message DeploymentSpec", "bool paused = 7;", "")
    capsys.readouterr()
    assert pc.main(["--release", "--protos", str(protos), "--released", str(released)]) == 1
    assert "not releasing" in capsys.readouterr().err
    assert released.read_bytes() == written
