"""Chain names: stable, prefixed, within iptables' 28-character limit."""

from __future__ import annotations

import base64
import hashlib

import pytest

from kemu.nodeagent.proxy import chains
from kemu.nodeagent.proxy.render import probability


def test_svc_chain_is_kube_proxy_hash_with_our_prefix() -> None:
    digest = hashlib.sha256(b"default/web:httptcp").digest()
    expected = "KEMU-SVC-" + base64.b32encode(digest).decode()[:16]
    assert chains.svc_chain("default/web:http", "TCP") == expected


@pytest.mark.parametrize(
    "name",
    [
        pytest.param(chains.svc_chain("a" * 63 + "/" + "b" * 63 + ":" + "c" * 15, "tcp"), id="svc"),
        pytest.param(chains.svl_chain("ns/x", "udp"), id="svl"),
        pytest.param(chains.ext_chain("ns/x", "sctp"), id="ext"),
        pytest.param(chains.sep_chain("ns/x:p", "tcp", "10.244.0.5:8080"), id="sep"),
        pytest.param(chains.EXTERNAL_SERVICES, id="external-services"),
    ],
)
def test_names_fit_iptables_limit(name: str) -> None:
    assert len(name) <= chains.MAX_CHAIN_LEN
    assert chains.is_ours(name)


def test_names_differ_by_protocol_and_endpoint() -> None:
    assert chains.svc_chain("ns/x", "tcp") != chains.svc_chain("ns/x", "udp")
    assert chains.sep_chain("ns/x", "tcp", "10.0.0.1:80") != chains.sep_chain(
        "ns/x", "tcp", "10.0.0.2:80"
    )


@pytest.mark.parametrize(
    ("n", "printed"),
    [
        pytest.param(2, "0.50000000000", id="half"),
        pytest.param(3, "0.33333333349", id="third"),
        pytest.param(4, "0.25000000000", id="quarter"),
        pytest.param(10, "0.10000000009", id="tenth"),
    ],
)
def test_probability_prints_as_iptables_save(n: int, printed: str) -> None:
    assert probability(n) == printed
