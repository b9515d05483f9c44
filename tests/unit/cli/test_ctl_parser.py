"""The command line as kubectl reads it: global flags anywhere, flags between positional
arguments, `--` before a command, durations, and usage errors as one `error:` line."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pytest

from kemu.cli import kemuctl
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.errors import CtlError


@pytest.mark.parametrize(("argv", "verb", "rest"), [
    pytest.param(["get", "pods"], "get", ["pods"], id="plain"),
    pytest.param(["-n", "x", "get", "pods"], "get", ["-n", "x", "pods"], id="namespace-first"),
    pytest.param(["--server", "h:1", "get"], "get", ["--server", "h:1"], id="server-first"),
    pytest.param(["--server=h:1", "apply", "-f", "x"], "apply", ["--server=h:1", "-f", "x"],
                 id="equals-form"),
    pytest.param(["-h"], None, ["-h"], id="help-only"),
])
def test_split_verb(argv: list[str], verb: str | None, rest: list[str]) -> None:
    assert cli.split_verb(argv) == (verb, rest)


def test_split_dashes() -> None:
    assert cli.split_dashes(["exec", "p", "--", "ls", "-l"]) == (["exec", "p"], ["ls", "-l"])


@pytest.mark.parametrize(("text", "seconds"), [
    pytest.param("30s", 30.0, id="seconds"), pytest.param("2m", 120.0, id="minutes"),
    pytest.param("1h", 3600.0, id="hours"), pytest.param("500ms", 0.5, id="millis"),
    pytest.param("7", 7.0, id="bare"), pytest.param("0", 0.0, id="zero"),
])
def test_durations(text: str, seconds: float) -> None:
    assert cli.parse_duration(text) == seconds


def test_bad_duration() -> None:
    with pytest.raises(CtlError, match="invalid duration"):
        cli.parse_duration("soon")


def run(argv: Sequence[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        code = kemuctl.run(argv, out, err, io.StringIO())
    except cli.HelpShown:
        code = 0
    return code, out.getvalue(), err.getvalue()


def test_flags_between_positionals_and_global_flags_after_the_verb() -> None:
    parser = kemuctl.build_parser("get")
    args = parser.parse_intermixed_args(["pods", "-n", "x", "web", "--server", "h:1", "-owide"])
    assert (args.resources, args.namespace, args.server, args.output) == (
        ["pods", "web"], "x", "h:1", "wide")


def test_version_client_needs_no_server() -> None:
    code, out, _ = run(["version", "--client", "--server", "127.0.0.1:1"])
    assert code == 0 and out.startswith("Client Version: v")


def test_no_arguments_print_usage() -> None:
    code, out, _ = run([])
    assert code == 0 and "Basic Commands:" in out and "apply" in out


@pytest.mark.parametrize(("argv", "message"), [
    pytest.param(["frobnicate"], 'unknown command "frobnicate" for "kemuctl"', id="verb"),
    pytest.param(["get", "pods", "--bogus"], "unknown flag or argument: --bogus", id="flag"),
])
def test_usage_errors(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert kemuctl.main(argv) == 1
    err = capsys.readouterr().err
    assert err.splitlines()[0] == f"error: {message}"
    assert "Traceback" not in err
