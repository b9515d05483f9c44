"""-o go-template: the text/template subset kubectl users type, with Go's output (numbers,
`<no value>`, maps as `map[k:v]`) and Go's error wording; the Kubernetes bootcamp's lines
as pasted, through the kemuctl entry point (client dry runs: no server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from kemu.api import manifest
from kemu.cli.ctl import gofmt, output
from kemu.cli.ctl.gotemplate import TemplateExecError, TemplateParseError, execute
from tests.unit.cli.test_ctl_tutorial_flags import kemuctl

SERVICE = {"apiVersion": "v1", "kind": "Service",
           "metadata": {"name": "kubernetes-bootcamp", "namespace": "default",
                        "labels": {"app": "kubernetes-bootcamp"}},
           "spec": {"type": "NodePort", "clusterIP": "10.96.12.7",
                    "ports": [{"nodePort": 30080, "port": 8080, "protocol": "TCP",
                               "targetPort": 8080}],
                    "selector": {"app": "kubernetes-bootcamp"}}}


def pod(name: str, ip: str | None) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Running" if ip else "Pending"}
    if ip:
        status["podIP"] = ip
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "kubernetes-bootcamp:v1"}]},
            "status": status}


PODS = {"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": ""},
        "items": [pod("kubernetes-bootcamp-5485cc6795-abcde", "10.244.1.5"),
                  pod("kubernetes-bootcamp-5485cc6795-fghij", None)]}
DATA = {"s": "text", "n": 3, "f": 2.5, "big": 1000000.0, "t": True, "no": False, "null": None,
        "empty": "", "list": ["a", "b", "c"], "none": [], "map": {"b": 2, "a": 1},
        "secret": "aGVsbG8=", "nested": {"list": [{"k": "v"}]}}

BOOTCAMP = [
    pytest.param("{{(index .spec.ports 0).nodePort}}", SERVICE, "30080", id="node-port"),
    pytest.param('{{range .items}}{{.metadata.name}}{{"\\n"}}{{end}}', PODS,
                 "kubernetes-bootcamp-5485cc6795-abcde\nkubernetes-bootcamp-5485cc6795-fghij\n",
                 id="pod-names"),
    pytest.param('{{range .items}}{{.metadata.name}}{{"\\t"}}{{.status.podIP}}{{"\\n"}}{{end}}',
                 PODS, "kubernetes-bootcamp-5485cc6795-abcde\t10.244.1.5\n"
                       "kubernetes-bootcamp-5485cc6795-fghij\t<no value>\n", id="names-and-ips"),
]


@pytest.mark.parametrize(("template", "data", "text"), BOOTCAMP)
def test_bootcamp_lines(template: str, data: dict[str, Any], text: str) -> None:
    assert execute(template, data) == text


@pytest.mark.parametrize(("template", "text"), [
    pytest.param("{{.s}} {{.map.a}}", "text 1", id="field-chain"),
    pytest.param("{{.nested.list}}", "[map[k:v]]", id="list-of-maps"),
    pytest.param("{{.map}} {{.list}} {{.t}} {{.null}}", "map[a:1 b:2] [a b c] true <no value>",
                 id="go-print-forms"),
    pytest.param("{{.missing}}|{{.missing.deeper}}|{{.map.missing}}",
                 "<no value>|<no value>|<no value>", id="missing-key"),
    pytest.param("{{.n}} {{.f}} {{.big}} {{3}} {{3.0}} {{1e3}} {{0x1F}} {{-2}}",
                 "3 2.5 1e+06 3 3 1000 31 -2", id="numbers"),
    pytest.param("{{'a'}} {{true}} {{\"q\\\"x\\u00e9\"}} {{`raw\\n`}}", '97 true q"xé raw\\n',
                 id="literals"),
    pytest.param('{{"a\\tb\\nc\\x41\\101"}}', "a\tb\ncAA", id="go-escapes"),
    pytest.param("{{$.nested}}", "map[list:[map[k:v]]]", id="root-var"),
    pytest.param("{{$.s}} {{with .map}}{{$.s}}{{.a}}{{end}}", "text text1", id="dollar"),
    pytest.param("{{$x := .n}}{{$x}} {{$x = 4}}{{$x}}", "3 4", id="declare-assign"),
    pytest.param("{{range $i, $e := .list}}{{$i}}{{$e}},{{end}}", "0a,1b,2c,", id="range-vars"),
    pytest.param("{{range $e := .list}}{{$e}}{{end}}", "abc", id="range-one-var"),
    pytest.param("{{range $k, $v := .map}}{{$k}}={{$v}};{{end}}", "a=1;b=2;",
                 id="range-map-sorted"),
    pytest.param("{{range .none}}x{{else}}empty{{end}}", "empty", id="range-else"),
    pytest.param("{{range .missing}}x{{end}}ok", "ok", id="range-missing"),
    pytest.param("{{range .list}}{{if eq . \"b\"}}{{continue}}{{end}}{{.}}{{end}}", "ac",
                 id="continue"),
    pytest.param("{{range .list}}{{if eq . \"b\"}}{{break}}{{end}}{{.}}{{end}}", "a",
                 id="break"),
    pytest.param("{{range 3}}{{.}}{{end}}", "012", id="range-int"),
    pytest.param("{{if .t}}yes{{end}}{{if .no}}no{{end}}", "yes", id="if"),
    pytest.param("{{if .empty}}a{{else if .none}}b{{else if .n}}c{{else}}d{{end}}", "c",
                 id="else-if"),
    pytest.param("{{if .null}}a{{else}}b{{end}}", "b", id="if-null"),
    pytest.param("{{with .map}}{{.b}}{{end}}{{with .none}}x{{else}}y{{end}}", "2y", id="with"),
    pytest.param("{{with $m := .map}}{{$m.a}}{{end}}", "1", id="with-var"),
    pytest.param("{{with .empty}}a{{else with .s}}{{.}}{{end}}", "text", id="else-with"),
    pytest.param("{{if $x := .n}}{{$x}}{{end}}", "3", id="if-declares"),
    pytest.param("{{(index .nested.list 0).k}} {{(.nested).list}}", "v [map[k:v]]",
                 id="parens-chain"),
    pytest.param("{{.s | printf \"%s!\"}} {{.list | len}}", "text! 3", id="pipes"),
    pytest.param("{{index .list 1}} {{index .map \"b\"}} {{index .nested \"list\" 0 \"k\"}}",
                 "b 2 v", id="index"),
    pytest.param("{{index .map \"zz\"}}", "<no value>", id="index-missing-key"),
    pytest.param("{{len .list}} {{len .map}} {{len .s}} {{len \"é\"}}", "3 2 4 2", id="len"),
    pytest.param("{{print 1 2 \"a\" \"b\" 3}}|{{println .s 1}}|", "1 2ab3|text 1\n|",
                 id="print-println"),
    pytest.param("{{eq .n 3}} {{eq .s \"x\" \"text\"}} {{ne .n 4}} {{eq .n 3.0}}",
                 "true true true true", id="eq-ne"),
    pytest.param("{{lt 1 2}} {{le 2 2}} {{gt .f 3}} {{ge \"b\" \"a\"}}", "true true false true",
                 id="ordering"),
    pytest.param("{{and 1 .s}} {{and .empty .s}} {{or .empty .none}} {{or .missing .s}}",
                 "text  [] text", id="and-or-values"),
    pytest.param("{{and .no (index .none 5)}}{{or .t (index .none 5)}}", "falsetrue",
                 id="and-or-short-circuit"),
    pytest.param("{{not .t}} {{not .empty}}", "false true", id="not"),
    pytest.param("{{.secret | base64decode}}", "hello", id="base64decode"),
    pytest.param("{{exists . \"nested\" \"list\" 0 \"k\"}} {{exists . \"map\" \"zz\"}}",
                 "true false", id="exists"),
    pytest.param("a  {{- .s -}}  \n b", "atextb", id="trim-markers"),
    pytest.param("{{-3}}", "-3", id="negative-not-trim"),
    pytest.param("a{{/* note */}}b {{- /* trimmed */ -}} c", "abc", id="comments"),
    pytest.param("{{range .list -}}\n  {{.}}\n{{- end}}", "abc", id="multiline"),
])
def test_constructs(template: str, text: str) -> None:
    assert execute(template, DATA) == text


@pytest.mark.parametrize(("template", "text"), [
    pytest.param('{{printf "%s|%5s|%-5s|%.2s" "ab" "ab" "ab" "abc"}}', "ab|   ab|ab   |ab",
                 id="s"),
    pytest.param('{{printf "%d|%03d|%+d|%x|%X" 42 7 5 255 255}}', "42|007|+5|ff|FF", id="d"),
    pytest.param('{{printf "%d %s" .n .big}}', "3 1e+06", id="json-numbers"),
    pytest.param('{{printf "%v %v %v" .list .map .null}}', "[a b c] map[a:1 b:2] <nil>",
                 id="v"),
    pytest.param('{{printf "%q %q" "a\\nb" 65}}', "\"a\\nb\" 'A'", id="q"),
    pytest.param('{{printf "%.2f %e %g %g" 3.14159 1000000.0 .f .big}}',
                 "3.14 1.000000e+06 2.5 1e+06", id="floats"),
    pytest.param('{{printf "%t %T %T" true .s .f}}', "true string float64", id="t-T"),
    pytest.param('{{printf "100%%"}}', "100%", id="percent"),
    pytest.param('{{printf "%d %d"  1}}', "1 %!d(MISSING)", id="missing-arg"),
    pytest.param('{{printf "%d" 1 "x"}}', "1%!(EXTRA string=x)", id="extra-arg"),
    pytest.param('{{printf "%d" "x"}}', "%!d(string=x)", id="bad-verb"),
])
def test_printf(template: str, text: str) -> None:
    assert execute(template, DATA) == text


@pytest.mark.parametrize(("value", "text"), [
    pytest.param(30080.0, "30080", id="integral"),
    pytest.param(123456.0, "123456", id="six-digits"),
    pytest.param(1234567.0, "1.234567e+06", id="exponent-six"),
    pytest.param(0.0001, "0.0001", id="small"),
    pytest.param(0.00001, "1e-05", id="smaller"),
    pytest.param(-2.5, "-2.5", id="negative"),
    pytest.param(0.0, "0", id="zero"),
    pytest.param(float("inf"), "+Inf", id="inf"),
])
def test_floats_print_as_go(value: float, text: str) -> None:
    assert gofmt.float64_text(value) == text


@pytest.mark.parametrize(("template", "message"), [
    pytest.param("{{.a", "unclosed action", id="unclosed-action"),
    pytest.param("{{range .items}}x", "unexpected EOF", id="unclosed-range"),
    pytest.param("x{{end}}", "unexpected {{end}}", id="stray-end"),
    pytest.param("{{else}}", "unexpected {{else}}", id="stray-else"),
    pytest.param("{{foo .a}}", 'function "foo" not defined', id="unknown-function"),
    pytest.param("{{$x}}", 'undefined variable "$x"', id="undefined-variable"),
    pytest.param("{{if 1}}{{$x := 1}}{{end}}{{$x}}", 'undefined variable "$x"',
                 id="variable-out-of-scope"),
    pytest.param("{{}}", "missing value for command", id="empty-action"),
    pytest.param("{{if}}{{end}}", "missing value for if", id="empty-if"),
    pytest.param("{{(.a}}", "unclosed left paren", id="unclosed-paren"),
    pytest.param("{{.a)}}", "unexpected right paren", id="stray-paren"),
    pytest.param('{{"abc}}', "unterminated quoted string", id="unterminated-string"),
    pytest.param('{{"\\q"}}', "invalid syntax", id="bad-escape"),
    pytest.param("{{1a}}", 'bad number syntax: "1a"', id="bad-number"),
    pytest.param("{{/* x }}", "unclosed comment", id="unclosed-comment"),
    pytest.param("{{break}}", "{{break}} outside {{range}}", id="break-outside-range"),
    pytest.param('{{.a | "x"}}', "non executable command in pipeline stage 2",
                 id="literal-stage"),
    pytest.param("{{range .a}}{{else if 1}}{{end}}", "unexpected <if> in else",
                 id="range-else-if"),
    pytest.param('{{template "x"}}', "{{template}} is not supported", id="template"),
    pytest.param("line one\n{{.a}}\n{{.b", "template: output:3: unclosed action",
                 id="line-number"),
])
def test_parse_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateParseError) as info:
        execute(template, DATA)
    assert str(info.value).startswith("template: output:")
    assert message in str(info.value)


@pytest.mark.parametrize(("template", "message"), [
    pytest.param("{{.null.x}}",
                 'template: output:1:2: executing "output" at <.null.x>: '
                 "nil pointer evaluating interface {}.x", id="field-of-null"),
    pytest.param("{{.s.x}}", "can't evaluate field x in type string", id="field-of-string"),
    pytest.param("{{index .list 5}}",
                 'template: output:1:2: executing "output" at <index .list 5>: '
                 "error calling index: index out of range: 5", id="index-range"),
    pytest.param('{{index .list "a"}}', "cannot index slice/array with type string",
                 id="index-type"),
    pytest.param("{{len .n}}", "error calling len: len of type int", id="len-type"),
    pytest.param("{{len}}", "wrong number of args for len: want 1 got 0", id="arity"),
    pytest.param('{{lt .s 1}}', "incompatible types for comparison", id="compare-types"),
    pytest.param("{{eq .list .list}}", "invalid type for comparison", id="compare-lists"),
    pytest.param("{{printf .n}}", "wrong type for value; expected string; got int",
                 id="printf-format"),
    pytest.param('{{"!!" | base64decode}}', "base64 decode failed", id="base64"),
    pytest.param("{{range .s}}{{end}}", "range can't iterate over text", id="range-string"),
    pytest.param("{{.s 1}}", "can't give argument to non-function .s", id="argument"),
    pytest.param("x\n  {{index .list 9}}", "template: output:2:4:", id="line-and-column"),
    pytest.param("{{index .nested.list 0 \"k\" \"deeper\" 1 2 3 4}}",
                 "at <index .nested.list 0...>", id="context-cut-at-20"),
])
def test_exec_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateExecError) as info:
        execute(template, DATA)
    assert message in str(info.value)


def test_render_wraps_errors_as_kubectl() -> None:
    svc = manifest.from_dict(SERVICE)
    with pytest.raises(output.CtlError) as info:
        output.render([svc], "go-template", '{{"\\n"}}{{.spec.type.y}}', single=True)
    assert str(info.value) == ('error executing template "{{\\"\\\\n\\"}}{{.spec.type.y}}": '
                               'template: output:1:10: executing "output" at <.spec.type.y>: '
                               "can't evaluate field y in type string")
    with pytest.raises(output.CtlError, match=r"^error parsing template \{\{\.a, template: "
                                              r"output:1: unclosed action$"):
        output.render([svc], "go-template", "{{.a", single=True)


def test_render_objects_as_kubectl_hands_them_over() -> None:
    """A real Service object, turned into a document as `get` does: one object bare,
    several as a List, numbers printed as integers."""
    svc = manifest.from_dict(SERVICE)
    assert output.render([svc], "go-template", "{{(index .spec.ports 0).nodePort}}",
                         single=True) == "30080"
    assert output.render([svc, svc], "go-template",
                         "{{range .items}}{{.metadata.name}} {{end}}") == \
        "kubernetes-bootcamp kubernetes-bootcamp "


# ---- through the kemuctl entry point ----------------------------------------------------------

SERVICE_YAML = """apiVersion: v1
kind: Service
metadata: {name: kubernetes-bootcamp}
spec:
  type: NodePort
  selector: {app: kubernetes-bootcamp}
  ports: [{port: 8080, nodePort: 30080}]
"""


@pytest.fixture
def service_file(tmp_path: Path) -> str:
    path = tmp_path / "svc.yaml"
    path.write_text(SERVICE_YAML)
    return str(path)


@pytest.mark.parametrize(("flags", "text"), [
    pytest.param(["-o", "go-template={{(index .spec.ports 0).nodePort}}"], "30080",
                 id="inline"),
    pytest.param(["-o=go-template={{.metadata.name}}"], "kubernetes-bootcamp", id="o-equals"),
    pytest.param(["-o", "go-template", "--template", '{{.kind}}{{"\\n"}}'], "Service\n",
                 id="template-flag"),
    pytest.param(["-o", "template", "--template={{.spec.type}}"], "NodePort", id="alias"),
    pytest.param(["--template", "{{.spec.type}}"], "NodePort", id="template-flag-alone"),
    pytest.param(["-o", "go-template={{.kind}}", "--template", "{{.spec.type}}"], "NodePort",
                 id="template-flag-wins"),
    pytest.param(["-o", "jsonpath", "--template", "{.spec.ports[0].port}"], "8080",
                 id="jsonpath-template-flag"),
])
def test_kemuctl_create_dry_run(service_file: str, flags: list[str], text: str) -> None:
    code, out, err = kemuctl("create", "-f", service_file, "--dry-run=client", *flags)
    assert (code, err) == (0, "")
    assert out == text


@pytest.mark.parametrize("fmt", ["go-template-file", "templatefile"])
def test_kemuctl_template_file(service_file: str, tmp_path: Path, fmt: str) -> None:
    template = tmp_path / "t.tmpl"
    template.write_text("{{.metadata.name}}:{{range .spec.ports}}{{.port}}{{end}}\n")
    code, out, _ = kemuctl("create", "-f", service_file, "--dry-run=client",
                           "-o", f"{fmt}={template}")
    assert (code, out) == (0, "kubernetes-bootcamp:8080\n")


@pytest.mark.parametrize(("flags", "line"), [
    pytest.param(["-o", "go-template"], "error: template format specified but no template given",
                 id="no-template"),
    pytest.param(["-o", "go-template={{.spec.ports"],
                 "error: error parsing template {{.spec.ports, template: output:1: "
                 "unclosed action", id="parse-error"),
    pytest.param(["-o", "go-template={{index .spec.ports 3}}"],
                 'error: error executing template "{{index .spec.ports 3}}": template: '
                 'output:1:2: executing "output" at <index .spec.ports 3>: error calling '
                 "index: index out of range: 3", id="exec-error"),
    pytest.param(["-o", "go-template-file=/nonexistent/t.tmpl"],
                 "error: error reading --template /nonexistent/t.tmpl, open "
                 "/nonexistent/t.tmpl: no such file or directory", id="missing-file"),
])
def test_kemuctl_errors_are_one_line(service_file: str, flags: list[str], line: str) -> None:
    code, out, err = kemuctl("create", "-f", service_file, "--dry-run=client", *flags)
    assert (code, out) == (1, "")
    assert err.splitlines() == [line]


def test_get_fails_on_a_bad_template_before_any_request() -> None:
    """The template is parsed first, as kubectl does: no server is tried (none listens)."""
    code, _, err = kemuctl("get", "pods", "-o", "go-template={{range .items}}")
    assert code == 1
    assert err == "error: error parsing template {{range .items}}, template: output:1: " \
                  "unexpected EOF\n"
