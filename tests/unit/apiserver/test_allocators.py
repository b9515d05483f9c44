"""ClusterIP and NodePort choice: free values, the dynamic band, carry-over on update."""

from __future__ import annotations

import ipaddress
import random

from kemu.api import manifest
from kemu.services.apiserver import allocators


def _svc(doc_spec: dict):  # type: ignore[no-untyped-def]
    return manifest.from_dict({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "s"},
                               "spec": doc_spec}).service.spec


def test_dynamic_allocation_avoids_the_static_band_and_taken_values() -> None:
    ranges = allocators.Ranges()
    rng = random.Random(1)
    taken: set[str] = set()
    for _ in range(200):
        spec = _svc({"type": "NodePort", "ports": [{"port": 80}, {"port": 81, "name": "b"}]})
        claims = allocators.assign(spec, ranges, taken, set(), rng)
        ip = ipaddress.ip_address(spec.cluster_ip)
        assert ip in ranges.service_cidr
        assert int(ip) - int(ranges.service_cidr.network_address) >= 256
        assert spec.cluster_ip not in taken
        taken.add(spec.cluster_ip)
        ports = [p.node_port for p in spec.ports]
        low = ranges.node_port_low + ranges.static_port_band()
        assert len(set(ports)) == 2 and all(low <= p <= 32767 for p in ports)
        assert len(claims.keys) == 3 and not claims.requested


def test_requested_values_are_claimed_as_requested() -> None:
    spec = _svc({"type": "NodePort", "clusterIP": "10.96.0.10",
                 "ports": [{"port": 53, "nodePort": 30053}]})
    claims = allocators.assign(spec, allocators.Ranges(), set(), set(), random.Random(0))
    assert claims.requested == {allocators.IP_PREFIX + "10.96.0.10",
                                allocators.PORT_PREFIX + "30053"}


def test_out_of_range_requests_are_invalid() -> None:
    spec = _svc({"type": "NodePort", "clusterIP": "192.168.1.1",
                 "ports": [{"port": 53, "nodePort": 80}]})
    errs = [str(e) for e in allocators.check_requested(spec, allocators.Ranges())]
    assert errs[0].startswith("spec.clusterIPs: Invalid value")
    assert "not in the valid range" in errs[0]
    assert errs[1].startswith("spec.ports[0].nodePort: Invalid value: 80")


def test_update_keeps_allocated_values_left_unset() -> None:
    old = _svc({"type": "NodePort", "clusterIP": "10.100.0.1",
                "ports": [{"port": 80, "nodePort": 31000, "protocol": "TCP"}]})
    new = _svc({"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]})
    allocators.carry_over(new, old)
    assert new.cluster_ip == "10.100.0.1"
    assert new.ports[0].node_port == 31000


def test_headless_and_external_name_get_no_cluster_ip() -> None:
    headless = _svc({"clusterIP": "None", "ports": [{"port": 80}]})
    assert not allocators.assign(headless, allocators.Ranges(), set(), set(),
                                 random.Random(0)).keys
    assert list(headless.cluster_ips) == ["None"]
    ext = _svc({"type": "ExternalName", "externalName": "example.com"})
    assert not allocators.assign(ext, allocators.Ranges(), set(), set(), random.Random(0)).keys
    assert ext.cluster_ip == ""
