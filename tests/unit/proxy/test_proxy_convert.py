"""Typed Service and Endpoints objects to the proxy model."""

from __future__ import annotations

from google.protobuf import json_format

from kemu.api.v1 import core_pb2
from kemu.nodeagent.proxy import EndpointInfo, ServicePortInfo
from kemu.nodeagent.proxy.convert import desired_state, service_ports


def service(manifest: dict[str, object]) -> core_pb2.Service:
    return json_format.ParseDict(manifest, core_pb2.Service())


def endpoints(manifest: dict[str, object]) -> core_pb2.Endpoints:
    return json_format.ParseDict(manifest, core_pb2.Endpoints())


WEB_EPS = endpoints(
    {
        "metadata": {"name": "web", "namespace": "default"},
        "subsets": [
            {
                "addresses": [
                    {"ip": "10.244.0.5", "nodeName": "node-1"},
                    {"ip": "10.244.1.7", "nodeName": "node-2"},
                ],
                "notReadyAddresses": [{"ip": "10.244.0.6", "nodeName": "node-1"}],
                "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}],
            }
        ],
    }
)


def test_nodeport_service_with_affinity() -> None:
    svc = service(
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "type": "NodePort",
                "clusterIP": "10.96.0.20",
                "ports": [{"name": "http", "port": 80, "nodePort": 30080, "protocol": "TCP"}],
                "sessionAffinity": "ClientIP",
                "externalIPs": ["192.0.2.1"],
            },
        }
    )
    ports, eps = desired_state([svc], [WEB_EPS], node_name="node-1")
    assert ports == [
        ServicePortInfo(
            "default",
            "web",
            "http",
            "TCP",
            "10.96.0.20",
            80,
            node_port=30080,
            external_ips=("192.0.2.1",),
            affinity_timeout=10800,
        )
    ]
    assert eps == {
        "default/web:http": [
            EndpointInfo("10.244.0.5", 8080, ready=True, is_local=True),
            EndpointInfo("10.244.0.6", 8080, ready=False, is_local=True),
            EndpointInfo("10.244.1.7", 8080, ready=True, is_local=False),
        ]
    }


def test_loadbalancer_ips_and_policies() -> None:
    svc = service(
        {
            "metadata": {"name": "lb", "namespace": "prod"},
            "spec": {
                "type": "LoadBalancer",
                "clusterIP": "10.96.0.21",
                "ports": [{"port": 443, "nodePort": 31443}],
                "externalTrafficPolicy": "Local",
                "internalTrafficPolicy": "Local",
                "sessionAffinity": "ClientIP",
                "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 60}},
            },
            "status": {"loadBalancer": {"ingress": [{"ip": "203.0.113.5"}]}},
        }
    )
    [port] = service_ports(svc)
    assert port.key == "prod/lb"
    assert port.protocol == "TCP"
    assert port.load_balancer_ips == ("203.0.113.5",)
    assert port.external_policy_local and port.internal_policy_local
    assert port.affinity_timeout == 60


def test_clusterip_type_ignores_node_port() -> None:
    svc = service(
        {
            "metadata": {"name": "c", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.22", "ports": [{"port": 80, "nodePort": 30001}]},
        }
    )
    assert service_ports(svc)[0].node_port == 0


def test_headless_and_external_name_get_no_rules() -> None:
    headless = service(
        {
            "metadata": {"name": "h", "namespace": "default"},
            "spec": {"clusterIP": "None", "ports": [{"port": 80}]},
        }
    )
    ext = service(
        {
            "metadata": {"name": "e", "namespace": "default"},
            "spec": {"type": "ExternalName", "externalName": "example.com"},
        }
    )
    assert desired_state([headless, ext], [], node_name="n") == ([], {})


def test_port_without_matching_endpoint_port_has_no_endpoints() -> None:
    svc = service(
        {
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {"clusterIP": "10.96.0.20", "ports": [{"name": "metrics", "port": 9090}]},
        }
    )
    _, eps = desired_state([svc], [WEB_EPS], node_name="node-1")
    assert eps == {"default/web:metrics": []}
