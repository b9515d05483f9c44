"""gRPC server options every kemu server shares.

kemu's clients send HTTP/2 keepalive pings every 20-30 s, also while no call is open, so
that a dead peer is noticed (the apiserver's channels to node agents, clients' channels to
the apiserver and the store). gRPC servers by default accept a ping without data only every
5 minutes and answer more with GOAWAY "too_many_pings", which killed a `kemuctl logs -f`
about a minute after its node agent was last used. These options let pings through; the
interval still bounds how often a client may ping.
"""

from __future__ import annotations

KEEPALIVE_SERVER_OPTIONS: list[tuple[str, int]] = [
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
    ("grpc.http2.max_ping_strikes", 0),
]
