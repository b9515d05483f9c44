"""The Kubernetes bootcamp demo app, rebuilt on the python3 standard library.

Like gcr.io/google-samples/kubernetes-bootcamp it answers every GET on port 8080 with

    Hello Kubernetes bootcamp! | Running on: <hostname> | v=<VERSION>

and logs one line per request to stdout, so that tutorials (scale, rolling update from
v=1 to v=2, Services spreading load over pods) behave as in Kubernetes. It exits at once
on SIGTERM or SIGINT, as PID 1 in a container would otherwise ignore SIGTERM.
"""

from __future__ import annotations

import datetime
import http.server
import os
import signal
import socket
import sys
import threading
import time
from types import FrameType

VERSION = os.environ.get("VERSION", "1")
PORT = int(os.environ.get("PORT", "8080"))
HOSTNAME = socket.gethostname()
STARTED = time.monotonic()
_requests = 0
_lock = threading.Lock()


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "kemu-bootcamp"
    protocol_version = "HTTP/1.1"

    def _answer(self, *, body: bool) -> None:
        global _requests
        with _lock:
            _requests += 1
            count = _requests
        payload = f"Hello Kubernetes bootcamp! | Running on: {HOSTNAME} | v={VERSION}\n".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if body:
            self.wfile.write(payload)
        uptime = time.monotonic() - STARTED
        print(f"Running On: {HOSTNAME} | Total Requests: {count} | "
              f"App Uptime: {uptime:.3f} seconds | Log Time: {_now()} | "
              f"Client: {self.client_address[0]} {self.command} {self.path}", flush=True)

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self._answer(body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(body=False)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass  # one line per request is printed by _answer


def _stop(signo: int, frame: FrameType | None) -> None:
    print(f"Received {signal.Signals(signo).name}, shutting down", flush=True)
    sys.exit(0)


def main() -> None:
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    server = http.server.ThreadingHTTPServer(("", PORT), Handler)
    server.daemon_threads = True
    print(f"Kubernetes Bootcamp App Started At: {_now()} | Running On: {HOSTNAME} | "
          f"v={VERSION} | Port: {PORT}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
