"""A lab's image registry: Debian's docker-registry on the lab bridge's host address.

Every node's dockerd uses it as its Docker Hub mirror (`--registry-mirror`), so a pod's
`kemu/bootcamp:v1` is pulled from it exactly as a VM pulls from a registry: the node agent's
pull policy (Always for `:latest`) and `ErrImagePull` for an image nobody pushed behave as
they would on real machines. `kemu up` pushes kemu's images into it and has every node pull
them; `kemu images push` adds the user's own.

Layers live in one cache directory for the whole machine (/var/cache/kemu/registry), which
outlives `kemu down` as built images do: the host's dockerd remembers what it pushed to
127.0.0.1:PORT, so the next cluster's push sends nothing. Each lab runs its own registry
process on its own bridge address, all serving that one directory (blobs are written to a
temporary name and renamed, so concurrent writers are safe).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import signal
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import yaml

from kemu.lab._run import LabError, run
from kemu.lab.dockerd import RUN_ROOT
from kemu.lab.forward import Forwarder

PORT = 5100
"""Not 5000: Debian's docker-registry package starts a system registry on :5000."""


def cache_dir() -> Path:
    """Where the registries keep layers: `registry/` in kemu's cache directory (beside the
    image builds' base tarball and wheelhouse; /var/cache/kemu for root)."""
    from kemu.images.build import cache_dir as kemu_cache

    return kemu_cache() / "registry"


def mirror_repository(ref: str) -> str:
    """The path of a Docker Hub image inside a mirror: `kemu/x:1` -> `kemu/x:1`,
    `busybox` -> `library/busybox:latest`. Images named with another registry's host
    cannot come through a Hub mirror."""
    name, _, digest = ref.partition("@")
    if digest:
        raise LabError(f"{ref}: push an image by tag, not by digest")
    last = name.rsplit("/", 1)[-1]
    repo, tag = (name.rsplit(":", 1) if ":" in last else (name, "latest"))
    first = repo.split("/", 1)[0]
    if "/" in repo and ("." in first or ":" in first or first == "localhost"):
        if first not in ("docker.io", "index.docker.io"):
            raise LabError(f"{ref}: names registry {first}; lab nodes mirror Docker Hub "
                           f"only, so tag the image without a registry host "
                           f"(docker tag {ref} {repo.split('/', 1)[1]}:{tag})")
        repo = repo.split("/", 1)[1]
    if "/" not in repo:
        repo = f"library/{repo}"
    return f"{repo}:{tag}"


@dataclass(frozen=True)
class RegistryPaths:
    """Where one lab's registry keeps its config, pid and log (not its layers)."""

    lab: str

    @property
    def run_dir(self) -> Path:
        return RUN_ROOT / f"{self.lab}-registry"

    @property
    def config(self) -> Path:
        return self.run_dir / "config.yml"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "registry.pid"

    @property
    def log(self) -> Path:
        return self.run_dir / "registry.log"


def _config(address: str, storage: Path) -> dict[str, object]:
    return {
        "version": 0.1,
        "log": {"level": "warn", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)},
                    "cache": {"blobdescriptor": "inmemory"}},
        "http": {"addr": address},
    }


def answers(address: str, timeout: float = 2.0) -> bool:
    """Whether a registry at `address` (HOST:PORT) serves the v2 API."""
    try:
        with urllib.request.urlopen(f"http://{address}/v2/", timeout=timeout) as resp:
            return int(resp.status) == 200
    except (OSError, urllib.error.URLError):
        return False


def _pid(paths: RegistryPaths) -> int | None:
    try:
        pid = int(paths.pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def start(lab: str, host: str, *, port: int = PORT, timeout: float = 15.0) -> str:
    """Start (or keep) lab `lab`'s registry on `host:port`; return that address."""
    address = f"{host}:{port}"
    paths = RegistryPaths(lab)
    if _pid(paths) is not None and answers(address):
        return address
    stop(lab)
    binary = shutil.which("docker-registry")
    if binary is None:
        raise LabError("docker-registry not found: apt-get install docker-registry "
                       "(scripts/ensure-docker.sh installs it)")
    storage = cache_dir()
    storage.mkdir(parents=True, exist_ok=True)
    paths.run_dir.mkdir(parents=True, exist_ok=True)
    paths.config.write_text(yaml.safe_dump(_config(address, storage)))
    with paths.log.open("ab") as log:
        proc = subprocess.Popen([binary, "serve", str(paths.config)], stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    paths.pidfile.write_text(str(proc.pid))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = paths.log.read_text(errors="replace").strip().splitlines()[-1:]
            stop(lab)
            raise LabError(f"docker-registry on {address} exited: {' '.join(tail)}")
        if answers(address):
            return address
        time.sleep(0.1)
    stop(lab)
    raise LabError(f"docker-registry did not answer on {address} within {timeout:.0f}s")


def stop(lab: str, *, timeout: float = 10.0) -> None:
    """Stop lab `lab`'s registry, found by its pid file (it may have been started by an
    earlier `kemu up`), and remove its run directory; the layer cache stays."""
    paths = RegistryPaths(lab)
    pid = _pid(paths)
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(paths.run_dir, ignore_errors=True)
    with contextlib.suppress(OSError):
        RUN_ROOT.rmdir()


@contextlib.contextmanager
def _push_lock() -> Iterator[None]:
    """One push at a time on this machine: they share the loopback port."""
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / ".push.lock", "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def _forwarder(host: str, port: int) -> Forwarder:
    try:
        return Forwarder(("127.0.0.1", PORT), (host, port))
    except OSError as e:
        raise LabError(f"cannot listen on 127.0.0.1:{PORT} to push to the lab registry "
                       f"({e.strerror}): is another program using that port?") from None


def push(refs: Sequence[str], address: str, *, timeout: float = 300.0) -> None:
    """Push images from the host's engine into the lab registry at `address`, under the
    names a Docker Hub mirror serves them by, through the loopback forwarder."""
    host, _, port = address.rpartition(":")
    targets = [(ref, mirror_repository(ref)) for ref in refs]
    with _push_lock(), _forwarder(host, int(port)) as fwd:
        push_as(targets, f"127.0.0.1:{fwd.address[1]}", timeout=timeout)


def push_as(targets: Sequence[tuple[str, str]], registry: str, *,
            timeout: float = 300.0) -> list[str]:
    """Tag each (image, repository:tag) as `registry/repository:tag` on the host's engine,
    push it, and drop the extra tag again; return the pushed names. The engine must
    trust `registry` (TLS, loopback, or its daemon.json's insecure-registries)."""
    pushed = []
    for ref, repo in targets:
        alias = f"{registry}/{repo}"
        run(["docker", "tag", ref, alias])
        try:
            run(["docker", "push", "--quiet", alias], timeout=timeout)
        finally:
            run(["docker", "rmi", alias], check=False)
        pushed.append(alias)
    return pushed


def pull(refs: Sequence[str], docker_host: str, *, timeout: float = 300.0) -> None:
    """Have the engine at `docker_host` (a node's) pull `refs` through its mirror."""
    for ref in refs:
        run(["docker", "--host", docker_host, "pull", "--quiet", ref], timeout=timeout)
