"""Who is calling: the user and groups the apiserver's authentication found for this RPC.

Authentication (auth.py: bearer tokens from `--token-file`, client certificates' CN and O)
sets it for the duration of each call; authorization (RBAC, the node restriction) reads it
with `current()`. Names follow Kubernetes: `system:masters` may do everything,
`system:node:NAME` in `system:nodes` is a node agent, `system:anonymous` in
`system:unauthenticated` is nobody in particular.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    user: str
    groups: tuple[str, ...] = ()

    @property
    def node_name(self) -> str | None:
        """NAME for a node agent's identity (`system:node:NAME` in `system:nodes`)."""
        if "system:nodes" in self.groups and self.user.startswith("system:node:"):
            return self.user.removeprefix("system:node:")
        return None


ANONYMOUS = Identity("system:anonymous", ("system:unauthenticated",))
UNAUTHENTICATED_ADMIN = Identity("system:admin", ("system:masters", "system:authenticated"))
"""Every caller of an apiserver that authenticates no one (`--insecure`): full access, as
the Kubernetes insecure port had."""

_current: contextvars.ContextVar[Identity] = contextvars.ContextVar(
    "kemu_apiserver_identity", default=UNAUTHENTICATED_ADMIN)


def current() -> Identity:
    """The caller of the RPC being served."""
    return _current.get()


def set_current(identity: Identity) -> contextvars.Token[Identity]:
    """Make `identity` the caller for the rest of this task (undo with `reset`)."""
    return _current.set(identity)


def reset(token: contextvars.Token[Identity]) -> None:
    _current.reset(token)
