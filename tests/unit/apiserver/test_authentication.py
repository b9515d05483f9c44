"""Authentication sets the caller's identity inside each handler: from a client
certificate (CN the user, O the groups) or a bearer token of the token file, for unary and
streaming handlers alike; a call without credentials never reaches the handler."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from kemu.services.apiserver import identity
from kemu.services.apiserver.auth import (
    TOKEN_ONLY,
    Authenticator,
    AuthInterceptor,
    parse_tokens,
)
from kemu.services.apiserver.identity import Identity
from kemu.util.certs import CertificateAuthority, KeyPair


def _who() -> bytes:
    me = identity.current()
    return f"{me.user}|{','.join(me.groups)}".encode()


async def unary(request: bytes, context: Any) -> bytes:
    return _who()


async def generator(request: bytes, context: Any) -> AsyncIterator[bytes]:
    yield _who()
    yield _who()


async def writer(request: bytes, context: Any) -> None:
    await context.write(_who())


async def stream_in(requests: AsyncIterator[bytes], context: Any) -> bytes:
    async for _ in requests:
        pass
    return _who()


HANDLERS = grpc.method_handlers_generic_handler("test.Who", {
    "Unary": grpc.unary_unary_rpc_method_handler(unary),
    "Generator": grpc.unary_stream_rpc_method_handler(generator),
    "Writer": grpc.unary_stream_rpc_method_handler(writer),
    "StreamIn": grpc.stream_unary_rpc_method_handler(stream_in),
})


async def _calls(channel: grpc.aio.Channel, metadata: tuple[tuple[str, str], ...] = ()
                 ) -> set[bytes]:
    """What each kind of handler saw as its caller."""
    seen = {await channel.unary_unary("/test.Who/Unary")(b"", metadata=metadata, timeout=5)}
    for method in ("Generator", "Writer"):
        async for item in channel.unary_stream(f"/test.Who/{method}")(
                b"", metadata=metadata, timeout=5):
            seen.add(item)

    async def one() -> AsyncIterator[bytes]:
        yield b""
    seen.add(await channel.stream_unary("/test.Who/StreamIn")(one(), metadata=metadata,
                                                              timeout=5))
    return seen


async def test_a_token_names_its_user_and_groups_in_every_kind_of_handler() -> None:
    tokens = parse_tokens('t1,jane,u1,"dev,qa"\nbare\n')
    server = grpc.aio.server(interceptors=[AuthInterceptor(Authenticator(tokens))])
    server.add_generic_rpc_handlers((HANDLERS,))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            assert await _calls(ch, (("authorization", "Bearer t1"),)) == {
                b"jane|dev,qa,system:authenticated"}
            assert await _calls(ch, (("authorization", "Bearer bare"),)) == {
                f"admin|{','.join(TOKEN_ONLY.groups)}".encode()}
            for metadata in ((), (("authorization", "Bearer nope"),)):
                with pytest.raises(grpc.aio.AioRpcError) as e:
                    await _calls(ch, metadata)
                assert e.value.code() == grpc.StatusCode.UNAUTHENTICATED
                assert "needs a bearer token" in (e.value.details() or "")
    finally:
        await server.stop(0)
    # Outside any call: the default of an apiserver without authentication.
    assert identity.current() == identity.UNAUTHENTICATED_ADMIN


async def test_a_client_certificate_names_its_user_and_groups() -> None:
    ca = CertificateAuthority.create()
    serving = ca.issue("kube-apiserver", sans=["127.0.0.1"], server=True, client=False)
    node = ca.issue("system:node:n1", groups=["system:nodes"])
    server = grpc.aio.server(interceptors=[AuthInterceptor(
        Authenticator({}, client_certificates=True))])
    server.add_generic_rpc_handlers((HANDLERS,))
    creds = grpc.ssl_server_credentials([(serving.key_pem, serving.cert_pem)],
                                        root_certificates=ca.pair.cert_pem,
                                        require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()

    def channel(pair: KeyPair) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(f"127.0.0.1:{port}", grpc.ssl_channel_credentials(
            ca.pair.cert_pem, private_key=pair.key_pem, certificate_chain=pair.cert_pem))
    try:
        async with channel(node) as ch:
            seen = await _calls(ch)
            assert seen == {b"system:node:n1|system:nodes,system:authenticated"}
            assert Identity("system:node:n1", ("system:nodes",)).node_name == "n1"
    finally:
        await server.stop(0)
