"""README.md's "A short walkthrough", run as a user pasting it line by line would.

The ```sh block under that heading is read from README.md when the test runs, so the README
and the test cannot drift apart. Each command line (backslash continuations joined, the
`# expected result` comment kept for the failure message) runs in one bash process from
the repository root, in order, so `IP=...`, `export ETCDCTL_...` and `source
.venv/bin/activate` carry over from line to line. HOME is a temporary directory: `make up`
writes ~/.kemu there, and the README's `PKI=~/.kemu/clusters/kemu/pki` finds it unchanged.

Every line must exit 0 (the interactive `exec -it` line gets `exit 3` on stdin and must
exit 3). Lines whose comment promises something visible are checked against the table
CHECKS; the lines a human would simply run again because they show state that settles
(endpoints once readiness probes pass, curl right after a rollout) are retried until a
deadline. `make up` is the first line and `make down` the last; `make down` runs even when a
line fails, and then nothing of the cluster may be left: containers, docker networks, KEMU
chains, proto 76 routes, ~/.kemu/clusters/kemu.

`make up` uses the default name and ports and a node agent on this machine's network, so
the test takes the `host_network` lock (no other host-agent test runs meanwhile).
"""

from __future__ import annotations

import os
import re
import select
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from kemu.nodeagent.netnslock import NetnsLock
from tests.support import hostnetwork
from tests.support.hostnetwork import host_network  # noqa: F401 - the fixture
from tests.support.processes import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.timeout(2400)]

README = ROOT / "README.md"
HEADING = "## A short walkthrough"
CLUSTER = "kemu"
NODE = "kemu-node-1"
# `kemu up`'s default ports: store, apiserver, scheduler, agent, controller manager.
DEFAULT_PORTS = (2379, 6443, 10259, 10250, 10257)
EVENTUAL_SECONDS = 60.0
LINE_SECONDS = 180.0
MAKE_SECONDS = 900.0


# --- the walkthrough, from the README ------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One command line of the walkthrough and the comment that says what it shows."""

    lineno: int  # in README.md, for the failure message
    command: str
    comment: str = ""


def _split_comment(line: str) -> tuple[str, str]:
    """`command  # comment` -> (command, comment): a `#` starting a word outside quotes."""
    quote, i = "", 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and quote != "'":
            i += 1  # an escaped character: never a quote or a comment
        elif quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or line[i - 1].isspace()):
            return line[:i].rstrip(), line[i + 1:].strip()
        i += 1
    return line.rstrip(), ""


def walkthrough(text: str) -> list[Step]:
    """The command lines of the ```sh block under HEADING, in order."""
    lines = text.splitlines()
    start = lines.index(HEADING)
    begin = next(i for i in range(start, len(lines)) if lines[i].strip() == "```sh") + 1
    end = next(i for i in range(begin, len(lines)) if lines[i].strip() == "```")
    steps: list[Step] = []
    i = begin
    while i < end:
        lineno, line = i + 1, lines[i]
        while line.endswith("\\") and i + 1 < end:  # a continued command: one line
            i += 1
            line = line[:-1].rstrip() + " " + lines[i].strip()
        i += 1
        command, comment = _split_comment(line)
        if command.strip():
            steps.append(Step(lineno, command.strip(), comment))
        elif comment and steps and line.startswith(" "):  # an indented comment goes on
            last = steps[-1]
            steps[-1] = Step(last.lineno, last.command, f"{last.comment} {comment}".strip())
    return steps


# --- what the lines show -------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    status: int
    out: str
    err: str


@dataclass(frozen=True)
class Check:
    """What a line must show: a status, regexes on stdout (and stderr); `eventual` lines
    show settling state and are run again until they pass or EVENTUAL_SECONDS pass."""

    out: tuple[str, ...] = ()
    err: tuple[str, ...] = ()
    status: int = 0
    eventual: bool = False
    stdin: str = ""
    also: Callable[[Result, Shell], str] | None = None  # a further check; "" when it holds

    def problem(self, got: Result, shell: Shell) -> str:
        if got.status != self.status:
            return f"exit status {got.status}, wanted {self.status}"
        for pattern in self.out:
            if not re.search(pattern, got.out, re.MULTILINE):
                return f"stdout does not match {pattern!r}"
        for pattern in self.err:
            if not re.search(pattern, got.err, re.MULTILINE):
                return f"stderr does not match {pattern!r}"
        return self.also(got, shell) if self.also is not None else ""


def _dig_answers_cluster_ip(got: Result, shell: Shell) -> str:
    ip = shell.run("kemuctl get svc web -o jsonpath='{.spec.clusterIP}'").out.strip()
    return "" if got.out.split() == [ip] else f"dig answered {got.out.split()}, not [{ip!r}]"


def _ip_is_set(got: Result, shell: Shell) -> str:
    ip = shell.run('echo "$IP"').out.strip()
    return "" if re.fullmatch(r"10\.\d+\.\d+\.\d+", ip) else f"IP is {ip!r}"


def _three_pods_with_ips(got: Result, shell: Shell) -> str:
    rows = [r.split() for r in got.out.splitlines() if r.strip()]
    ok = len(rows) == 3 and all(len(r) == 2 and r[0].startswith("web-") for r in rows)
    return "" if ok else f"wanted three `web-... IP` lines, got {rows}"


HELLO = r"Hello Kubernetes bootcamp!"
IP_PORT = r"10\.\d+\.\d+\.\d+:8080"
# Keyed by a distinctive prefix of the command; a list for a command that appears more than
# once (its checks in order of appearance).
CHECKS: dict[str, Check | list[Check]] = {
    "make up": Check(out=(rf"^  node +{NODE} Ready\b", rf"^cluster '{CLUSTER}' is up\b")),
    "kemuctl get nodes": Check(out=(rf"^{NODE}\s+Ready\b",)),
    "kemuctl run hello": Check(out=(r"^pod/hello created$",)),
    "kemuctl get pods -o wide": Check(out=(rf"^hello\s+1/1\s+Running\s+0\s+.*\b{NODE}\b",),
                                      eventual=True),
    "kemuctl exec hello -- hostname": Check(out=(r"\Ahello\n\Z",)),
    "IP=": Check(also=_ip_is_set),
    "kemuctl run client -i --rm --restart=Never --image kemu/tools:1 -- wget -q -O - http://$IP":
        Check(out=(HELLO,), eventual=True),
    "kemuctl logs hello": Check(out=(r"(?s)\S.*\n.*\S",)),  # a start line and a request line
    "kemuctl exec -it hello -- bash": Check(
        status=3, stdin="exit 3\n",
        err=(r"Unable to use a TTY", r"command terminated with exit code 3")),
    "kemuctl describe node": Check(out=(r"^Conditions:", r"^Capacity:", r"^Allocated resources:",
                                        r"\bhello\b")),
    "kemuctl delete pod hello": Check(out=(r'^pod "hello" deleted$',)),
    "kemuctl get namespaces": Check(out=(r"^default\s+Active", r"^kube-system\s+Active")),
    "kemuctl apply -f examples/web.yaml": [
        Check(out=(r"^deployment\.apps/web created$", r"^service/web created$")),
        Check(out=(r"^deployment\.apps/web unchanged$", r"^service/web unchanged$"))],
    "kemuctl get deploy,rs,pods": Check(
        out=(r"^deployment\.apps/web\s+2/2\s", r"^replicaset\.apps/web-[a-z0-9]+\s+2\s+2\s+2\s",
             r"(?s)^pod/web-\S+\s+1/1\s+Running\b.*^pod/web-\S+\s+1/1\s+Running\b"),
        eventual=True),
    "kemuctl get svc web": Check(out=(r"^web\s+NodePort\s+.*\b80:3\d{4}/TCP\b",)),
    "kemuctl get ep web": [Check(out=(rf"^web\s+{IP_PORT},{IP_PORT}\s",), eventual=True),
                           Check(out=(rf"^web\s+{IP_PORT},{IP_PORT},{IP_PORT}\s",),
                                 eventual=True)],
    "kemuctl describe svc web": Check(out=(r"^Type:\s+NodePort$", rf"^Endpoints:\s+{IP_PORT}")),
    "curl $(kemu service web --url)": [Check(out=(HELLO, r"\| v=1\b"), eventual=True),
                                       Check(out=(HELLO, r"\| v=2\b"), eventual=True)],
    "kemuctl run client -i --rm --restart=Never --image kemu/tools:1 -- wget -q -O - http://web/":
        Check(out=(HELLO,), eventual=True),
    "dig @10.96.0.10 web.": Check(also=_dig_answers_cluster_ip, eventual=True),
    "dig @10.96.0.10 SRV": Check(out=(r"^0 \d+ 80 web\.default\.svc\.cluster\.local\.$",),
                                 eventual=True),
    "kemuctl scale deploy web --replicas 3": Check(out=(r"^deployment\.apps/web scaled$",)),
    "kemuctl get pods -l app=web -o go-template": Check(also=_three_pods_with_ips,
                                                        eventual=True),
    "kemuctl set image deploy/web": Check(out=(r"^deployment\.apps/web image updated$",)),
    "kemuctl rollout status deploy/web": Check(
        out=(r"Waiting for deployment \"web\" rollout to finish",
             r'deployment "web" successfully rolled out$')),
    "kemuctl rollout history deploy/web": Check(
        out=(r"^1\s+<none>$", r"^2\s+kemuctl set image deploy/web web=kemu/bootcamp:v2")),
    "kemuctl rollout undo deploy/web": Check(out=(r"^deployment\.apps/web rolled back$",)),
    "kemuctl get events": Check(out=(r"\bScalingReplicaSet\b", r"\bSuccessfulCreate\b",
                                     r"\bStarted\b")),
    "kemuctl label deploy web tier=frontend": Check(out=(r"^deployment\.apps/web labeled$",)),
    "kemuctl get deploy -l tier=frontend": Check(out=(r"^web\s+\d/\d\s",)),
    "kemuctl expose deploy web --name web-lb": Check(out=(r"^service/web-lb exposed$",)),
    "kemuctl get svc web-lb": Check(out=(r"^web-lb\s+LoadBalancer\s+\S+\s+<pending>\s",)),
    "iptables-save -t nat | grep 'default/web'": Check(out=(r"KEMU-\S+.*default/web",)),
    "etcdctl --endpoints=https://127.0.0.1:2379 get": Check(
        out=(r"^/registry/deployments/default/web$",)),
    "etcdctl --endpoints=https://127.0.0.1:2379 endpoint status": Check(
        out=(r"^\|\s*https://127\.0\.0\.1:2379\s*\|",)),
    "kemuctl delete svc web-lb": Check(out=(r'^service "web-lb" deleted$',)),
    "kemuctl delete -f examples/web.yaml": Check(
        out=(r'^deployment\.apps "web" deleted$', r'^service "web" deleted$')),
}


def check_for(command: str, seen: dict[str, int]) -> tuple[str | None, Check]:
    """The table's entry for `command` (its key, or None: exit 0 is all that is asked)."""
    key = max((k for k in CHECKS if command.startswith(k)), key=len, default=None)
    if key is None:
        return None, Check()
    entry = CHECKS[key]
    if isinstance(entry, Check):
        return key, entry
    index = seen.get(key, 0)
    seen[key] = index + 1
    assert index < len(entry), f"{command!r} appears more often than CHECKS[{key!r}] says"
    return key, entry[index]


# --- one bash for the whole walkthrough ----------------------------------------------------


@dataclass
class Shell:
    """A bash reading one line at a time from a pipe; each line is `source`d from a file,
    its stdin, stdout and stderr redirected to files, so variables, exports and `source
    .venv/bin/activate` persist, and no command can read the next lines as its input."""

    tmp: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes] = field(init=False)
    count: int = 0

    def __post_init__(self) -> None:
        self.proc = subprocess.Popen(["bash", "--noprofile", "--norc"], cwd=ROOT, env=self.env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)

    def run(self, command: str, stdin: str = "", timeout: float = LINE_SECONDS) -> Result:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.count += 1
        n = self.count
        script, inp = self.tmp / f"line-{n}.sh", self.tmp / f"stdin-{n}"
        out, err = self.tmp / f"stdout-{n}", self.tmp / f"stderr-{n}"
        script.write_text(command + "\n")
        inp.write_text(stdin)
        marker = f"__walkthrough_{n}__"
        self.proc.stdin.write(f'source {script} <{inp} >{out} 2>{err}; '
                              f'echo "{marker} $?"\n'.encode())
        self.proc.stdin.flush()
        status = self._wait_marker(marker, timeout, command)
        return Result(status, out.read_text(errors="replace"), err.read_text(errors="replace"))

    def _wait_marker(self, marker: str, timeout: float, command: str) -> int:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        buf = b""
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{command!r} did not finish within {timeout:.0f}s")
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                continue
            chunk = os.read(fd, 4096)
            if not chunk:
                raise AssertionError(f"bash exited while running {command!r}")
            buf += chunk
            found = re.search(rf"{marker} (\d+)\n".encode(), buf)
            if found:
                return int(found.group(1))

    def close(self) -> None:
        """End bash; kill what is left of its session when it does not end."""
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, 9)
            self.proc.wait(timeout=30)


def run_step(shell: Shell, step: Step, check: Check) -> str:
    """Run one README line (again, while an eventual check fails); the problem or ""."""
    timeout = MAKE_SECONDS if step.command.startswith("make ") else LINE_SECONDS
    deadline = time.monotonic() + EVENTUAL_SECONDS
    while True:
        got = shell.run(step.command, check.stdin, timeout)
        problem = check.problem(got, shell)
        if not problem or not check.eventual or time.monotonic() >= deadline:
            break
        time.sleep(1)  # a person re-running the line: once a second until the deadline
    if not problem:
        return ""
    return (f"README.md line {step.lineno}: {step.command}\n"
            f"  expected: {step.comment or 'exit status 0'}\n  problem: {problem}\n"
            f"  stdout: {got.out[-3000:]}\n  stderr: {got.err[-3000:]}")


# --- the test ------------------------------------------------------------------------------


def _preflight() -> None:
    if os.geteuid() != 0:
        pytest.skip("`make up` needs root (iptables, routes, docker)")
    if shutil.which("docker") is None and shutil.which("dockerd") is None:
        pytest.skip("`make up` needs Docker")
    taken = []
    for port in DEFAULT_PORTS:
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                taken.append(port)
    assert not taken, (f"`make up` needs kemu's default ports, but {taken} are in use on "
                       "127.0.0.1 (a cluster from `make up` still running? `make down`)")
    lock = NetnsLock.acquire()
    assert lock is not None, ("another kemu node agent programs this machine's network "
                              "(it holds /run/kemu/netns-*.lock); `make up` would put its node "
                              "in a lab namespace and the walkthrough's host lines would fail")
    lock.release()
    left = hostnetwork.leftovers(CLUSTER, (NODE,))
    assert not left, f"a cluster named {CLUSTER!r} is already on this machine: {left}"


@pytest.fixture
def shell_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The environment of a user's terminal, with HOME private to the test and nothing
    that would point kemu or kemuctl elsewhere."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("KEMU_HOME", "KEMU_CONFIG", "KEMU_SERVER", "VIRTUAL_ENV")}
    venv_bin = str(ROOT / ".venv" / "bin")
    env["PATH"] = ":".join(p for p in env.get("PATH", "/usr/bin:/bin").split(":")
                           if p != venv_bin)
    env["HOME"] = str(home)
    yield env


def test_readme_walkthrough_line_by_line(host_network: None,  # noqa: F811
                                         shell_env: dict[str, str], tmp_path: Path) -> None:
    steps = walkthrough(README.read_text())
    assert steps[0].command == "make up" and steps[-1].command == "make down", (
        "the walkthrough should start with `make up` and end with `make down`")
    _preflight()
    logs = tmp_path / "lines"
    logs.mkdir()
    shell = Shell(logs, shell_env)
    seen: dict[str, int] = {}
    used: set[str] = set()
    problem, downed = "", False
    try:
        for step in steps:
            key, check = check_for(step.command, seen)
            if key is not None:
                used.add(key)
            problem = run_step(shell, step, check)
            downed = step.command == "make down" and not problem
            if problem:
                break
    except AssertionError as e:  # a line that hung, or bash gone
        problem = str(e)
    finally:
        shell.close()
        if not downed:  # a line failed: the cluster comes down all the same
            down = subprocess.run(["make", "down"], cwd=ROOT, env=shell_env, text=True,
                                  capture_output=True, timeout=MAKE_SECONDS)
            problem += f"\n(`make down` after it: exit {down.returncode} {down.stderr[-500:]})"
    assert not problem, problem
    assert used == set(CHECKS), f"CHECKS entries no README line uses: {set(CHECKS) - used}"
    left = hostnetwork.leftovers(CLUSTER, (NODE,))
    assert not left, f"`make down` left this behind: {left}"
    assert not (Path(shell_env["HOME"]) / ".kemu" / "clusters" / CLUSTER).exists()


def test_walkthrough_parser_reads_the_block_as_a_user_would() -> None:
    """Continuations join, comments split off (not `#` inside quotes), and an indented
    comment line belongs to the line above."""
    text = "\n".join([
        "## A short walkthrough", "", "```sh", "make up", "",
        "echo '# not a comment' x   # the comment",
        "export A=1 \\", "       B=2", "run thing", "        # more about thing",
        "# a comment line", "make down", "```"])
    assert walkthrough(text) == [
        Step(4, "make up"), Step(6, "echo '# not a comment' x", "the comment"),
        Step(7, "export A=1 B=2"), Step(9, "run thing", "more about thing"),
        Step(12, "make down")]
