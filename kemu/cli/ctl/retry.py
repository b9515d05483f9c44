"""Read-modify-write with optimistic concurrency, as kubectl's patch retries do.

`update_with` applies a change to a copy of the typed object and writes it; when the
apiserver answers Conflict (someone wrote in between), it reads the object again and
applies the change to that, a few times, so a busy controller never makes a verb fail.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError
from kemu.cli.ctl.output import name_of
from kemu.client.errors import Conflict

ATTEMPTS = 5


def update_with(ctx: Ctx, obj: api_pb2.Object, change: Callable[[Any], bool]) -> bool:
    """Write `change(typed copy)`; False (and no write) when it says there is nothing to
    do. `change` may raise CtlError to refuse."""
    kind, meta = objects.kind_of(obj), objects.meta(obj)
    for _attempt in range(ATTEMPTS):
        fresh = api_pb2.Object()
        fresh.CopyFrom(obj)
        if not change(objects.unwrap(fresh)):
            return False
        try:
            ctx.client.update(fresh)
            return True
        except Conflict:
            obj = ctx.client.get(kind.plural, meta.name, meta.namespace)
    raise CtlError(f"{name_of(obj)} kept changing; try again")
