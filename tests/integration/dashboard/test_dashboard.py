"""`kemu dashboard` in a real headless Chromium, against a real cluster: store, apiserver,
scheduler, controller manager and one `kemu agent --runtime fake` node (pods go Running
without Docker; their log is the fake runtime's one line, read through the Logs RPC).

What a user sees is asserted: the node Ready; a Deployment created after the page loaded
appearing without a reload, its pods Pending (no node matches their nodeSelector) and then
Running once the node is labelled; a Service with its endpoints; events; a pod's log on
a click; an annotation and an event message full of HTML shown as text. A screenshot is
saved in the test's tmp_path and its path reported. Bad input (port in use, unreachable
apiserver) gets one line; SIGINT stops the dashboard with exit code 0.
"""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from kemu.api import manifest
from kemu.client import Client
from tests.conftest import Cluster
from tests.integration.kemuctl.agent import AgentServer
from tests.support import processes

pytestmark = pytest.mark.integration

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
NODE = "dash-node"
WAIT = 30.0
HTML = '<b>bold</b><img src="x" onerror="document.title=\'pwned\'">'


def kemu(tmp: Path, name: str, *args: str, address: str = "",
         env: dict[str, str] | None = None) -> processes.Proc:
    return processes.Proc(name, [processes.PYTHON, "-m", "kemu.cli.kemu_main", *args],
                          tmp / f"{name}.log", address, env=env or {})


def component(tmp: Path, module: str, apiserver: str, name: str) -> processes.Proc:
    health = f"127.0.0.1:{processes.free_port()}"
    return processes.Proc(name, [processes.PYTHON, "-m", module, "--apiserver", apiserver,
                                 "--health-listen", health], tmp / f"{name}.log", health)


def no_config(tmp: Path) -> dict[str, str]:
    """No ~/.kemu/config or $KEMU_* of the machine's user leaks into the dashboard."""
    return {"KEMU_CONFIG": str(tmp / "no-config"), "KEMU_SERVER": "", "KEMU_TOKEN": "",
            "KEMU_CERTIFICATE_AUTHORITY": "", "KEMU_CLIENT_CERTIFICATE": "",
            "KEMU_CLIENT_KEY": ""}


@pytest.fixture(scope="module")
def client(cluster: Cluster) -> Iterator[Client]:
    with Client(cluster.server, timeout=30) as c:
        yield c


@pytest.fixture(scope="module")
def node(cluster: Cluster, client: Client) -> Iterator[str]:
    """Scheduler, controller manager and a fake-runtime agent whose Node is Ready."""
    tmp = cluster.tmp
    sched = component(tmp, "kemu.services.scheduler", cluster.server, "scheduler")
    cm = component(tmp, "kemu.services.controllers", cluster.server, "cm")
    agent = kemu(tmp, "agent", "agent", "--runtime", "fake", "--apiserver", cluster.server,
                 "--node-name", NODE, "--node-ip", "127.0.0.1", "--port",
                 str(processes.free_port()), "--address", "127.0.0.1", "--data-dir",
                 str(tmp / "agent-data"), "--insecure")
    with processes.running(sched, cm):
        agent.start()
        try:
            yield NODE
        finally:
            agent.stop()


@pytest.fixture(scope="module")
def dashboard(cluster: Cluster, node: str) -> Iterator[processes.Proc]:
    port = processes.free_port()
    proc = kemu(cluster.tmp, "dashboard", "dashboard", "--listen", f"127.0.0.1:{port}",
                "-s", cluster.server, address=f"127.0.0.1:{port}",
                env=no_config(cluster.tmp)).start()
    try:
        proc.wait_ready(check="tcp")
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def browser(cluster: Cluster, dashboard: processes.Proc) -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("chromium and chromedriver are not installed: run `make test`, which "
                    "installs the Debian packages chromium and chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--window-size=1600,1400",
                 f"--user-data-dir={cluster.tmp / 'chromium-profile'}"):
        options.add_argument(flag)
    service = Service(CHROMEDRIVER, log_output=str(cluster.tmp / "chromedriver.log"))
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(f"http://{dashboard.address}/")
        yield driver
    finally:
        driver.quit()


def text_of(driver: Any, css: str) -> str:
    """The rendered text of the first element matching `css`, or "" while there is none
    (read in one script call: the page replaces rows as changes arrive)."""
    return str(driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : '';", css))


def texts_of(driver: Any, css: str) -> list[str]:
    """The rendered text of every element matching `css`, in page order."""
    return list(driver.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]), e => e.innerText);", css))


def wait_text(driver: Any, css: str, predicate: Any, what: str) -> str:
    WebDriverWait(driver, WAIT).until(lambda d: predicate(text_of(d, css)), message=what)
    return text_of(driver, css)


def click(driver: Any, css: str, what: str) -> None:
    """Click the element matching `css`, again if the page replaced it meanwhile (rows are
    re-rendered as changes arrive)."""
    def attempt(d: Any) -> bool:
        d.find_element(By.CSS_SELECTOR, css).click()
        return True
    WebDriverWait(driver, WAIT, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(attempt, message=what)


def choose(driver: Any, select_id: str, value: str) -> None:
    """Pick `value` in a <select>, again if its options were replaced meanwhile."""
    def attempt(d: Any) -> bool:
        Select(d.find_element(By.ID, select_id)).select_by_value(value)
        return True
    WebDriverWait(driver, WAIT, ignored_exceptions=(
        NoSuchElementException, StaleElementReferenceException)).until(
            attempt, message=f"{value!r} chosen in #{select_id}")


def row(resource: str, key: str) -> str:
    return f'tr[data-resource="{resource}"][data-key="{key}"]'


def test_page_shows_the_node_ready(browser: Any, cluster: Cluster) -> None:
    wait_text(browser, "#state", lambda t: t == "live", "the stream to go live")
    assert text_of(browser, "#server") == cluster.server
    wait_text(browser, f"{row('nodes', NODE)} td.status", lambda t: t == "Ready",
              "the node listed Ready")
    assert text_of(browser, f"{row('nodes', NODE)} td.name") == NODE
    wait_text(browser, row("nodes", NODE), lambda t: "10.244." in t, "the node's podCIDR")
    assert "127.0.0.1" in text_of(browser, row("nodes", NODE))
    assert text_of(browser, row("namespaces", "default"))


def test_deployment_appears_live_and_its_pods_go_running(browser: Any, client: Client) -> None:
    browser.execute_script("window.__notReloaded = true;")
    client.create(manifest.from_dict({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                     "annotations": {"note": HTML}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}}, "spec": {
                     "nodeSelector": {"dashboard": "yes"},
                     "containers": [{"name": "app", "image": "kemu/bootcamp:v1",
                                     "ports": [{"containerPort": 8080}]}]}}}}))
    client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Service", "metadata": {"name": "web",
                                                            "namespace": "default"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}}))
    wait_text(browser, f"{row('deployments', 'default/web')} td.status",
              lambda t: t == "0/2", "the new Deployment, 0/2 ready")
    pods = 'tr[data-resource="pods"][data-name^="web-"]'
    WebDriverWait(browser, WAIT).until(
        lambda d: texts_of(d, f"{pods} td.status") == ["Pending"] * 2,
        message="two Pending pods (no node matches their nodeSelector)")
    pending = texts_of(browser, f"{pods} td.name")[0]
    click(browser, f"{row('pods', f'default/{pending}')} td.name", "a Pending pod")
    wait_text(browser, "#logs-state", lambda t: t == "failed", "the log refused")
    assert text_of(browser, "#logs-text") == f"pod {pending} does not have a host assigned"

    labelled = client.get("nodes", NODE)
    labelled.node.metadata.labels["dashboard"] = "yes"
    client.update(labelled)
    WebDriverWait(browser, WAIT).until(
        lambda d: texts_of(d, f"{pods} td.status") == ["Running"] * 2,
        message="both pods Running once the node is labelled")
    WebDriverWait(browser, WAIT).until(
        lambda d: texts_of(d, f"{pods} td.ready") == ["1/1"] * 2, message="both pods ready")
    cells = texts_of(browser, f"{pods} td")
    assert NODE in cells
    assert any(c.startswith("10.244.") for c in cells)
    wait_text(browser, f"{row('deployments', 'default/web')} td.status",
              lambda t: t == "2/2", "the Deployment 2/2 ready")
    assert browser.execute_script("return window.__notReloaded === true;")


def test_service_shows_its_endpoints(browser: Any) -> None:
    text = wait_text(browser, f"{row('services', 'default/web')} td.endpoints",
                     lambda t: t.count(":8080") == 2, "the Service's two endpoints")
    assert text.startswith("10.244.")
    assert "ClusterIP" in text_of(browser, row("services", "default/web"))


def test_events_appear(browser: Any, client: Client) -> None:
    wait_text(browser, "#events tbody", lambda t: "ScalingReplicaSet" in t
              and "FailedScheduling" in t, "the controllers' and scheduler's events")
    client.create(manifest.from_dict({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"name": "web.html", "namespace": "default"},
        "involvedObject": {"kind": "Deployment", "name": "web", "namespace": "default"},
        "reason": "Injected", "message": HTML, "type": "Warning"}))
    wait_text(browser, f"{row('events', 'default/web.html')} td.message",
              lambda t: t == HTML, "the event's HTML message shown as text")


def test_the_namespace_selector_filters_every_table(browser: Any) -> None:
    assert "kube-system" in texts_of(browser, "#namespace option")
    choose(browser, "namespace", "kube-system")
    WebDriverWait(browser, WAIT).until(
        lambda d: not texts_of(d, "#pods tbody tr") and texts_of(d, "#events tbody tr"),
        message="no pods and only kube-system's events")
    assert set(texts_of(browser, "#events tbody td:nth-child(3)")) == {"kube-system"}
    assert text_of(browser, f"{row('nodes', NODE)} td.name") == NODE  # not namespaced
    choose(browser, "namespace", "")
    wait_text(browser, "#pods .count", lambda t: t == "(2)", "every namespace again")


def test_html_from_the_api_is_shown_as_text(browser: Any) -> None:
    click(browser, f"{row('deployments', 'default/web')} td.name", "the Deployment")
    wait_text(browser, "#detail-meta", lambda t: f"note={HTML}" in t,
              "the annotation, shown as text")
    wait_text(browser, "#detail-meta", lambda t: "Normal ScalingReplicaSet: Scaled up replica "
              "set web-" in t, "the Deployment's events in its panel")
    assert not browser.find_elements(By.CSS_SELECTOR, "main b, main img, aside b, aside img")
    assert browser.title == "kemu dashboard"


def test_clicking_a_pod_shows_its_log(browser: Any, tmp_path: Path,
                                      request: pytest.FixtureRequest) -> None:
    web_pods = 'tr[data-resource="pods"][data-name^="web-"] td.name'
    WebDriverWait(browser, WAIT).until(lambda d: texts_of(d, web_pods),
                                       message="a web pod in the table")
    name = texts_of(browser, web_pods)[0]
    click(browser, f"{row('pods', f'default/{name}')} td.name", "a web pod")
    wait_text(browser, "#detail-title", lambda t: t == f"pods default/{name}", "the pod panel")
    wait_text(browser, "#logs-text", lambda t: "this container never ran" in t,
              "the pod's log through the Logs RPC")
    assert text_of(browser, "#logs-container") == "app"
    wait_text(browser, "#detail-meta", lambda t: "app: Running, ready, restarts 0, "
              "kemu/bootcamp:v1" in t and "Normal Started: Started container app" in t,
              "the pod's container and events in its panel")
    shot = tmp_path / "dashboard.png"
    assert browser.save_screenshot(str(shot))
    assert shot.stat().st_size > 10_000
    request.node.add_report_section("call", "screenshot", str(shot))
    request.node.user_properties.append(("screenshot", str(shot)))
    print(f"screenshot: {shot}")


def test_log_text_is_shown_as_text_and_containers_are_chosen(browser: Any,
                                                             client: Client) -> None:
    """A pod on a node whose agent is a stand-in NodeAgent that answers with HTML."""
    log_text = "<script>document.title='pwned'</script>\n<b>bold</b> \u2713\n"
    with AgentServer() as server:
        server.agent.logs_scripts["html-pod"] = lambda req, ctx: [
            f"[{req.container}] ".encode(), log_text.encode()]
        client.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Node", "metadata": {"name": "stand-in"},
            "status": {"addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
                       "daemonEndpoints": {"kubeletEndpoint": {"Port": server.port}}}}))
        pod = client.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "html-pod", "namespace": "default"},
            "spec": {"nodeName": "stand-in", "containers": [
                {"name": "one", "image": "kemu/tools:1"},
                {"name": "two", "image": "kemu/tools:1"}]}}))
        pod.pod.status.phase = "Running"
        client.update_status(pod)
        wait_text(browser, f"{row('pods', 'default/html-pod')} td.status",
                  lambda t: t == "Running", "the stand-in's pod Running")
        click(browser, f"{row('pods', 'default/html-pod')} td.name", "the stand-in's pod")
        wait_text(browser, "#logs-state", lambda t: t == "ended", "the log read to its end")
        assert text_of(browser, "#logs-text") == "[one] " + log_text
        assert texts_of(browser, "#logs-container option") == ["one", "two"]
        choose(browser, "logs-container", "two")
        wait_text(browser, "#logs-text", lambda t: t.startswith("[two] "),
                  "the second container's log")
        assert not browser.find_elements(By.CSS_SELECTOR, "#logs-text *")
        assert browser.title == "kemu dashboard"
        requests = server.agent.logs_requests
        assert [(r.name, r.container, r.follow, r.tail_lines) for r in requests[-2:]] == [
            ("html-pod", "one", True, 1000), ("html-pod", "two", True, 1000)]
    client.delete("pods", "html-pod", "default", grace_period_seconds=0)
    client.delete("nodes", "stand-in")


def test_an_apiserver_restart_is_shown_and_survived(browser: Any, cluster: Cluster) -> None:
    cluster.apiserver_proc.stop()
    wait_text(browser, "#state", lambda t: t == "apiserver unreachable",
              "the page saying the apiserver is gone")
    wait_text(browser, "#problem", lambda t: f"{cluster.server} was refused" in t,
              "the API's error line")
    cluster.apiserver_proc.start().wait_ready()
    wait_text(browser, "#state", lambda t: t == "live", "the page live again")
    assert not browser.find_element(By.ID, "problem").is_displayed()
    with Client(cluster.server, timeout=30) as fresh:
        fresh.create(manifest.from_dict({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "after-restart", "namespace": "default"},
            "spec": {"ports": [{"port": 81}]}}))
    wait_text(browser, f"{row('services', 'default/after-restart')} td.name",
              lambda t: t == "after-restart", "a Service made after the restart, live")


def test_other_hosts_are_refused(dashboard: processes.Proc) -> None:
    host, port = dashboard.address.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("GET", "/api/stream", headers={"Host": "rebound.example:80"})
    resp = conn.getresponse()
    assert resp.status == 421
    conn.close()
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("POST", "/", body=b"x")
    assert conn.getresponse().status == 405
    conn.close()
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("HEAD", "/api/stream")
    assert conn.getresponse().status == 405
    conn.close()
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    conn.request("HEAD", "/")
    resp = conn.getresponse()
    assert (resp.status, resp.getheader("Content-Type")) == (200, "text/html; charset=utf-8")
    assert "script-src 'self'" in resp.getheader("Content-Security-Policy", "")
    conn.close()


def test_sigint_stops_cleanly(cluster: Cluster, browser: Any,
                              dashboard: processes.Proc) -> None:
    assert dashboard.popen is not None
    dashboard.popen.send_signal(signal.SIGINT)
    assert dashboard.popen.wait(timeout=15) == 0, dashboard.tail()
    log = dashboard.log.read_text()
    assert "Traceback" not in log, log
    assert f"on http://{dashboard.address}/ (read-only" in log


def run_dashboard(tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([processes.PYTHON, "-m", "kemu.cli.kemu_main", "dashboard", *args],
                          capture_output=True, text=True, timeout=60, cwd=processes.ROOT,
                          env={**os.environ, **no_config(tmp)})


def test_port_in_use_is_one_line(cluster: Cluster, tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_dashboard(tmp_path, "--listen", f"127.0.0.1:{port}", "-s", cluster.server)
    assert done.returncode == 1
    assert done.stderr == f"error: cannot listen on 127.0.0.1:{port}: address already in use\n"


def test_unreachable_apiserver_is_one_line(tmp_path: Path) -> None:
    dead = f"127.0.0.1:{processes.free_port()}"
    done = run_dashboard(tmp_path, "--listen", f"127.0.0.1:{processes.free_port()}",
                         "-s", dead)
    assert done.returncode == 1
    assert done.stderr.startswith(f"error: apiserver {dead}: The connection to the server "
                                  f"{dead} was refused"), done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
