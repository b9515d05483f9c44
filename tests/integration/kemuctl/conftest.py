"""Run the real kemuctl against the real store + apiserver of the `cluster` fixture.

`ctl(...)` runs `kemuctl main()` in-process with stdout/stderr captured (fast, and any
exception escaping main would fail the test); `ctl.process(...)` runs it as a separate
program, which is what the "one line, no traceback" checks and the watch tests use.
Each test gets its own namespace, since the cluster is shared by a module.
"""

from __future__ import annotations

import io
import itertools
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from unittest import mock

import pytest

from kemu.cli.kemuctl import main
from tests.conftest import Cluster

_names = itertools.count()


def unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}-{uuid.uuid4().hex[:5]}"


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()

    @property
    def err_lines(self) -> list[str]:
        return self.err.splitlines()


class Kemuctl:
    def __init__(self, server: str) -> None:
        self.server = server

    def __call__(self, *args: str, stdin: str = "") -> Result:
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err), \
                mock.patch("sys.stdin", io.StringIO(stdin)):
            code = main(["--server", self.server, *args])
        return Result(code, out.getvalue(), err.getvalue())

    def ok(self, *args: str, stdin: str = "") -> Result:
        result = self(*args, stdin=stdin)
        assert result.code == 0, f"kemuctl {' '.join(args)} failed: {result.err}"
        return result

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "kemu.cli.kemuctl", "--server", self.server, *args]

    def process(self, *args: str, stdin: str = "", timeout: float = 60) -> Result:
        done = subprocess.run(self.argv(*args), input=stdin, capture_output=True, text=True,
                              timeout=timeout, check=False)
        return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="module")
def ctl(cluster: Cluster) -> Kemuctl:
    return Kemuctl(cluster.server)


@pytest.fixture
def ns(ctl: Kemuctl) -> Iterator[str]:
    name = unique("ctl")
    ctl.ok("create", "namespace", name)
    yield name
