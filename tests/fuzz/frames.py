"""Malformed, truncated and odd-but-decodable protobuf frames for every method of a gRPC
service, and a raw channel that sends them as bytes (no serializer), as a broken or hostile
client would.

Seeded `random.Random`, not hypothesis: the frames are cheap to make, the calls are what
costs, and a fixed seed keeps CI reproducible.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor, ServiceDescriptor

from tests.fuzz.corpus import EDGE_FLOATS, EDGE_INTS, EDGE_STRINGS

# Byte patterns protobuf decoders must refuse or survive.
HOSTILE = (
    b"\xff" * 11,                          # a varint longer than 10 bytes
    b"\x0a\xff\xff\xff\xff\x0f",           # field 1, length far past the end
    b"\x0a\x05ab",                         # field 1, length 5, 2 bytes follow
    b"\x00",                               # field number 0
    b"\x0f",                               # wire type 7 (does not exist)
    b"\x0b" * 2000,                        # 2000 nested start-groups
    b"\x0c",                               # an end-group with no start
    b"\x0a\x02\xff\xfe",                   # field 1 as a string of invalid UTF-8
    b"\x12\x02\xc3\x28",                   # field 2, invalid UTF-8
    b"\x08\x80\x80\x80\x80\x80\x80\x80\x80\x80\x02",  # varint overflowing 64 bits
    b"\x0a\x80\x80\x80\x80\x10",          # a length of 2**32
    b"\x10" + b"\xff" * 9 + b"\x01",       # field 2 = -1 as a varint (max length)
    b"\x1a\x03\x0a\x01",                   # a nested message cut short
)


@dataclass(frozen=True)
class Method:
    path: str  # /package.Service/Method
    request: type[Any]
    client_streaming: bool
    server_streaming: bool


def methods(*services: ServiceDescriptor) -> list[Method]:
    out = []
    for service in services:
        for m in service.methods:
            out.append(_method(service, m))
    return out


def _method(service: ServiceDescriptor, m: MethodDescriptor) -> Method:
    request = message_factory.GetMessageClass(m.input_type)
    return Method(f"/{service.full_name}/{m.name}", request, m.client_streaming,
                  m.server_streaming)


def _scalar(f: FieldDescriptor, rng: random.Random) -> Any:
    t = f.type
    if t == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return rng.choice(EDGE_FLOATS)
    if t == FieldDescriptor.TYPE_STRING:
        return rng.choice(EDGE_STRINGS)
    if t == FieldDescriptor.TYPE_BYTES:
        return rng.choice((b"", b"\x00", b"\xff" * 3, b"/registry/", b"a" * 300))
    unsigned = t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64,
                     FieldDescriptor.TYPE_FIXED32, FieldDescriptor.TYPE_FIXED64)
    bits = 64 if t in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_UINT64,
                       FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_FIXED64,
                       FieldDescriptor.TYPE_SFIXED64) else 32
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    value = rng.choice((*EDGE_INTS, rng.randint(-3, 5)))
    return min(max(value, low), high)


def fill(msg: Any, rng: random.Random, depth: int = 0) -> Any:
    """Set a random subset of `msg`'s fields to edge values, recursing a few levels."""
    for f in msg.DESCRIPTOR.fields:
        if rng.random() > 0.5:
            continue
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            vf = f.message_type.fields_by_name["value"]
            target = getattr(msg, f.name)
            key = rng.choice(EDGE_STRINGS)
            if vf.message_type is None:
                target[key] = _scalar(vf, rng)
            elif depth < 3:
                fill(target[key], rng, depth + 1)
        elif f.message_type is not None:
            if depth >= 3:
                continue
            if f.is_repeated:
                for _ in range(rng.randint(0, 2)):
                    fill(getattr(msg, f.name).add(), rng, depth + 1)
            else:
                sub = getattr(msg, f.name)
                sub.SetInParent()
                fill(sub, rng, depth + 1)
        elif f.is_repeated:
            getattr(msg, f.name).extend(_scalar(f, rng) for _ in range(rng.randint(0, 2)))
        else:
            setattr(msg, f.name, _scalar(f, rng))
    return msg


def frames(method: Method, rng: random.Random, random_count: int) -> Iterator[bytes]:
    """Frames for one method: hostile patterns, random bytes, and random-but-valid requests
    whole and truncated (a cut message usually still decodes, into something odd)."""
    yield b""
    yield from HOSTILE
    for _ in range(random_count):
        yield rng.randbytes(rng.choice((1, 2, 5, 17, 64, 300)))
        whole = fill(method.request(), rng).SerializeToString()
        yield whole
        if len(whole) > 1:
            yield whole[: rng.randrange(1, len(whole))]


def call(channel: grpc.Channel, method: Method, frame: bytes, *, timeout: float = 3.0
         ) -> grpc.RpcError | None:
    """Send one raw frame (the only one of a stream); the error, or None when it ended OK.
    A stream is read for a few responses and then cancelled: only how it ends matters."""
    raw: dict[str, Any] = {"request_serializer": None, "response_deserializer": None}
    try:
        if not method.client_streaming and not method.server_streaming:
            channel.unary_unary(method.path, **raw)(frame, timeout=timeout)
            return None
        if method.client_streaming:
            responses = channel.stream_stream(method.path, **raw)(iter([frame]), timeout=timeout)
        else:
            responses = channel.unary_stream(method.path, **raw)(frame, timeout=timeout)
        for i, _ in enumerate(responses):
            if i >= 3:
                responses.cancel()
                break
    except grpc.RpcError as e:
        return e
    return None
