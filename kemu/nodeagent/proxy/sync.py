"""Applying rendered rules: one iptables-restore per sync, and a full cleanup.

`Proxier.sync` reads the nat and filter tables once, works out which `KEMU-` chains are
stale and which jump rules from the built-in chains are missing, and applies everything in
one `iptables-restore --noflush` call, so packets never see a half-written rule set. Chains
that are not ours are never touched, apart from the few jump rules we insert and
`cleanup()` removes again (the future `kemu agent --cleanup`).

Rate limiting (at most once a second on change, every 30 s otherwise) belongs to the
caller, which knows when the desired state changed.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from kemu.nodeagent.proxy import chains
from kemu.nodeagent.proxy.iptables import IptablesExecutor
from kemu.nodeagent.proxy.model import EndpointInfo, ProxyConfig, ServicePortInfo
from kemu.nodeagent.proxy.render import JUMPS, format_restore, render_tables

log = logging.getLogger(__name__)

TABLES = ("nat", "filter")
_JUMP_TO_OURS = re.compile(r"^-A (\S+) .*-j (KEMU-\S+)")


def _unquoted(rule: str) -> str:
    """A rule without double quotes: iptables-legacy prints `--comment x` unquoted when
    it has no space, nf_tables always quotes; either way it is the same rule, and seeing
    it as missing would insert a duplicate jump on every sync."""
    return rule.replace('"', "")


@dataclass(frozen=True)
class SyncResult:
    """What one sync did: chains written and deleted, jumps added, time taken."""

    chains: int
    deleted: tuple[str, ...]
    jumps_added: int
    seconds: float


@dataclass(frozen=True)
class TableState:
    """Our chains and all rules of one table, as parsed from iptables-save."""

    chains: frozenset[str]
    rules: tuple[str, ...]


def parse_save(text: str) -> TableState:
    """Our (`KEMU-`) chain names and every `-A` rule of one iptables-save table."""
    ours = set()
    rules = []
    for line in text.splitlines():
        if line.startswith(":"):
            name = line[1:].split(" ", 1)[0]
            if chains.is_ours(name):
                ours.add(name)
        elif line.startswith("-A "):
            rules.append(line)
    return TableState(frozenset(ours), tuple(rules))


class Proxier:
    """Keeps a node's iptables Service rules equal to the desired services and endpoints."""

    def __init__(self, executor: IptablesExecutor, config: ProxyConfig) -> None:
        self._ipt = executor
        self._config = config

    def _read(self) -> dict[str, TableState]:
        return {t: parse_save(self._ipt.save(t)) for t in TABLES}

    def sync(
        self,
        services: Sequence[ServicePortInfo],
        endpoints: Mapping[str, Sequence[EndpointInfo]],
    ) -> SyncResult:
        """Render the desired state and apply it in one restore; raise IptablesError."""
        start = time.monotonic()
        current = self._read()
        cfg = self._config
        tables = render_tables(
            services,
            endpoints,
            cluster_cidr=cfg.cluster_cidr,
            node_ips=cfg.node_ips,
            masquerade_mark=cfg.masquerade_mark,
            nodeport_addresses=cfg.nodeport_addresses,
            localhost_nodeports=cfg.localhost_nodeports,
        )
        stale = {t.name: sorted(current[t.name].chains - set(t.chains)) for t in tables}
        present = {t: {_unquoted(r) for r in current[t].rules} for t in TABLES}
        missing = [j for j in JUMPS if _unquoted(j.rule) not in present[j.table]]
        self._ipt.restore(format_restore(tables, jumps=missing, stale=stale), noflush=True)
        deleted = tuple(c for t in TABLES for c in stale[t])
        result = SyncResult(
            chains=sum(len(t.chains) for t in tables),
            deleted=deleted,
            jumps_added=len(missing),
            seconds=time.monotonic() - start,
        )
        log.info(
            "proxy sync: services=%d chains=%d deleted=%d jumps_added=%d duration=%.3fs",
            len(services),
            result.chains,
            len(deleted),
            result.jumps_added,
            result.seconds,
        )
        return result

    def cleanup(self) -> list[str]:
        """Remove every `KEMU-` chain and every rule elsewhere that jumps to one.

        Returns the names of the chains removed. Works from what the kernel has, not from
        what this process wrote, so it also cleans up after a previous agent.
        """
        current = self._read()
        out: list[str] = []
        removed: list[str] = []
        for table in TABLES:
            state = current[table]
            out.append(f"*{table}")
            ours = sorted(state.chains)
            out.extend(f":{c} - [0:0]" for c in ours)
            for rule in state.rules:
                m = _JUMP_TO_OURS.match(rule)
                if m and not chains.is_ours(m.group(1)):
                    out.append("-D" + rule[2:])
            out.extend(f"-X {c}" for c in ours)
            out.append("COMMIT")
            removed.extend(ours)
        self._ipt.restore("\n".join(out) + "\n", noflush=True)
        log.info("proxy cleanup: chains=%d", len(removed))
        return removed
