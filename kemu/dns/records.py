"""The cluster zone: Services, Endpoints and Pods -> DNS answers (the Kubernetes DNS spec).

This module is pure: it knows nothing of sockets or informers, so every record kind is
unit-tested by handing it protobuf objects and asking names. `Zone.build` turns the three
object lists into one dict keyed by the lower-cased owner name, so a query is a dict lookup
and names compare case-insensitively for free. The server rebuilds the zone when an
informer reports a change (lazily, on the next query), which keeps answers at most one
query behind the API.

What is answered (kubernetes/dns docs/specification.md, CoreDNS's kubernetes plugin):

- `dns-version.<domain>` TXT with the schema version;
- ClusterIP Service: A/AAAA `<svc>.<ns>.svc.<domain>`, SRV per named port
  `_<port>._<proto>.<svc>.<ns>.svc.<domain>`, PTR for the ClusterIP;
- headless Service: A per ready endpoint (none ready: the name does not exist), A
  `<hostname>.<svc>.<ns>.svc.<domain>` per endpoint (endpoint hostname, else dashed IP),
  SRV per endpoint and named port, PTR per endpoint IP;
- ExternalName Service: CNAME;
- pods: A `<a-b-c-d>.<ns>.pod.<domain>`, PTR to it, and `<hostname>.<subdomain>.<ns>.svc`
  when a headless Service named like the pod's subdomain exists;
- every other name under the domain: NXDOMAIN with the SOA in the authority section; an
  existing name asked with a type it lacks: NOERROR, no answers, SOA in authority.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from dnslib import (  # type: ignore[import-untyped]
    AAAA,
    CNAME,
    PTR,
    QTYPE,
    RCODE,
    RR,
    SOA,
    SRV,
    TXT,
    A,
)

from kemu.api.v1 import core_pb2

SCHEMA_VERSION = "1.1.0"
DEFAULT_TTL = 5

A_T: int = QTYPE.A
AAAA_T: int = QTYPE.AAAA
CNAME_T: int = QTYPE.CNAME
PTR_T: int = QTYPE.PTR
SRV_T: int = QTYPE.SRV
TXT_T: int = QTYPE.TXT
SOA_T: int = QTYPE.SOA
ANY_T: int = QTYPE.ANY
NOERROR: int = RCODE.NOERROR
NXDOMAIN: int = RCODE.NXDOMAIN


@dataclass(frozen=True)
class Answer:
    """What the zone says about one question: rcode, answer and authority records."""

    rcode: int
    answers: tuple[RR, ...] = ()
    authority: tuple[RR, ...] = ()
    additional: tuple[RR, ...] = ()


def normalize(name: str) -> str:
    """Lower case, no trailing dot: the key every name is stored and looked up under."""
    return name.rstrip(".").lower()


def dashed(ip: str) -> str:
    """`10.244.1.5` -> `10-244-1-5` (IPv6: colons to dashes, as CoreDNS does)."""
    return ip.replace(".", "-").replace(":", "-")


def reverse_name(ip: str) -> str | None:
    """`10.96.0.10` -> `10.0.96.10.in-addr.arpa`; None for something that is not an IP."""
    if ":" not in ip:  # the common case, without ipaddress's (slow) parser
        octets = ip.split(".")
        if len(octets) == 4 and all(o.isdigit() and int(o) < 256 for o in octets):
            return ".".join(reversed(octets)) + ".in-addr.arpa"
        return None
    try:
        return ipaddress.ip_address(ip).reverse_pointer
    except ValueError:
        return None


Value = str | tuple[int, str]  # an address, target or text; SRV: (port, target)


@dataclass
class _Node:
    """One owner name: its record values by type (an existing name may have none).

    Values, not dnslib RRs, are stored: building thousands of RR objects on every informer
    change costs more than the zone rebuild itself, and most names are never asked. RRs
    are made on the first question and kept in `made`.
    """

    values: dict[int, list[Value]] = field(default_factory=dict)
    made: dict[int, tuple[RR, ...]] = field(default_factory=dict)


@dataclass
class Zone:
    """The cluster domain and the reverse names it owns, built whole from the objects;
    after `build` only the per-name memo of made RRs changes."""

    domain: str = "cluster.local"
    ttl: int = DEFAULT_TTL
    serial: int = 0
    nodes: dict[str, _Node] = field(default_factory=dict)

    # -- building ---------------------------------------------------------------------
    @classmethod
    def build(cls, services: Iterable[core_pb2.Service],
              endpoints: Iterable[core_pb2.Endpoints], pods: Iterable[core_pb2.Pod], *,
              domain: str = "cluster.local", ttl: int = DEFAULT_TTL,
              serial: int | None = None) -> Zone:
        """The zone for these objects; `serial` defaults to the current time (as CoreDNS)."""
        zone = cls(domain=normalize(domain), ttl=ttl,
                   serial=int(time.time()) if serial is None else serial)
        zone._node(zone.domain)
        zone._add(f"dns-version.{zone.domain}", TXT_T, SCHEMA_VERSION)
        eps = {(e.metadata.namespace, e.metadata.name): e for e in endpoints}
        headless: set[tuple[str, str]] = set()
        ptr_done: set[str] = set()
        for svc in services:
            key = (svc.metadata.namespace, svc.metadata.name)
            if svc.spec.type == "ExternalName":
                zone._external_name(svc)
            elif svc.spec.cluster_ip == "None":
                headless.add(key)
                zone._headless(svc, eps.get(key), ptr_done)
            elif svc.spec.cluster_ip:
                zone._cluster_ip(svc, ptr_done)
        for pod in pods:
            zone._pod(pod, headless, ptr_done)
        return zone

    def _node(self, name: str) -> _Node:
        """The node for `name`, creating it and every ancestor up to the domain (so that
        `<ns>.svc.<domain>` exists and answers NOERROR, as in CoreDNS)."""
        node = self.nodes.get(name)
        if node is None:
            node = self.nodes[name] = _Node()
            parent = name.partition(".")[2]
            if parent and name != self.domain and parent.endswith(self.domain):
                self._node(parent)
        return node

    def _add(self, name: str, rtype: int, value: Value) -> None:
        self._node(normalize(name)).values.setdefault(rtype, []).append(value)

    def _address(self, name: str, ip: str) -> None:
        """A for IPv4, AAAA for IPv6; anything else is skipped (the apiserver validates
        IPs, so this is only a guard against a record dnslib cannot pack)."""
        if reverse_name(ip) is None:
            return
        self._add(name, AAAA_T if ":" in ip else A_T, ip)

    def _ptr(self, ip: str, target: str, done: set[str]) -> None:
        """One PTR per IP: the first owner wins (services first, then pods)."""
        rev = reverse_name(ip)
        if rev is None or rev in done:
            return
        done.add(rev)
        self._add(rev, PTR_T, target + ".")

    def _svc_name(self, svc: core_pb2.Service) -> str:
        return f"{svc.metadata.name}.{svc.metadata.namespace}.svc.{self.domain}".lower()

    def _external_name(self, svc: core_pb2.Service) -> None:
        if svc.spec.external_name:
            self._add(self._svc_name(svc), CNAME_T, svc.spec.external_name.rstrip(".") + ".")

    def _cluster_ip(self, svc: core_pb2.Service, ptr_done: set[str]) -> None:
        name = self._svc_name(svc)
        ips = list(svc.spec.cluster_ips) or [svc.spec.cluster_ip]
        for ip in ips:
            self._address(name, ip)
            self._ptr(ip, name, ptr_done)
        for port in svc.spec.ports:
            if port.name:
                proto = (port.protocol or "TCP").lower()
                self._add(f"_{port.name}._{proto}.{name}", SRV_T, (port.port, name + "."))

    def _headless(self, svc: core_pb2.Service, eps: core_pb2.Endpoints | None,
                  ptr_done: set[str]) -> None:
        """A per ready endpoint (plus not-ready ones with publishNotReadyAddresses); with
        none the service name is left out, so it is NXDOMAIN as the spec says."""
        if eps is None:
            return
        name = self._svc_name(svc)
        for subset in eps.subsets:
            addresses = list(subset.addresses)
            if svc.spec.publish_not_ready_addresses:
                addresses += list(subset.not_ready_addresses)
            for addr in addresses:
                host = (addr.hostname or dashed(addr.ip)).lower()
                member = f"{host}.{name}"
                self._address(name, addr.ip)
                self._address(member, addr.ip)
                self._ptr(addr.ip, member, ptr_done)
                for port in subset.ports:
                    if port.name:
                        proto = (port.protocol or "TCP").lower()
                        self._add(f"_{port.name}._{proto}.{name}", SRV_T,
                                  (port.port, member + "."))

    def _pod(self, pod: core_pb2.Pod, headless: set[tuple[str, str]],
             ptr_done: set[str]) -> None:
        ip = pod.status.pod_ip
        if not ip:
            return
        ns = pod.metadata.namespace
        name = f"{dashed(ip)}.{ns}.pod.{self.domain}".lower()
        self._address(name, ip)
        if pod.spec.hostname and pod.spec.subdomain and (ns, pod.spec.subdomain) in headless:
            member = f"{pod.spec.hostname}.{pod.spec.subdomain}.{ns}.svc.{self.domain}".lower()
            if member not in self.nodes:  # the endpoint's record, when there is one, wins
                self._address(member, ip)
        self._ptr(ip, name, ptr_done)

    # -- answering --------------------------------------------------------------------
    def _records(self, name: str, node: _Node, rtype: int) -> tuple[RR, ...]:
        made = node.made.get(rtype)
        if made is None:
            made = node.made[rtype] = tuple(
                RR(name + ".", rtype, rdata=_rdata(rtype, v), ttl=self.ttl)
                for v in node.values.get(rtype, ()))
        return made

    def soa(self) -> RR:
        """The zone's SOA, with CoreDNS's timers; the minimum (negative TTL) is the TTL."""
        return RR(self.domain + ".", SOA_T, ttl=self.ttl, rdata=SOA(
            f"ns.dns.{self.domain}.", f"hostmaster.{self.domain}.",
            (self.serial, 7200, 1800, 86400, self.ttl)))

    def authoritative_for(self, name: str) -> bool:
        """True for names under the domain and for reverse names the zone holds; other
        reverse names go upstream, as with CoreDNS's `fallthrough in-addr.arpa`."""
        return name == self.domain or name.endswith("." + self.domain) or name in self.nodes

    def resolve(self, qname: str, qtype: int) -> Answer | None:
        """The answer for one question, or None when it is not ours (forward it)."""
        name = normalize(qname)
        if not self.authoritative_for(name):
            return None
        node = self.nodes.get(name)
        if node is None:
            return Answer(NXDOMAIN, authority=(self.soa(),))
        if qtype == SOA_T and name == self.domain:
            return Answer(NOERROR, answers=(self.soa(),))
        if qtype == ANY_T:
            found = tuple(rr for t in node.values for rr in self._records(name, node, t))
        else:
            found = self._records(name, node, qtype) if qtype in node.values else ()
            if not found and qtype != CNAME_T and CNAME_T in node.values:
                found = self._records(name, node, CNAME_T)  # a CNAME answers every type
        if not found:
            return Answer(NOERROR, authority=(self.soa(),))
        if qtype == SRV_T:  # the targets' addresses, saving clients a round trip (CoreDNS)
            return Answer(NOERROR, answers=found, additional=self._glue(found))
        return Answer(NOERROR, answers=found)

    def _glue(self, srvs: tuple[RR, ...]) -> tuple[RR, ...]:
        glue: list[RR] = []
        seen: set[str] = set()
        for rr in srvs:
            target = normalize(str(rr.rdata.target))
            node = self.nodes.get(target)
            if node is None or target in seen:
                continue
            seen.add(target)
            for rtype in (A_T, AAAA_T):
                if rtype in node.values:
                    glue.extend(self._records(target, node, rtype))
        return tuple(glue)


def _rdata(rtype: int, value: Value) -> object:
    """The dnslib rdata for a stored value."""
    if isinstance(value, tuple):
        return SRV(priority=0, weight=100, port=value[0], target=value[1])
    maker = {A_T: A, AAAA_T: AAAA, CNAME_T: CNAME, PTR_T: PTR, TXT_T: TXT}[rtype]
    return maker(value)
