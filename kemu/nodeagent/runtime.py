"""The container runtime: a small Protocol, and its Docker implementation.

The pod worker, the prober and the NodeAgent service talk only to `ContainerRuntime`; unit
tests give them a fake. `DockerRuntime` uses the low-level docker SDK client (one HTTP call
per operation, no model objects that re-inspect behind our back) and runs every blocking
call on a thread pool, so the event loop never waits on dockerd. Streams that can block for
ever (events, followed logs, exec sessions) get threads of their own instead of pool slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import docker  # type: ignore[import-untyped]
import docker.errors  # type: ignore[import-untyped]

log = logging.getLogger(__name__)
T = TypeVar("T")

SETTLE_SECONDS = 3.0  # how long Docker may take to mark an exit OOMKilled (see ContainerInfo)
SIGKILLED = 137  # 128 + SIGKILL: the exit code of an OOM kill, and of any other kill -9


class ContainerRuntimeError(Exception):
    """Root of the runtime's errors."""


class RuntimeUnavailable(ContainerRuntimeError):
    """The container engine does not answer."""


class ContainerNotFound(ContainerRuntimeError):
    """No such container."""


class ImagePullError(ContainerRuntimeError):
    """An image could not be pulled (and is not present locally)."""


class ImageNotPresent(ContainerRuntimeError):
    """The image is not on this node and the pull policy forbids pulling it."""


class CreateError(ContainerRuntimeError):
    """The engine refused to create or start a container."""


@dataclass(frozen=True)
class ContainerInfo:
    """What the agent needs to know about one container, from `docker inspect`."""

    id: str
    name: str
    labels: Mapping[str, str]
    state: str  # created | running | paused | restarting | removing | exited | dead
    exit_code: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime | None = None
    oom_killed: bool = False
    error: str = ""
    image: str = ""
    image_id: str = ""
    ip: str = ""

    @property
    def running(self) -> bool:
        return self.state in ("running", "paused", "restarting")

    @property
    def exited(self) -> bool:
        return self.state in ("exited", "dead")

    def settle_left(self, now: datetime) -> float:
        """Seconds before Docker's record of this exit can be taken as final; 0 when it is.

        Docker (20.10 with containerd) sets `State.OOMKilled` from containerd's OOM event,
        which can reach the daemon after the exit itself: an inspect just after a SIGKILL
        may still say OOMKilled false. So an exit with code 137 (128 + SIGKILL) that is not
        marked OOMKilled, younger than SETTLE_SECONDS, is not settled: the pod worker does
        not act on it (no terminal phase, no restart, no reason `Error` written) and looks
        again, and the inspect cache does not keep it. Other exit codes, and exits already
        marked OOMKilled, are final at once.

        The memory limit is deliberately not consulted: the cgroup OOM killer needs one,
        but the kernel's global OOM killer does not, and Docker marks either. A plain
        `kill -9` also gives 137 and only costs those few seconds of waiting.

        An OOM event that never comes cannot be waited for: containerd watches a cgroup
        for OOM only once the start has returned, so a process killed in its first
        milliseconds stays OOMKilled false (containerd/containerd#8180). Such an exit
        settles as `Error`, as it does under the kubelet on the same runtime.
        """
        if not self.exited or self.finished_at is None or self.oom_killed \
                or self.exit_code != SIGKILLED:
            return 0.0
        return max(0.0, SETTLE_SECONDS - (now - self.finished_at).total_seconds())

    def exit_settled(self, now: datetime) -> bool:
        """Whether this inspect, taken at `now`, is Docker's final word (see settle_left)."""
        return self.settle_left(now) <= 0


@dataclass
class CreateSpec:
    """A container to create; maps one to one onto Docker's create API."""

    name: str
    image: str
    labels: dict[str, str]
    entrypoint: list[str] | None = None
    command: list[str] | None = None
    env: list[str] = field(default_factory=list)
    working_dir: str = ""
    hostname: str = ""
    network: str = ""  # a network to attach to (the sandbox)
    network_mode: str = ""  # container:<id> for app containers
    ipc_mode: str = ""
    pid_mode: str = ""
    binds: list[str] = field(default_factory=list)
    dns: list[str] = field(default_factory=list)
    dns_search: list[str] = field(default_factory=list)
    dns_opt: list[str] = field(default_factory=list)
    extra_hosts: dict[str, str] = field(default_factory=dict)
    nano_cpus: int = 0
    cpu_shares: int = 0
    mem_limit: int = 0
    tty: bool = False
    stdin_open: bool = False
    user: str = ""
    privileged: bool = False
    cap_add: list[str] = field(default_factory=list)
    cap_drop: list[str] = field(default_factory=list)
    read_only: bool = False
    port_bindings: dict[str, list[tuple[str, int]]] = field(default_factory=dict)


@dataclass(frozen=True)
class RuntimeEvent:
    """A container lifecycle event (start, die, oom, destroy) with the container's labels."""

    action: str
    container_id: str
    labels: Mapping[str, str]


class ExecSession(Protocol):
    """An interactive exec: stdin in, stdout/stderr out, exit code at the end."""

    def output(self) -> AsyncIterator[tuple[int, bytes]]: ...  # (1 stdout | 2 stderr, data)

    async def write(self, data: bytes) -> None: ...

    async def close_stdin(self) -> None: ...

    async def resize(self, width: int, height: int) -> None: ...

    async def exit_code(self) -> int: ...

    async def close(self) -> None: ...


class ContainerRuntime(Protocol):
    """The operations the agent needs from a container engine."""

    async def ping(self) -> None: ...

    async def version(self) -> str: ...

    async def ensure_network(self, name: str, subnet: str, labels: Mapping[str, str], *,
                             masquerade: bool = True) -> None: ...

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]: ...

    async def image_present(self, image: str) -> bool: ...

    async def pull(self, image: str) -> None: ...

    async def create(self, spec: CreateSpec) -> str: ...

    async def start(self, container_id: str) -> None: ...

    async def stop(self, container_id: str, timeout: float) -> None: ...

    async def remove(self, container_id: str) -> None: ...

    def invalidate(self, container_id: str) -> None: ...

    async def inspect(self, container_id: str) -> ContainerInfo: ...

    async def exec(self, container_id: str, command: Sequence[str],
                   timeout: float) -> tuple[int, bytes]: ...

    def logs(self, container_id: str, *, follow: bool, tail: int, timestamps: bool,
             since: int) -> AsyncIterator[bytes]: ...

    async def exec_session(self, container_id: str, command: Sequence[str], *, stdin: bool,
                           tty: bool) -> ExecSession: ...

    def events(self, labels: Mapping[str, str]) -> AsyncIterator[RuntimeEvent]: ...

    async def stats(self, container_id: str) -> Mapping[str, Any]: ...


def _time(text: str | None) -> datetime | None:
    """Docker's RFC 3339 nanosecond timestamps; the zero time means unset."""
    if not text or text.startswith("0001-01-01"):
        return None
    base, _, frac = text.rstrip("Z").partition(".")
    tz = UTC
    if "+" in frac or "-" in frac:  # an offset after the fraction
        frac = frac.replace("+", " ").replace("-", " ").split()[0]
    try:
        dt = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=tz)
    except ValueError:
        return None
    micro = int((frac + "000000")[:6]) if frac else 0
    return dt.replace(microsecond=micro)


def container_info(doc: Mapping[str, Any]) -> ContainerInfo:
    """An inspect document as a ContainerInfo."""
    state = doc.get("State") or {}
    config = doc.get("Config") or {}
    networks = (doc.get("NetworkSettings") or {}).get("Networks") or {}
    ip = next((n.get("IPAddress", "") for n in networks.values() if n.get("IPAddress")), "")
    return ContainerInfo(
        id=doc["Id"], name=doc.get("Name", "").lstrip("/"), labels=config.get("Labels") or {},
        state=state.get("Status", "unknown"), exit_code=int(state.get("ExitCode") or 0),
        started_at=_time(state.get("StartedAt")), finished_at=_time(state.get("FinishedAt")),
        created_at=_time(doc.get("Created")), oom_killed=bool(state.get("OOMKilled")),
        error=state.get("Error") or "", image=config.get("Image", ""),
        image_id=doc.get("Image", ""), ip=ip)


def _label_filters(labels: Mapping[str, str]) -> list[str]:
    return [f"{k}={v}" for k, v in labels.items()]


class DockerRuntime:
    """ContainerRuntime over a real dockerd, through the docker SDK's low-level client."""

    def __init__(self, base_url: str = "", *, threads: int = 64) -> None:
        kwargs: dict[str, Any] = {"version": "auto", "timeout": 120, "max_pool_size": threads}
        self._base_url = base_url or docker.utils.utils.DEFAULT_UNIX_SOCKET
        try:
            self.api = docker.APIClient(base_url=self._base_url, **kwargs)
        except docker.errors.DockerException as e:
            raise RuntimeUnavailable(f"cannot reach Docker at {self._base_url}: {e}") from e
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="docker")
        # container id -> (its last inspect, when it was taken)
        self._inspected: dict[str, tuple[ContainerInfo, datetime]] = {}

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))
        except docker.errors.NotFound as e:
            raise ContainerNotFound(str(e.explanation or e)) from e
        except docker.errors.APIError as e:
            raise ContainerRuntimeError(str(e.explanation or e)) from e
        except (docker.errors.DockerException, OSError) as e:
            raise RuntimeUnavailable(f"Docker at {self._base_url} does not answer: {e}") from e
        except Exception as e:  # requests' connection errors
            if type(e).__module__.startswith(("requests", "urllib3")):
                raise RuntimeUnavailable(
                    f"Docker at {self._base_url} does not answer: {e}") from e
            raise

    async def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(Exception):
            self.api.close()

    async def ping(self) -> None:
        await self._run(self.api.ping)

    async def version(self) -> str:
        v = await self._run(self.api.version)
        return str(v.get("Version", "unknown"))

    async def ensure_network(self, name: str, subnet: str, labels: Mapping[str, str], *,
                             masquerade: bool = True) -> None:
        """A bridge network with `subnet` (gateway .1); `masquerade=False` when the pod
        network masquerades by itself, only for traffic leaving the cluster CIDR."""
        existing = await self._run(self.api.networks, names=[name])
        if any(n.get("Name") == name for n in existing):
            return
        ipam = None
        if subnet:
            import ipaddress

            net = ipaddress.ip_network(subnet, strict=False)
            pool = docker.types.IPAMPool(subnet=str(net), gateway=str(net.network_address + 1))
            ipam = docker.types.IPAMConfig(pool_configs=[pool])
        try:
            options = ({} if masquerade else
                       {"com.docker.network.bridge.enable_ip_masquerade": "false"})
            await self._run(self.api.create_network, name, driver="bridge", ipam=ipam,
                            labels=dict(labels), check_duplicate=True, options=options)
        except ContainerRuntimeError as e:
            if "already exists" not in str(e):
                raise
        log.info("created docker network %s subnet=%s", name, subnet or "(docker's choice)")

    async def network_subnet(self, name: str) -> tuple[str, int] | None:
        """(subnet, number of attached containers) of a network; None when it is absent."""
        try:
            doc = await self._run(self.api.inspect_network, name)
        except ContainerNotFound:
            return None
        configs = (doc.get("IPAM") or {}).get("Config") or []
        subnet = str(configs[0].get("Subnet", "")) if configs else ""
        return subnet, len(doc.get("Containers") or {})

    async def remove_network(self, name: str) -> None:
        with contextlib.suppress(ContainerNotFound):
            await self._run(self.api.remove_network, name)

    async def list_containers(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        rows = await self._run(self.api.containers, all=True,
                               filters={"label": _label_filters(labels)})
        async def one(row: Mapping[str, Any]) -> ContainerInfo | None:
            cached, at = self._inspected.get(row["Id"], (None, None))
            # A container's inspect only changes with its state, except OOMKilled just
            # after an exit: an inspect taken before the exit settled is taken again.
            if cached is not None and at is not None and cached.state == row.get("State") \
                    and cached.exit_settled(at):
                return cached
            try:
                return await self.inspect(row["Id"])
            except ContainerNotFound:
                return None  # removed meanwhile
        found = await asyncio.gather(*(one(r) for r in rows))
        result = [info for info in found if info is not None]
        live = {r["Id"] for r in rows}
        if len(self._inspected) > 4 * max(len(live), 256):
            self._inspected = {k: v for k, v in self._inspected.items() if k in live}
        return result

    def invalidate(self, container_id: str) -> None:
        """Forget a cached inspect (an event says the container changed)."""
        self._inspected.pop(container_id, None)

    async def inspect(self, container_id: str) -> ContainerInfo:
        """A fresh inspect (never the cache), which the cache then keeps."""
        asked = datetime.now(UTC)  # before the call: the document is no older than this
        doc = await self._run(self.api.inspect_container, container_id)
        info = container_info(doc)
        self._inspected[info.id] = (info, asked)
        return info

    async def stats(self, container_id: str) -> Mapping[str, Any]:
        """One `docker stats --no-stream` document. The engine samples the cgroup twice,
        about a second apart, so cpu_stats and precpu_stats give a rate (the call takes
        that second: callers cache it)."""
        doc: Mapping[str, Any] = await self._run(self.api.stats, container_id, stream=False)
        return doc

    async def image_present(self, image: str) -> bool:
        try:
            await self._run(self.api.inspect_image, image)
        except ContainerNotFound:
            return False
        return True

    async def pull(self, image: str) -> None:
        repo, tag = _split_image(image)
        try:
            await self._run(self.api.pull, repo, tag=tag)
        except ContainerRuntimeError as e:
            raise ImagePullError(str(e)) from e

    async def create(self, spec: CreateSpec) -> str:
        host_config = self.api.create_host_config(
            binds=spec.binds or None,
            network_mode=spec.network_mode or spec.network or None,
            ipc_mode=spec.ipc_mode or None, pid_mode=spec.pid_mode or None,
            dns=spec.dns or None, dns_search=spec.dns_search or None,
            dns_opt=spec.dns_opt or None, extra_hosts=spec.extra_hosts or None,
            nano_cpus=spec.nano_cpus or None, cpu_shares=spec.cpu_shares or None,
            mem_limit=spec.mem_limit or None, privileged=spec.privileged,
            cap_add=spec.cap_add or None, cap_drop=spec.cap_drop or None,
            read_only=spec.read_only or None,
            port_bindings={k: v for k, v in spec.port_bindings.items()} or None,
        )
        networking = None
        if spec.network and not spec.network_mode:
            networking = self.api.create_networking_config(
                {spec.network: self.api.create_endpoint_config()})
        try:
            resp = await self._run(
                self.api.create_container, spec.image, command=spec.command,
                entrypoint=spec.entrypoint, environment=spec.env or None,
                working_dir=spec.working_dir or None,
                hostname=spec.hostname or None if not spec.network_mode else None,
                labels=spec.labels, host_config=host_config, name=spec.name,
                networking_config=networking, tty=spec.tty, stdin_open=spec.stdin_open,
                user=spec.user or None,
                ports=[p.split("/")[0] for p in spec.port_bindings] or None)
        except ContainerNotFound as e:
            raise CreateError(str(e)) from e
        except ContainerRuntimeError as e:
            if isinstance(e, RuntimeUnavailable):
                raise
            raise CreateError(str(e)) from e
        return str(resp["Id"])

    async def start(self, container_id: str) -> None:
        try:
            await self._run(self.api.start, container_id)
        except ContainerNotFound:
            raise
        except ContainerRuntimeError as e:
            if isinstance(e, RuntimeUnavailable):
                raise
            raise CreateError(str(e)) from e

    async def stop(self, container_id: str, timeout: float) -> None:
        with contextlib.suppress(ContainerNotFound):
            # Docker counts whole seconds: round up, never give less than the grace period.
            await self._run(self.api.stop, container_id, timeout=max(0, math.ceil(timeout)))

    async def remove(self, container_id: str) -> None:
        self._inspected.pop(container_id, None)
        try:
            await self._run(self.api.remove_container, container_id, force=True, v=True)
        except ContainerNotFound:
            return
        except ContainerRuntimeError as e:
            if "already in progress" in str(e):
                return
            raise

    async def exec(self, container_id: str, command: Sequence[str],
                   timeout: float) -> tuple[int, bytes]:
        def run() -> tuple[int, bytes]:
            ex = self.api.exec_create(container_id, list(command), stdout=True, stderr=True)
            out = self.api.exec_start(ex["Id"])
            code = self.api.exec_inspect(ex["Id"]).get("ExitCode")
            return (int(code) if code is not None else -1), bytes(out or b"")

        return await asyncio.wait_for(self._run(run), timeout)

    async def logs(self, container_id: str, *, follow: bool, tail: int, timestamps: bool,
                   since: int) -> AsyncIterator[bytes]:
        kwargs: dict[str, Any] = {"stream": True, "follow": follow, "timestamps": timestamps,
                                  "tail": tail if tail > 0 else "all"}
        if since > 0:
            kwargs["since"] = since
        stream = await self._run(self.api.logs, container_id, **kwargs)
        async for chunk in _drain_in_thread(stream, getattr(stream, "close", None)):
            yield chunk

    async def exec_session(self, container_id: str, command: Sequence[str], *, stdin: bool,
                           tty: bool) -> ExecSession:
        ex = await self._run(self.api.exec_create, container_id, list(command), stdin=stdin,
                             stdout=True, stderr=True, tty=tty)
        sock = await self._run(self.api.exec_start, ex["Id"], tty=tty, socket=True)
        return _DockerExec(self, ex["Id"], sock, tty)

    async def events(self, labels: Mapping[str, str]) -> AsyncIterator[RuntimeEvent]:
        filters = {"type": ["container"], "label": _label_filters(labels),
                   "event": ["die", "oom", "destroy"]}
        stream = await self._run(self.api.events, filters=filters, decode=True)
        async for ev in _drain_in_thread(stream, getattr(stream, "close", None)):
            actor = ev.get("Actor") or {}
            attrs = actor.get("Attributes") or {}
            yield RuntimeEvent(action=str(ev.get("Action") or ev.get("status") or ""),
                               container_id=str(actor.get("ID") or ev.get("id") or ""),
                               labels=attrs)


def _split_image(image: str) -> tuple[str, str]:
    """`repo[:tag][@digest]` into (repo, tag) as `docker pull` reads it."""
    if "@" in image:
        repo, digest = image.split("@", 1)
        return repo, digest
    name, sep, tag = image.rpartition(":")
    if sep and "/" not in tag:
        return name, tag
    return image, "latest"


async def _drain_in_thread(stream: Iterator[T], close: Callable[[], None] | None
                           ) -> AsyncIterator[T]:
    """Iterate a blocking iterator on a thread of its own, yielding items on the loop.
    Closing the consumer closes the stream, which unblocks the thread."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[bool, Any]] = asyncio.Queue(maxsize=256)
    done = threading.Event()

    def put(item: tuple[bool, Any]) -> None:
        if done.is_set():
            return
        fut = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        with contextlib.suppress(Exception):
            fut.result()

    def pump() -> None:
        try:
            for item in stream:
                if done.is_set():
                    break
                put((False, item))
        except Exception as e:
            put((True, e))
        finally:
            put((True, None))

    threading.Thread(target=pump, daemon=True, name="docker-stream").start()
    try:
        while True:
            is_end, item = await queue.get()
            if is_end:
                if isinstance(item, Exception) and not done.is_set():
                    raise RuntimeUnavailable(f"Docker stream failed: {item}") from item
                return
            yield item
    finally:
        done.set()
        if close is not None:
            with contextlib.suppress(Exception):
                close()
        # Unblock a pump waiting on a full queue.
        while not queue.empty():
            queue.get_nowait()


class _DockerExec:
    """An exec session over Docker's hijacked attach socket.

    Without a TTY Docker multiplexes stdout and stderr with an 8-byte header per frame
    (stream, 0, 0, 0, big-endian size); with a TTY the bytes are raw stdout.
    """

    def __init__(self, runtime: DockerRuntime, exec_id: str, sock: Any, tty: bool) -> None:
        self._runtime = runtime
        self._exec_id = exec_id
        self._raw: socket.socket = getattr(sock, "_sock", sock)
        self._holder = sock
        self._tty = tty

    async def output(self) -> AsyncIterator[tuple[int, bytes]]:
        def frames() -> Iterator[tuple[int, bytes]]:
            buf = b""
            while True:
                try:
                    data = self._raw.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                if self._tty:
                    yield 1, data
                    continue
                buf += data
                while len(buf) >= 8:
                    stream, size = buf[0], struct.unpack(">I", buf[4:8])[0]
                    if len(buf) < 8 + size:
                        break
                    yield (2 if stream == 2 else 1), buf[8:8 + size]
                    buf = buf[8 + size:]

        async for frame in _drain_in_thread(frames(), None):
            yield frame

    async def write(self, data: bytes) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self._raw.sendall, data)

    async def close_stdin(self) -> None:
        """End of input. With a TTY, Docker answers a half-close by closing the output too
        (the command's last words would be lost), so the terminal's own end-of-file, ^D,
        is sent instead, as a user at the keyboard would."""
        with contextlib.suppress(OSError):
            if self._tty:
                await self.write(b"\x04")
            else:
                self._raw.shutdown(socket.SHUT_WR)

    async def resize(self, width: int, height: int) -> None:
        with contextlib.suppress(ContainerRuntimeError):
            await self._runtime._run(self._runtime.api.exec_resize, self._exec_id,
                                     height=height, width=width)

    async def exit_code(self) -> int:
        for _ in range(50):
            doc = await self._runtime._run(self._runtime.api.exec_inspect, self._exec_id)
            if not doc.get("Running") and doc.get("ExitCode") is not None:
                return int(doc["ExitCode"])
            await asyncio.sleep(0.05)
        return -1

    async def close(self) -> None:
        with contextlib.suppress(OSError):
            self._raw.close()
        with contextlib.suppress(Exception):
            self._holder.close()
