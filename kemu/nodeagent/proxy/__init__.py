"""The Service proxy: kube-proxy's iptables mode for kemu.

`convert` turns typed Service/Endpoints objects into the small frozen model of `model`;
`render` turns that model into iptables-restore text as a pure function (tested against
golden files); `sync.Proxier` applies it in one `iptables-restore --noflush` call through the
thin `iptables.IptablesExecutor`, deleting only stale chains that carry the `KEMU-` prefix.
"""

from kemu.nodeagent.proxy.iptables import (
    FakeIptables,
    IptablesError,
    IptablesExecutor,
    SubprocessIptables,
)
from kemu.nodeagent.proxy.model import EndpointInfo, ProxyConfig, ServicePortInfo
from kemu.nodeagent.proxy.render import render
from kemu.nodeagent.proxy.sync import Proxier, SyncResult

__all__ = [
    "EndpointInfo",
    "FakeIptables",
    "IptablesError",
    "IptablesExecutor",
    "Proxier",
    "ProxyConfig",
    "ServicePortInfo",
    "SubprocessIptables",
    "SyncResult",
    "render",
]
