"""The lab registry's pieces that need no registry: Hub-mirror names, the nodes' dockerd
flags, and the loopback forwarder the host's engine pushes through."""

from __future__ import annotations

import socket
import threading

import pytest

from kemu.lab._run import LabError
from kemu.lab.dockerd import DockerdPaths, dockerd_argv
from kemu.lab.forward import Forwarder
from kemu.lab.registry import mirror_repository


@pytest.mark.parametrize(("ref", "repo"), [
    ("kemu/bootcamp:v1", "kemu/bootcamp:v1"),
    ("kemu/kemu", "kemu/kemu:latest"),
    ("busybox", "library/busybox:latest"),
    ("busybox:1.36", "library/busybox:1.36"),
    ("docker.io/kemu/tools:1", "kemu/tools:1"),
    ("docker.io/nginx:1", "library/nginx:1"),
    ("team/app/web:2", "team/app/web:2"),
])
def test_hub_names_map_to_the_mirror_path(ref: str, repo: str) -> None:
    assert mirror_repository(ref) == repo


@pytest.mark.parametrize("ref", ["quay.io/x/y:1", "localhost:5000/app:1", "reg.lab/app"])
def test_other_registries_cannot_come_through_a_hub_mirror(ref: str) -> None:
    with pytest.raises(LabError, match="names registry"):
        mirror_repository(ref)


def test_digest_refs_are_refused() -> None:
    with pytest.raises(LabError, match="by tag"):
        mirror_repository("kemu/x@sha256:" + "0" * 64)


def test_node_dockerd_mirrors_the_lab_registry() -> None:
    argv = dockerd_argv(DockerdPaths("n"), "/run/netns/n", "198.18.250.1:5100")
    joined = " ".join(argv)
    assert "--registry-mirror http://198.18.250.1:5100" in joined
    assert "--insecure-registry 198.18.250.1:5100" in joined
    assert "--registry-mirror" not in " ".join(dockerd_argv(DockerdPaths("n"), "/run/netns/n"))


def _echo_server() -> tuple[socket.socket, threading.Thread]:
    """Reads until the client half-closes, then answers with what it got, upper-cased."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        conn.sendall(data.upper())
        conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return server, thread


def test_forwarder_carries_a_large_body_and_the_half_close() -> None:
    server, thread = _echo_server()
    body = b"layer" * 400_000  # 2 MB, more than one chunk each way
    with (Forwarder(("127.0.0.1", 0), server.getsockname()) as fwd,
          socket.create_connection(fwd.address, timeout=5) as c):
        c.sendall(body)
        c.shutdown(socket.SHUT_WR)
        got = b""
        while chunk := c.recv(65536):
            got += chunk
    thread.join(timeout=5)
    server.close()
    assert got == body.upper()


def test_forwarder_frees_its_port_when_done() -> None:
    with Forwarder(("127.0.0.1", 0), ("127.0.0.1", 9)) as fwd:
        port = fwd.address[1]
    socket.create_server(("127.0.0.1", port)).close()
