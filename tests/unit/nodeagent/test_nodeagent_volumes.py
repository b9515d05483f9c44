"""Volume file projection (keys, items, modes), the atomic writer, hostPath checks, binds."""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Any

import pytest

from kemu.api import manifest
from kemu.api.v1 import core_pb2
from kemu.nodeagent import volumes
from kemu.nodeagent.volumes import FileSpec, MountError


def items(*specs: tuple[str, str, int | None]) -> list[core_pb2.KeyToPath]:
    out = []
    for key, path, mode in specs:
        k = core_pb2.KeyToPath(key=key, path=path)
        if mode is not None:
            k.mode = mode
        out.append(k)
    return out


DATA = {"a": b"1", "b": b"2", "c": b"3"}


@pytest.mark.parametrize(("chosen", "default_mode", "expected"), [
    pytest.param([], None, {"a": FileSpec(b"1", 0o644), "b": FileSpec(b"2", 0o644),
                            "c": FileSpec(b"3", 0o644)}, id="all-keys-default-mode"),
    pytest.param([], 0o400, {k: FileSpec(v, 0o400) for k, v in DATA.items()},
                 id="all-keys-default-mode-set"),
    pytest.param(items(("a", "dir/a.txt", None)), 0o600, {"dir/a.txt": FileSpec(b"1", 0o600)},
                 id="item-path"),
    pytest.param(items(("a", "x", 0o755), ("b", "y", None)), None,
                 {"x": FileSpec(b"1", 0o755), "y": FileSpec(b"2", 0o644)}, id="item-mode"),
])
def test_project(chosen: list[Any], default_mode: int | None,
                 expected: dict[str, FileSpec]) -> None:
    assert volumes.project(DATA, chosen, default_mode, kind="configmap", name="c",
                           optional=False) == expected


def test_project_missing_key() -> None:
    with pytest.raises(MountError, match="non-existent config key: zz"):
        volumes.project(DATA, items(("zz", "p", None)), None, kind="configmap", name="c",
                        optional=False)
    assert volumes.project(DATA, items(("zz", "p", None)), None, kind="configmap", name="c",
                           optional=True) == {}


@pytest.mark.parametrize("path", ["../escape", "/abs", "a/../../b"])
def test_project_rejects_paths_leaving_the_volume(path: str) -> None:
    with pytest.raises(MountError):
        volumes.project(DATA, items(("a", path, None)), None, kind="configmap", name="c",
                        optional=False)


def test_atomic_write_layout_and_update(tmp_path: Path) -> None:
    target = tmp_path / "vol"
    assert volumes.atomic_write(target, {"a": FileSpec(b"1", 0o644),
                                         "dir/b": FileSpec(b"2", 0o400)})
    assert (target / "a").read_bytes() == b"1"
    assert (target / "dir" / "b").read_bytes() == b"2"
    assert os.readlink(target / "a") == "..data/a"
    assert stat.S_IMODE((target / "dir" / "b").stat().st_mode) == 0o400
    first = os.readlink(target / "..data")
    assert not volumes.atomic_write(target, {"a": FileSpec(b"1", 0o644),
                                             "dir/b": FileSpec(b"2", 0o400)})
    assert os.readlink(target / "..data") == first  # unchanged: nothing rewritten
    assert volumes.atomic_write(target, {"a": FileSpec(b"changed", 0o644)})
    assert (target / "a").read_bytes() == b"changed"
    assert not (target / "dir").exists()  # dropped keys disappear
    assert not (target / first).exists()  # the old timestamped dir is removed
    hidden = sorted(p.name for p in target.iterdir() if p.name.startswith(".."))
    assert len(hidden) == 2 and "..data" in hidden


@pytest.mark.parametrize(("kind", "make", "ok"), [
    pytest.param("Directory", "dir", True, id="dir-ok"),
    pytest.param("Directory", "file", False, id="dir-is-file"),
    pytest.param("Directory", None, False, id="dir-missing"),
    pytest.param("File", "file", True, id="file-ok"),
    pytest.param("DirectoryOrCreate", None, True, id="dir-created"),
    pytest.param("FileOrCreate", None, True, id="file-created"),
    pytest.param("", None, True, id="unchecked"),
])
def test_host_path_types(tmp_path: Path, kind: str, make: str | None, ok: bool) -> None:
    p = tmp_path / "x" / "target"
    if make == "dir":
        p.mkdir(parents=True)
    elif make == "file":
        p.parent.mkdir(parents=True)
        p.write_text("x")
    if ok:
        volumes.check_host_path(str(p), kind)
        if kind.endswith("OrCreate"):
            assert p.is_dir() if kind.startswith("Directory") else p.is_file()
    else:
        with pytest.raises(MountError, match="hostPath type check failed"):
            volumes.check_host_path(str(p), kind)


def container(mounts: list[dict[str, Any]]) -> Any:
    return manifest.from_dict({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p"},
                               "spec": {"containers": [{"name": "c", "image": "i",
                                                        "volumeMounts": mounts}]}}
                              ).pod.spec.containers[0]


def test_binds(tmp_path: Path) -> None:
    c = container([{"name": "cfg", "mountPath": "/etc/cfg"},
                   {"name": "data", "mountPath": "/data", "readOnly": True},
                   {"name": "data", "mountPath": "/logs", "subPath": "logs"}])
    paths = {"cfg": tmp_path / "cfg", "data": tmp_path / "data"}
    binds = volumes.binds_for(c, paths, {"cfg"})
    assert binds == [f"{tmp_path}/cfg:/etc/cfg:ro", f"{tmp_path}/data:/data:ro",
                     f"{tmp_path}/data/logs:/logs"]
    assert (tmp_path / "data" / "logs").is_dir()
    with pytest.raises(MountError, match='volume "nope" not found'):
        volumes.binds_for(container([{"name": "nope", "mountPath": "/x"}]), paths, set())


def test_refresh_projected_configmap_and_secret(tmp_path: Path) -> None:
    pod = manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "ns"},
        "spec": {"containers": [{"name": "c", "image": "i"}], "volumes": [
            {"name": "cm", "configMap": {"name": "c1", "items": [{"key": "k", "path": "f"}]}},
            {"name": "s", "secret": {"secretName": "s1", "defaultMode": 0o600}},
            {"name": "opt", "configMap": {"name": "gone", "optional": True}},
            {"name": "req", "configMap": {"name": "gone"}}]}}).pod
    cm = manifest.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                             "metadata": {"name": "c1"}, "data": {"k": "v", "other": "o"}})
    sec = manifest.from_dict({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s1"},
                              "data": {"token": "dG9r"}})
    lookups = {"configmaps": lambda ns, n: cm.config_map if n == "c1" else None,
               "secrets": lambda ns, n: sec.secret if n == "s1" else None}
    vols = {v.name: v for v in pod.spec.volumes}
    assert volumes.refresh_projected(pod, vols["cm"], tmp_path / "cm", **lookups)
    assert (tmp_path / "cm" / "f").read_text() == "v"
    assert volumes.refresh_projected(pod, vols["s"], tmp_path / "s", **lookups)
    assert (tmp_path / "s" / "token").read_bytes() == b"tok"
    assert stat.S_IMODE((tmp_path / "s" / "token").stat().st_mode) == 0o600
    volumes.refresh_projected(pod, vols["opt"], tmp_path / "opt", **lookups)
    assert [p.name for p in (tmp_path / "opt").iterdir() if not p.name.startswith("..")] == []
    with pytest.raises(MountError, match='configmap "gone" not found'):
        volumes.refresh_projected(pod, vols["req"], tmp_path / "req", **lookups)
