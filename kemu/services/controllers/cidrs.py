"""Pod CIDR arithmetic: carve a cluster CIDR into per-node subnets, never one twice.

Kept pure (no I/O, no asyncio) so that the rules the node IPAM controller relies on —
sequential hand-out, no duplicates, release and reuse, pre-assigned subnets, exhaustion —
are tested as plain functions. Like kube-controller-manager's range allocator it scans
from the subnet after the last one handed out (wrapping around), so a freed subnet is
reused only once the range has been walked, which keeps a just-deleted node's subnet
from being handed to a new node while stale routes may still point at the old one.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class CIDRError(Exception):
    """Root of the allocator's errors."""


class CIDRExhausted(CIDRError):
    """Every subnet of the cluster CIDR is in use."""


class CIDROutOfRange(CIDRError):
    """A subnet that does not lie in the cluster CIDR (or has the wrong size)."""


@dataclass
class CIDRAllocator:
    """Subnets of `cluster_cidr` of prefix length `mask_size`, each used at most once."""

    cluster_cidr: Network
    mask_size: int
    _used: set[int] = field(default_factory=set)
    _next: int = 0

    @classmethod
    def parse(cls, cluster_cidr: str, mask_size: int) -> CIDRAllocator:
        """ValueError with a one-line message for a bad CIDR or mask size."""
        try:
            net = ipaddress.ip_network(cluster_cidr, strict=True)
        except ValueError as e:
            raise ValueError(f"--cluster-cidr: {e}") from None
        if not net.prefixlen <= mask_size <= net.max_prefixlen:
            raise ValueError(f"--node-cidr-mask-size {mask_size} must be between the cluster "
                             f"CIDR's prefix length {net.prefixlen} and {net.max_prefixlen}")
        if mask_size - net.prefixlen > 24:
            raise ValueError(f"--node-cidr-mask-size {mask_size}: more than 2^24 subnets")
        return cls(net, mask_size)

    @property
    def size(self) -> int:
        """How many subnets the range holds."""
        return 1 << (self.mask_size - self.cluster_cidr.prefixlen)

    @property
    def used(self) -> int:
        return len(self._used)

    def _subnet(self, index: int) -> Network:
        step = 1 << (self.cluster_cidr.max_prefixlen - self.mask_size)
        base = int(self.cluster_cidr.network_address) + index * step
        return ipaddress.ip_network((base, self.mask_size))

    def _index(self, cidr: str) -> int:
        try:
            net = ipaddress.ip_network(cidr, strict=True)
        except ValueError as e:
            raise CIDROutOfRange(f"{cidr!r} is not a CIDR: {e}") from None
        if net.version != self.cluster_cidr.version or net.prefixlen != self.mask_size \
                or not net.subnet_of(self.cluster_cidr):  # type: ignore[arg-type]
            raise CIDROutOfRange(f"{cidr} is not a /{self.mask_size} of {self.cluster_cidr}")
        step = 1 << (self.cluster_cidr.max_prefixlen - self.mask_size)
        return (int(net.network_address) - int(self.cluster_cidr.network_address)) // step

    def allocate(self) -> str:
        """The next free subnet, scanning on from the last one handed out."""
        size = self.size
        for offset in range(size):
            index = (self._next + offset) % size
            if index not in self._used:
                self._used.add(index)
                self._next = (index + 1) % size
                return str(self._subnet(index))
        raise CIDRExhausted(f"no remaining /{self.mask_size} in {self.cluster_cidr} "
                            f"({size} in use)")

    def occupy(self, cidr: str) -> bool:
        """Mark a pre-assigned subnet used; False if it already was. CIDROutOfRange if it
        is not one of ours (the caller leaves such a node alone)."""
        index = self._index(cidr)
        if index in self._used:
            return False
        self._used.add(index)
        return True

    def release(self, cidr: str) -> bool:
        """Free a subnet; False if it was not in use or is not one of ours."""
        try:
            index = self._index(cidr)
        except CIDROutOfRange:
            return False
        if index not in self._used:
            return False
        self._used.discard(index)
        return True

    def in_use(self, cidr: str) -> bool:
        try:
            return self._index(cidr) in self._used
        except CIDROutOfRange:
            return False
