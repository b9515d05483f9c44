"""One logging setup for every kemu component: text or JSON lines, klog's verbosity, and
events with structured fields.

Every component (store, apiserver, scheduler, controller-manager, agent, dns) takes the
same three flags, added by `add_flags` and read by `configure_from_args`:

- `--log-format text|json`: text is one line `TIME LEVEL LOGGER MESSAGE key=value ...`;
  json is one object per line with `ts` (RFC 3339, milliseconds, UTC), `level`,
  `component`, `logger`, `msg` and the event's fields, as klog's JSON format;
- `-v N` / `--v N`: klog's verbosity. 0 logs INFO and above; 1 to 3 add the events logged
  at that verbosity (Python levels just below INFO); 4 and above is DEBUG;
- `--log-level LEVEL` (DEBUG, INFO, WARNING, ERROR): Python's level, for who used it
  before; with `-v` too, the more verbose of the two wins.

Call sites log an event with `event(log, "bound pod", v=2, pod="ns/name", node="n1",
duration_ms=3.2)`, or pass `extra=kv(...)` to any logging call; the fields are rendered
`msg key=value ...` in text and as members of the JSON object.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import time
from typing import IO, Any

FORMATS = ("text", "json")
FIELDS = "kemu_fields"  # the LogRecord attribute that carries an event's fields
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# Libraries that log every HTTP request they make: quiet unless debugging (-v 4).
NOISY = ("docker", "urllib3")
# The JSON object's own keys; a field of the same name is written with a trailing `_`.
RESERVED = frozenset({"ts", "level", "v", "component", "logger", "msg", "exc"})
_LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def v_level(v: int) -> int:
    """The logging level of klog verbosity `v`: INFO for 0, just below INFO for 1 to 3,
    DEBUG for 4 and below DEBUG beyond."""
    if v <= 0:
        return logging.INFO
    if v < 4:
        return logging.INFO - v
    return max(1, logging.DEBUG - (v - 4))


def verbosity_of(levelno: int) -> int:
    """The inverse of `v_level` for levels below INFO (0 for INFO and above)."""
    if levelno >= logging.INFO:
        return 0
    if levelno > logging.DEBUG:
        return logging.INFO - levelno
    return 4 + logging.DEBUG - levelno


def kv(**fields: Any) -> dict[str, Any]:
    """`extra=` for a logging call: the event's structured fields."""
    return {FIELDS: fields}


def event(logger: logging.Logger, msg: str, /, *, v: int = 0, **fields: Any) -> None:
    """Log one event `msg` with structured fields at klog verbosity `v` (0: INFO); nothing
    is formatted when that verbosity is off."""
    level = v_level(v)
    if logger.isEnabledFor(level):
        logger.log(level, msg, extra={FIELDS: fields}, stacklevel=2)


def ms_since(started: float) -> float:
    """Milliseconds since `started` (a time.perf_counter() reading), to 0.01 ms."""
    return round((time.perf_counter() - started) * 1000, 2)


def _text_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int | float):
        return f"{value:g}" if isinstance(value, float) else str(value)
    if isinstance(value, list | tuple | dict):  # JSON: unambiguous as it is
        return json.dumps(value, default=str, separators=(",", ":"))
    text = str(value)
    if text == "" or any(c.isspace() or c in '"=\\' for c in text):
        return json.dumps(text)
    return text


def render_fields(fields: dict[str, Any]) -> str:
    """`key=value ...` as klog writes them: strings quoted when they hold spaces, quotes
    or `=`."""
    return " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())


def _level_name(levelno: int) -> str:
    if levelno < logging.INFO:
        return "DEBUG" if levelno <= logging.DEBUG else "INFO"
    return logging.getLevelName(levelno) if levelno <= logging.CRITICAL else "CRITICAL"


class TextFormatter(logging.Formatter):
    """Today's line, `TIME LEVEL LOGGER MESSAGE`, with the event's fields after the
    message; levels between DEBUG and INFO (-v 1 to 3) print as INFO, as klog's `I`."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        fields = getattr(record, FIELDS, None)
        original = record.levelname, record.msg, record.args
        record.levelname = _level_name(record.levelno)
        if fields:
            record.msg = f"{record.getMessage()} {render_fields(fields)}"
            record.args = None
        try:
            return super().format(record)
        finally:
            record.levelname, record.msg, record.args = original


def rfc3339(created: float) -> str:
    """`created` (seconds since the epoch) as RFC 3339 in UTC with milliseconds."""
    stamp = datetime.datetime.fromtimestamp(created, tz=datetime.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JSONFormatter(logging.Formatter):
    """One JSON object per record: ts, level, v (below INFO), component, logger, msg, the
    event's fields, and exc (the traceback) when there is one."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": rfc3339(record.created),
                               "level": _level_name(record.levelno).lower()}
        if record.levelno < logging.INFO:
            out["v"] = verbosity_of(record.levelno)
        out.update(component=self.component, logger=record.name, msg=record.getMessage())
        for key, value in (getattr(record, FIELDS, None) or {}).items():
            out[f"{key}_" if key in RESERVED else key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str, ensure_ascii=False, separators=(",", ":"))


def formatter(fmt: str, component: str) -> logging.Formatter:
    if fmt == "json":
        return JSONFormatter(component)
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"unknown log format {fmt!r}: text or json")


def parse_level(text: str) -> int:
    """A Python level name (any case; WARN too) or number, for --log-level."""
    name = text.strip().upper()
    name = "WARNING" if name == "WARN" else name
    if name.isdigit():
        return int(name)
    if name not in _LEVEL_NAMES:
        raise argparse.ArgumentTypeError(
            f"expected DEBUG, INFO, WARNING, ERROR or CRITICAL, got {text!r}")
    return int(getattr(logging, name))


def _verbosity(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def add_flags(parser: argparse.ArgumentParser) -> None:
    """--log-format, -v/--v and --log-level on a component's parser."""
    group = parser.add_argument_group("logging")
    group.add_argument("--log-format", choices=FORMATS, default="text",
                       help="text (default): TIME LEVEL LOGGER MESSAGE key=value; json: one "
                            "object per line (ts, level, component, logger, msg, fields)")
    group.add_argument("-v", "--v", dest="v", type=_verbosity, default=0, metavar="N",
                       help="log verbosity as klog's: 0 (default) events at INFO, 2 each "
                            "object synced, 3 each API request, 4 and above debug")
    group.add_argument("--log-level", type=parse_level, default=None, metavar="LEVEL",
                       help="Python's level (DEBUG, INFO, WARNING, ERROR); with -v the more "
                            "verbose wins (default INFO)")


def threshold(v: int = 0, level: int | None = None) -> int:
    """The root logger's level from -v and --log-level (the more verbose wins)."""
    if level is None:
        return v_level(v)
    return min(level, v_level(v)) if v > 0 else level


def configure(component: str, *, fmt: str = "text", v: int = 0, level: int | None = None,
              stream: IO[str] | None = None) -> logging.Handler:
    """Make the root logger write `component`'s records to `stream` (stderr) as `fmt`,
    replacing any handler it had; the handler."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter(fmt, component))
    root = logging.getLogger()
    for old in root.handlers[:]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(threshold(v, level))
    quiet = root.level > logging.DEBUG
    for name in NOISY:
        logging.getLogger(name).setLevel(logging.WARNING if quiet else logging.NOTSET)
    return handler


def legacy_verbosity(count: int) -> int:
    """A count flag of before (`kemu -vv`, `kemu agent --verbose --verbose`): twice or more
    meant DEBUG."""
    return 4 if count > 1 else 0


def configure_from_args(component: str, args: argparse.Namespace, *,
                        stream: IO[str] | None = None) -> logging.Handler:
    """`configure` from the flags of `add_flags` (and kemu's own -v count), those missing
    taking their defaults."""
    v = max(int(getattr(args, "v", 0) or 0),
            legacy_verbosity(int(getattr(args, "verbose", 0) or 0)),
            legacy_verbosity(int(getattr(args, "agent_verbose", 0) or 0)))
    return configure(component, fmt=getattr(args, "log_format", None) or "text", v=v,
                     level=getattr(args, "log_level", None), stream=stream)
