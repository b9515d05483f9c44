"""The numbers of `kemuctl describe node`: each pod's requests and limits, their sums, and
percentages of what the node can allocate, computed and printed as kubectl does.

kubectl adds Kubernetes quantities exactly and prints the sum in the form of the first
quantity added (`100m + 250m` is `350m`, `64Mi + 128Mi` is `192Mi`, `1 + 500m` is `1500m`),
and a percentage is the integer part of `value / allocatable * 100`, counting cpu in
millicores and everything else in whole units, both rounded up. Pure functions, so the
arithmetic is tested without a server.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from typing import Any

from kemu.api import quantity

CPU, MEMORY, EPHEMERAL, PODS = "cpu", "memory", "ephemeral-storage", "pods"
BINARY_SUFFIXES = ("Ki", "Mi", "Gi", "Ti", "Pi", "Ei")
_DECIMAL_SUFFIXES = {-9: "n", -6: "u", -3: "m", 0: "", 3: "k", 6: "M", 9: "G", 12: "T",
                     15: "P", 18: "E"}
# The resources a container may name besides extended ones (kubectl's standard names).
STANDARD = frozenset({CPU, MEMORY, EPHEMERAL, "storage"})


@dataclass(frozen=True)
class Amount:
    """An exact quantity and the notation it prints in: decimal (`500m`, `1G`), binary
    (`128Mi`) or exponent (`1e3`)."""

    value: Decimal
    notation: str = "decimal"

    @staticmethod
    def parse(text: str) -> Amount:
        return Amount(quantity.parse(text), notation_of(text))

    def __add__(self, other: Amount) -> Amount:
        return Amount(self.value + other.value, self.notation)

    def __str__(self) -> str:
        return format_quantity(self.value, self.notation)


ZERO = Amount(Decimal(0))


def notation_of(text: str) -> str:
    text = text.strip()
    if text.endswith(BINARY_SUFFIXES):
        return "binary"
    if "e" in text.lower() and not text.endswith(("E",)):
        return "exponent"
    return "decimal"


def format_quantity(value: Decimal, notation: str = "decimal") -> str:
    """Kubernetes' canonical form of a quantity (Quantity.String())."""
    if value == 0:
        return "0"
    if notation == "binary" and abs(value) >= 1024 and value == value.to_integral_value():
        n, power = int(value), 0
        while power < len(BINARY_SUFFIXES) and n % 1024 == 0:
            n //= 1024
            power += 1
        return f"{n}{BINARY_SUFFIXES[power - 1] if power else ''}"
    # The largest power of 1000 that leaves a whole number, rounding up below nano.
    for exp in range(18, -10, -3):
        scaled = value / (Decimal(10) ** exp)
        if scaled == scaled.to_integral_value():
            number = int(scaled)
            if notation == "exponent":
                return f"{number}e{exp}" if exp else str(number)
            return f"{number}{_DECIMAL_SUFFIXES[exp]}"
    nanos = int((value * Decimal(10) ** 9).to_integral_value(rounding=ROUND_CEILING))
    return format_quantity(Decimal(nanos) / Decimal(10) ** 9, notation)


Resources = dict[str, Amount]


def parse_list(values: Mapping[str, str]) -> Resources:
    out: Resources = {}
    for name, text in values.items():
        try:
            out[name] = Amount.parse(text)
        except quantity.QuantityError:
            continue
    return out


def _add(total: Resources, more: Mapping[str, Amount]) -> None:
    for name, amount in more.items():
        total[name] = total[name] + amount if name in total else amount


def _max(total: Resources, other: Mapping[str, Amount]) -> None:
    for name, amount in other.items():
        if name not in total or amount.value > total[name].value:
            total[name] = amount


def _sidecar(c: Any) -> bool:
    return bool(c.HasField("restart_policy") and c.restart_policy == "Always")


def _pod_total(spec: Any, field: str) -> Resources:
    """kubectl's resourcehelper.PodRequests/PodLimits: app containers add up; init
    containers run one at a time, so the largest counts, with the sidecars started before
    it (sidecars also add to the app containers); pod-level resources replace the sum."""
    total: Resources = {}
    for c in spec.containers:
        _add(total, parse_list(getattr(c.resources, field)))
    sidecars: Resources = {}
    init_max: Resources = {}
    for c in spec.init_containers:
        own = parse_list(getattr(c.resources, field))
        if _sidecar(c):
            _add(total, own)
            _add(sidecars, own)
            step = dict(sidecars)
        else:
            step = dict(own)
            _add(step, sidecars)
        _max(init_max, step)
    _max(total, init_max)
    pod_level = parse_list(getattr(spec.resources, field))
    for name in (CPU, MEMORY):
        if name in pod_level:
            total[name] = pod_level[name]
    return total


def pod_requests_and_limits(spec: Any) -> tuple[Resources, Resources]:
    """(requests, limits) of one pod; overhead adds to requests, and to the limits that
    are set."""
    requests, limits = _pod_total(spec, "requests"), _pod_total(spec, "limits")
    overhead = parse_list(spec.overhead)
    _add(requests, overhead)
    for name, amount in overhead.items():
        if name in limits:
            limits[name] = limits[name] + amount
    return requests, limits


def total_requests_and_limits(specs: Iterable[Any]) -> tuple[Resources, Resources]:
    """The sums over pods, in the notation of the first pod that named each resource."""
    requests: Resources = {}
    limits: Resources = {}
    for spec in specs:
        r, lim = pod_requests_and_limits(spec)
        _add(requests, r)
        _add(limits, lim)
    return requests, limits


def units(name: str, amount: Amount) -> int:
    """cpu in millicores, everything else in whole units; both rounded up (MilliValue and
    Value of a Kubernetes quantity)."""
    scale = 1000 if name == CPU else 1
    return int((amount.value * scale).to_integral_value(rounding=ROUND_CEILING))


def percent(name: str, amount: Amount, allocatable: Mapping[str, Amount]) -> int:
    """The integer part of the share of allocatable; 0 when the node offers none."""
    total = units(name, allocatable.get(name, ZERO))
    if total == 0:
        return 0
    return int(units(name, amount) * 100 / total)


def cell(name: str, amount: Amount | None, allocatable: Mapping[str, Amount]) -> str:
    """`100m (5%)`, kubectl's cell for a request or limit."""
    amount = amount or ZERO
    return f"{amount} ({percent(name, amount, allocatable)}%)"


def node_allocatable(status: Any) -> Resources:
    """kubectl uses allocatable when the node reports it, else capacity."""
    return parse_list(status.allocatable if status.allocatable else status.capacity)


def extended_resources(allocatable: Mapping[str, Amount]) -> tuple[list[str], list[str]]:
    """(hugepages-*, extended) resource names of a node, sorted, as kubectl lists them
    after cpu, memory and ephemeral-storage."""
    huge = sorted(n for n in allocatable if n.startswith("hugepages-"))
    ext = sorted(n for n in allocatable
                 if not n.startswith("hugepages-") and n not in STANDARD and n != PODS)
    return huge, ext
