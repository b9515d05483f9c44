"""`-f FILE|DIR|-` inputs: read every file, parse every document strictly, place each
object in its namespace. Nothing here talks to the server, so a verb can check a whole
batch before it writes anything.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from kemu.api import manifest, objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl.errors import CtlError

EXTENSIONS = (".json", ".yaml", ".yml")
STDIN = "STDIN"


@dataclass(frozen=True)
class Document:
    """One object and the file it came from (for error messages)."""

    source: str
    obj: api_pb2.Object


def _files(path_text: str, recursive: bool) -> list[Path]:
    if path_text.startswith(("http://", "https://")):
        raise CtlError(f"reading manifests from a URL is not supported: {path_text}")
    path = Path(path_text)
    if not path.exists():
        raise CtlError(f'the path "{path_text}" does not exist')
    if path.is_file():
        return [path]
    walk = path.rglob("*") if recursive else path.glob("*")
    found = sorted(p for p in walk if p.is_file() and p.suffix in EXTENSIONS)
    if not found:
        raise CtlError(f"error reading [{path_text}]: recognized file extensions are "
                       "[.json .yaml .yml]")
    return found


def read(paths: Sequence[str], *, recursive: bool = False,
         stdin: TextIO | None = None) -> list[tuple[str, str]]:
    """(source name, text) for every file the -f arguments name, in order."""
    texts: list[tuple[str, str]] = []
    for p in paths:
        if p == "-":
            texts.append((STDIN, (stdin or sys.stdin).read()))
            continue
        for f in _files(p, recursive):
            try:
                texts.append((str(f), f.read_text(encoding="utf-8")))
            except UnicodeDecodeError:
                raise CtlError(f"error parsing {f}: not a UTF-8 text file") from None
    return texts


def parse(source: str, text: str) -> list[api_pb2.Object]:
    """Every document of one file; a bad one fails with kubectl's `error parsing FILE`."""
    try:
        docs = list(manifest.iter_documents(text, source=source))
    except manifest.ManifestError as e:
        detail = str(e).removeprefix(f"{source}:").strip()
        raise CtlError(f"error parsing {source}: {detail}") from None
    parsed = []
    for doc in docs:
        try:
            parsed.append(manifest.from_dict(doc))
        except manifest.ManifestError as e:
            raise CtlError(f"error parsing {source}: {e}") from None
    return parsed


def load(paths: Sequence[str], *, recursive: bool = False, stdin: TextIO | None = None,
         verb: str = "apply") -> list[Document]:
    """Parse everything first; the first bad document fails the whole batch."""
    if not paths:
        raise CtlError("must specify one of -f and -k")
    docs = [Document(source, obj) for source, text in read(paths, recursive=recursive,
                                                           stdin=stdin)
            for obj in parse(source, text)]
    if not docs:
        raise CtlError(f"no objects passed to {verb}")
    return docs


def place(obj: api_pb2.Object, namespace: str, explicit: bool) -> None:
    """Give a namespaced object the -n namespace unless it names its own; a conflict
    between the two is kubectl's error. Cluster-scoped objects keep no namespace."""
    kind, meta = objects.kind_of(obj), objects.meta(obj)
    if not kind.namespaced:
        meta.namespace = ""
        return
    if not meta.namespace:
        meta.namespace = namespace
    elif explicit and meta.namespace != namespace:
        raise CtlError(f'the namespace from the provided object "{meta.namespace}" does not '
                       f'match the namespace "{namespace}". You must pass '
                       f"'--namespace={meta.namespace}' to perform this operation.")
