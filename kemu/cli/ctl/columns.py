"""The shape of one kind's table (headers, wide headers, a row function) and the cell
helpers several kinds share (labels, selectors, container lists).

Row functions take the typed message, the current time and whether -o wide is on, and
return the cells; they are pure, so the unit tests feed them objects and a fixed clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kemu.cli.ctl.age import since

RowFn = Callable[[Any, float, bool], list[str]]
NONE = "<none>"


@dataclass(frozen=True)
class Columns:
    """How `kemuctl get` prints one kind."""

    headers: tuple[str, ...]
    row: RowFn
    wide: tuple[str, ...] = ()
    # True when -o wide prints `wide` instead of `headers + wide` (events).
    wide_replaces: bool = False


def format_labels(labels: Mapping[str, str]) -> str:
    """`a=1,b=2` sorted by key, `<none>` when empty (apimachinery's labels.FormatLabels)."""
    if not labels:
        return NONE
    return ",".join(f"{k}={labels[k]}" for k in sorted(labels))


def selector_string(selector: Any) -> str:
    """A LabelSelector in Kubernetes' string syntax, requirements sorted by key."""
    parts: list[tuple[str, str]] = [(k, f"{k}={v}") for k, v in selector.match_labels.items()]
    for req in selector.match_expressions:
        values = ",".join(sorted(req.values))
        text = {"In": f"{req.key} in ({values})", "NotIn": f"{req.key} notin ({values})",
                "Exists": req.key, "DoesNotExist": f"!{req.key}"}.get(
                    req.operator, f"{req.key} {req.operator} ({values})")
        parts.append((req.key, text))
    return ",".join(text for _, text in sorted(parts))


def map_selector(selector: Mapping[str, str]) -> str:
    """An equality-only selector map (Service, ReplicationController) as a string."""
    return ",".join(f"{k}={selector[k]}" for k in sorted(selector))


def containers_images(containers: Iterable[Any]) -> list[str]:
    """The CONTAINERS and IMAGES cells of -o wide."""
    listed = list(containers)
    return [",".join(c.name for c in listed), ",".join(c.image for c in listed)]


def age(msg: Any, now: float) -> str:
    return since(msg.metadata.creation_timestamp, now)


def name_age(msg: Any, now: float, wide: bool) -> list[str]:
    """The fallback table for kinds without their own: NAME AGE."""
    return [msg.metadata.name, age(msg, now)]


GENERIC = Columns(("NAME", "AGE"), name_age)
