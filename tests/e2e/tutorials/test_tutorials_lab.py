"""The Kubernetes tutorials, typed into kemuctl as a student types them into kubectl, on a
2-node lab with cluster DNS running as pods.

- "Learn Kubernetes Basics" (the bootcamp): `run`, `create deployment`, `expose` on a
  NodePort, `scale` with requests from the host spreading over the replicas, `set image`,
  `rollout status` and `rollout undo`, an image that cannot be pulled and its undo, and
  `delete service -l`, each answer checked as the tutorial shows it.
- app-service: a Service created before its Deployment (`create -f ... --record`,
  Endpoints `<none>`), the name looked up from a busybox pod (`run -i --tty ... --
  nslookup`, without a terminal, as in CI), the Deployment filling the Endpoints,
  `logs -f`, `apply -f` of an edited manifest and `rollout undo`.
- a two-tier app configured by a ConfigMap and a Secret (examples/tutorials/two-tier.yaml):
  the frontend's NodePort answers from the host through the backend, which it finds by
  its Service's name; `exec ... -- env` shows what each tier got.

Every wait has a deadline, every loop a bounded count; traffic goes only to the lab's node
IPs and pods. The lab and everything in it is removed at the end.
"""

from __future__ import annotations

import base64
import collections
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kemu.api import manifest
from kemu.cli import addons
from kemu.client import Client
from tests.support.labcluster import PYTHON, LabCluster, lab_cluster, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

SUBNET = "198.18.253.0/24"
IMAGES = ["kemu/pause:3.9", "kemu/tools:1", "kemu/bootcamp:v1", "kemu/bootcamp:v2",
          "kemu/kemu:latest"]
EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "tutorials"
BOOTCAMP = "kubernetes-bootcamp"
HELLO = re.compile(r"^Hello Kubernetes bootcamp! \| Running on: (\S+) \| v=(\d+)$")
NO_TTY = "Unable to use a TTY - input is not a terminal or the right kind of file"
PROMPT_HINT = "If you don't see a command prompt, try pressing enter."


@pytest.fixture(scope="module")
def cl(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabCluster]:
    if os.geteuid() != 0 or shutil.which("dockerd") is None:
        pytest.skip("needs root and dockerd for a lab")
    tmp = tmp_path_factory.mktemp("tutorials")
    with lab_cluster(tmp, nodes=2, subnet=SUBNET, images=IMAGES) as cluster:
        # Cluster DNS as pods, as kubeadm installs CoreDNS, before any tutorial pod: pods
        # get nameserver 10.96.0.10 once the kube-dns Service exists.
        with cluster.client() as api:
            for doc in (addons.dns_service(), addons.dns_deployment("kemu/kemu:latest",
                                                                   replicas=1)):
                api.create(manifest.from_dict(doc))
            wait_for(lambda: endpoints(api, "kube-dns", "kube-system"), 120,
                     "a ready kube-dns pod")
        yield cluster


@pytest.fixture(scope="module")
def api(cl: LabCluster) -> Iterator[Client]:
    with cl.client() as c:
        yield c


def kemuctl(cl: LabCluster, *args: str, check: bool = True, timeout: float = 120
            ) -> subprocess.CompletedProcess[str]:
    """kemuctl as typed in a terminal-less shell: stdin is an empty pipe, not a TTY."""
    return cl.kemuctl(*args, check=check, timeout=timeout, stdin="")


def lines(cl: LabCluster, *args: str) -> list[str]:
    return kemuctl(cl, *args).stdout.splitlines()


def table(text: str) -> list[dict[str, str]]:
    """A kubectl table as rows of column -> cell, cut at the header's column starts (a
    header such as NOMINATED NODE holds a space; columns are 3 or more spaces apart)."""
    header, *rows = text.splitlines()
    columns = [(m.group(), m.start()) for m in re.finditer(r"\S+(?: \S+)*", header)]
    ends = [start for _, start in columns[1:]] + [None]
    return [{name: row[start:end].strip() for (name, start), end in zip(columns, ends,
                                                                         strict=True)}
            for row in rows]


def endpoints(api: Client, name: str, ns: str = "default") -> set[str]:
    ep = api.get("endpoints", name, ns).endpoints
    return {f"{a.ip}:{p.port}" for s in ep.subsets for a in s.addresses for p in s.ports}


def live_pods(api: Client, selector: str) -> list[str]:
    return sorted(p.pod.metadata.name for p in api.list("pods", "default",
                                                        label_selector=selector).items
                  if not p.pod.metadata.HasField("deletion_timestamp"))


def get(url: str) -> str | None:
    """One request from the host; the body, or None when it failed."""
    try:
        with urllib.request.urlopen(url, timeout=3) as r:
            return str(r.read().decode().strip())
    except OSError:
        return None


def node_urls(cl: LabCluster, node_port: int) -> list[str]:
    return [f"http://{n.ip}:{node_port}/" for n in cl.lab.nodes]


def sample(urls: list[str], count: int) -> list[str | None]:
    """`count` requests, alternating over the nodes."""
    return [get(urls[i % len(urls)]) for i in range(count)]


def bootcamp_answers(urls: list[str], count: int) -> list[tuple[str, str]] | None:
    """(pod, version) of `count` answers in a row, or None if any failed or was not the
    bootcamp's greeting."""
    found = []
    for body in sample(urls, count):
        m = HELLO.match(body or "")
        if m is None:
            return None
        found.append((m.group(1), m.group(2)))
    return found


def all_answers_are(urls: list[str], version: str) -> Callable[[], bool]:
    def check() -> bool:
        got = bootcamp_answers(urls, 10)
        return got is not None and {v for _, v in got} == {version}
    return check


def node_port(cl: LabCluster, service: str) -> int:
    # As the tutorial reads it: export NODE_PORT="$(kubectl get services/kubernetes-bootcamp
    # -o go-template='{{(index .spec.ports 0).nodePort}}')"
    out = kemuctl(cl, "get", f"services/{service}", "-o",
                  "go-template={{(index .spec.ports 0).nodePort}}").stdout
    assert out.isdigit(), out
    return int(out)


def test_bootcamp_run_creates_a_pod(cl: LabCluster, api: Client) -> None:
    """The tutorial's older first step: `kubectl run` makes a bare Pod in current kubectl."""
    assert lines(cl, "run", BOOTCAMP, "--image=kemu/bootcamp:v1", "--port=8080") == [
        f"pod/{BOOTCAMP} created"]

    def running() -> bool:
        rows = table(kemuctl(cl, "get", "pods").stdout)
        return [(r["NAME"], r["READY"], r["STATUS"]) for r in rows] == [
            (BOOTCAMP, "1/1", "Running")]
    wait_for(running, 90, "the pod Running in `get pods`")
    pod = api.get("pods", BOOTCAMP, "default").pod
    (c,) = pod.spec.containers
    assert dict(pod.metadata.labels) == {"run": BOOTCAMP}
    assert (c.name, c.image, [p.container_port for p in c.ports]) == (
        BOOTCAMP, "kemu/bootcamp:v1", [8080])
    # The app answers on the pod's port, from inside the pod (the tutorial's curl).
    body = kemuctl(cl, "exec", BOOTCAMP, "--", "python3", "-c",
                   "import urllib.request as u; "
                   "print(u.urlopen('http://localhost:8080/').read().decode(), end='')").stdout
    assert body == f"Hello Kubernetes bootcamp! | Running on: {BOOTCAMP} | v=1\n"
    assert lines(cl, "delete", "pod", BOOTCAMP) == [f'pod "{BOOTCAMP}" deleted']


def test_bootcamp_deployment_expose_scale_update(cl: LabCluster, api: Client) -> None:
    deploy = f"deployment.apps/{BOOTCAMP}"
    # Module 2: create a Deployment.
    assert lines(cl, "create", "deployment", BOOTCAMP, "--image=kemu/bootcamp:v1",
                 "--port=8080") == [f"{deploy} created"]

    def ready(replicas: int) -> Callable[[], bool]:
        def check() -> bool:
            (row,) = table(kemuctl(cl, "get", "deployments").stdout)
            return (row["NAME"], row["READY"], row["UP-TO-DATE"], row["AVAILABLE"]) == (
                BOOTCAMP, f"{replicas}/{replicas}", str(replicas), str(replicas))
        return check
    wait_for(ready(1), 90, "`get deployments` showing 1/1")
    assert kemuctl(cl, "get", "deployments").stdout.split("\n")[0].split() == [
        "NAME", "READY", "UP-TO-DATE", "AVAILABLE", "AGE"]
    (pod_row,) = table(kemuctl(cl, "get", "pods").stdout)
    assert pod_row["NAME"].startswith(f"{BOOTCAMP}-") and pod_row["STATUS"] == "Running"
    # Module 3: export POD_NAME="$(kubectl get pods -o go-template --template
    # '{{range .items}}{{.metadata.name}}{{"\n"}}{{end}}')"
    assert kemuctl(cl, "get", "pods", "-o", "go-template", "--template",
                   '{{range .items}}{{.metadata.name}}{{"\\n"}}{{end}}').stdout == \
        f"{pod_row['NAME']}\n"

    # Module 4: expose it on a NodePort; requests from the host reach the pod.
    assert lines(cl, "expose", f"deployment/{BOOTCAMP}", "--type=NodePort", "--port",
                 "8080") == [f"service/{BOOTCAMP} exposed"]
    np = node_port(cl, BOOTCAMP)
    rows = {r["NAME"]: r for r in table(kemuctl(cl, "get", "services").stdout)}
    assert (rows[BOOTCAMP]["TYPE"], rows[BOOTCAMP]["PORT(S)"]) == ("NodePort",
                                                                   f"8080:{np}/TCP")
    described = kemuctl(cl, "describe", f"services/{BOOTCAMP}").stdout
    assert re.search(rf"^NodePort:\s+<unset>\s+{np}/TCP$", described, re.M), described
    assert re.search(r"^Endpoints:\s+10\.244\.\d+\.\d+:8080$", described, re.M), described
    urls = node_urls(cl, np)
    first = wait_for(lambda: bootcamp_answers(urls, 4), 30, "the NodePort answering")
    assert set(first) == {(pod_row["NAME"], "1")}

    # Module 3's label step, then Module 5: scale up, and the requests spread.
    pod = pod_row["NAME"]
    assert lines(cl, "label", "pods", pod, "version=v1") == [f"pod/{pod} labeled"]
    assert [r["NAME"] for r in table(kemuctl(cl, "get", "pods", "-l",
                                             "version=v1").stdout)] == [pod]
    assert lines(cl, "scale", f"deployments/{BOOTCAMP}", "--replicas=3") == [
        f"{deploy} scaled"]
    wait_for(ready(3), 90, "`get deployments` showing 3/3")
    pods = set(live_pods(api, f"app={BOOTCAMP}"))
    assert len(pods) == 3
    wide = table(kemuctl(cl, "get", "pods", "-o", "wide").stdout)
    assert {r["NAME"] for r in wide} == pods and {r["STATUS"] for r in wide} == {"Running"}
    wait_for(lambda: len(endpoints(api, BOOTCAMP)) == 3, 30, "three endpoints")
    # Each node's rules follow the Endpoints within a moment; requests paced over up to
    # 30 s reach every pod.
    seen: collections.Counter[str] = collections.Counter()
    deadline = time.monotonic() + 30
    for i in range(300):
        if set(seen) == pods or time.monotonic() > deadline:
            break
        m = HELLO.match(get(urls[i % 2]) or "")
        if m:
            seen[m.group(1)] += 1
        time.sleep(0.05)
    assert set(seen) == pods, f"answers came from {seen}, not from every pod of {pods}"

    assert lines(cl, "scale", f"deployments/{BOOTCAMP}", "--replicas=2") == [
        f"{deploy} scaled"]
    wait_for(lambda: ready(2)() and len(live_pods(api, f"app={BOOTCAMP}")) == 2, 90,
             "two replicas")
    wait_for(lambda: len(endpoints(api, BOOTCAMP)) == 2, 30, "two endpoints")

    # Module 6: rolling update. `kubectl create deployment` names the container after the
    # image, so with kemu/bootcamp it is `bootcamp`, not the tutorial's
    # `kubernetes-bootcamp` (its image is kubernetes-bootcamp:v1); the tutorial's line
    # then fails exactly as kubectl's would, and the container's real name works.
    wrong = kemuctl(cl, "set", "image", f"deployments/{BOOTCAMP}",
                    f"{BOOTCAMP}=kemu/bootcamp:v2", check=False)
    assert wrong.returncode == 1
    assert wrong.stderr.strip() == f'error: unable to find container named "{BOOTCAMP}"'
    assert lines(cl, "set", "image", f"deployments/{BOOTCAMP}",
                 "bootcamp=kemu/bootcamp:v2") == [f"{deploy} image updated"]
    status = lines(cl, "rollout", "status", f"deployments/{BOOTCAMP}", "--timeout", "120s")
    assert status[-1] == f'deployment "{BOOTCAMP}" successfully rolled out'
    # The old pods' endpoints leave every node's rules within a moment of the rollout.
    wait_for(all_answers_are(urls, "2"), 30, "every answer from v=2")
    assert lines(cl, "rollout", "undo", f"deployments/{BOOTCAMP}") == [f"{deploy} rolled back"]
    status = lines(cl, "rollout", "status", f"deployments/{BOOTCAMP}", "--timeout", "120s")
    assert status[-1] == f'deployment "{BOOTCAMP}" successfully rolled out'
    wait_for(all_answers_are(urls, "1"), 30, "every answer from v=1 again")
    images = {c.image for p in api.list("pods", "default", label_selector=f"app={BOOTCAMP}")
              .items if not p.pod.metadata.HasField("deletion_timestamp")
              for c in p.pod.spec.containers}
    assert images == {"kemu/bootcamp:v1"}

    # The tutorial's bad update: an image that does not exist. The new pod cannot pull
    # it, the old ones keep serving (25% maxUnavailable of 2 rounds down to none), and
    # `rollout undo` ends it.
    assert lines(cl, "set", "image", f"deployments/{BOOTCAMP}",
                 "bootcamp=kemu/bootcamp:v10") == [f"{deploy} image updated"]

    def pull_failing() -> bool:
        rows = table(kemuctl(cl, "get", "pods").stdout)
        return any(r["STATUS"] in ("ErrImagePull", "ImagePullBackOff") for r in rows)
    wait_for(pull_failing, 60, "a pod in ErrImagePull or ImagePullBackOff")
    assert "kemu/bootcamp:v10" in kemuctl(cl, "describe", "pods").stdout
    assert all_answers_are(urls, "1")(), "the old pods stopped answering"
    assert lines(cl, "rollout", "undo", f"deployments/{BOOTCAMP}") == [f"{deploy} rolled back"]
    status = lines(cl, "rollout", "status", f"deployments/{BOOTCAMP}", "--timeout", "120s")
    assert status[-1] == f'deployment "{BOOTCAMP}" successfully rolled out'
    wait_for(lambda: len(live_pods(api, f"app={BOOTCAMP}")) == 2, 60,
             "the pod that could not pull removed")

    # Module 4's clean-up: delete the Service by label; the NodePort stops answering
    # while the app still answers inside its pod.
    assert lines(cl, "delete", "service", "-l", f"app={BOOTCAMP}") == [
        f'service "{BOOTCAMP}" deleted']
    wait_for(lambda: all(get(u) is None for u in urls), 30, "the NodePort closed")
    some_pod = live_pods(api, f"app={BOOTCAMP}")[0]
    inside = kemuctl(cl, "exec", "-ti", some_pod, "--", "python3", "-c",
                     "import urllib.request as u; "
                     "print(u.urlopen('http://localhost:8080/').read().decode(), end='')")
    assert inside.stdout == f"Hello Kubernetes bootcamp! | Running on: {some_pod} | v=1\n"
    assert inside.stderr.splitlines() == [NO_TTY]


def follow_logs(cl: LabCluster, pod: str, until: Callable[[list[str]], bool],
                timeout: float) -> tuple[list[str], int]:
    """`kemuctl logs -f POD` until its lines satisfy `until`, then Ctrl-C (SIGINT), as a
    student stops it. The lines and the exit code; bounded by `timeout` either way."""
    proc = subprocess.Popen([PYTHON, "-m", "kemu.cli.kemuctl", "-s", cl.apiserver, "logs",
                             "-f", pod], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    got: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            got.put(line.rstrip("\n"))
        got.put(None)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    try:
        while not until(seen) and time.monotonic() < deadline:
            try:
                line = got.get(timeout=0.5)
            except queue.Empty:
                continue
            if line is None:
                break
            seen.append(line)
        still_following = proc.poll() is None
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=15)
    reader.join(timeout=5)
    err = proc.stderr.read() if proc.stderr else ""
    assert still_following, f"logs -f ended by itself: {seen} {err}"
    assert until(seen), f"logs -f showed {seen} within {timeout:.0f}s; stderr: {err}"
    return seen, code


def fetch_in_pod(cl: LabCluster, pod: str, url: str) -> str:
    """A request from inside a bootcamp pod (its image has python3, no curl)."""
    return kemuctl(cl, "exec", pod, "--", "python3", "-c",
                   f"import urllib.request as u; print(u.urlopen({url!r}, timeout=5)"
                   ".read().decode(), end='')").stdout


def test_app_service(cl: LabCluster, api: Client, tmp_path: Path) -> None:
    service_file = str(EXAMPLES / "app-service.yaml")
    deployment_file = str(EXAMPLES / "app-deployment.yaml")
    created = kemuctl(cl, "create", "-f", service_file, "--record")
    assert created.stdout.splitlines() == ["service/app-service created"]
    assert created.stderr.splitlines() == [
        "Flag --record has been deprecated, --record will be removed in the future"]
    rows = {r["NAME"]: r for r in table(kemuctl(cl, "get", "svc").stdout)}
    svc = rows["app-service"]
    assert (svc["TYPE"], svc["EXTERNAL-IP"], svc["PORT(S)"]) == ("ClusterIP", "<none>",
                                                                "80/TCP")
    cluster_ip = svc["CLUSTER-IP"]
    described = kemuctl(cl, "describe", "svc", "app-service").stdout
    assert re.search(r"^Endpoints:\s+<none>$", described, re.M), described
    assert re.search(r"^Selector:\s+app=app$", described, re.M), described
    assert re.search(r"^TargetPort:\s+8080/TCP$", described, re.M), described
    assert "kubernetes.io/change-cause: kemuctl " in described and "--record" in described

    # The name resolves from a pod, to the ClusterIP, before any endpoint exists. busybox's
    # nslookup tries the search domains too and exits 1 on their NXDOMAIN after printing
    # the answer (as on Kubernetes), so the answer is what counts.
    looked = kemuctl(cl, "run", "-i", "--tty", "busybox", "--image=kemu/tools:1",
                     "--restart=Never", "--", "nslookup", "app-service", check=False)
    assert f"Name:\tapp-service.default.svc.cluster.local\nAddress: {cluster_ip}\n" in \
        looked.stdout, (looked.stdout, looked.stderr)
    notices = [line for line in looked.stderr.splitlines() if line in (NO_TTY, PROMPT_HINT)]
    # Attached while it ran: kubectl's warning, then its hint; done already: neither.
    assert notices in ([NO_TTY, PROMPT_HINT], []), looked.stderr
    if looked.returncode:
        assert "pod default/busybox terminated (Error)" in looked.stderr, looked.stderr
    # The same without a terminal, for a command that is surely still running when the
    # session attaches: the warning, and the session goes on to the command's end.
    slow = kemuctl(cl, "run", "-i", "--tty", "tty-check", "--image=kemu/tools:1",
                   "--restart=Never", "--", "sh", "-c", "sleep 5; echo done")
    assert slow.stdout == "done\n"
    assert slow.stderr.splitlines() == [NO_TTY, PROMPT_HINT]

    assert lines(cl, "create", "-f", deployment_file) == [
        "deployment.apps/app-deployment created"]
    status = lines(cl, "rollout", "status", "deployment/app-deployment", "--timeout", "120s")
    assert status[-1] == 'deployment "app-deployment" successfully rolled out'
    pods = live_pods(api, "app=app")
    assert len(pods) == 2
    ips = {api.get("pods", p, "default").pod.status.pod_ip for p in pods}

    def filled() -> bool:
        text = kemuctl(cl, "describe", "svc", "app-service").stdout
        m = re.search(r"^Endpoints:\s+(\S+)$", text, re.M)
        return m is not None and set(m.group(1).split(",")) == {f"{ip}:8080" for ip in ips}
    wait_for(filled, 30, "app-service's Endpoints listing both pods")
    answer = fetch_in_pod(cl, pods[1], "http://app-service/")
    assert HELLO.match(answer.strip()), answer

    # logs -f: the app's start line, then the line of a request made meanwhile.
    followed, other = pods
    ip = api.get("pods", followed, "default").pod.status.pod_ip
    requested = threading.Event()

    def until(seen: list[str]) -> bool:
        if seen and not requested.is_set():
            requested.set()
            fetch_in_pod(cl, other, f"http://{ip}:8080/")
        return any("Total Requests: 1 " in line for line in seen)
    seen, code = follow_logs(cl, followed, until, 60)
    assert seen[0].startswith("Kubernetes Bootcamp App Started At: ")
    assert f"Running On: {followed} | v=1 | Port: 8080" in seen[0]
    assert code == 0, seen

    # Edit the image in the manifest and apply it.
    edited = tmp_path / "app-deployment.yaml"
    edited.write_text(Path(deployment_file).read_text().replace("kemu/bootcamp:v1",
                                                                "kemu/bootcamp:v2"))
    assert lines(cl, "apply", "-f", str(edited)) == ["deployment.apps/app-deployment configured"]
    status = lines(cl, "rollout", "status", "deployment/app-deployment", "--timeout", "120s")
    assert status[-1] == 'deployment "app-deployment" successfully rolled out'
    wait_for(lambda: {c.image for p in live_pods(api, "app=app")
                      for c in api.get("pods", p, "default").pod.spec.containers}
             == {"kemu/bootcamp:v2"}, 60, "only v2 pods")
    history = kemuctl(cl, "rollout", "history", "deployment/app-deployment").stdout
    assert re.search(r"^1\s+<none>$", history, re.M) and re.search(r"^2\s+<none>$", history,
                                                                   re.M), history
    assert lines(cl, "rollout", "undo", "deployment/app-deployment") == [
        "deployment.apps/app-deployment rolled back"]
    status = lines(cl, "rollout", "status", "deployment/app-deployment", "--timeout", "120s")
    assert status[-1] == 'deployment "app-deployment" successfully rolled out'
    wait_for(lambda: {c.image for p in live_pods(api, "app=app")
                      for c in api.get("pods", p, "default").pod.spec.containers}
             == {"kemu/bootcamp:v1"}, 60, "only v1 pods after the undo")


FRONTEND = re.compile(r"^frontend (frontend-\S+) \(Two-tier demo\) -> "
                      r"backend (backend-\S+): Hello from the backend, tutorial!$")


def env_of(cl: LabCluster, pod: str) -> dict[str, str]:
    out = kemuctl(cl, "exec", pod, "--", "env").stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def test_two_tier_app_with_configmap_and_secret(cl: LabCluster, api: Client) -> None:
    applied = lines(cl, "apply", "-f", str(EXAMPLES / "two-tier.yaml"))
    assert applied == ["secret/app-credentials created", "configmap/app-config created",
                       "deployment.apps/backend created", "service/backend created",
                       "deployment.apps/frontend created", "service/frontend created"]
    for name in ("backend", "frontend"):
        status = lines(cl, "rollout", "status", f"deployment/{name}", "--timeout", "120s")
        assert status[-1] == f'deployment "{name}" successfully rolled out'
    (row,) = table(kemuctl(cl, "get", "svc", "frontend").stdout)
    np = node_port(cl, "frontend")
    assert (row["TYPE"], row["PORT(S)"]) == ("NodePort", f"80:{np}/TCP")
    backends, frontends = live_pods(api, "tier=backend"), live_pods(api, "tier=frontend")
    assert len(backends) == 2 and len(frontends) == 2

    # From the host, through the NodePort on each node, the frontend answers with the
    # backend's answer: it found `backend` through cluster DNS and sent the Secret's token.
    urls = node_urls(cl, np)

    def through_both_tiers() -> list[tuple[str, str]] | None:
        found = []
        for body in sample(urls, 4):
            m = FRONTEND.match(body or "")
            if m is None:
                return None
            found.append((m.group(1), m.group(2)))
        return found
    answers = wait_for(through_both_tiers, 60, "the frontend answering through the backend")
    assert {f for f, _ in answers} <= set(frontends)
    assert {b for _, b in answers} <= set(backends)

    # What each tier got: the backend every key of both objects (envFrom), the frontend
    # single keys (valueFrom) and nothing else of them.
    backend_env = env_of(cl, backends[0])
    assert {k: backend_env.get(k) for k in ("GREETING", "LISTEN_PORT", "BACKEND_URL",
                                            "PAGE_TITLE", "API_TOKEN", "DB_USER",
                                            "DB_PASSWORD")} == {
        "GREETING": "Hello from the backend", "LISTEN_PORT": "9000",
        "BACKEND_URL": "http://backend/", "PAGE_TITLE": "Two-tier demo",
        "API_TOKEN": "s3cr3t-t0ken", "DB_USER": "tutorial", "DB_PASSWORD": "p4ssw0rd"}
    frontend_env = env_of(cl, frontends[0])
    assert {k: frontend_env.get(k) for k in ("BACKEND_URL", "TITLE", "API_TOKEN")} == {
        "BACKEND_URL": "http://backend/", "TITLE": "Two-tier demo", "API_TOKEN": "s3cr3t-t0ken"}
    assert not {"GREETING", "DB_USER", "DB_PASSWORD", "PAGE_TITLE"} & frontend_env.keys()
    # The Secret keeps its values base64-encoded, as written in the manifest.
    token = kemuctl(cl, "get", "secret", "app-credentials", "-o",
                    "jsonpath={.data.API_TOKEN}").stdout
    assert base64.b64decode(token) == b"s3cr3t-t0ken"

    assert lines(cl, "delete", "-f", str(EXAMPLES / "two-tier.yaml")) == [
        'secret "app-credentials" deleted', 'configmap "app-config" deleted',
        'deployment.apps "backend" deleted', 'service "backend" deleted',
        'deployment.apps "frontend" deleted', 'service "frontend" deleted']
