"""Kubernetes resource quantities ("500m", "128Mi", "1.5", "2e3") as exact Decimals.

Used by validation (is the string a quantity, are requests within limits) and by the
scheduler and the runtime (cpu to millicores, memory to bytes).
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

_SUFFIXES: dict[str, Decimal] = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:\d+\.?\d*|\.\d+))(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)"
    r"|[eE](?P<exp>[+-]?\d+))?$"
)


class QuantityError(ValueError):
    """The string is not a Kubernetes quantity."""


def parse(text: str) -> Decimal:
    """The quantity's exact value in base units (cores, bytes)."""
    m = _QUANTITY.match(text.strip())
    if m is None:
        raise QuantityError(
            "quantities must match the regular expression "
            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    try:
        value = Decimal(m["num"])
    except InvalidOperation as e:  # pragma: no cover - the regex already checked
        raise QuantityError(str(e)) from e
    if m["exp"] is not None:
        return value * (Decimal(10) ** int(m["exp"]))
    return value * _SUFFIXES[m["suffix"] or ""]


def millicores(text: str) -> int:
    """CPU quantity to millicores, rounded up as Kubernetes does."""
    return int((parse(text) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def to_bytes(text: str) -> int:
    """Memory or storage quantity to bytes, rounded up."""
    return int(parse(text).to_integral_value(rounding="ROUND_CEILING"))
