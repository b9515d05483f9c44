"""The renderer against golden iptables-restore text, one file per Service shape.

The golden files are the review surface for rule changes: a diff in them is a diff in what
lands in the kernel. Regenerate them with `UPDATE_GOLDEN=1 pytest tests/unit/proxy` and read
the diff before committing.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from kemu.nodeagent.proxy import EndpointInfo, ServicePortInfo, render

GOLDEN = Path(__file__).parent / "golden"
CIDR = "10.244.0.0/16"


def web(**kw: object) -> ServicePortInfo:
    """default/web:http, TCP 10.96.0.10:80, with overrides."""
    args: dict[str, object] = {
        "namespace": "default",
        "name": "web",
        "port_name": "http",
        "protocol": "TCP",
        "cluster_ip": "10.96.0.10",
        "port": 80,
    }
    args.update(kw)
    return ServicePortInfo(**args)  # type: ignore[arg-type]


def eps(*ips: str, port: int = 8080, local: Sequence[str] = ()) -> list[EndpointInfo]:
    """Ready endpoints on `port`; those in `local` run on this node."""
    return [EndpointInfo(ip, port, is_local=ip in local) for ip in ips]


THREE = eps("10.244.1.7", "10.244.0.5", "10.244.2.9")

CASES = [
    pytest.param([web()], {"default/web:http": eps("10.244.0.5")}, id="clusterip-1-endpoint"),
    pytest.param([web()], {"default/web:http": THREE}, id="clusterip-3-endpoints"),
    pytest.param([web(node_port=30080)], {"default/web:http": THREE[:2]}, id="nodeport"),
    pytest.param(
        [web(node_port=30080, external_ips=("192.0.2.10",), load_balancer_ips=("203.0.113.5",))],
        {"default/web:http": THREE[:2]},
        id="loadbalancer-externalips",
    ),
    pytest.param(
        [web(affinity_timeout=10800)], {"default/web:http": THREE[:2]}, id="session-affinity"
    ),
    pytest.param(
        [
            ServicePortInfo(
                "kube-system", "kube-dns", "dns", "UDP", "10.96.0.10", 53, affinity_timeout=0
            ),
            ServicePortInfo("kube-system", "kube-dns", "dns-tcp", "TCP", "10.96.0.10", 53),
        ],
        {
            "kube-system/kube-dns:dns": eps("10.244.0.3", port=53),
            "kube-system/kube-dns:dns-tcp": eps("10.244.0.3", port=53),
        },
        id="udp",
    ),
    pytest.param([], {}, id="headless-no-rules"),
    pytest.param(
        [web(node_port=30080, external_ips=("192.0.2.10",))], {}, id="no-endpoints-reject"
    ),
    pytest.param(
        [web()],
        {"default/web:http": [*eps("10.244.0.5"), EndpointInfo("10.244.0.6", 8080, ready=False)]},
        id="not-ready-skipped",
    ),
    pytest.param(
        [web(node_port=30080, external_policy_local=True)],
        {"default/web:http": eps("10.244.0.5", "10.244.1.7", local=["10.244.0.5"])},
        id="external-policy-local",
    ),
    pytest.param(
        [web(node_port=30080, external_policy_local=True)],
        {"default/web:http": eps("10.244.1.7")},
        id="external-policy-local-no-local-endpoints",
    ),
    pytest.param(
        [web(internal_policy_local=True)],
        {"default/web:http": eps("10.244.0.5", "10.244.1.7", local=["10.244.0.5"])},
        id="internal-policy-local",
    ),
    pytest.param(
        [web(internal_policy_local=True)],
        {"default/web:http": eps("10.244.1.7")},
        id="internal-policy-local-no-local-endpoints",
    ),
]


@pytest.mark.parametrize(("services", "endpoints"), CASES)
def test_render_matches_golden(
    request: pytest.FixtureRequest,
    services: list[ServicePortInfo],
    endpoints: Mapping[str, Sequence[EndpointInfo]],
) -> None:
    text = render(services, endpoints, node_ips=["192.168.1.10"], cluster_cidr=CIDR)
    path = GOLDEN / f"{request.node.callspec.id}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert path.exists(), f"no golden file {path}: run with UPDATE_GOLDEN=1"
    assert text == path.read_text()


def test_render_is_order_independent() -> None:
    a = render(
        [web(), web(name="api", cluster_ip="10.96.0.11")],
        {"default/web:http": THREE, "default/api:http": eps("10.244.0.8")},
        node_ips=[],
        cluster_cidr=CIDR,
    )
    b = render(
        [web(name="api", cluster_ip="10.96.0.11"), web()],
        {"default/api:http": eps("10.244.0.8"), "default/web:http": list(reversed(THREE))},
        node_ips=[],
        cluster_cidr=CIDR,
    )
    assert a == b


def test_nodeport_addresses_primary_uses_node_ips() -> None:
    text = render(
        [web(node_port=30080)],
        {"default/web:http": eps("10.244.0.5")},
        node_ips=["192.168.1.10"],
        cluster_cidr=CIDR,
        nodeport_addresses=["primary"],
    )
    assert "-A KEMU-SERVICES -d 192.168.1.10/32 -m comment" in text
    assert "--dst-type LOCAL -j KEMU-NODEPORTS" not in text


def test_custom_masquerade_mark() -> None:
    text = render([], {}, node_ips=[], cluster_cidr=CIDR, masquerade_mark="0x8000")
    assert "-A KEMU-MARK-MASQ -j MARK --set-xmark 0x8000/0x8000" in text
    assert "-m mark ! --mark 0x8000/0x8000 -j RETURN" in text


def test_localhost_nodeports_include_loopback_and_block_martians() -> None:
    text = render([web(node_port=30080)], {"default/web:http": eps("10.244.0.5")},
                  node_ips=["192.168.1.10"], cluster_cidr=CIDR, localhost_nodeports=True)
    assert ('-A KEMU-SERVICES -m comment --comment "kemu service nodeports; NOTE: this must '
            'be the last rule in this chain" -m addrtype --dst-type LOCAL -j KEMU-NODEPORTS'
            ) in text
    assert "! -d 127.0.0.0/8" not in text
    assert ('-A KEMU-EXTERNAL-SERVICES ! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment '
            '"block incoming localnet connections" -m conntrack ! --ctstate '
            'RELATED,ESTABLISHED,DNAT -j DROP') in text
