"""Services and endpoints in, iptables-restore text out: a pure function.

This is kube-proxy's `syncProxyRules` without its side effects. Every sync rewrites every
`KEMU-` chain as a whole (a chain declared in `iptables-restore --noflush` input is flushed
first), so the output depends only on the desired state and never on what the kernel has;
that makes it testable against golden text and makes a sync idempotent. What does depend on
the kernel (which jump rules from the built-in chains already exist, which of our chains are
stale) is decided by `sync.Proxier` and passed to `format_restore`.

Rules are written in the order of their matches that `iptables-save` prints back, so the
text read back from the kernel matches what was written (the e2e tests rely on that).
Services are sorted by their ServicePortName and endpoints by address, so the output is
stable whatever order the caller's dicts had.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kemu.nodeagent.proxy import chains
from kemu.nodeagent.proxy.model import EndpointInfo, ServicePortInfo

NAT_BASE_CHAINS = (
    chains.SERVICES,
    chains.NODEPORTS,
    chains.POSTROUTING,
    chains.MARK_MASQ,
)
FILTER_BASE_CHAINS = (
    chains.SERVICES,
    chains.EXTERNAL_SERVICES,
    chains.FORWARD,
)


@dataclass(frozen=True)
class Jump:
    """A rule in a built-in chain that sends packets into one of our chains.

    These are the only rules kemu adds to chains it does not own; they are inserted only
    when missing (a second `-I` would duplicate them) and deleted by `Proxier.cleanup`.
    """

    table: str
    chain: str
    spec: str

    @property
    def rule(self) -> str:
        """The rule as `iptables-save` prints it: `-A CHAIN spec`."""
        return f"-A {self.chain} {self.spec}"


JUMPS: tuple[Jump, ...] = (
    Jump("nat", "PREROUTING", f'-m comment --comment "kemu service portals" -j {chains.SERVICES}'),
    Jump("nat", "OUTPUT", f'-m comment --comment "kemu service portals" -j {chains.SERVICES}'),
    Jump(
        "nat",
        "POSTROUTING",
        f'-m comment --comment "kemu postrouting rules" -j {chains.POSTROUTING}',
    ),
    Jump(
        "filter",
        "INPUT",
        '-m conntrack --ctstate NEW -m comment --comment "kemu externally-visible service '
        f'portals" -j {chains.EXTERNAL_SERVICES}',
    ),
    Jump(
        "filter",
        "FORWARD",
        '-m conntrack --ctstate NEW -m comment --comment "kemu externally-visible service '
        f'portals" -j {chains.EXTERNAL_SERVICES}',
    ),
    Jump(
        "filter",
        "FORWARD",
        f'-m conntrack --ctstate NEW -m comment --comment "kemu service portals" '
        f"-j {chains.SERVICES}",
    ),
    Jump(
        "filter",
        "OUTPUT",
        f'-m conntrack --ctstate NEW -m comment --comment "kemu service portals" '
        f"-j {chains.SERVICES}",
    ),
    Jump("filter", "FORWARD", f'-m comment --comment "kemu forwarding rules" -j {chains.FORWARD}'),
)


@dataclass(frozen=True)
class Table:
    """One table's worth of our chains (declared, hence flushed) and their rules."""

    name: str
    chains: tuple[str, ...]
    rules: tuple[str, ...]


def probability(n: int) -> str:
    """The probability 1/n for `-m statistic`, printed as iptables-save prints it back.

    kube-proxy writes `%0.10f`; the kernel keeps `lround(p * 2^31)` and iptables-save
    prints that divided by 2^31 with `%.11f`, so 1/3 reads back as 0.33333333349. Writing
    that form directly keeps our text equal to what the kernel reports.
    """
    scaled = math.floor(0x80000000 / n + 0.5)
    return f"{scaled / 0x80000000:.11f}"


def _q(comment: str) -> str:
    """A comment in double quotes, as iptables-save (nf_tables) prints every comment."""
    return f'"{comment}"'


def _host(ip: str) -> str:
    return f"{ip}/32" if ":" not in ip else f"{ip}/128"


class _Writer:
    """Collects chains and rules for the nat and filter tables in order of first use."""

    def __init__(self) -> None:
        self.nat_chains: list[str] = list(NAT_BASE_CHAINS)
        self.nat_rules: list[str] = []
        self.filter_chains: list[str] = list(FILTER_BASE_CHAINS)
        self.filter_rules: list[str] = []

    def nat(self, chain: str, spec: str) -> None:
        self.nat_rules.append(f"-A {chain} {spec}")

    def filter(self, chain: str, spec: str) -> None:
        self.filter_rules.append(f"-A {chain} {spec}")


def render_tables(
    services: Sequence[ServicePortInfo],
    endpoints: Mapping[str, Sequence[EndpointInfo]],
    *,
    cluster_cidr: str,
    node_ips: Sequence[str] = (),
    masquerade_mark: str = "0x4000",
    nodeport_addresses: Sequence[str] = (),
    localhost_nodeports: bool = False,
) -> tuple[Table, Table]:
    """The nat and filter tables for the desired state; see `render` for the arguments."""
    w = _Writer()
    if localhost_nodeports and not nodeport_addresses:
        # With route_localnet on, a packet from another host to 127.0.0.1 would reach
        # services bound to loopback: drop new ones that were not DNATed (CVE-2020-8558;
        # kube-proxy's KUBE-FIREWALL rule). The chain is jumped from INPUT for NEW packets.
        w.filter(
            chains.EXTERNAL_SERVICES,
            '! -s 127.0.0.0/8 -d 127.0.0.0/8 -m comment --comment "block incoming localnet '
            'connections" -m conntrack ! --ctstate RELATED,ESTABLISHED,DNAT -j DROP',
        )
    mark = f"{masquerade_mark}/{masquerade_mark}"

    # Masquerading: anything marked on the way in is SNATed on the way out. The mark is
    # cleared first so that a re-encapsulated packet is not masqueraded twice.
    # (`--set-xmark m/m` is kube-proxy's `--or-mark m`, `--set-xmark m/0x0` its
    # `--xor-mark m`, in the form iptables-save prints them.)
    w.nat(chains.MARK_MASQ, f"-j MARK --set-xmark {mark}")
    w.nat(chains.POSTROUTING, f"-m mark ! --mark {mark} -j RETURN")
    w.nat(chains.POSTROUTING, f"-j MARK --set-xmark {masquerade_mark}/0x0")
    w.nat(
        chains.POSTROUTING,
        '-m comment --comment "kemu service traffic requiring SNAT" -j MASQUERADE',
    )
    # Forwarding: drop INVALID packets (a reset would otherwise be sent for out-of-window
    # segments of NATed connections, kubernetes#74839), then let NATed service traffic
    # through a FORWARD policy of DROP (Docker's).
    w.filter(chains.FORWARD, "-m conntrack --ctstate INVALID -j DROP")
    w.filter(
        chains.FORWARD,
        f'-m comment --comment "kemu forwarding rules" -m mark --mark {mark} -j ACCEPT',
    )
    w.filter(
        chains.FORWARD,
        '-m comment --comment "kemu forwarding conntrack rule" '
        "-m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
    )

    for svc in sorted(services, key=lambda s: (s.key, s.proto)):
        _service(w, svc, endpoints.get(svc.key, ()), cluster_cidr=cluster_cidr)

    # NodePorts last: only destinations that are this node's own addresses.
    addresses = list(nodeport_addresses)
    if addresses == ["primary"]:
        addresses = [_host(ip) for ip in node_ips]
    comment = _q("kemu service nodeports; NOTE: this must be the last rule in this chain")
    if not addresses and localhost_nodeports:
        # 127.0.0.1:NODEPORT too, as kube-proxy's --iptables-localhost-nodeports (its
        # default); the agent turns route_localnet on for it.
        w.nat(
            chains.SERVICES,
            f"-m comment --comment {comment} -m addrtype --dst-type LOCAL -j {chains.NODEPORTS}",
        )
    elif not addresses:
        # Not 127.0.0.0/8: DNAT from loopback needs route_localnet.
        w.nat(
            chains.SERVICES,
            f"! -d 127.0.0.0/8 -m comment --comment {comment} "
            f"-m addrtype --dst-type LOCAL -j {chains.NODEPORTS}",
        )
    for cidr in addresses:
        w.nat(chains.SERVICES, f"-d {cidr} -m comment --comment {comment} -j {chains.NODEPORTS}")

    return (
        Table("nat", tuple(w.nat_chains), tuple(w.nat_rules)),
        Table("filter", tuple(w.filter_chains), tuple(w.filter_rules)),
    )


def _service(
    w: _Writer,
    svc: ServicePortInfo,
    all_endpoints: Sequence[EndpointInfo],
    *,
    cluster_cidr: str,
) -> None:
    """The rules of one service port, following kube-proxy's per-service loop."""
    key, proto = svc.key, svc.proto
    ready = sorted({ep for ep in all_endpoints if ep.ready})
    local = [ep for ep in ready if ep.is_local]
    svc_name = chains.svc_chain(key, proto)
    svl_name = chains.svl_chain(key, proto)
    ext_name = chains.ext_chain(key, proto)

    has_cluster = bool(ready)
    internal_eps = local if svc.internal_policy_local else ready
    external_eps = local if svc.external_policy_local else ready
    internal_chain = svl_name if svc.internal_policy_local else svc_name
    external_chain = svl_name if svc.external_policy_local else svc_name
    # As kube-proxy's UsesClusterEndpoints: an external Local policy still needs the
    # cluster chain, to short-circuit pod and node traffic to external destinations.
    uses_svc = (not svc.internal_policy_local) or svc.has_external
    uses_svl = svc.internal_policy_local or (svc.has_external and svc.external_policy_local)
    uses_svc = uses_svc and has_cluster
    uses_svl = uses_svl and bool(local)
    # External destinations are captured whenever the service has endpoints at all: with
    # an external Local policy and no local endpoint, pod and node traffic still
    # short-circuits to the cluster chain and only the rest is dropped in the filter table.
    has_ext_chain = svc.has_external and has_cluster

    # ClusterIP.
    if internal_eps:
        w.nat(
            chains.SERVICES,
            f"-d {_host(svc.cluster_ip)} -p {proto} -m comment --comment "
            f'"{key} cluster IP" -m {proto} --dport {svc.port} -j {internal_chain}',
        )
    else:
        reason = "has no local endpoints" if has_cluster else "has no endpoints"
        target = "DROP" if has_cluster else "REJECT --reject-with icmp-port-unreachable"
        w.filter(
            chains.SERVICES,
            f"-d {_host(svc.cluster_ip)} -p {proto} -m comment --comment "
            f'"{key} {reason}" -m {proto} --dport {svc.port} -j {target}',
        )

    # External IPs, load-balancer IPs and NodePorts all go through the EXT chain.
    external_dests = [(ip, "external IP") for ip in sorted(svc.external_ips)] + [
        (ip, "loadbalancer IP") for ip in sorted(svc.load_balancer_ips)
    ]
    if has_ext_chain:
        for ip, what in external_dests:
            w.nat(
                chains.SERVICES,
                f"-d {_host(ip)} -p {proto} -m comment --comment "
                f'"{key} {what}" -m {proto} --dport {svc.port} -j {ext_name}',
            )
        if svc.node_port:
            w.nat(
                chains.NODEPORTS,
                f"-p {proto} -m comment --comment {_q(key)} "
                f"-m {proto} --dport {svc.node_port} -j {ext_name}",
            )
    if svc.has_external and not external_eps:
        reason = "has no local endpoints" if has_cluster else "has no endpoints"
        target = "DROP" if has_cluster else "REJECT --reject-with icmp-port-unreachable"
        for ip, _what in external_dests:
            w.filter(
                chains.EXTERNAL_SERVICES,
                f"-d {_host(ip)} -p {proto} -m comment --comment "
                f'"{key} {reason}" -m {proto} --dport {svc.port} -j {target}',
            )
        if svc.node_port:
            w.filter(
                chains.EXTERNAL_SERVICES,
                f'-p {proto} -m comment --comment "{key} {reason}" '
                f"-m addrtype --dst-type LOCAL -m {proto} --dport {svc.node_port} -j {target}",
            )

    if internal_eps:
        # Traffic to a ClusterIP from outside the cluster (the node itself, another host)
        # must be masqueraded, or the endpoint would answer it directly. It goes first in
        # whichever chain ClusterIP traffic enters (SVC, or SVL for internal policy Local).
        w.nat(
            internal_chain,
            f"! -s {cluster_cidr} -d {_host(svc.cluster_ip)} -p {proto} -m comment "
            f'--comment "{key} cluster IP" -m {proto} --dport {svc.port} '
            f"-j {chains.MARK_MASQ}",
        )
    if has_ext_chain:
        w.nat_chains.append(ext_name)
        if svc.external_policy_local:
            # Keep the client's source IP: no masquerade for traffic from outside, except
            # for traffic from this node itself, which could not be answered otherwise.
            w.nat(
                ext_name,
                f"-s {cluster_cidr} -m comment --comment "
                f'"pod traffic for {key} external destinations" -j {svc_name}',
            )
            w.nat(
                ext_name,
                f'-m comment --comment "masquerade LOCAL traffic for {key} external '
                f'destinations" -m addrtype --src-type LOCAL -j {chains.MARK_MASQ}',
            )
            w.nat(
                ext_name,
                f'-m comment --comment "route LOCAL traffic for {key} external '
                f'destinations" -m addrtype --src-type LOCAL -j {svc_name}',
            )
        else:
            w.nat(
                ext_name,
                f'-m comment --comment "masquerade traffic for {key} external '
                f'destinations" -j {chains.MARK_MASQ}',
            )
        if external_eps:
            w.nat(ext_name, f"-j {external_chain}")

    if uses_svc:
        w.nat_chains.append(svc_name)
        _to_endpoints(w, svc, svc_name, ready)
    if uses_svl:
        w.nat_chains.append(svl_name)
        _to_endpoints(w, svc, svl_name, local)

    # One SEP chain per endpoint used by either chain.
    for ep in ready if uses_svc else local:
        sep = chains.sep_chain(key, proto, ep.address)
        w.nat_chains.append(sep)
        w.nat(sep, f"-s {_host(ep.ip)} -m comment --comment {_q(key)} -j {chains.MARK_MASQ}")
        affinity = (
            f"-m recent --set --name {sep} --mask 255.255.255.255 --rsource "
            if svc.affinity_timeout
            else ""
        )
        w.nat(
            sep,
            f"-p {proto} -m comment --comment {_q(key)} {affinity}"
            f"-m {proto} -j DNAT --to-destination {ep.address}",
        )


def _to_endpoints(
    w: _Writer, svc: ServicePortInfo, chain: str, eps: Sequence[EndpointInfo]
) -> None:
    """Spread a service chain over endpoints: sticky matches first, then 1/(n-i) odds."""
    key, proto = svc.key, svc.proto
    seps = [(ep, chains.sep_chain(key, proto, ep.address)) for ep in eps]
    if svc.affinity_timeout:
        for ep, sep in seps:
            w.nat(
                chain,
                f'-m comment --comment "{key} -> {ep.address}" -m recent --rcheck '
                f"--seconds {svc.affinity_timeout} --reap --name {sep} "
                f"--mask 255.255.255.255 --rsource -j {sep}",
            )
    n = len(seps)
    for i, (ep, sep) in enumerate(seps):
        odds = (
            ""
            if i == n - 1
            else (f"-m statistic --mode random --probability {probability(n - i)} ")
        )
        w.nat(chain, f'-m comment --comment "{key} -> {ep.address}" {odds}-j {sep}')


def format_restore(
    tables: Sequence[Table],
    *,
    jumps: Sequence[Jump] = JUMPS,
    stale: Mapping[str, Sequence[str]] | None = None,
) -> str:
    """iptables-restore input for `--noflush`: declare (flush) our chains, write rules,
    insert the given jump rules, then flush and delete the stale chains of each table."""
    out: list[str] = []
    for table in tables:
        old = sorted((stale or {}).get(table.name, ()))
        out.append(f"*{table.name}")
        out.extend(f":{c} - [0:0]" for c in [*table.chains, *old])
        out.extend(table.rules)
        # Inserted in reverse so that they end up in JUMPS order at the top of each chain.
        out.extend(f"-I {j.chain} 1 {j.spec}" for j in reversed(jumps) if j.table == table.name)
        out.extend(f"-X {c}" for c in old)
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def render(
    services: Sequence[ServicePortInfo],
    endpoints: Mapping[str, Sequence[EndpointInfo]],
    *,
    node_ips: Sequence[str],
    cluster_cidr: str,
    masquerade_mark: str = "0x4000",
    nodeport_addresses: Sequence[str] = (),
    localhost_nodeports: bool = False,
) -> str:
    """The full iptables-restore text (nat and filter) for the desired state.

    `endpoints` maps a ServicePortName (`ServicePortInfo.key`) to its endpoints; a port
    missing from it has none and gets a REJECT in the filter table, as in kube-proxy. The
    text includes every jump rule from the built-in chains; `sync.Proxier` leaves out those
    already present.
    """
    tables = render_tables(
        services,
        endpoints,
        cluster_cidr=cluster_cidr,
        node_ips=node_ips,
        masquerade_mark=masquerade_mark,
        nodeport_addresses=nodeport_addresses,
        localhost_nodeports=localhost_nodeports,
    )
    return format_restore(tables)
