"""`kemuctl exec POD [-c CONTAINER] [-i] [-t] -- COMMAND [ARGS...]`: run a command in a
container through the apiserver's Exec stream; the exit code is the command's. Until node
agents exist the server answers with one line saying so, which is printed as is."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from typing import Any

import grpc

from kemu.api.v1 import api_pb2
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, Reported
from kemu.cli.ctl.podref import pod_name
from kemu.client.errors import from_rpc_error


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("pod", nargs="*", metavar="POD -- COMMAND [ARGS...]")
    p.add_argument("-c", "--container", default="", help="container name")
    p.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the command")
    p.add_argument("-t", "--tty", action="store_true", help="stdin is a TTY")


def requests(ctx: Ctx, args: Any, name: str) -> Iterator[api_pb2.ExecRequest]:
    start = api_pb2.ExecRequest.Start(namespace=ctx.namespace, name=name,
                                      container=args.container, command=list(args.command),
                                      stdin=args.stdin, tty=args.tty)
    yield api_pb2.ExecRequest(start=start)
    if args.stdin:
        source = getattr(ctx.stdin, "buffer", None)
        while True:
            data = source.read1(65536) if source is not None else \
                ctx.stdin.read(65536).encode()
            if not data:
                break
            yield api_pb2.ExecRequest(stdin=data)
        yield api_pb2.ExecRequest(close_stdin=True)


def run(ctx: Ctx, args: Any) -> int:
    if not args.pod:
        raise CtlError("pod or type/name must be specified")
    if len(args.pod) > 1 or not args.command:
        raise CtlError("you must specify at least one command for the container, after --: "
                       "kemuctl exec POD -- COMMAND [ARGS...]")
    client = ctx.client
    call = client.resources.Exec(requests(ctx, args, pod_name(args.pod[0])),
                                 metadata=client.metadata)
    out = getattr(ctx.out, "buffer", None)
    err = getattr(ctx.err, "buffer", None)
    code = 0
    try:
        for resp in call:
            which = resp.WhichOneof("output")
            if which == "exit_code":
                code = resp.exit_code
            elif which in ("stdout", "stderr"):
                data = getattr(resp, which)
                stream = out if which == "stdout" else err
                if stream is not None:
                    stream.write(data)
                    stream.flush()
                else:
                    (ctx.out if which == "stdout" else ctx.err).write(
                        data.decode("utf-8", "replace"))
    except grpc.RpcError as e:
        raise from_rpc_error(e, client.server) from None
    except KeyboardInterrupt:
        call.cancel()
        return 130
    if code:
        ctx.error(f"command terminated with exit code {code}")
        raise Reported(code)
    return 0
