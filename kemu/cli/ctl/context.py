"""What every verb gets: the server, namespace and timeout from the global flags, a
lazily made client (so `kemuctl version --client` and `--help` never connect), the
output streams and a clock. Verbs write through `out`/`err` so tests can run `main()`
in-process and capture them.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from kemu.client.auth import impersonation
from kemu.client.client import Client
from kemu.client.config import resolve_token
from kemu.util.tls import ClientTLS


@dataclass
class Ctx:
    server: str
    namespace: str = "default"
    namespace_explicit: bool = False
    timeout: float = 30.0
    # None: resolved as kubectl's credentials are (KEMU_TOKEN, then ~/.kemu/config).
    token: str | None = None
    # TLS to the apiserver, resolved as kubectl's (flags, environment, ~/.kemu/config).
    tls: ClientTLS | None = None
    # kubectl's --as and --as-group: sent with every call as impersonation metadata.
    as_user: str = ""
    as_groups: tuple[str, ...] = ()
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)
    stdin: TextIO = field(default_factory=lambda: sys.stdin)
    clock: Callable[[], float] = time.time
    _client: Client | None = None

    @property
    def client(self) -> Client:
        if self._client is None:
            self._client = Client(self.server, timeout=self.timeout,
                                  token=resolve_token(self.token), tls=self.tls,
                                  metadata=impersonation(self.as_user, self.as_groups))
        return self._client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def now(self) -> float:
        return self.clock()

    def write(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def line(self, text: str) -> None:
        self.write(text + "\n")

    def error(self, text: str) -> None:
        """One line on stderr."""
        self.err.write(text.replace("\n", " ").rstrip() + "\n")
        self.err.flush()
