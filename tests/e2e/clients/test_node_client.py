"""The Node.js examples (examples/node) run for real against kemu, with @grpc/grpc-js and
the npm etcd3 library, and checked from the Python client and etcdctl as well as by what
they print.

deployment.js drives a Deployment on a 2-node lab cluster through create, watch, scale,
logs and a foreground delete; the pods' history is then replayed with a Python watch from
the revision before the run, so that "3 pods were Running" is the cluster's word, not the
script's. etcd.js works the cluster's store, and etcdctl reads what it left. errors.js
shows the status codes and the google.rpc.Status details of a Conflict and an Invalid
object. Against a separate apiserver with `--token-file`, errors.js waits out an apiserver
that is not up yet (a read retried while UNAVAILABLE) and sends KEMU_TOKEN, and without the
token fails with one line. Node.js and npm come from Debian when missing; `npm ci` runs
only when examples/node/package-lock.json changed since the last install.
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from kemu.api.v1 import api_pb2
from kemu.client import Client
from kemu.client.errors import NotFound
from tests.support import processes
from tests.support.labcluster import LabCluster, lab_cluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples" / "node"
LOCK = EXAMPLES / "package-lock.json"
# Written after a successful `npm ci`: the hash of the package-lock.json it installed.
STAMP = EXAMPLES / "node_modules" / ".kemu-package-lock.sha256"
SUBNET = "198.18.238.0/24"
IMAGES = ["kemu/pause:3.9", "kemu/bootcamp:v1"]
NAMESPACE = "default"


def _ensure_command(command: str, package: str) -> str:
    """`command`, installed from Debian's `package` with apt-get when missing (as
    scripts/ensure-docker.sh installs its packages)."""
    if shutil.which(command) is None and os.geteuid() == 0:
        opts = ["-y", "-qq", "--no-install-recommends"]
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        if subprocess.run(["apt-get", "install", *opts, package], env=env,
                          capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], env=env, capture_output=True)
            subprocess.run(["apt-get", "install", *opts, package], env=env,
                           capture_output=True)
    path = shutil.which(command)
    if path is None:
        pytest.skip(f"needs {command} (Debian package {package})")
    return path


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with examples/node's packages installed from its package-lock."""
    node = _ensure_command("node", "nodejs")
    npm = _ensure_command("npm", "npm")
    want = hashlib.sha256(LOCK.read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text().strip() != want:
        done = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=EXAMPLES,
                              capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise AssertionError(f"npm ci exited {done.returncode}:\n{done.stdout}\n"
                                 f"{done.stderr}")
        STAMP.write_text(want + "\n")
    return node


def _env(**values: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEMU_")}
    return {**env, **values}


def run_node(node: str, script: str, *, timeout: float = 120,
             **env: str) -> subprocess.CompletedProcess[str]:
    """`node script` in examples/node; its output is echoed for pytest's report."""
    done = subprocess.run([node, script], cwd=EXAMPLES, env=_env(**env), capture_output=True,
                          text=True, timeout=timeout)
    print(f"$ node {script}\n{done.stdout}{done.stderr}")
    return done


def _output(done: subprocess.CompletedProcess[str]) -> str:
    return f"exit {done.returncode}\nstdout:\n{done.stdout}\nstderr:\n{done.stderr}"


@pytest.fixture(scope="module")
def cl(node: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip("needs root and dockerd for a lab")
    tmp = tmp_path_factory.mktemp("nodelab")
    with lab_cluster(tmp, nodes=2, subnet=SUBNET, images=IMAGES) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def api(cl: LabCluster) -> Iterator[Client]:
    with cl.client() as c:
        yield c


def _pod_history(api: Client, selector: str, since: str) -> tuple[int, set[str]]:
    """Replays the pods' events after revision `since` until none is left: the most pods
    Running at once, and the names of every pod that ran."""
    present: set[str] = set()
    running: set[str] = set()
    ran: set[str] = set()
    most = 0
    for event in api.watch("pods", NAMESPACE, label_selector=selector, resource_version=since,
                           timeout=60):
        pod = event.object.pod
        name = pod.metadata.name
        deleted = event.type == api_pb2.WatchEvent.DELETED
        (present.discard if deleted else present.add)(name)
        if not deleted and pod.status.phase == "Running" \
                and not pod.metadata.HasField("deletion_timestamp"):
            running.add(name)
            ran.add(name)
        else:
            running.discard(name)
        most = max(most, len(running))
        if not present:
            break
    return most, ran


def test_deployment_scenario(cl: LabCluster, api: Client, node: str) -> None:
    name = f"node-{secrets.token_hex(3)}"
    selector = f"app={name}"
    since = api.list("pods", NAMESPACE, label_selector=selector).resource_version
    done = run_node(node, "deployment.js", timeout=600, KEMU_SERVER=cl.apiserver,
                    KEMU_DEPLOYMENT=name)
    out = done.stdout
    assert done.returncode == 0, _output(done)
    assert f"create: deployment {NAMESPACE}/{name}, 2 replicas of kemu/bootcamp:v1" in out
    ready = re.findall(r"^ready: (\d)/(\d) pods Running after [\d.]+s: (.+)$", out, re.M)
    assert [(r[0], r[1]) for r in ready] == [("2", "2"), ("3", "3")], out
    three = set(ready[1][2].split())
    assert len(three) == 3 and set(ready[0][2].split()) < three, out
    # Every pod's way to Running was printed as a transition.
    for pod in three:
        assert re.search(rf"^  pod {pod}: (ADDED |.* -> )Running on {cl.lab.name}-node-\d$",
                         out, re.M), out
    assert f"scale: deployment {NAMESPACE}/{name} to 3 replicas" in out
    logged = re.search(r"^logs: pod (\S+), following", out, re.M)
    assert logged and logged.group(1) in three, out
    lines = [line for line in out.splitlines() if line.startswith("  | ")]
    assert any("Kubernetes Bootcamp App Started At:" in line for line in lines), out
    assert re.search(r"^logs: [1-9]\d* line\(s\), stream closed$", out, re.M), out
    assert f"gone: deployment {NAMESPACE}/{name} and its pods" in out
    assert out.rstrip().endswith("done"), out

    # The cluster's own record: 3 pods were Running at once, the ones the script named.
    most, ran = _pod_history(api, selector, since)
    assert most == 3, (most, ran)
    assert three <= ran, (three, ran)
    # And nothing of the Deployment is left.
    assert list(api.list("pods", NAMESPACE, label_selector=selector).items) == []
    assert list(api.list("replicasets", NAMESPACE, label_selector=selector).items) == []
    with pytest.raises(NotFound):
        api.get("deployments", name, NAMESPACE)


def _etcdctl(store: str, *args: str) -> str:
    etcdctl = _ensure_command("etcdctl", "etcd-client")
    done = subprocess.run([etcdctl, f"--endpoints=http://{store}", *args],
                          env={**os.environ, "ETCDCTL_API": "3"}, capture_output=True,
                          text=True, timeout=30)
    assert done.returncode == 0, f"etcdctl {' '.join(args)}: {done.stderr}"
    return done.stdout


def test_etcd_client(cl: LabCluster, node: str) -> None:
    store = next(p.address for p in cl.procs if p.name == "store")
    prefix = f"/node-demo-{secrets.token_hex(3)}/"
    done = run_node(node, "etcd.js", KEMU_STORE=store, KEMU_ETCD_PREFIX=prefix)
    out = done.stdout
    assert done.returncode == 0, _output(done)
    for expected in (f"get: {prefix}a=v1",
                     f"range: prefix {prefix}: 3 key(s): {prefix}a=v1 {prefix}b=v1 {prefix}c=v1",
                     f"watch: saw put {prefix}a=v2",
                     f"txn: if {prefix}a==v2 then put v3: succeeded=true",
                     f"txn: if {prefix}a==v2 then put v4: succeeded=false, else read "
                     f"{prefix}a=v3",
                     f"delete: {prefix}b: deleted=1",
                     f"left: {prefix}a=v3 {prefix}c=v1"):
        assert expected in out, out
    # etcdctl, a Go client, sees what the Node client left: key, value, key, value.
    assert _etcdctl(store, "get", "--prefix", prefix).split() == [
        f"{prefix}a", "v3", f"{prefix}c", "v1"]
    assert _etcdctl(store, "del", "--prefix", prefix).strip() == "2"


@pytest.fixture(scope="module")
def errors_out(cl: LabCluster, node: str) -> str:
    done = run_node(node, "errors.js", KEMU_SERVER=cl.apiserver)
    assert done.returncode == 0, _output(done)
    return done.stdout


def test_errors_codes(errors_out: str) -> None:
    assert re.search(r"^conflict: ABORTED: Operation cannot be fulfilled on configmaps "
                     r'"errors-demo-\w+": the object has been modified', errors_out, re.M), \
        errors_out
    assert re.search(r'^invalid: INVALID_ARGUMENT: Deployment.apps "errors-demo-\w+" is '
                     r"invalid: \[spec.replicas: .*spec.template.spec.containers\[0\].image: "
                     r"Required value\]$", errors_out, re.M), errors_out


def test_errors_details(errors_out: str) -> None:
    if "details: none (no grpc-status-details-bin trailer)" in errors_out:
        pytest.skip("this apiserver sends no google.rpc.Status details in "
                    "grpc-status-details-bin yet: only the details are unchecked")
    conflict, invalid = errors_out.split("\ninvalid: creating", 1)
    info = re.search(r"^  ErrorInfo: reason=Conflict domain=kemu.io metadata=(\{.*\})$",
                     conflict, re.M)
    assert info and '"name":"errors-demo-' in info.group(1), errors_out
    info = re.search(r"^  ErrorInfo: reason=Invalid domain=kemu.io metadata=(\{.*\})$",
                     invalid, re.M)
    assert info, errors_out
    assert '"kind":"Deployment"' in info.group(1) and '"group":"apps"' in info.group(1)
    violations = re.findall(r"^  BadRequest: (\S+): (.*)$", invalid, re.M)
    assert [v[0] for v in violations] == ["spec.replicas",
                                          "spec.template.spec.containers[0].image"], errors_out
    assert violations[1][1] == "Required value", errors_out


def test_token_and_read_retry(node: str, tmp_path: Path) -> None:
    """errors.js started before its apiserver retries its first read until the server is
    up, sending KEMU_TOKEN; without the token it exits 1 with one line."""
    token = secrets.token_hex(16)
    (tmp_path / "tokens").write_text(f"{token}\n")
    port = processes.free_port()
    server = f"127.0.0.1:{port}"
    out_file = tmp_path / "errors.out"
    with open(out_file, "w") as out, subprocess.Popen(
            [node, "errors.js"], cwd=EXAMPLES, stdout=out, stderr=subprocess.STDOUT,
            env=_env(KEMU_SERVER=server, KEMU_TOKEN=token)) as proc:
        try:
            wait_for(lambda: "retry: Version UNAVAILABLE" in out_file.read_text(), 20,
                     "errors.js retrying a server that is not up yet")
            store = processes.kemu_store(tmp_path)
            apiserver = processes.kemu_apiserver(tmp_path, store.address, port=port, extra=(
                "--token-file", str(tmp_path / "tokens")))
            with processes.running(store, apiserver):
                assert proc.wait(timeout=60) == 0, out_file.read_text()
                text = out_file.read_text()
                assert f"connected: {server}, kemu " in text and "with a bearer token" in text
                assert "conflict: ABORTED" in text and "invalid: INVALID_ARGUMENT" in text
                denied = run_node(node, "errors.js", KEMU_SERVER=server)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert denied.returncode == 1, _output(denied)
    assert denied.stdout == "", _output(denied)
    assert re.fullmatch(r"error: UNAUTHENTICATED: Unauthorized: .*\n", denied.stderr), \
        _output(denied)
