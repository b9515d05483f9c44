"""`kemuctl logs POD|TYPE/NAME [-c CONTAINER] [-f] [--tail N] [-p] [--timestamps]
[--since 5m|--since-time T] [--all-containers] [-l SELECTOR] [--prefix]`: a container's log,
streamed through the apiserver from the node agent that runs the pod.

The container is chosen client-side from the pod spec (kubectl's error names the choices
when there are several); `deploy/web` and the like read the first of their pods. With -f
the stream lasts until the server ends it or the user presses Ctrl-C, which is a normal
exit (0), as in kubectl. Several streams (-l, --all-containers) are read one after the
other, or side by side with -f, each line whole, optionally prefixed with its source.
"""

from __future__ import annotations

import argparse
import datetime
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from kemu.api import kinds
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import parser as cli
from kemu.cli.ctl import podref
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, Reported, one_line
from kemu.cli.ctl.fetch import nothing_found
from kemu.client.errors import ClientError

# kubectl: with a selector and no --tail, only the last 10 lines of each container.
SELECTOR_TAIL = 10


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("pod", nargs="*", metavar="POD | TYPE/NAME [CONTAINER]")
    p.add_argument("-c", "--container", default="", help="container name")
    p.add_argument("-f", "--follow", action="store_true", help="keep streaming new lines")
    p.add_argument("--tail", type=int, default=-1,
                   help="only the last N lines (default: all; 10 with a selector)")
    p.add_argument("-p", "--previous", action="store_true",
                   help="the previous (terminated) instance of the container")
    p.add_argument("--timestamps", action="store_true", help="prefix each line with its time")
    p.add_argument("--since", default="", help="only lines newer than this duration, e.g. 5m")
    p.add_argument("--since-time", default="",
                   help="only lines after this RFC 3339 time, e.g. 2024-01-02T15:04:05Z")
    p.add_argument("--all-containers", action="store_true",
                   help="every container of the pod(s)")
    p.add_argument("-l", "--selector", default="", help="the pods with these labels")
    p.add_argument("--prefix", action="store_true",
                   help="prefix each line with [pod/NAME/CONTAINER]")
    p.add_argument("--max-log-requests", type=int, default=5,
                   help="with -f and a selector, how many streams at most")
    p.add_argument("--pod-running-timeout", default="20s",
                   help="how long to wait for a pod of TYPE/NAME to exist")
    p.add_argument("--ignore-errors", action="store_true",
                   help="with several streams, keep going when one fails")


@dataclass(frozen=True)
class Source:
    """One container's log: where it is and the prefix its lines get with --prefix."""

    namespace: str
    pod: str
    container: str

    @property
    def prefix(self) -> str:
        return f"[pod/{self.pod}/{self.container}] "


def since_seconds(args: Any, now: float) -> int:
    """--since or --since-time as the whole seconds the API takes (rounded up)."""
    if args.since and args.since_time:
        raise CtlError("at most one of `sinceTime` or `sinceSeconds` may be specified")
    if args.since:
        seconds = cli.parse_duration(args.since)
        if seconds <= 0:
            raise CtlError("--since must be greater than 0")
        return max(1, int(-(-seconds // 1)))
    if args.since_time:
        try:
            at = datetime.datetime.fromisoformat(args.since_time.replace("Z", "+00:00"))
        except ValueError:
            raise CtlError(f'--since-time only accepts times matching RFC3339, eg '
                           f'2006-01-02T15:04:05Z, got "{args.since_time}"') from None
        if at.tzinfo is None:
            at = at.replace(tzinfo=datetime.UTC)
        return max(1, int(-(-(now - at.timestamp()) // 1)))
    return 0


def request(source: Source, args: Any, since: int, tail: int) -> api_pb2.LogsRequest:
    return api_pb2.LogsRequest(namespace=source.namespace, name=source.pod,
                               container=source.container, follow=args.follow,
                               tail_lines=max(tail, 0), timestamps=args.timestamps,
                               previous=args.previous, since_seconds=since)


def sources_for(ctx: Ctx, args: Any) -> list[Source]:
    """The containers to read, in kubectl's order."""
    if args.selector:
        if args.pod:
            raise CtlError("only a selector (-l) or a POD name is allowed")
        pods = [o.pod for o in ctx.client.list("pods", ctx.namespace,
                                                label_selector=args.selector).items]
        if not pods:
            ctx.error(nothing_found(ctx, [kinds.resolve("pods")], False))
        return [s for pod in pods for s in _pod_sources(pod, args, "", quiet=True)]
    if not args.pod:
        raise CtlError("expected POD or TYPE/NAME: a resource name is required for logs")
    if len(args.pod) > 2:
        raise CtlError("expected 'logs [-f] [-p] (POD | TYPE/NAME) [-c CONTAINER]'")
    if len(args.pod) == 2 and args.container:
        raise CtlError("only one of -c or an inline [CONTAINER] arg is allowed")
    requested = args.container or (args.pod[1] if len(args.pod) == 2 else "")
    pod = podref.resolve_pod(ctx, args.pod[0],
                             timeout=cli.parse_duration(args.pod_running_timeout))
    return _pod_sources(pod, args, requested, quiet=False)


def _pod_sources(pod: Any, args: Any, requested: str, *, quiet: bool) -> list[Source]:
    ns, name = pod.metadata.namespace, pod.metadata.name
    if args.all_containers:
        if requested:
            raise CtlError("--all-containers=true should not be specified with container name "
                           f"{requested}")
        return [Source(ns, name, c) for c in podref.all_containers(pod)]
    if quiet and not requested:
        # With a selector, kubectl's LogsForObject defaults to the first container.
        requested = pod.spec.containers[0].name if pod.spec.containers else ""
    return [Source(ns, name, podref.logs_container(pod, requested))]


class LineWriter:
    """Writes chunks as they come, or whole lines with a prefix when streams share the
    output, so that concurrent streams never interleave inside a line."""

    def __init__(self, write: Callable[[bytes], None], lock: threading.Lock,
                 prefix: str = "") -> None:
        self._write, self._lock, self._prefix = write, lock, prefix.encode()
        self._pending = b""

    def feed(self, chunk: bytes) -> None:
        if not self._prefix:
            with self._lock:
                self._write(chunk)
            return
        data = self._pending + chunk
        *lines, self._pending = data.split(b"\n")
        if lines:
            with self._lock:
                self._write(b"".join(self._prefix + line + b"\n" for line in lines))

    def close(self) -> None:
        if self._pending:
            with self._lock:
                self._write(self._prefix + self._pending + b"\n")
            self._pending = b""


def byte_writer(ctx: Ctx) -> Callable[[bytes], None]:
    """Raw bytes to stdout when it has a buffer, else decoded (in-process tests)."""
    buffer = getattr(ctx.out, "buffer", None)

    def write(data: bytes) -> None:
        if buffer is not None:
            buffer.write(data)
            buffer.flush()
        else:
            ctx.write(data.decode("utf-8", "replace"))
    return write


def copy(chunks: Iterable[bytes], writer: LineWriter) -> None:
    try:
        for chunk in chunks:
            writer.feed(chunk)
    finally:
        writer.close()


def run(ctx: Ctx, args: Any) -> int:
    since = since_seconds(args, ctx.now())
    tail = args.tail if args.tail >= 0 or not args.selector else SELECTOR_TAIL
    try:
        found = sources_for(ctx, args)
        if not found:
            return 0
        if args.tail == 0 and not args.follow:
            # The API's tail_lines 0 means "all"; kubectl's --tail=0 means no old lines.
            return 0
        if args.follow and len(found) > args.max_log_requests:
            raise CtlError(f"you are attempting to follow {len(found)} log streams, but maximum "
                           f"allowed concurrency is {args.max_log_requests}, use "
                           "--max-log-requests to increase the limit")
        lock = threading.Lock()
        write = byte_writer(ctx)
        prefix = args.prefix
        writers = [LineWriter(write, lock, s.prefix if prefix else "") for s in found]
        requests = [request(s, args, since, tail) for s in found]
        if args.follow and len(found) > 1:
            return _follow_all(ctx, args, requests, writers)
        for req, writer in zip(requests, writers, strict=True):
            try:
                copy(ctx.client.logs(req), writer)
            except ClientError as e:
                if not args.ignore_errors or len(found) == 1:
                    raise
                ctx.error(one_line(e))
        return 0
    except KeyboardInterrupt:
        return 0


def _follow_all(ctx: Ctx, args: Any, requests: list[api_pb2.LogsRequest],
                writers: list[LineWriter]) -> int:
    """Follow several streams at once, one thread each; Ctrl-C ends them all."""
    failures: list[BaseException] = []

    def pump(req: api_pb2.LogsRequest, writer: LineWriter) -> None:
        try:
            copy(ctx.client.logs(req), writer)
        except Exception as e:  # reported by the main thread, one line each
            failures.append(e)

    threads = [threading.Thread(target=pump, args=(r, w), daemon=True)
               for r, w in zip(requests, writers, strict=True)]
    for t in threads:
        t.start()
    for t in threads:
        while t.is_alive():
            t.join(0.2)
    for e in failures:
        ctx.error(one_line(e))
    if failures and not args.ignore_errors:
        raise Reported()
    return 0
