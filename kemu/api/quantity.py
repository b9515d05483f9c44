"""Kubernetes resource quantities ("500m", "128Mi", "1.5", "2e3") as exact Decimals.

Used by validation (is the string a quantity, are requests within limits) and by the
scheduler and the runtime (cpu to millicores, memory to bytes).
"""

from __future__ import annotations

import re
from decimal import Decimal

_SUFFIXES: dict[str, Decimal] = {
    "Ki": Decimal(2) ** 10, "Mi": Decimal(2) ** 20, "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40, "Pi": Decimal(2) ** 50, "Ei": Decimal(2) ** 60,
    "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": Decimal(1),
    "k": Decimal("1e3"), "M": Decimal("1e6"), "G": Decimal("1e9"), "T": Decimal("1e12"),
    "P": Decimal("1e15"), "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^(?P<num>[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+))"
    r"(?:(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)|[eE](?P<exp>[+-]?[0-9]+))?$"
)
# Far past any real capacity (8Ei is 9.2e18), and small enough that turning a quantity
# into an int stays cheap: `1e999999` as bytes would take int() tens of seconds.
MAX_ADJUSTED_EXPONENT = 30


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
        if m["exp"] is not None:
            exp = m["exp"].lstrip("+")
            if len(exp.lstrip("-")) > 6:  # int() of thousands of digits is itself an error
                raise QuantityError("unable to parse numeric part of quantity: exponent "
                                    "out of range")
            value = value.scaleb(int(exp))
        else:
            value *= _SUFFIXES[m["suffix"] or ""]
    except ArithmeticError as e:  # decimal.Overflow past the context's Emax
        raise QuantityError("unable to parse numeric part of quantity: out of range") from e
    if value and value.adjusted() > MAX_ADJUSTED_EXPONENT:
        raise QuantityError(f"quantity too large: must be less than 1e{MAX_ADJUSTED_EXPONENT + 1}")
    return value


def millicores(text: str) -> int:
    """CPU quantity to millicores, rounded up as Kubernetes does."""
    return int((parse(text) * 1000).to_integral_value(rounding="ROUND_CEILING"))


def to_bytes(text: str) -> int:
    """Memory or storage quantity to bytes, rounded up."""
    return int(parse(text).to_integral_value(rounding="ROUND_CEILING"))
