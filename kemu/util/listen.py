"""Checks on listen addresses, shared by the components that serve a port."""

from __future__ import annotations

import socket


def check_bindable(address: str) -> None:
    """Fail with one line before grpc's C core logs its own multi-line bind error."""
    host, _, port = address.rpartition(":")
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, int(port)))
        except OSError as e:
            raise OSError(f"cannot listen on {address}: {e.strerror or e}") from None
