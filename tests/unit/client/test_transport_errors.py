"""What a user reads when the channel itself fails: kubectl's words for a refused
connection, an untrusted server certificate, and a TLS server that hangs up on a caller
without a client certificate (gRPC reports all three as UNAVAILABLE)."""

from __future__ import annotations

import grpc
import pytest

from kemu.client.errors import Unavailable, from_rpc_error

TARGET = "127.0.0.1:6443"


def _channel_error(details: str) -> grpc.RpcError:
    return grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(),
                                grpc.aio.Metadata(), details)


@pytest.mark.parametrize(("details", "message"), [
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:6443: "
     "Failed to connect to remote host: Connection refused",
     f"The connection to the server {TARGET} was refused - did you specify the right host "
     "or port?"),
    ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:6443: Tls "
     "handshake failed (TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:"
     "OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate",
     f"Unable to connect to the server {TARGET}: x509: certificate signed by unknown "
     "authority (check --certificate-authority)"),
    ("failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:6443: "
     "Socket closed",
     f"Unable to connect to the server {TARGET}: it closed the connection; it may serve TLS "
     "and require a client certificate (--certificate-authority, --client-certificate and "
     "--client-key, or the cluster's entry in ~/.kemu/config)"),
])
def test_channel_failures_in_kubectls_words(details: str, message: str) -> None:
    err = from_rpc_error(_channel_error(details), TARGET)
    assert isinstance(err, Unavailable)
    assert err.message == message


def test_a_servers_own_unavailable_is_passed_on() -> None:
    err = from_rpc_error(_channel_error("apiserver is shutting down"), TARGET)
    assert err.message == "apiserver is shutting down"
