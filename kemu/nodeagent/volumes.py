"""Pod volumes on the node's filesystem, bind-mounted into the pod's containers.

emptyDir and the projected kinds (configMap, secret, downwardAPI) live under the pod's
directory `<data-dir>/pods/<uid>/volumes/<name>`; hostPath is the host path itself (with
the kubelet's type checks); persistentVolumeClaim is the claim's directory made by the
local-path provisioner (`pvc.py`).

ConfigMap and Secret files are written the way the kubelet's AtomicWriter does: the data
goes into a fresh timestamped directory, a `..data` symlink is swapped to it atomically, and
each visible name is a symlink through `..data`. A container therefore sees either the old
set of files or the new one, never a mix, and a change to the object reaches running
containers without a restart (the bind mount is of the directory, not of the files).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DATA_LINK = "..data"
DEFAULT_MODE = 0o644


class MountError(Exception):
    """A volume cannot be set up (FailedMount); the pod waits in ContainerCreating."""


@dataclass(frozen=True)
class FileSpec:
    """One file to project: its bytes and permission bits."""

    data: bytes
    mode: int


def project(data: Mapping[str, bytes], items: Iterable[Any], default_mode: int | None, *,
            kind: str, name: str, optional: bool) -> dict[str, FileSpec]:
    """The files of a configMap or secret volume: every key, or only `items` (key -> path,
    with an optional mode each). Missing keys fail unless the source is optional."""
    mode = DEFAULT_MODE if default_mode is None else default_mode
    chosen = list(items)
    files: dict[str, FileSpec] = {}
    if not chosen:
        for key, value in data.items():
            files[key] = FileSpec(value, mode)
        return files
    for item in chosen:
        if item.key not in data:
            if optional:
                continue
            raise MountError(f"{kind} references non-existent config key: {item.key}")
        path = _clean(item.path)
        files[path] = FileSpec(data[item.key], item.mode if item.HasField("mode") else mode)
    return files


def _clean(path: str) -> str:
    """A relative path that stays inside the volume (no `..`, no absolute paths)."""
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or any(p == ".." for p in parts) or path.startswith("/"):
        raise MountError(f"invalid path {path!r}: must be relative and may not contain '..'")
    return "/".join(parts)


def _read_current(target: Path) -> dict[str, FileSpec] | None:
    data_dir = target / DATA_LINK
    if not data_dir.is_symlink():
        return None
    result: dict[str, FileSpec] = {}
    root = data_dir.resolve()
    for dirpath, _dirs, names in os.walk(root):
        for n in names:
            p = Path(dirpath) / n
            rel = str(p.relative_to(root))
            result[rel] = FileSpec(p.read_bytes(), stat.S_IMODE(p.stat().st_mode))
    return result


def atomic_write(target: Path, files: Mapping[str, FileSpec]) -> bool:
    """Make `target` hold exactly `files`; True when anything changed."""
    target.mkdir(parents=True, exist_ok=True)
    current = _read_current(target)
    if current == dict(files):
        return False
    stamp = time.strftime("..%Y_%m_%d_%H_%M_%S.", time.gmtime()) + f"{time.time_ns() % 10**9}"
    fresh = target / stamp
    fresh.mkdir()
    for rel, spec in files.items():
        p = fresh / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(spec.data)
        os.chmod(p, spec.mode)
    old_target = os.readlink(target / DATA_LINK) if (target / DATA_LINK).is_symlink() else None
    tmp_link = target / "..data_tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp_link.unlink()
    os.symlink(stamp, tmp_link)
    os.replace(tmp_link, target / DATA_LINK)
    wanted = {rel.split("/", 1)[0] for rel in files}
    for top in wanted:
        link = target / top
        if link.is_symlink() and os.readlink(link) == f"{DATA_LINK}/{top}":
            continue
        if link.exists() or link.is_symlink():
            if link.is_dir() and not link.is_symlink():
                shutil.rmtree(link)
            else:
                link.unlink()
        os.symlink(f"{DATA_LINK}/{top}", link)
    for entry in target.iterdir():
        if entry.name.startswith(".."):
            continue
        if entry.is_symlink() and entry.name not in wanted:
            entry.unlink()
    if old_target and old_target != stamp:
        shutil.rmtree(target / old_target, ignore_errors=True)
    return True


def check_host_path(path: str, kind: str) -> None:
    """The kubelet's hostPath type checks, creating what *OrCreate asks for."""
    p = Path(path)
    if kind == "DirectoryOrCreate":
        if not p.exists():
            p.mkdir(parents=True, mode=0o755)
        kind = "Directory"
    elif kind == "FileOrCreate":
        if not p.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
            p.touch(mode=0o644)
        kind = "File"
    checks: dict[str, tuple[Callable[[Path], bool], str]] = {
        "Directory": (Path.is_dir, "directory"),
        "File": (Path.is_file, "file"),
        "Socket": (Path.is_socket, "socket"),
        "CharDevice": (Path.is_char_device, "character device"),
        "BlockDevice": (Path.is_block_device, "block device"),
    }
    if kind in checks:
        check, what = checks[kind]
        if not p.exists():
            raise MountError(f"hostPath type check failed: {path} is not a {what}")
        if not check(p):
            raise MountError(f"hostPath type check failed: {path} is not a {what}")


def downward_files(pod: Any, items: Iterable[Any], default_mode: int | None) -> dict[str, FileSpec]:
    """downwardAPI volume files from metadata fields (labels and annotations as the
    kubelet formats them: `key="value"` lines)."""
    mode = DEFAULT_MODE if default_mode is None else default_mode
    files: dict[str, FileSpec] = {}
    for item in items:
        path = item.field_ref.field_path
        m = pod.metadata
        if path == "metadata.labels":
            text = "\n".join(f'{k}="{v}"' for k, v in sorted(m.labels.items()))
        elif path == "metadata.annotations":
            text = "\n".join(f'{k}="{v}"' for k, v in sorted(m.annotations.items()))
        elif path == "metadata.name":
            text = m.name
        elif path == "metadata.namespace":
            text = m.namespace
        elif path == "metadata.uid":
            text = m.uid
        else:
            text = ""
        files[_clean(item.path)] = FileSpec(text.encode(), item.mode if item.HasField("mode")
                                            else mode)
    return files


ClaimResolver = Callable[[str, str], Any]  # (namespace, claim) -> awaitable host path


def pod_dir(data_dir: Path, uid: str) -> Path:
    return data_dir / "pods" / uid


def refresh_projected(pod: Any, vol: Any, target: Path, *,
                      configmaps: Callable[[str, str], Any | None],
                      secrets: Callable[[str, str], Any | None]) -> bool:
    """(Re)write a configMap, secret or downwardAPI volume; True when files changed."""
    ns = pod.metadata.namespace
    which = vol.WhichOneof("source")
    if which == "config_map":
        src = vol.config_map
        cm = configmaps(ns, src.name)
        if cm is None:
            if src.optional:
                return atomic_write(target, {})
            raise MountError(f'configmap "{src.name}" not found')
        data = {k: v.encode() for k, v in cm.data.items()}
        data.update(dict(cm.binary_data))
        mode = src.default_mode if src.HasField("default_mode") else None
        files = project(data, src.items, mode, kind="configmap", name=src.name,
                        optional=src.optional)
    elif which == "secret":
        ssrc = vol.secret
        sec = secrets(ns, ssrc.secret_name)
        if sec is None:
            if ssrc.optional:
                return atomic_write(target, {})
            raise MountError(f'secret "{ssrc.secret_name}" not found')
        mode = ssrc.default_mode if ssrc.HasField("default_mode") else None
        files = project(dict(sec.data), ssrc.items, mode, kind="secret",
                        name=ssrc.secret_name, optional=ssrc.optional)
    elif which == "downward_api":
        d = vol.downward_api
        files = downward_files(pod, d.items, d.default_mode if d.HasField("default_mode")
                               else None)
    else:
        return False
    return atomic_write(target, files)


async def prepare(pod: Any, data_dir: Path, *, configmaps: Callable[[str, str], Any | None],
                  secrets: Callable[[str, str], Any | None], claims: ClaimResolver
                  ) -> dict[str, Path]:
    """Set up every volume of the pod; the host path of each, by volume name. MountError
    names the first volume that cannot be set up, as the kubelet's FailedMount does."""
    base = pod_dir(data_dir, pod.metadata.uid) / "volumes"
    paths: dict[str, Path] = {}
    for vol in pod.spec.volumes:
        which = vol.WhichOneof("source")
        target = base / vol.name
        try:
            if which == "empty_dir":
                target.mkdir(parents=True, exist_ok=True)
                os.chmod(target, 0o777)
                paths[vol.name] = target
            elif which == "host_path":
                check_host_path(vol.host_path.path, vol.host_path.type)
                paths[vol.name] = Path(vol.host_path.path)
            elif which in ("config_map", "secret", "downward_api"):
                refresh_projected(pod, vol, target, configmaps=configmaps, secrets=secrets)
                paths[vol.name] = target
            elif which == "persistent_volume_claim":
                paths[vol.name] = await claims(pod.metadata.namespace,
                                               vol.persistent_volume_claim.claim_name)
            else:
                raise MountError(f"volume type {which} is not supported by this node")
        except MountError as e:
            raise MountError(f'MountVolume.SetUp failed for volume "{vol.name}" : {e}') from e
        except OSError as e:
            raise MountError(f'MountVolume.SetUp failed for volume "{vol.name}" : {e}') from e
    return paths


def binds_for(container: Any, volume_paths: Mapping[str, Path], read_only_volumes: set[str]
              ) -> list[str]:
    """Docker bind specs (`host:container[:ro]`) for a container's volumeMounts."""
    binds: list[str] = []
    for m in container.volume_mounts:
        host = volume_paths.get(m.name)
        if host is None:
            raise MountError(f'volume "{m.name}" not found in the pod\'s volumes')
        if m.sub_path:
            host = host / _clean(m.sub_path)
            if not host.exists():
                host.mkdir(parents=True, exist_ok=True)
        ro = m.read_only or m.name in read_only_volumes
        binds.append(f"{host}:{m.mount_path}{':ro' if ro else ''}")
    return binds
