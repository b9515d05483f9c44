"""`kemuctl get -w`: list, print, then print one line per change, resuming the watch
from the list's resourceVersion so that no change is missed or shown twice. Ctrl-C ends
it quietly with exit 0, as kubectl."""

from __future__ import annotations

from typing import Any

from kemu.api import objects
from kemu.api.kinds import Kind
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import output
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError
from kemu.cli.ctl.fetch import check_flags
from kemu.cli.ctl.resargs import Selection
from kemu.cli.ctl.table import TableOptions, headers, row
from kemu.client.errors import Gone

EVENT_NAMES = {api_pb2.WatchEvent.ADDED: "ADDED", api_pb2.WatchEvent.MODIFIED: "MODIFIED",
               api_pb2.WatchEvent.DELETED: "DELETED"}


class WatchPrinter:
    """Prints the first table and then each changed object's row, keeping the columns of
    the first table so the lines stay aligned under its header."""

    def __init__(self, ctx: Ctx, kind: Kind, fmt: str, template: str,
                 opts: TableOptions) -> None:
        self.ctx, self.kind, self.fmt, self.template, self.opts = ctx, kind, fmt, template, opts
        self.widths: list[int] = []
        self.printed_any = False

    def _line(self, cells: list[str]) -> str:
        parts = []
        for i, cell in enumerate(cells):
            last = i == len(cells) - 1
            if not last:
                if i >= len(self.widths):
                    self.widths.append(max(6, len(cell) + 3))
                self.widths[i] = max(self.widths[i], len(cell) + 3)
            parts.append(cell if last else cell.ljust(self.widths[i]))
        return "".join(parts)

    def table(self, items: list[api_pb2.Object], event: str = "") -> None:
        if self.fmt not in ("table", "wide"):
            for obj in items:
                self.object(obj)
            return
        rows = [headers(self.kind, self.opts)]
        rows += [row(o, self.opts, self.ctx.now(), event) for o in items]
        self._set_widths(rows)
        for r in rows:
            self.ctx.line(self._line(r))
        self.printed_any = True

    def _set_widths(self, rows: list[list[str]]) -> None:
        self.widths = [max(6, max(len(r[i]) for r in rows if i < len(r)) + 3)
                       for i in range(len(rows[0]))]
        if self.opts.event_column:
            self.widths[0] = max(self.widths[0], len("MODIFIED") + 3)

    def object(self, obj: api_pb2.Object, event: str = "") -> None:
        if self.fmt in ("table", "wide"):
            cells = row(obj, self.opts, self.ctx.now(), event)
            if not self.printed_any:
                head = headers(self.kind, self.opts)
                self._set_widths([head, cells])
                self.ctx.line(self._line(head))
                self.printed_any = True
            self.ctx.line(self._line(cells))
            return
        if self.fmt == "yaml" and self.printed_any:
            self.ctx.write("---\n")
        self.ctx.write(output.render([obj], self.fmt, self.template, single=True))
        self.printed_any = True


def watch(ctx: Ctx, args: Any, sel: Selection, fmt: str, template: str,
          opts: TableOptions) -> int:
    if len(sel.groups) != 1 or len(sel.groups[0].names) > 1:
        raise CtlError("watch is only supported on individual resources and resource "
                       f"collections, but {len(sel.groups)} resource types were found")
    check_flags(sel, all_namespaces=args.all_namespaces, label_selector=args.selector,
                field_selector=args.field_selector)
    group = sel.groups[0]
    kind = group.kind
    namespace = "" if args.all_namespaces or not kind.namespaced else ctx.namespace
    field_selector = args.field_selector
    if group.names:
        ctx.client.get(kind.plural, group.names[0], namespace)  # NotFound, as kubectl
        field_selector = f"metadata.name={group.names[0]}"
    printer = WatchPrinter(ctx, kind, fmt, template, opts)
    try:
        listed = ctx.client.list(kind.plural, namespace, label_selector=args.selector,
                                 field_selector=field_selector)
        if not args.watch_only and listed.items:  # as kubectl: nothing at all when empty
            printer.table(list(listed.items), "ADDED")
        resource_version = listed.resource_version
        while True:
            try:
                for ev in ctx.client.watch(kind.plural, namespace, label_selector=args.selector,
                                           field_selector=field_selector,
                                           resource_version=resource_version):
                    resource_version = objects.meta(ev.object).resource_version or \
                        resource_version
                    if ev.type in EVENT_NAMES:
                        printer.object(ev.object, EVENT_NAMES[ev.type])
            except Gone:
                # Too far behind to resume: list again and carry on from there.
                resource_version = ctx.client.list(
                    kind.plural, namespace, label_selector=args.selector,
                    field_selector=field_selector).resource_version
    except KeyboardInterrupt:
        return 0
