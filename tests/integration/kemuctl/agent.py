"""A stand-in NodeAgent for kemuctl's logs/exec/run tests: a real gRPC server behind the
real NodeAgent interface, registered as a Node's endpoint so that the real apiserver
proxies to it. It records every request it receives (tests assert on what kemuctl sent)
and answers by script:

- Logs: one line echoing the request, unless a test put a script for the pod in
  `logs_scripts` (a function of the request and the call's context returning the
  chunks, which may block);
- Exec, by command: `exit N` ends with code N; `cat` echoes stdin until close_stdin;
  `tty` (for -t) reports every resize as `resize COLSxROWS`, echoes stdin upper-cased and
  ends with code 7 on `q`; anything else prints the command and ends with 0.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent import futures

import grpc

from kemu.api.v1 import api_pb2, nodeagent_pb2_grpc

LogsScript = Callable[[api_pb2.LogsRequest, grpc.ServicerContext], Iterable[bytes]]


def describe_logs_request(r: api_pb2.LogsRequest) -> str:
    return (f"{r.namespace}/{r.name}/{r.container} follow={r.follow} tail={r.tail_lines} "
            f"timestamps={r.timestamps} previous={r.previous} since={r.since_seconds}\n")


class StandInAgent(nodeagent_pb2_grpc.NodeAgentServicer):
    def __init__(self) -> None:
        self.logs_requests: list[api_pb2.LogsRequest] = []
        self.exec_calls: list[list[api_pb2.ExecRequest]] = []
        self.logs_scripts: dict[str, LogsScript] = {}
        self.changed = threading.Condition()

    def _record(self) -> None:
        with self.changed:
            self.changed.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        """Block until the recorded state satisfies `predicate` (no sleep-and-hope)."""
        with self.changed:
            if not self.changed.wait_for(predicate, timeout):
                raise AssertionError("the stand-in agent did not see what was expected")

    def Logs(self, request: api_pb2.LogsRequest,
             context: grpc.ServicerContext) -> Iterator[api_pb2.LogChunk]:
        self.logs_requests.append(request)
        self._record()
        script = self.logs_scripts.get(request.name)
        chunks = script(request, context) if script else [describe_logs_request(request).encode()]
        for chunk in chunks:
            yield api_pb2.LogChunk(data=chunk)

    def Exec(self, request_iterator: Iterator[api_pb2.ExecRequest],
             context: grpc.ServicerContext) -> Iterator[api_pb2.ExecResponse]:
        seen: list[api_pb2.ExecRequest] = []
        self.exec_calls.append(seen)

        def inputs() -> Iterator[api_pb2.ExecRequest]:
            for req in request_iterator:
                seen.append(req)
                self._record()
                yield req

        stream = inputs()
        start = next(stream).start
        command = list(start.command)
        if command[0] == "exit":
            yield api_pb2.ExecResponse(exit_code=int(command[1]))
        elif command[0] == "cat":
            for req in stream:
                if req.WhichOneof("input") == "stdin":
                    yield api_pb2.ExecResponse(stdout=req.stdin)
                elif req.WhichOneof("input") == "close_stdin":
                    break
            yield api_pb2.ExecResponse(stderr=b"cat: done\n")
            yield api_pb2.ExecResponse(exit_code=0)
        elif command[0] == "tty":
            yield from self._tty(stream)
        else:
            text = f"{start.namespace}/{start.name}/{start.container}: {' '.join(command)}\n"
            yield api_pb2.ExecResponse(stdout=text.encode())
            yield api_pb2.ExecResponse(exit_code=0)

    @staticmethod
    def _tty(stream: Iterator[api_pb2.ExecRequest]) -> Iterator[api_pb2.ExecResponse]:
        for req in stream:
            which = req.WhichOneof("input")
            if which == "resize":
                yield api_pb2.ExecResponse(
                    stdout=f"resize {req.resize.width}x{req.resize.height}\r\n".encode())
            elif which == "stdin":
                yield api_pb2.ExecResponse(stdout=req.stdin.upper())
                if b"q" in req.stdin:
                    break
        yield api_pb2.ExecResponse(exit_code=7)


class AgentServer:
    """The stand-in served on a free loopback port."""

    def __init__(self) -> None:
        self.agent = StandInAgent()
        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
        nodeagent_pb2_grpc.add_NodeAgentServicer_to_server(self.agent, self.server)
        self.port = self.server.add_insecure_port("127.0.0.1:0")

    def __enter__(self) -> AgentServer:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop(0)
