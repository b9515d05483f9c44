"""A small subprocess wrapper shared by the lab modules.

The lab drives `ip`, `nsenter` and `docker` as a person would; errors carry the command's
stderr so a failed `ip link add` says why (name too long, already exists).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence


class LabError(RuntimeError):
    """A lab command failed; the message holds the command and its stderr."""


def run(args: Sequence[str], *, check: bool = True, timeout: float = 30.0) -> str:
    """Run `args` and return its stdout; raise LabError (with stderr) when it fails."""
    proc = subprocess.run(
        list(args), capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and proc.returncode != 0:
        raise LabError(f"{' '.join(args)}: exit {proc.returncode}: {proc.stderr.strip()}")
    return proc.stdout
