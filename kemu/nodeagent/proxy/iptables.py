"""The exec layer: the only place that runs iptables-restore and iptables-save.

It is kept thin and behind a small Protocol so that `Proxier` can be unit-tested with
`FakeIptables`, which records what would have been applied, and so that tests and the lab
harness can point the real one at a network namespace (`netns=`) instead of the host.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol


class IptablesError(Exception):
    """iptables-restore or iptables-save failed; the message carries its stderr."""


class IptablesExecutor(Protocol):
    """Applies iptables-restore text and reads tables back."""

    def restore(self, text: str, *, noflush: bool = True) -> None:
        """Apply `text` atomically (one iptables-restore run); raise IptablesError."""
        ...

    def save(self, table: str) -> str:
        """The current content of `table` in iptables-save form; raise IptablesError."""
        ...


@dataclass(frozen=True)
class SubprocessIptables:
    """The real executor: runs the iptables binaries, optionally in a network namespace."""

    netns: str | None = None
    timeout: float = 30.0

    def _argv(self, *args: str) -> list[str]:
        prefix = ["ip", "netns", "exec", self.netns] if self.netns else []
        return [*prefix, *args]

    def _run(self, argv: Sequence[str], stdin: str | None = None) -> str:
        try:
            done = subprocess.run(
                list(argv),
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as e:
            raise IptablesError(f"{argv[0]}: {e}") from e
        if done.returncode != 0:
            raise IptablesError(f"{' '.join(argv)} exited {done.returncode}: {done.stderr.strip()}")
        return done.stdout

    def restore(self, text: str, *, noflush: bool = True) -> None:
        """Run `iptables-restore [--noflush] -w 5` with `text` on stdin."""
        args = ["iptables-restore", "-w", "5"]
        if noflush:
            args.append("--noflush")
        self._run(self._argv(*args), stdin=text)

    def save(self, table: str) -> str:
        """Run `iptables-save -t table`."""
        return self._run(self._argv("iptables-save", "-t", table))


@dataclass
class FakeIptables:
    """Records every restore; `save` answers from `tables` (empty tables by default)."""

    tables: Mapping[str, str] = field(default_factory=dict)
    restores: list[tuple[str, bool]] = field(default_factory=list)
    saves: list[str] = field(default_factory=list)
    fail_restore: str | None = None

    def restore(self, text: str, *, noflush: bool = True) -> None:
        """Record the call; raise IptablesError with `fail_restore` when it is set."""
        self.restores.append((text, noflush))
        if self.fail_restore is not None:
            raise IptablesError(self.fail_restore)

    def save(self, table: str) -> str:
        """Record the call and return the preset text of `table`."""
        self.saves.append(table)
        return self.tables.get(table, f"*{table}\nCOMMIT\n")
