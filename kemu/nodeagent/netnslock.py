"""One networking agent per network namespace, enforced with a lock file.

The lock is an flock on `/run/kemu/netns-<inode>.lock`, named after the inode of this
process's network namespace, so agents in different lab namespaces never contend and two
agents on the same host always do. The kernel drops the lock when the process dies, so a
killed agent never leaves it stale.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_DIR = Path("/run/kemu")


class NetnsLock:
    """Held for the agent's lifetime; `acquire` returns None when another agent holds it."""

    def __init__(self, fd: int, path: Path) -> None:
        self.fd = fd
        self.path = path

    @classmethod
    def acquire(cls, lock_dir: Path = LOCK_DIR) -> NetnsLock | None:
        inode = os.stat("/proc/self/ns/net").st_ino
        lock_dir.mkdir(parents=True, exist_ok=True)
        path = lock_dir / f"netns-{inode}.lock"
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(fd, path)

    def release(self) -> None:
        os.close(self.fd)
