"""`kemuctl edit TYPE NAME`: open the live object as YAML in $KUBE_EDITOR, $EDITOR or vi,
and write back what was saved with the resourceVersion it was read at, so a concurrent
change is reported as a Conflict rather than overwritten."""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from kemu.api import objects
from kemu.cli.ctl import output, resargs, sources
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import CtlError, Reported, server_error
from kemu.cli.ctl.fetch import fetch
from kemu.client.errors import ClientError, Unavailable


def add_arguments(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("resources", nargs="*", metavar="TYPE NAME | TYPE/NAME")
    p.add_argument("-o", "--output", default="yaml", choices=("yaml", "json"),
                   help="the format to edit in")


def editor() -> list[str]:
    return shlex.split(os.environ.get("KUBE_EDITOR") or os.environ.get("EDITOR") or "vi")


def run(ctx: Ctx, args: Any) -> int:
    sel = resargs.parse(args.resources, verb="edit")
    if not sel.named:
        raise CtlError("edit needs TYPE NAME or TYPE/NAME")
    found = fetch(ctx, sel)
    errors = list(found.errors)
    for obj in found.items:
        meta = objects.meta(obj)
        text = output.render([obj], args.output, single=True)
        with tempfile.TemporaryDirectory(prefix="kemuctl-edit-") as tmp:
            path = Path(tmp) / f"{meta.name}.{args.output}"
            path.write_text(text)
            result = subprocess.run([*editor(), str(path)], check=False)
            if result.returncode != 0:
                raise CtlError(f"the editor exited with status {result.returncode}")
            edited = path.read_text()
        if edited == text:
            ctx.line("Edit cancelled, no changes made.")
            continue
        new = sources.parse(path.name, edited)
        if len(new) != 1:
            raise CtlError("the edited file must hold exactly one object")
        updated = new[0]
        sources.place(updated, meta.namespace, explicit=True)
        try:
            written = ctx.client.update(updated)
        except Unavailable:
            raise
        except ClientError as e:
            errors.append(server_error(e))
            continue
        ctx.line(f"{output.name_of(written)} edited")
    for line in errors:
        ctx.error(line)
    if errors:
        raise Reported()
    return 0
