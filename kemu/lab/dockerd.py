"""One dockerd per lab namespace, each with its own socket, data, exec root and containerd.

Why these choices:
- `nsenter --net=` only switches the network namespace. `ip netns exec` also remounts
  /sys, which hides /sys/fs/cgroup from dockerd and breaks container start.
- Docker's default bridge (docker0, 172.17/16) and its iptables rules live inside the
  namespace (netfilter is per namespace), so every node gets the same 172.17/16 without
  conflicts and the host's tables are never touched.
- No `--containerd`: dockerd then starts its own containerd with state under
  `<exec-root>/containerd` and `<data-root>/containerd`, so nodes never share container
  state with each other or with the host's engine.
- `--shutdown-timeout 1` and removing containers before SIGTERM keep stop fast: dockerd
  would otherwise wait 10 s per container whose pid 1 ignores SIGTERM (`sleep`).
- A SIGKILLed dockerd takes containerd and the shims down but not the containers' own
  processes, which keep running in cgroups `docker/<id>` shared with the host's engine.
  `reap_containers` finds them by the ids in the node's own data root, kills them and
  removes their cgroups, so no process or cgroup outlives the lab.
- dockerd bind-mounts its data root onto itself; a clean exit undoes it, a SIGKILL does
  not, so `cleanup_dirs` unmounts anything left under our directories before rm -rf.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from kemu.lab._run import LabError, run

CGROUP_ROOT = Path("/sys/fs/cgroup")
RUN_ROOT = Path("/run/kemu-lab")
DATA_ROOT = Path("/var/lib/kemu-lab")


@dataclass(frozen=True)
class DockerdPaths:
    """Where one node's dockerd keeps everything; all of it is removed on stop."""

    name: str

    @property
    def run_dir(self) -> Path:
        return RUN_ROOT / self.name

    @property
    def data_dir(self) -> Path:
        return DATA_ROOT / self.name

    @property
    def socket(self) -> Path:
        return self.run_dir / "docker.sock"

    @property
    def pidfile(self) -> Path:
        return self.run_dir / "docker.pid"

    @property
    def exec_root(self) -> Path:
        return self.run_dir / "exec"

    @property
    def data_root(self) -> Path:
        return self.data_dir / "docker"

    @property
    def log(self) -> Path:
        return self.run_dir / "dockerd.log"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"


def dockerd_argv(paths: DockerdPaths, netns_path: str, registry: str | None = None
                 ) -> list[str]:
    """The command line that starts a node's dockerd inside its network namespace; with
    `registry` (HOST:PORT, plain HTTP), that registry is the engine's Docker Hub mirror."""
    mirror = (["--registry-mirror", f"http://{registry}", "--insecure-registry", registry]
              if registry else [])
    return [
        "nsenter", f"--net={netns_path}", "--",
        "dockerd",
        "--host", paths.docker_host,
        "--data-root", str(paths.data_root),
        "--exec-root", str(paths.exec_root),
        "--pidfile", str(paths.pidfile),
        "--shutdown-timeout", "1",
        *mirror,
    ]


@dataclass
class Dockerd:
    """A running node dockerd: its process and its paths."""

    paths: DockerdPaths
    proc: subprocess.Popen[bytes]

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def docker_host(self) -> str:
        return self.paths.docker_host

    def docker(self, *args: str, timeout: float = 60.0) -> str:
        """Run the docker CLI against this node's engine."""
        return run(["docker", "--host", self.docker_host, *args], timeout=timeout)


def start(name: str, netns_path: str, *, timeout: float = 30.0,
          registry: str | None = None) -> Dockerd:
    """Start dockerd for namespace `name` and wait until `docker version` answers."""
    paths = DockerdPaths(name)
    for directory in (paths.run_dir, paths.data_dir):
        directory.mkdir(parents=True, exist_ok=True)
    with paths.log.open("wb") as log:
        # nsenter execs dockerd, so proc.pid is dockerd's pid; own session so signals
        # sent to the test's terminal do not reach it before our finally blocks run.
        proc = subprocess.Popen(
            dockerd_argv(paths, netns_path, registry),
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    d = Dockerd(paths, proc)
    try:
        wait_ready(d, timeout=timeout)
    except BaseException:
        stop(d)
        raise
    return d


def wait_ready(d: Dockerd, *, timeout: float) -> None:
    """Poll `docker version` on the node socket until it answers or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if d.proc.poll() is not None:
            raise LabError(f"dockerd {d.paths.name} exited {d.proc.returncode}: {_tail(d)}")
        if d.paths.socket.exists():
            try:
                d.docker("version", "--format", "{{.Server.Version}}", timeout=5)
                return
            except (LabError, subprocess.TimeoutExpired) as e:
                last = str(e)
        time.sleep(0.2)
    raise LabError(f"dockerd {d.paths.name} not ready in {timeout}s: {last} {_tail(d)}")


def _tail(d: Dockerd, lines: int = 15) -> str:
    """The end of the dockerd log, for error messages."""
    try:
        return "\n".join(d.paths.log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def leftover_pids(paths: DockerdPaths) -> list[int]:
    """Processes whose command line names this node's private directories: its containerd
    and shims, which outlive a dockerd that was SIGKILLed. The paths are unique to the
    node, so these are ours and no one else's."""
    needles = (f"{paths.run_dir}/".encode(), f"{paths.data_dir}/".encode())
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if any(n in cmd for n in needles) and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def stop(d: Dockerd, *, timeout: float = 15.0) -> None:
    """Remove the node's containers, SIGTERM dockerd, SIGKILL it (and its containerd) if it
    lingers, then remove its directories. Safe to call twice."""
    if d.proc.poll() is None:
        with contextlib.suppress(LabError, subprocess.TimeoutExpired):
            ids = d.docker("ps", "-aq", timeout=10).split()
            if ids:
                d.docker("rm", "-f", *ids, timeout=30)
        d.proc.send_signal(signal.SIGTERM)
        try:
            d.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            d.proc.kill()
            d.proc.wait(timeout=10)
    # containerd exits with dockerd; if dockerd was killed it may not have.
    for pid in leftover_pids(d.paths):
        _wait_gone_or_kill(pid, timeout=5.0)
    reap_containers(d.paths)
    cleanup_dirs(d.paths)


def stop_detached(paths: DockerdPaths, *, timeout: float = 15.0) -> None:
    """`stop` for a dockerd this process did not start (a lab made by an earlier `kemu
    up`): found by its pid file and its private directories. Safe when it is gone."""
    if paths.socket.exists():
        with contextlib.suppress(LabError, subprocess.TimeoutExpired):
            ids = run(["docker", "--host", paths.docker_host, "ps", "-aq"],
                      timeout=10).split()
            if ids:
                run(["docker", "--host", paths.docker_host, "rm", "-f", *ids], timeout=30)
    pid = None
    with contextlib.suppress(OSError, ValueError):
        pid = int(paths.pidfile.read_text().strip())
    if pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        _wait_gone_or_kill(pid, timeout=timeout)
    for leftover in leftover_pids(paths):
        _wait_gone_or_kill(leftover, timeout=5.0)
    reap_containers(paths)
    cleanup_dirs(paths)


def container_cgroups(container_id: str) -> list[Path]:
    """The cgroup directories Docker's cgroupfs driver makes for a container: `docker/<id>`
    under each v1 controller, or under the v2 root."""
    roots = [CGROUP_ROOT, *(p for p in CGROUP_ROOT.iterdir() if p.is_dir())]
    return [r / "docker" / container_id for r in roots
            if (r / "docker" / container_id).is_dir()]


def reap_containers(paths: DockerdPaths) -> None:
    """Kill processes left in the cgroups of this node's containers and remove those
    cgroups. The ids come from the node's own data root, so only its containers are hit."""
    containers = paths.data_root / "containers"
    try:
        ids = [e.name for e in containers.iterdir() if len(e.name) == 64]
    except OSError:
        return
    for cid in ids:
        groups = container_cgroups(cid)
        for _ in range(50):
            pids = set()
            for g in groups:
                with contextlib.suppress(OSError, ValueError):
                    pids |= {int(p) for p in (g / "cgroup.procs").read_text().split()}
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.1)
        for g in groups:
            with contextlib.suppress(OSError):
                g.rmdir()


def _wait_gone_or_kill(pid: int, *, timeout: float) -> None:
    """Wait for `pid` (a child of ours we cannot reap) to go, else SIGKILL it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def mounts_under(root: Path) -> list[str]:
    """Mount points at or below `root`, deepest first (so they can be unmounted in order)."""
    prefix = str(root)
    found: list[str] = []
    with open("/proc/self/mounts") as f:
        for line in f:
            point = line.split()[1].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(point)
    return sorted(set(found), key=lambda p: p.count("/"), reverse=True)


def cleanup_dirs(paths: DockerdPaths) -> None:
    """Unmount what dockerd left under its dirs, then remove them (and empty parents)."""
    for root in (paths.run_dir, paths.data_dir):
        for point in mounts_under(root):
            run(["umount", "-l", point], check=False)
        shutil.rmtree(root, ignore_errors=True)
    for parent in (RUN_ROOT, DATA_ROOT):
        with contextlib.suppress(OSError):
            parent.rmdir()
