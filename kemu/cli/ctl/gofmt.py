"""Go's fmt as a template prints the values kubectl decodes from JSON: `%v` forms
(`map[a:1 b:2]`, `[x y]`, `<nil>`, floats as `30080` or `1e+06`), strconv.Quote, and the
Sprintf verbs templates use. Kept apart from the template engine: it knows nothing of
templates, only of Go's way of writing values.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any


def quote(text: str) -> str:
    """Go's strconv.Quote (%q)."""
    out = ['"']
    back = {'"': '\\"', "\\": "\\\\", "\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n",
            "\r": "\\r", "\t": "\\t", "\v": "\\v"}
    for ch in text:
        code = ord(ch)
        if ch in back:
            out.append(back[ch])
        elif ch.isprintable():
            out.append(ch)
        else:
            out.append(f"\\x{code:02x}" if code < 0x80 else
                       f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
    return "".join(out) + '"'


def float64_text(value: float) -> str:
    """A float64 as Go's %v prints it: shortest digits, `1e+06` from an exponent of 6."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    text = "".join(map(str, digits)) or "0"
    if text == "0":
        return "-0" if sign else "0"
    assert isinstance(exponent, int)
    point = len(text) + exponent  # digits before the decimal point
    if point - 1 < -4 or point - 1 >= 6:
        mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
        exp = point - 1
        body = f"{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    elif point <= 0:
        body = "0." + "0" * -point + text
    elif point >= len(text):
        body = text + "0" * (point - len(text))
    else:
        body = text[:point] + "." + text[point:]
    return ("-" if sign else "") + body


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def value_text(value: Any) -> str:
    """Go's %v of a value decoded from JSON."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return float64_text(value)
    if isinstance(value, list):
        return "[" + " ".join(value_text(v) for v in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{value_text(k)}:{value_text(value[k])}"
                                 for k in sorted(value)) + "]"
    return str(value)


def type_name(value: Any) -> str:
    """The Go type kubectl's decoded JSON would have."""
    if value is None:
        return "<nil>"
    names = {bool: "bool", int: "int", float: "float64", str: "string",
             list: "[]interface {}", dict: "map[string]interface {}"}
    return names.get(type(value), type(value).__name__)


_VERB = re.compile(r"%([-+# 0]*)(\d*)(?:\.(\d*))?([a-zA-Z%])")


def _pad(text: str, flags: str, width: str) -> str:
    if not width:
        return text
    return text.ljust(int(width)) if "-" in flags else text.rjust(int(width))


def _number_spec(flags: str, width: str) -> str:
    align = "<" if "-" in flags else ""
    sign = "+" if "+" in flags else " " if " " in flags else ""
    zero = "0" if "0" in flags and "-" not in flags else ""
    return f"{align}{sign}{'#' if '#' in flags else ''}{zero}{width}"


def _format_one(verb: str, flags: str, width: str, prec: str | None, arg: Any) -> str:
    bad = f"%!{verb}({type_name(arg)}={value_text(arg)})"
    if verb in "vs":
        text = value_text(arg)
        if verb == "s" and prec is not None:
            text = text[:int(prec or 0)]
        return _pad(text, flags, width)
    if verb == "q":
        text = (f"'{chr(arg)}'" if is_number(arg) and isinstance(arg, int)
                else quote(arg if isinstance(arg, str) else value_text(arg)))
        return _pad(text, flags, width)
    if verb == "t":
        return _pad(value_text(arg), flags, width) if isinstance(arg, bool) else bad
    if verb == "T":
        return _pad(type_name(arg), flags, width)
    integral = is_number(arg) and float(arg).is_integer()
    if verb in "dxXobcU" and integral:
        number = int(arg)
        if verb == "c":
            return _pad(chr(number), flags, width)
        if verb == "U":
            return _pad(f"U+{number:04X}", flags, width)
        return format(number, _number_spec(flags, width) + verb)
    if verb in "xX" and isinstance(arg, str):
        return _pad(format(int.from_bytes(arg.encode(), "big"), verb) if arg else "", flags,
                    width)
    if verb in "eEfFgG" and is_number(arg):
        if verb in "gG" and prec is None:
            text = float64_text(float(arg))
            return _pad(text.upper() if verb == "G" else text, flags, width)
        precision = f".{prec or 0}" if prec is not None else ".6"
        return format(float(arg), _number_spec(flags, width) + precision + verb)
    return bad


def sprintf(fmt: str, *args: Any) -> str:
    """Go's fmt.Sprintf for the verbs templates use: %v %s %q %d %f %e %g %x %t %c %T."""
    out: list[str] = []
    pos = used = 0
    for m in _VERB.finditer(fmt):
        out.append(fmt[pos:m.start()])
        pos = m.end()
        flags, width, prec, verb = m.groups()
        if verb == "%":
            out.append("%")
        elif used >= len(args):
            out.append(f"%!{verb}(MISSING)")
        else:
            out.append(_format_one(verb, flags, width, prec, args[used]))
            used += 1
    out.append(fmt[pos:])
    if used < len(args):
        extra = ", ".join("<nil>" if a is None else f"{type_name(a)}={value_text(a)}"
                          for a in args[used:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)
