"""`kemuctl exec [-i] [-t] POD|TYPE/NAME [-c CONTAINER] -- COMMAND [ARGS...]`: run a
command in a container through the apiserver's Exec stream, as kubectl does.

The request stream is fed from one queue: the Start message, then (with -t) the terminal
size, then whatever arrives: stdin chunks from a reader thread (and close_stdin at EOF),
and a new size on every SIGWINCH. With -t and a terminal on stdin the local terminal is
in raw mode for the session, so keys such as Ctrl-C reach the remote program; it is
restored on every way out. The remote exit code becomes kemuctl's, with kubectl's
`command terminated with exit code N` on stderr.
"""

from __future__ import annotations

import argparse
import os
import queue
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import grpc

from kemu.api.v1 import api_pb2
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl import podref, term
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, Reported
from kemu.client.errors import from_rpc_error

CHUNK = 32 * 1024
_END = None  # ends the request stream


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("pod", nargs="*", metavar="POD | TYPE/NAME -- COMMAND [ARGS...]")
    p.add_argument("-c", "--container", default="", help="container name (default: the first)")
    p.add_argument("-i", "--stdin", action="store_true", help="pass stdin to the command")
    p.add_argument("-t", "--tty", action="store_true", help="stdin is a TTY")
    p.add_argument("-q", "--quiet", action="store_true",
                   help="only print what the remote command writes")
    p.add_argument("--pod-running-timeout", default="1m",
                   help="how long to wait for a pod of TYPE/NAME to exist")


Request = api_pb2.ExecRequest | None


class ExecSession:
    """One Exec call: a queue that feeds the request stream, and the helpers that fill it."""

    def __init__(self, start: api_pb2.ExecRequest.Start) -> None:
        self.start = start
        self.inbox: queue.Queue[Request] = queue.Queue()

    def requests(self) -> Iterator[api_pb2.ExecRequest]:
        yield api_pb2.ExecRequest(start=self.start)
        while True:
            item = self.inbox.get()
            if item is _END:
                return
            yield item

    def resize(self, size: tuple[int, int] | None) -> None:
        if size is not None:
            cols, rows = size
            self.inbox.put(api_pb2.ExecRequest(
                resize=api_pb2.ExecRequest.Resize(width=cols, height=rows)))

    def pump_stdin(self, read: Callable[[], bytes]) -> threading.Thread:
        """Read stdin in a daemon thread (a blocked read must never keep kemuctl alive),
        sending each chunk, and close_stdin at end of input."""
        def loop() -> None:
            while True:
                try:
                    data = read()
                except (OSError, ValueError):
                    data = b""
                if not data:
                    self.inbox.put(api_pb2.ExecRequest(close_stdin=True))
                    return
                self.inbox.put(api_pb2.ExecRequest(stdin=data))

        thread = threading.Thread(target=loop, name="exec-stdin", daemon=True)
        thread.start()
        return thread

    def close(self) -> None:
        self.inbox.put(_END)


def stdin_reader(stream: Any, *, raw_fd: int | None) -> Callable[[], bytes]:
    """How to read one chunk: os.read on a raw terminal (bytes as typed), read1 on a
    binary stream (whatever a pipe has, without waiting for a full chunk), or text for
    in-memory text streams."""
    if raw_fd is not None:
        return lambda: os.read(raw_fd, CHUNK)
    binary = getattr(stream, "buffer", stream)
    if hasattr(binary, "read1"):
        return lambda: bytes(binary.read1(CHUNK))

    def read_text() -> bytes:
        data = stream.read(CHUNK)
        return data if isinstance(data, bytes) else str(data).encode()
    return read_text


def output_writer(stream: Any) -> Callable[[bytes], None]:
    buffer = getattr(stream, "buffer", None)

    def write(data: bytes) -> None:
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            stream.write(data.decode("utf-8", "replace"))
            stream.flush()
    return write


def parse_target(ctx: Ctx, args: Any) -> tuple[str, list[str]]:
    """The pod argument and the command; `exec POD CMD` without `--` still works, with
    kubectl's deprecation notice."""
    if not args.pod:
        raise CtlError("pod or type/name must be specified")
    command = list(args.command)
    if len(args.pod) > 1:
        if command:
            raise CtlError("exec takes POD or TYPE/NAME before --, and the command after it")
        ctx.error("kubectl exec [POD] [COMMAND] is DEPRECATED and will be removed in a future "
                  "version. Use kubectl exec [POD] -- [COMMAND] instead.".replace(
                      "kubectl", "kemuctl"))
        command = list(args.pod[1:])
    if not command:
        raise CtlError("you must specify at least one command for the container")
    return args.pod[0], command


def run(ctx: Ctx, args: Any) -> int:
    target, command = parse_target(ctx, args)
    pod = podref.resolve_pod(ctx, target, timeout=cli.parse_duration(args.pod_running_timeout))
    if pod.status.phase in ("Succeeded", "Failed"):
        raise CtlError("cannot exec into a container in a completed pod; current phase is "
                       f"{pod.status.phase}")
    container = podref.exec_container(pod, args.container,
                                      (lambda _m: None) if args.quiet else ctx.error)
    use_tty = args.tty and args.stdin
    if use_tty and not term.is_terminal(ctx.stdin):
        if not args.quiet:
            ctx.error("Unable to use a TTY - input is not a terminal or the right kind of file")
        use_tty = False
    session = ExecSession(api_pb2.ExecRequest.Start(
        namespace=pod.metadata.namespace, name=pod.metadata.name, container=container,
        command=command, stdin=args.stdin, tty=use_tty))
    code = stream(ctx, session, stdin=args.stdin, tty=use_tty)
    if code:
        if not args.quiet:
            ctx.error(f"command terminated with exit code {code}")
        raise Reported(code)
    return 0


def _terminal_size(ctx: Ctx) -> tuple[int, int] | None:
    for stream in (ctx.out, ctx.stdin):
        fd = term.fileno(stream)
        if fd is not None:
            found = term.size(fd)
            if found is not None:
                return found
    return None


def stream(ctx: Ctx, session: ExecSession, *, stdin: bool, tty: bool) -> int:
    """Run the session to its end; the remote exit code."""
    client = ctx.client
    write_out, write_err = output_writer(ctx.out), output_writer(ctx.err)
    code = 0
    with ExitStack() as stack:
        in_fd = term.fileno(ctx.stdin) if tty else None
        if tty:
            session.resize(_terminal_size(ctx))
            stack.enter_context(term.on_resize(lambda: session.resize(_terminal_size(ctx))))
            if in_fd is not None:
                stack.enter_context(term.raw_mode(in_fd))
        stack.callback(session.close)
        call = client.resources.Exec(session.requests(), metadata=client.metadata)
        stack.callback(call.cancel)
        if stdin:
            session.pump_stdin(stdin_reader(ctx.stdin, raw_fd=in_fd))
        try:
            for resp in call:
                which = resp.WhichOneof("output")
                if which == "exit_code":
                    code = resp.exit_code
                elif which == "stdout":
                    write_out(resp.stdout)
                elif which == "stderr":
                    write_err(resp.stderr)
        except grpc.RpcError as e:
            raise from_rpc_error(e, client.server) from None
    return code
