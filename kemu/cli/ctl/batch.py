"""Writing a batch of documents from -f: namespaces first (so the objects that live in
them can be written in the same run), one outcome line per object, and errors worded
with the file they came from. Shared by create, apply and replace."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import output
from kemu.cli.ctl.context import Ctx
from kemu.cli.ctl.errors import Reported, server_error
from kemu.cli.ctl.sources import Document
from kemu.client.errors import ClientError, Unavailable


def namespaces_first(docs: Sequence[Document]) -> list[Document]:
    """Stable: Namespace objects first, everything else in file order."""
    return sorted(docs, key=lambda d: objects.kind_of(d.obj).kind != "Namespace")


def batch_namespaces(docs: Sequence[Document]) -> set[str]:
    return {objects.meta(d.obj).name for d in docs if objects.kind_of(d.obj).kind == "Namespace"}


def waits_for_batch_namespace(err: ClientError, obj: api_pb2.Object,
                              created: set[str]) -> bool:
    """A dry run failed only because the namespace does not exist yet, and this batch
    creates it: the real write, after the namespace's, will find it."""
    ns = objects.meta(obj).namespace
    return ns in created and err.reason == "NotFound" and f'namespaces "{ns}" not found' in \
        err.message


def report(ctx: Ctx, obj: api_pb2.Object, outcome: str, fmt: str, template: str = "") -> None:
    """`deployment.apps/web created`, or the object in the -o format."""
    if fmt in ("", "table"):
        ctx.line(f"{output.name_of(obj)} {outcome}")
    elif fmt == "name":
        ctx.line(output.name_of(obj))
    else:
        ctx.write(output.render([obj], fmt, template, single=True))


def write_each(ctx: Ctx, docs: Sequence[Document], action: str,
               write: Callable[[api_pb2.Object], tuple[api_pb2.Object, str]], fmt: str,
               template: str = "") -> None:
    """Write every document, reporting each; a failure does not stop the others, and the
    failures are printed at the end, then Reported is raised (exit 1), as kubectl does.
    An unreachable server stops the batch at once."""
    errors: list[str] = []
    for doc in docs:
        try:
            written, outcome = write(doc.obj)
        except Unavailable:
            raise
        except ClientError as e:
            errors.append(server_error(e, action=action, source=doc.source))
            continue
        report(ctx, written, outcome, fmt, template)
    for line in errors:
        ctx.error(line)
    if errors:
        raise Reported()
