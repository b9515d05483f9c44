"""The images `kemu images build` makes, checked as a user would: on a real dockerd, by
running them. Every container started here is labelled and removed by id, pass or fail.

The first build may take a minute or two (debootstrap, pip wheels) on a fresh machine;
later ones find everything up to date, which is asserted too.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
import requests

from kemu.images.build import LABEL_HASH, LABEL_IMAGE, build_images, kemu_version

ROOT = Path(__file__).resolve().parents[3]
TEST_LABEL = {"io.kemu.test": "images"}
GREETING = "Hello Kubernetes bootcamp! | Running on: {host} | v={version}"

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


def _wait_for(what: str, probe: Callable[[], Any], *, timeout: float = 20.0) -> Any:
    """Poll `probe` until it returns something truthy; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@pytest.fixture(scope="module")
def client() -> Iterator[docker.DockerClient]:
    """A client of the local dockerd, started by scripts/ensure-docker.sh when needed."""
    res = subprocess.run(["bash", str(ROOT / "scripts" / "ensure-docker.sh")],
                         capture_output=True, text=True, timeout=900, check=False)
    assert res.returncode == 0, f"ensure-docker.sh failed: {res.stderr.strip()}"
    c = docker.from_env(version="auto", timeout=120)
    yield c
    c.close()


@pytest.fixture(scope="module")
def built(client: docker.DockerClient) -> list[str]:
    """Every image, built (or found up to date) once for the module."""
    return build_images(progress=lambda line: None)


@pytest.fixture
def containers(client: docker.DockerClient) -> Iterator[list[str]]:
    """Ids of the containers a test starts; each is force-removed at the end."""
    ids: list[str] = []
    yield ids
    for cid in ids:
        with contextlib.suppress(docker.errors.NotFound):
            client.api.remove_container(cid, force=True)


@pytest.fixture
def start(client: docker.DockerClient,
          containers: list[str]) -> Callable[..., Any]:
    """Start a detached container (removed after the test) and return it."""
    def _start(image: str, command: list[str] | None = None, **kwargs: Any) -> Any:
        c = client.containers.create(image, command, labels=TEST_LABEL, **kwargs)
        containers.append(c.id)
        c.start()
        c.reload()
        return c
    return _start


@pytest.fixture
def run(start: Callable[..., Any]) -> Callable[..., tuple[int, str]]:
    """`docker run --rm IMAGE CMD...`: exit code and output (stdout and stderr)."""
    def _run(image: str, command: list[str] | None = None, *, timeout: float = 60,
             **kwargs: Any) -> tuple[int, str]:
        c = start(image, command, **kwargs)
        status = c.wait(timeout=timeout)
        return int(status["StatusCode"]), c.logs().decode(errors="replace")
    return _run


def _ip(container: Any) -> str:
    container.reload()
    ip = container.attrs["NetworkSettings"]["IPAddress"]
    assert ip, f"container {container.short_id} has no IP on the default bridge"
    return str(ip)


def _serving(start: Callable[..., Any], image: str) -> tuple[Any, str]:
    """Start a bootcamp container; return it once its port answers, with its IP."""
    app = start(image)
    ip = _ip(app)

    def answers() -> bool:
        app.reload()
        if app.status != "running":
            pytest.fail(f"{image} exited: {app.logs().decode(errors='replace')}")
        try:
            return requests.get(f"http://{ip}:8080/", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    _wait_for(f"{image} to answer on {ip}:8080", answers)
    return app, ip


def test_every_image_is_built_and_labelled(client: docker.DockerClient,
                                           built: list[str]) -> None:
    version = kemu_version(ROOT)
    expected = {"kemu/base:bookworm", "kemu/pause:3.9", "kemu/tools:1", "kemu/bootcamp:v1",
                "kemu/bootcamp:1", "kemu/bootcamp:v2", "kemu/bootcamp:2",
                f"kemu/kemu:{version}", "kemu/kemu:latest"}
    assert expected <= set(built)
    for ref in expected:
        labels = client.images.get(ref).labels or {}
        assert labels.get(LABEL_IMAGE) == "1", ref
        assert len(labels.get(LABEL_HASH, "")) == 64, ref
    assert client.images.get("kemu/bootcamp:1").id == client.images.get("kemu/bootcamp:v1").id


def test_second_build_rebuilds_nothing_and_is_fast(built: list[str]) -> None:
    lines: list[str] = []
    started = time.monotonic()
    again = build_images(progress=lines.append)
    elapsed = time.monotonic() - started
    assert again == built
    assert not [ln for ln in lines if ln.startswith(("building", "built", "kemu/base:"))], lines
    assert all(ln.startswith("up to date: ") for ln in lines), lines
    assert elapsed < 5, f"an up-to-date build took {elapsed:.1f}s"


def test_tools_has_the_applets(built: list[str], run: Callable[..., tuple[int, str]]) -> None:
    code, out = run("kemu/tools:1", ["sh", "-c", "for a in sh nslookup nc ping wget curl; do "
                                     "command -v $a || exit 1; done"])
    assert code == 0, out
    paths = dict(zip(["sh", "nslookup", "nc", "ping", "wget", "curl"], out.split(),
                     strict=True))
    assert paths["wget"] == "/usr/local/bin/wget"  # ours, not busybox's (it crashes here)
    assert paths["curl"] == "/usr/local/bin/curl"


def test_tools_nslookup_resolves_a_container_name(
        client: docker.DockerClient, built: list[str], start: Callable[..., Any],
        run: Callable[..., tuple[int, str]]) -> None:
    # Docker's embedded DNS on a user-defined network is a real DNS server to ask.
    net = client.networks.create(f"kemu-images-test-{os.getpid()}", labels=TEST_LABEL)
    try:
        target = start("kemu/tools:1", network=net.name, name=f"kemu-dns-target-{os.getpid()}")
        target_ip = target.attrs["NetworkSettings"]["Networks"][net.name]["IPAddress"]
        code, out = run("kemu/tools:1", ["nslookup", target.name], network=net.name)
        assert code == 0, out
        assert target_ip in out, out
    finally:
        for c in client.containers.list(all=True, filters={"network": net.id}):
            c.remove(force=True)
        net.remove()


def test_tools_nc_talks_to_nc(built: list[str], start: Callable[..., Any],
                              run: Callable[..., tuple[int, str]]) -> None:
    # stdin stays open (docker run -i): on EOF there, nc would half-close towards the client,
    # which may then quit before it has sent its line.
    server = start("kemu/tools:1", ["nc", "-l", "-p", "9000"], stdin_open=True)
    ip = _ip(server)
    deadline = time.monotonic() + 20
    while True:  # the listener may not be up yet: retry until it takes the line
        code, out = run("kemu/tools:1", ["sh", "-c", f"echo hello-nc | nc -w 2 {ip} 9000"])
        if code == 0 or time.monotonic() > deadline:
            break
    assert code == 0, out
    assert server.wait(timeout=10)["StatusCode"] == 0
    assert server.logs().decode().strip() == "hello-nc"


@pytest.mark.parametrize(("image", "version"), [
    pytest.param("kemu/bootcamp:v1", "1", id="v1"),
    pytest.param("kemu/bootcamp:v2", "2", id="v2"),
    pytest.param("kemu/bootcamp:1", "1", id="alias-1"),
])
def test_bootcamp_answers_tools_wget_over_the_bridge(
        built: list[str], start: Callable[..., Any], run: Callable[..., tuple[int, str]],
        image: str, version: str) -> None:
    app, ip = _serving(start, image)
    hostname = app.attrs["Config"]["Hostname"]
    code, out = run("kemu/tools:1", ["wget", "-q", "-O", "-", f"http://{ip}:8080/"])
    assert code == 0, out
    assert out == GREETING.format(host=hostname, version=version) + "\n"
    code, out = run("kemu/tools:1", ["curl", "-s", f"http://{ip}:8080/any/path"])
    assert code == 0, out
    assert out == GREETING.format(host=hostname, version=version) + "\n"
    # one log line per request, as the real bootcamp image
    _wait_for("the request log lines",
              lambda: app.logs().decode().count("Total Requests:") >= 3)


def test_tools_http_clients_report_failure(built: list[str], start: Callable[..., Any],
                                           run: Callable[..., tuple[int, str]]) -> None:
    _, ip = _serving(start, "kemu/bootcamp:v1")
    code, _ = run("kemu/tools:1", ["wget", "-q", "-O", "-", f"http://{ip}:8081/"])
    assert code != 0
    code, _ = run("kemu/tools:1", ["curl", "-s", "-m", "5", f"http://{ip}:8081/"])
    assert code != 0


def test_bootcamp_stops_promptly_on_sigterm(built: list[str],
                                            start: Callable[..., Any]) -> None:
    app, _ = _serving(start, "kemu/bootcamp:v1")
    started = time.monotonic()
    app.stop(timeout=10)
    assert time.monotonic() - started < 2
    app.reload()
    assert app.attrs["State"]["ExitCode"] == 0


def test_pause_keeps_running_and_stops_within_two_seconds(
        client: docker.DockerClient, built: list[str], start: Callable[..., Any]) -> None:
    pause = start("kemu/pause:3.9")
    assert pause.status == "running"
    with pytest.raises(requests.exceptions.ConnectionError):  # read timeout: still running
        pause.wait(timeout=1)
    pause.reload()
    assert pause.status == "running"
    started = time.monotonic()
    pause.stop(timeout=10)
    assert time.monotonic() - started < 2
    pause.reload()
    assert pause.attrs["State"]["ExitCode"] == 0


def test_pause_image_holds_only_the_binary(client: docker.DockerClient,
                                           built: list[str]) -> None:
    image = client.images.get("kemu/pause:3.9")
    assert image.attrs["Config"]["Entrypoint"] == ["/pause"]
    assert len(image.attrs["RootFS"]["Layers"]) == 1
    assert image.attrs["Size"] < 2_000_000


def test_kemu_image_prints_usage(built: list[str], run: Callable[..., tuple[int, str]]) -> None:
    code, out = run("kemu/kemu:latest", ["--help"])
    assert code == 0, out
    assert out.startswith("usage: kemu"), out


def test_kemu_image_has_the_node_agent_tools(built: list[str],
                                             run: Callable[..., tuple[int, str]]) -> None:
    code, out = run("kemu/kemu:latest", ["-c", "ip -V && iptables --version"],
                    entrypoint=["sh"])
    assert code == 0, out
    assert "iproute2" in out and "iptables v" in out, out
