"""-f inputs: files, directories (optionally recursive), stdin, strict parsing with the
file named in the error, and the namespace rules of kubectl."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest

from kemu.api import manifest, objects
from kemu.cli.ctl import sources
from kemu.cli.ctl.errors import CtlError

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n"


def test_directory_reads_manifest_files_in_order(tmp_path: Path) -> None:
    (tmp_path / "b.yaml").write_text(CM.format(name="b"))
    (tmp_path / "a.yml").write_text(CM.format(name="a") + "---\n" + CM.format(name="a2"))
    (tmp_path / "notes.txt").write_text("not a manifest")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.json").write_text(
        '{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}')
    names = [objects.meta(d.obj).name for d in sources.load([str(tmp_path)])]
    assert names == ["a", "a2", "b"]
    names = [objects.meta(d.obj).name for d in sources.load([str(tmp_path)], recursive=True)]
    assert names == ["a", "a2", "b", "c"]


def test_stdin() -> None:
    docs = sources.load(["-"], stdin=io.StringIO(CM.format(name="x")))
    assert docs[0].source == "STDIN"


@pytest.mark.parametrize(("text", "message"), [
    pytest.param("a: [", r"error parsing f.yaml: line \d+ column \d+: invalid YAML", id="yaml"),
    pytest.param("apiVersion: v1\nkind: Frob\n", 'no matches for kind "Frob" in version "v1"',
                 id="unknown-kind"),
    pytest.param(CM.format(name="x") + "datta: {}\n",
                 'ConfigMap "x": strict decoding error: unknown field "datta"', id="unknown-field"),
    pytest.param("", "no objects passed to apply", id="empty"),
])
def test_parse_errors(tmp_path: Path, text: str, message: str,
                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    Path("f.yaml").write_text(text)
    with pytest.raises(CtlError, match=message):
        sources.load(["f.yaml"])


def test_missing_path() -> None:
    with pytest.raises(CtlError, match=re.escape('the path "nope.yaml" does not exist')):
        sources.load(["nope.yaml"])


def test_place_namespaces() -> None:
    obj = manifest.from_dict({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}})
    sources.place(obj, "team", explicit=False)
    assert objects.meta(obj).namespace == "team"
    sources.place(obj, "other", explicit=False)
    assert objects.meta(obj).namespace == "team"  # the manifest's own namespace wins
    with pytest.raises(CtlError, match=re.escape(
            'the namespace from the provided object "team" does not match the namespace "other". '
            "You must pass '--namespace=team' to perform this operation.")):
        sources.place(obj, "other", explicit=True)
    node = manifest.from_dict({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}})
    sources.place(node, "team", explicit=True)
    assert objects.meta(node).namespace == ""
