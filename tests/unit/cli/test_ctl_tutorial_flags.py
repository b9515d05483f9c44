"""kubectl behaviours the Kubernetes tutorials rely on, typed as the tutorials type them:
`kubectl create -f app-service.yaml --record` (a deprecated flag that still records the
change cause) and `kubectl run -i --tty busybox ... -- nslookup NAME` without a terminal
(a warning, then the session goes on). Client dry runs and pure helpers: no server."""

from __future__ import annotations

import io
import os
import pty
import sys
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import yaml

from kemu.cli.ctl import cmd_create, cmd_run
from kemu.cli.kemuctl import main

SERVICE = """apiVersion: v1
kind: Service
metadata: {name: app-service}
spec:
  selector: {app: app}
  ports: [{port: 80, targetPort: 8080}]
"""
DEPRECATED = "Flag --record has been deprecated, --record will be removed in the future"


def kemuctl(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["--server", "127.0.0.1:1", *argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def manifest_file(tmp_path: Path) -> Path:
    path = tmp_path / "app-service.yaml"
    path.write_text(SERVICE)
    return path


@pytest.mark.parametrize(("flag", "recorded"), [
    pytest.param("--record", True, id="bare-flag"),
    pytest.param("--record=true", True, id="true"),
    pytest.param("--record=false", False, id="false-still-warns"),
])
def test_create_record_writes_the_change_cause(manifest_file: Path, flag: str, recorded: bool,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    argv = ["create", "-f", str(manifest_file), flag, "--dry-run=client", "-o", "yaml"]
    monkeypatch.setattr(sys, "argv", ["kemuctl", *argv])
    code, out, err = kemuctl(*argv)
    assert code == 0, err
    assert err.splitlines() == [DEPRECATED]
    annotations = yaml.safe_load(out)["metadata"].get("annotations", {})
    expected = {cmd_create.CHANGE_CAUSE: cmd_create.change_cause(argv)} if recorded else {}
    assert annotations == expected


def test_create_without_record_says_nothing(manifest_file: Path) -> None:
    code, out, err = kemuctl("create", "-f", str(manifest_file), "--dry-run=client")
    assert (code, out, err) == (0, "service/app-service created (dry run)\n", "")


def test_change_cause_is_the_command_line_quoted() -> None:
    assert cmd_create.change_cause(["create", "-f", "my app.yaml", "--record"]) == \
        "kemuctl create -f 'my app.yaml' --record"


def test_generators_have_no_record_flag() -> None:
    code, _, err = kemuctl("create", "deployment", "web", "--image=x", "--record")
    assert code == 1
    assert err.splitlines()[0] == "error: unknown flag: --record"


@pytest.fixture
def terminal() -> Iterator[io.TextIOWrapper]:
    """The replica end of a pty: a stdin that is a terminal."""
    controller, replica = pty.openpty()
    stream = open(replica, closefd=True)  # noqa: SIM115 (closed below)
    try:
        yield stream
    finally:
        stream.close()
        os.close(controller)


def test_tty_without_a_terminal_warns_then_hints() -> None:
    assert cmd_run.attach_notices(io.StringIO(), tty=True, quiet=False, running=True) == [
        "Unable to use a TTY - input is not a terminal or the right kind of file",
        "If you don't see a command prompt, try pressing enter."]


def test_tty_on_a_terminal_only_hints(terminal: io.TextIOWrapper) -> None:
    assert cmd_run.attach_notices(terminal, tty=True, quiet=False, running=True) == [
        "If you don't see a command prompt, try pressing enter."]


@pytest.mark.parametrize(("tty", "quiet", "running"), [
    pytest.param(False, False, True, id="no-tty"),
    pytest.param(True, True, True, id="quiet"),
    pytest.param(True, False, False, id="finished-before-attach"),
])
def test_no_notices(tty: bool, quiet: bool, running: bool) -> None:
    assert cmd_run.attach_notices(io.StringIO(), tty=tty, quiet=quiet, running=running) == []
