"""`kemu ... | head -1`: when the reader of kemu's output goes away, kemu stops quietly with
status 0, as cat and kubectl's users expect, instead of printing
"error: [Errno 32] Broken pipe"."""

from __future__ import annotations

import os
import subprocess
import sys


def run_into_closed_pipe(*args: str) -> subprocess.CompletedProcess[bytes]:
    read, write = os.pipe()
    os.close(read)  # the reader is gone before kemu writes a byte
    try:
        return subprocess.run([sys.executable, "-m", "kemu.cli.kemu_main", *args],
                              stdout=write, stderr=subprocess.PIPE, timeout=60, check=False)
    finally:
        os.close(write)


def test_help_into_a_closed_pipe_is_quiet() -> None:
    done = run_into_closed_pipe("--help")
    assert (done.returncode, done.stderr) == (0, b"")


def test_a_command_writing_into_a_closed_pipe_is_quiet(tmp_path: object) -> None:
    done = run_into_closed_pipe("certs", "init", "--dir", str(tmp_path))
    assert (done.returncode, done.stderr) == (0, b"")
