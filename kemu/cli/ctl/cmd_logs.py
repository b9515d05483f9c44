"""`kemuctl logs POD [-c CONTAINER] [-f] [--tail N]`: stream a container's log through the
apiserver from the pod's node agent. Until node agents exist the server answers with one
line saying so, which is printed as is."""

from __future__ import annotations

import argparse
from typing import Any

from kemu.api.v1 import api_pb2
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError
from kemu.cli.ctl.podref import pod_name


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("pod", nargs="*", metavar="POD | pod/POD [CONTAINER]")
    p.add_argument("-c", "--container", default="", help="container name")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming new lines")
    p.add_argument("--tail", type=int, default=-1, help="only the last N lines")
    p.add_argument("-p", "--previous", action="store_true",
                   help="the previous (terminated) instance of the container")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    p.add_argument("--since", default="", help="only lines newer than this duration, e.g. 5m")


def run(ctx: Ctx, args: Any) -> int:
    if not args.pod:
        raise CtlError("expected POD or pod/POD: a pod name is required for logs")
    if len(args.pod) > 2:
        raise CtlError("expected POD [CONTAINER]")
    container = args.container or (args.pod[1] if len(args.pod) == 2 else "")
    request = api_pb2.LogsRequest(
        namespace=ctx.namespace, name=pod_name(args.pod[0]), container=container,
        follow=args.follow, tail_lines=max(args.tail, 0), timestamps=args.timestamps,
        previous=args.previous,
        since_seconds=int(cli.parse_duration(args.since)) if args.since else 0)
    out = getattr(ctx.out, "buffer", None)
    try:
        for chunk in ctx.client.logs(request):
            if out is not None:
                out.write(chunk)
                out.flush()
            else:
                ctx.write(chunk.decode("utf-8", "replace"))
    except KeyboardInterrupt:
        return 0
    return 0
