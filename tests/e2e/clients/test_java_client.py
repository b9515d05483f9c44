"""The Java client example (examples/java) built with Debian's grpc-java and run for real.

examples/java/build.sh compiles protos/kemu/v1 with protoc and Debian's grpc-java plugin
and links against Debian's jars (Maven Central is not reachable here); the packages are
installed with apt-get when missing, and the build is skipped while its inputs are
unchanged. KemuDeployment drives a Deployment on a 2-node lab cluster through create,
watch, scale, logs and a foreground delete; the pods' history is then replayed with a
Python watch from the revision before the run, so that "3 pods were Running" is the
cluster's word, not the program's. Against a separate apiserver with `--token-file`, the
program sends KEMU_TOKEN, fails with one line without it, reports a wait that times out
and deletes what it created; an unreachable apiserver is one line after the read retries.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemu.api import manifest
from kemu.api.v1 import api_pb2
from kemu.client import Client
from kemu.client.errors import NotFound
from tests.support import processes
from tests.support.labcluster import LabCluster, lab_cluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "java"
SUBNET = "198.18.237.0/24"
IMAGES = ["kemu/pause:3.9", "kemu/bootcamp:v1"]
NAME = "hello-java"
# What build.sh needs, as it lists them.
PACKAGES = ("default-jdk-headless", "protobuf-compiler", "libprotobuf-dev",
            "protobuf-compiler-grpc-java-plugin", "libprotobuf-java", "libgrpc-java",
            "libnetty-java", "libperfmark-java", "libgoogle-gson-java",
            "libgoogle-common-protos-java", "libjsr305-java",
            "libgeronimo-annotation-1.3-spec-java")


def _missing_packages() -> list[str]:
    got = subprocess.run(["dpkg-query", "-W", "-f=${Package} ${db:Status-Status}\n",
                          *PACKAGES], capture_output=True, text=True).stdout
    installed = {line.split()[0] for line in got.splitlines() if line.endswith(" installed")}
    return [p for p in PACKAGES if p not in installed]


def _ensure_packages() -> None:
    """Debian's JDK, protoc and grpc-java, installed with apt-get when missing (as
    scripts/ensure-docker.sh installs its packages)."""
    if shutil.which("dpkg-query") is None:
        pytest.skip("needs Debian's packages: " + " ".join(PACKAGES))
    missing = _missing_packages()
    if missing and os.geteuid() == 0:
        opts = ["-y", "-qq", "--no-install-recommends"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", *opts, *missing], env=env,
                          capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", *opts, *missing], env=env,
                           capture_output=True)
        missing = _missing_packages()
    if missing:
        pytest.skip("needs Debian packages " + " ".join(missing))


@pytest.fixture(scope="module")
def program() -> list[str]:
    """The built example: `java -jar examples/java/build/kemu-examples.jar`."""
    _ensure_packages()
    done = subprocess.run(["bash", str(EXAMPLE / "build.sh")], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, f"build.sh failed:\n{done.stdout}\n{done.stderr}"
    return ["java", "-jar", str(EXAMPLE / "build" / "kemu-examples.jar")]


def run(program: list[str], server: str, *, timeout: float = 420,
        **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KEMU_")}
    return subprocess.run(program, env={**environ, "KEMU_SERVER": server, **env},
                          capture_output=True, text=True, timeout=timeout)


def explain(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"


def one_error_line(done: subprocess.CompletedProcess[str]) -> str:
    """The program failed with exactly one line on stderr, and no stack trace."""
    assert done.returncode == 1, explain(done)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kemu-java: error: "), explain(done)
    return lines[0]


@pytest.fixture(scope="module")
def cl(tmp_path_factory: pytest.TempPathFactory, program: list[str]) -> Iterator[LabCluster]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip("needs root and dockerd for a lab")
    with lab_cluster(tmp_path_factory.mktemp("javalab"), nodes=2, subnet=SUBNET,
                     images=IMAGES) as cluster:
        yield cluster


def replay_pods(api: Client, since: str) -> tuple[int, set[str]]:
    """Watch the example's pods from `since` until they are all gone again; return the
    most that were Running at once (not terminating) and the names ever seen Running."""
    pods: dict[str, str] = {}
    ever_running: set[str] = set()
    most, seen = 0, False
    for ev in api.watch("pods", "default", label_selector=f"app={NAME}",
                        resource_version=since, timeout=60):
        pod = ev.object.pod
        name = pod.metadata.name
        if ev.type == api_pb2.WatchEvent.DELETED:
            pods.pop(name, None)
        else:
            seen = True
            terminating = pod.metadata.HasField("deletion_timestamp")
            pods[name] = "Terminating" if terminating else pod.status.phase
            if pods[name] == "Running":
                ever_running.add(name)
        most = max(most, sum(1 for s in pods.values() if s == "Running"))
        if seen and not pods:
            break
    return most, ever_running


def test_deployment_scenario_on_a_lab(cl: LabCluster, program: list[str]) -> None:
    with cl.client() as api:
        before = api.list("pods", "default").resource_version
        done = run(program, cl.apiserver, KEMU_WAIT_SECONDS="240")
        assert done.returncode == 0, explain(done)
        out = done.stdout
        assert done.stderr == "", explain(done)

        # What it printed, in order: connect, create, 2 Running, scale, 3 Running, logs,
        # delete, pods gone, Deployment gone.
        steps = [f"connected to {cl.apiserver} (kemu ", f"created deployment default/{NAME}",
                 "2/2 pods Running: ", f"scaled deployment default/{NAME} to 3 replicas",
                 "3/3 pods Running: ", "logs of pod ", "  | ", "deleting deployment",
                 f"all pods of default/{NAME} are gone", f"deployment default/{NAME} is gone",
                 "done"]
        at = 0
        for step in steps:
            found = out.find(step, at)
            assert found >= 0, f"{step!r} missing or out of order\n{explain(done)}"
            at = found + len(step)
        transitions = re.findall(r"^  pod (\S+): (\S+) -> (\S+)", out, re.M)
        assert any(after == "Running" for _, _, after in transitions), out
        assert any(after == "(deleted)" for _, _, after in transitions), out
        line = re.search(r"^3/3 pods Running: (.+)$", out, re.M)
        assert line is not None, out
        running = set(line.group(1).split(", "))
        assert len(running) == 3, out
        logged = re.search(r"^logs of pod (\S+) ", out, re.M)
        assert logged is not None and logged.group(1) in running, out
        assert "  | Kubernetes Bootcamp App Started At: " in out, out

        # The cluster's word: 3 of its pods Running at once, the ones it named.
        most, ever_running = replay_pods(api, before)
        assert most == 3, f"at most {most} pods Running at once\n{out}"
        assert running <= ever_running, (running, ever_running)

        # Nothing left: the Deployment, its ReplicaSet and its pods are gone.
        with pytest.raises(NotFound):
            api.get("deployments", NAME, "default")
        assert not api.list("replicasets", "default", label_selector=f"app={NAME}").items
        assert not api.list("pods", "default", label_selector=f"app={NAME}").items


class Output(threading.Thread):
    """Collects a running program's stdout lines as they come."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        super().__init__(daemon=True)
        self.proc = proc
        self.lines: list[str] = []

    def run(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)

    def wait_line(self, start: str, timeout: float) -> None:
        wait_for(lambda: any(line.startswith(start) for line in self.lines), timeout,
                 f"the program to print {start!r}; it printed:\n{self.text()}")


def running_pod(api: Client, name: str) -> None:
    """A pod of the Deployment, Running: with no controller manager, no scheduler and no
    node here, the test plays them."""
    pod = api.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": NAME}},
        "spec": {"nodeName": "node-x",
                 "containers": [{"name": "bootcamp", "image": "kemu/bootcamp:v1"}]}}))
    pod.pod.status.phase = "Running"
    api.update_status(pod)


def test_token_resume_timeout_and_cleanup(tmp_path: Path, program: list[str]) -> None:
    """Against an apiserver that wants a token and has no nodes: refused without the token;
    with it, a watch that outlives an apiserver restart, then a wait that times out."""
    token = "java-example-token"
    tokens = tmp_path / "tokens"
    tokens.write_text(token + "\n")
    store = processes.kemu_store(tmp_path)
    port = processes.free_port()

    def apiserver(name: str) -> processes.Proc:
        return processes.kemu_apiserver(tmp_path, store.address, port=port, name=name,
                                        extra=("--token-file", str(tokens)))
    first = apiserver("apiserver-1")
    with processes.running(store, first):
        refused = run(program, first.address, timeout=120)
        assert "UNAUTHENTICATED" in one_error_line(refused), explain(refused)

        env = {k: v for k, v in os.environ.items() if not k.startswith("KEMU_")}
        env |= {"KEMU_SERVER": first.address, "KEMU_TOKEN": token, "KEMU_WAIT_SECONDS": "20"}
        proc = subprocess.Popen(program, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        out = Output(proc)
        out.start()
        try:
            out.wait_line("waiting for 2 pods Running", 60)
            # The apiserver goes away under the open watch and comes back on the same
            # address; the program resumes its watch and sees the pods made meanwhile.
            first.stop()
            second = apiserver("apiserver-2")
            with processes.running(second), Client(second.address, token=token) as api:
                running_pod(api, f"{NAME}-a")
                running_pod(api, f"{NAME}-b")
                out.wait_line("2/2 pods Running: ", 60)
                # Scaled to 3, but no third pod comes: the wait times out, is reported in
                # one line, and the Deployment it created is deleted.
                proc.wait(timeout=60)
                out.join(timeout=10)
                assert proc.stderr is not None
                done = subprocess.CompletedProcess(program, proc.returncode, out.text(),
                                                   proc.stderr.read())
                error = one_error_line(done)
                assert "DEADLINE_EXCEEDED: timed out after 20s waiting for 3 pods Running" \
                    in error, explain(done)
                assert f"scaled deployment default/{NAME} to 3 replicas" in done.stdout
                assert f"cleaned up: deleted deployment default/{NAME}" in done.stdout
                with pytest.raises(NotFound):
                    api.get("deployments", NAME, "default")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_unreachable_apiserver_is_one_line(program: list[str]) -> None:
    server = f"127.0.0.1:{processes.free_port()}"
    done = run(program, server, timeout=120, KEMU_RETRY_SECONDS="2")
    error = one_error_line(done)
    assert f"UNAVAILABLE: cannot reach the apiserver at {server}" in error, error
    assert done.stdout == "", explain(done)
