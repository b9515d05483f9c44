"""-o yaml/json/name/jsonpath/go-template: one object bare, several as a List, keys sorted, strings
quoted as Go's YAML quotes them, and the JSONPath subset scripts use."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from kemu.api import manifest
from kemu.cli.ctl import jsonpath, output
from kemu.cli.ctl.errors import CtlError


def cm(name: str, **data: str) -> Any:
    return manifest.from_dict({"apiVersion": "v1", "kind": "ConfigMap",
                               "metadata": {"name": name, "namespace": "default",
                                            "resourceVersion": "12"},
                               "data": data})


def test_single_object_prints_bare() -> None:
    doc = yaml.safe_load(output.render([cm("a", k="v")], "yaml", single=True))
    assert doc["kind"] == "ConfigMap" and doc["metadata"]["name"] == "a"


def test_several_objects_print_as_list() -> None:
    doc = json.loads(output.render([cm("a"), cm("b")], "json"))
    assert doc["kind"] == "List" and doc["apiVersion"] == "v1"
    assert [i["metadata"]["name"] for i in doc["items"]] == ["a", "b"]
    assert doc["metadata"] == {"resourceVersion": ""}


def test_yaml_quotes_like_kubectl() -> None:
    text = output.render([cm("a", port="8080", flag="true", empty="", multi="x\ny\n")], "yaml",
                         single=True)
    assert 'resourceVersion: "12"' in text
    assert 'port: "8080"' in text and 'flag: "true"' in text and 'empty: ""' in text
    assert "multi: |\n    x\n    y\n" in text
    assert yaml.safe_load(text)["data"]["multi"] == "x\ny\n"


def test_json_is_indented_by_four() -> None:
    assert output.render([cm("a")], "json", single=True).startswith('{\n    "apiVersion"')


def test_name_format() -> None:
    dep = manifest.from_dict({"apiVersion": "apps/v1", "kind": "Deployment",
                              "metadata": {"name": "web"}})
    assert output.render([dep, cm("a")], "name") == "deployment.apps/web\nconfigmap/a\n"


@pytest.mark.parametrize(("spec", "template", "parsed"), [
    pytest.param("", "", ("table", ""), id="default"),
    pytest.param("wide", "", ("wide", ""), id="wide"),
    pytest.param("jsonpath={.a}", "", ("jsonpath", "{.a}"), id="jsonpath"),
    pytest.param("go-template={{.a}}", "", ("go-template", "{{.a}}"), id="go-template"),
    pytest.param("template={{.a}}", "", ("go-template", "{{.a}}"), id="template-alias"),
    pytest.param("go-template", "{{.b}}", ("go-template", "{{.b}}"), id="template-flag"),
    pytest.param("go-template={{.a}}", "{{.b}}", ("go-template", "{{.b}}"),
                 id="template-flag-wins"),
    pytest.param("", "{{.b}}", ("go-template", "{{.b}}"), id="template-flag-alone"),
    pytest.param("jsonpath", "{.b}", ("jsonpath", "{.b}"), id="jsonpath-template-flag"),
    pytest.param("yaml", "{{.b}}", ("yaml", ""), id="template-flag-ignored-by-yaml"),
])
def test_parse_format(spec: str, template: str, parsed: tuple[str, str]) -> None:
    assert output.parse_format(spec, template) == parsed


@pytest.mark.parametrize(("fmt", "parsed_as", "text"), [
    pytest.param("go-template-file", "go-template", "{{.a}}\n", id="go-template-file"),
    pytest.param("templatefile", "go-template", "{{.a}}\n", id="templatefile"),
    pytest.param("jsonpath-file", "jsonpath", "{.a}", id="jsonpath-file"),
])
def test_template_files_are_read(tmp_path: Path, fmt: str, parsed_as: str, text: str) -> None:
    path = tmp_path / "t.tmpl"
    path.write_text(text)
    assert output.parse_format(f"{fmt}={path}") == (parsed_as, text)
    assert output.parse_format(fmt, str(path)) == (parsed_as, text)


@pytest.mark.parametrize(("spec", "template", "message"), [
    pytest.param("xml", "", 'unable to match a printer suitable for the output format "xml", '
                            "allowed formats are: go-template,go-template-file,json,jsonpath,"
                            "jsonpath-as-json,jsonpath-file,name,template,templatefile,wide,yaml",
                 id="unknown"),
    pytest.param("go-template", "", "template format specified but no template given",
                 id="go-template-without-template"),
    pytest.param("jsonpath=", "", "template format specified but no template given",
                 id="jsonpath-without-template"),
    pytest.param("go-template={{if .a}}", "",
                 "error parsing template {{if .a}}, template: output:1: unexpected EOF",
                 id="go-template-parsed-up-front"),
    pytest.param("go-template-file=/nonexistent.tmpl", "",
                 "error reading --template /nonexistent.tmpl, open /nonexistent.tmpl: "
                 "no such file or directory", id="missing-file"),
])
def test_bad_formats(spec: str, template: str, message: str) -> None:
    with pytest.raises(CtlError) as info:
        output.parse_format(spec, template)
    assert str(info.value) == message


DATA = {"items": [
    {"metadata": {"name": "a"}, "spec": {"ports": [{"port": 80, "nodePort": 30001}]},
     "status": {"conditions": [{"type": "Ready", "status": "True"}]}},
    {"metadata": {"name": "b"}, "spec": {"ports": [{"port": 81}]},
     "status": {"conditions": [{"type": "Ready", "status": "False"}]}},
]}


@pytest.mark.parametrize(("template", "text"), [
    pytest.param("{.items[*].metadata.name}", "a b", id="star"),
    pytest.param("{.items[0].spec.ports[0].nodePort}", "30001", id="index"),
    pytest.param("{.items[-1].metadata.name}", "b", id="negative-index"),
    pytest.param('{.items[?(@.metadata.name=="b")].spec.ports[0].port}', "81", id="filter"),
    pytest.param('{range .items[*]}{.metadata.name}{"\\t"}'
                 '{.status.conditions[?(@.type=="Ready")].status}{"\\n"}{end}',
                 "a\tTrue\nb\tFalse\n", id="range"),
    pytest.param("names: {..name}", "names: a b", id="recursive"),
    pytest.param("{.items[0].metadata}", '{"name":"a"}', id="map-as-json"),
    pytest.param("{.missing}", "", id="missing"),
])
def test_jsonpath(template: str, text: str) -> None:
    assert jsonpath.render(template, DATA) == text


@pytest.mark.parametrize("template", [
    pytest.param("{.items", id="unclosed"),
    pytest.param("{range .items[*]}", id="range-without-end"),
    pytest.param("{.items[x]}", id="bad-subscript"),
])
def test_jsonpath_errors(template: str) -> None:
    with pytest.raises(jsonpath.JSONPathError):
        jsonpath.render(template, DATA)
