"""`POD` or `pod/POD` as logs and exec take it; other types are not resolved to a pod yet."""

from __future__ import annotations

from kemu.api import kinds
from kemu.cli.ctl.errors import CtlError


def pod_name(arg: str) -> str:
    type_text, slash, name = arg.partition("/")
    if not slash:
        return arg
    if kinds.resolve(type_text).plural != "pods":
        raise CtlError(f"cannot choose a pod of {type_text}/{name}: name the pod "
                       "(kemuctl get pods -l ...)")
    return name
