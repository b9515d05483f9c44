"""Impersonation: a call may act as another user, as kubectl's `--as USER --as-group G`.

The client sends the metadata `impersonate-user` (once) and `impersonate-group` (any
number of times), gRPC's form of Kubernetes' Impersonate-User and Impersonate-Group
headers. The authenticated caller needs the impersonate verb on that user and on each
group (system:masters has it; `kubectl create clusterrole ... --verb=impersonate
--resource=users`); otherwise the call fails with PERMISSION_DENIED before it runs,
worded as Kubernetes words it. Then the call runs as the impersonated identity alone:
authorization, the node restriction and access reviews see only it. A group without a
user is INVALID_ARGUMENT, as kube-apiserver's 400.

It runs after authentication (which sets the caller), and also on an `--insecure`
apiserver, whose every caller is an administrator: so `kemuctl --as jane` shows what jane
may do on any cluster.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterable
from typing import Any

import grpc

from kemu.services.apiserver import identity
from kemu.services.apiserver.auth import OPEN_PREFIXES
from kemu.services.apiserver.authorizer import Authorization, impersonate
from kemu.services.apiserver.errors import BadRequest, Forbidden, status
from kemu.util.grpchandlers import AroundInterceptor

USER_KEY = "impersonate-user"
GROUP_KEY = "impersonate-group"


def requested(metadata: Iterable[tuple[str, Any]] | None) -> tuple[str, tuple[str, ...]]:
    """(user, groups) asked for in the call's metadata; ("", ()) when none."""
    user, groups = "", []
    for key, value in metadata or ():
        if not isinstance(value, str):
            continue
        if key.lower() == USER_KEY:
            user = value.strip()
        elif key.lower() == GROUP_KEY:
            groups.append(value.strip())
    return user, tuple(groups)


class ImpersonationInterceptor(AroundInterceptor):
    """Runs a call as the user it asks to impersonate, when its caller may."""

    exempt = OPEN_PREFIXES

    def __init__(self, authorization: Authorization | None) -> None:
        self.authorization = authorization

    @contextlib.asynccontextmanager
    async def around(self, context: grpc.aio.ServicerContext[Any, Any],
                     method: str) -> AsyncIterator[None]:
        user, groups = requested(context.invocation_metadata())
        if not user and not groups:
            yield
            return
        try:
            who = impersonate(self.authorization, identity.current(), user, groups)
        except Forbidden as e:
            await context.abort_with_status(status(
                grpc.StatusCode.PERMISSION_DENIED, str(e), "Forbidden", about=e.about))
        except BadRequest as e:
            await context.abort_with_status(status(
                grpc.StatusCode.INVALID_ARGUMENT, str(e), "BadRequest"))
        token = identity.set_current(who)
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):  # a generator closed from another context
                identity.reset(token)
