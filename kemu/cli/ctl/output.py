"""-o yaml, json, name, jsonpath and go-template: objects as kubectl prints them.

One object prints as itself; several print as `kind: List` with `items`, exactly as
kubectl, so output can be piped back into `kemuctl apply -f -`. Keys are sorted (kubectl
prints through a map), JSON is indented by four spaces, multi-line strings use YAML's
block style and long strings are never folded. Templates (`-o jsonpath=...`,
`-o go-template=...`, their `-file` forms, or `--template`) fill from the same document.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

from kemu.api import objects
from kemu.api.v1 import api_pb2
from kemu.cli.ctl import gofmt, gotemplate, jsonpath
from kemu.cli.ctl.errors import CtlError
from kemu.cli.ctl.table import kind_prefix

STRUCTURED = ("yaml", "json", "name")
TEMPLATED = ("go-template", "go-template-file", "jsonpath", "jsonpath-as-json",
             "jsonpath-file", "template", "templatefile")
ALIASES = {"template": "go-template", "templatefile": "go-template-file"}
ALLOWED = ",".join(sorted((*TEMPLATED, "json", "name", "wide", "yaml")))


class _Dumper(yaml.SafeDumper):
    """SafeDumper with block style for multi-line strings."""


_STR = "tag:yaml.org,2002:str"


def _str_representer(dumper: yaml.SafeDumper, value: str) -> yaml.Node:
    """Block style for multi-line text; double quotes (as Go's YAML, so as kubectl) where a
    plain scalar would not read back as this string: "7", "true", "", "{...}"."""
    if "\n" in value:
        return dumper.represent_scalar(_STR, value, style="|")
    tag = dumper.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    plain_ok = tag == _STR and \
        dumper.analyze_scalar(value).allow_block_plain
    return dumper.represent_scalar(_STR, value, style=None if plain_ok else '"')


_Dumper.add_representer(str, _str_representer)


def to_yaml(data: Any) -> str:
    return yaml.dump(data, Dumper=_Dumper, sort_keys=True, default_flow_style=False,
                     allow_unicode=True, width=1 << 20)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=4, sort_keys=True, ensure_ascii=False) + "\n"


def name_of(obj: api_pb2.Object) -> str:
    """`deployment.apps/web`, `pod/x`: what -o name prints."""
    return f"{kind_prefix(objects.kind_of(obj))}/{objects.meta(obj).name}"


def as_list(items: Sequence[api_pb2.Object]) -> dict[str, Any]:
    return {"apiVersion": "v1", "items": [objects.to_dict(o) for o in items], "kind": "List",
            "metadata": {"resourceVersion": ""}}


def document(items: Sequence[api_pb2.Object], single: bool) -> dict[str, Any]:
    if single and len(items) == 1:
        return objects.to_dict(items[0])
    return as_list(items)


def parse_format(text: str, template: str = "") -> tuple[str, str]:
    """Split `-o` into (format, argument): `jsonpath={.x}` -> ("jsonpath", "{.x}").

    As kubectl: `--template` (the `template` argument) wins over `=...` and, without -o,
    means go-template; `template`/`templatefile` are go-template's aliases; a `-file`
    format comes back as its inline form holding the file's text; and a go template that
    does not parse fails here, before any request is made."""
    fmt, _, arg = text.partition("=")
    fmt = fmt.strip() or ("go-template" if template else "")
    if fmt in ("", "table"):
        return "table", ""
    if fmt in ("wide", "yaml", "json", "name"):
        return fmt, ""
    if fmt not in TEMPLATED:
        raise CtlError(f'unable to match a printer suitable for the output format "{text}", '
                       f"allowed formats are: {ALLOWED}")
    fmt, arg = ALIASES.get(fmt, fmt), template or arg
    if not arg:
        raise CtlError("template format specified but no template given")
    if fmt.endswith("-file"):
        fmt, arg = fmt.removesuffix("-file"), read_template(arg)
    if fmt == "go-template":
        try:
            gotemplate.parse(arg)
        except gotemplate.TemplateParseError as e:
            raise template_parse_error(arg, e) from None
    return fmt, arg


def template_parse_error(template: str, err: Exception) -> CtlError:
    return CtlError(f"error parsing template {template}, {err}")


def read_template(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError as e:
        reason = (e.strerror or str(e)).lower()
        raise CtlError(f"error reading --template {path}, open {path}: {reason}") from None


def render(items: Sequence[api_pb2.Object], fmt: str, arg: str = "", *,
           single: bool = False) -> str:
    """Objects in a non-table format."""
    if fmt == "name":
        return "".join(name_of(o) + "\n" for o in items)
    doc = document(items, single)
    if fmt == "yaml":
        return to_yaml(doc)
    if fmt == "json":
        return to_json(doc)
    if fmt == "go-template":
        try:
            return gotemplate.execute(arg, doc)
        except gotemplate.TemplateParseError as e:
            raise template_parse_error(arg, e) from None
        except gotemplate.TemplateExecError as e:
            raise CtlError(f"error executing template {gofmt.quote(arg)}: {e}") from None
    if fmt in ("jsonpath", "jsonpath-as-json"):
        try:
            if fmt == "jsonpath-as-json":
                return to_json(jsonpath.evaluate(arg.strip().strip("{}"), doc))
            return jsonpath.render(arg, doc)
        except jsonpath.JSONPathError as e:
            raise CtlError(f"error parsing jsonpath {arg}, {e}") from None
    raise CtlError(f"unknown output format {fmt!r}")
