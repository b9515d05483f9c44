"""`kemuctl get`'s tables: pick the kind's columns, add what the flags ask for (NAMESPACE
for -A, LABELS for --show-labels, one column per -L key, the `kind.group/` name prefix when
several types are printed), and lay the cells out as kubectl does."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kemu.api import objects
from kemu.api.kinds import Kind
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import (
    rows_autoscaling,
    rows_core,
    rows_net,
    rows_rbac,
    rows_workloads,
    tabwriter,
)
from kemu.cli.ctl.columns import GENERIC, Columns, format_labels

TABLES: dict[str, Columns] = {**rows_core.COLUMNS, **rows_net.COLUMNS, **rows_workloads.COLUMNS,
                               **rows_autoscaling.COLUMNS, **rows_rbac.COLUMNS}


@dataclass(frozen=True)
class TableOptions:
    """What the get flags change about a table."""

    wide: bool = False
    namespace_column: bool = False
    with_kind: bool = False
    show_labels: bool = False
    label_columns: tuple[str, ...] = field(default_factory=tuple)
    event_column: bool = False


def columns_for(kind: Kind) -> Columns:
    return TABLES.get(kind.plural, GENERIC)


def kind_prefix(kind: Kind) -> str:
    """`deployment.apps` or `pod`: how kubectl names a type in `TYPE/NAME` output."""
    return f"{kind.singular}.{kind.group}" if kind.group else kind.singular


def label_header(key: str) -> str:
    """-L app.kubernetes.io/name prints a NAME column, as kubectl."""
    return key.rsplit("/", 1)[-1].upper()


def headers(kind: Kind, opts: TableOptions) -> list[str]:
    cols = columns_for(kind)
    names = list(cols.headers)
    if opts.wide:
        names = list(cols.wide) if cols.wide_replaces else names + list(cols.wide)
    if opts.namespace_column and kind.namespaced:
        names.insert(0, "NAMESPACE")
    if opts.event_column:
        names.insert(0, "EVENT")
    names += [label_header(k) for k in opts.label_columns]
    if opts.show_labels:
        names.append("LABELS")
    return names


def row(obj: api_pb2.Object, opts: TableOptions, now: float, event: str = "") -> list[str]:
    kind = objects.kind_of(obj)
    msg: Any = objects.unwrap(obj)
    cols = columns_for(kind)
    cells = cols.row(msg, now, opts.wide)
    if opts.with_kind and cols.headers[0] == "NAME":
        cells[0] = f"{kind_prefix(kind)}/{cells[0]}"
    if opts.namespace_column and kind.namespaced:
        cells.insert(0, msg.metadata.namespace)
    if opts.event_column:
        cells.insert(0, event)
    labels = msg.metadata.labels
    cells += [labels.get(k, "") for k in opts.label_columns]
    if opts.show_labels:
        cells.append(format_labels(labels))
    return cells


def render(kind: Kind, items: Iterable[api_pb2.Object], opts: TableOptions, now: float, *,
           no_headers: bool = False) -> str:
    rows = [] if no_headers else [headers(kind, opts)]
    rows += [row(obj, opts, now) for obj in items]
    return tabwriter.table(rows)
