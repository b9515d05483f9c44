"""Bad input through a real apiserver (kemu store + kemu apiserver as processes).

Every create, apply and status update of a mutated object ends OK or with a status a
client can act on, never INTERNAL or UNKNOWN; an Invalid error carries google.rpc
BadRequest field violations naming the field. Names at and over every length limit and
selectors with bad syntax get exact answers. The number of server round trips is bounded
(a few hundred) so the module runs in about half a minute.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kemu.api import manifest, objects
from kemu.api.v1 import api_pb2
from kemu.client import Client, ClientError
from kemu.services.apiserver.validation import MAX_ANNOTATIONS_BYTES
from tests.fuzz import corpus
from tests.support import processes

pytestmark = pytest.mark.integration

# Codes a create may end with for a bad object: OK, or what a client acts on. NOT_FOUND is
# a namespace that does not exist; ALREADY_EXISTS a name two cases happened to share.
ACCEPTABLE = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
              grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.FAILED_PRECONDITION}
_unique = itertools.count()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Client]:
    tmp = tmp_path_factory.mktemp("fuzz-api")
    store = processes.kemu_store(tmp)
    apiserver = processes.kemu_apiserver(tmp, store.address)
    with processes.running(store, apiserver), Client(apiserver.address, timeout=10) as c:
        yield c
        assert apiserver.alive(), apiserver.tail()
        assert processes.grpc_serving(apiserver.address)


def fuzz_settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def outcome(call: Callable[[], Any]) -> tuple[grpc.StatusCode, ClientError | None]:
    """The call's status code and, when it failed, the client's error."""
    try:
        call()
    except ClientError as e:
        return e.code, e
    return grpc.StatusCode.OK, None


def check_answer(code: grpc.StatusCode, err: ClientError | None, what: object) -> None:
    assert code in ACCEPTABLE, f"{code}: {err and err.message} for {what}"
    if err is not None and err.reason == "Invalid":
        fields = [v.field for v in err.field_violations]
        assert fields and all(fields), f"Invalid without field violations: {err.message}"


def uniquely_named(doc: Any) -> Any:
    """Give the case its own name (when the mutation left one), so cases do not collide."""
    meta = doc.get("metadata") if isinstance(doc, dict) else None
    if isinstance(meta, dict) and isinstance(meta.get("name"), str) and meta["name"]:
        meta["name"] = f"{meta['name'][:40]}-f{next(_unique)}"
    return doc


def test_mutated_manifests_create_ok_or_invalid(client: Client,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    codes: Counter[str] = Counter()

    @fuzz_settings(300)
    @given(corpus.mutated())
    def check(doc: dict[str, Any]) -> None:
        try:
            obj = manifest.from_dict(uniquely_named(doc))
        except manifest.ManifestError:
            codes["manifest error"] += 1
            return
        code, err = outcome(lambda: client.create(obj))
        codes[code.name] += 1
        check_answer(code, err, doc)

    check()
    corpus.report(capsys, f"real apiserver, mutated manifests {dict(codes)}",
                  sum(codes.values()))
    assert codes["OK"] and codes["INVALID_ARGUMENT"], codes


def test_protobuf_mutations_create_apply_and_status(client: Client,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    """Objects no manifest can spell, through Create, Apply and UpdateStatus."""
    codes: Counter[str] = Counter()

    @fuzz_settings(150)
    @given(corpus.proto_mutated(), st.sampled_from(("create", "apply", "status")))
    def check(obj: api_pb2.Object, verb: str) -> None:
        meta = objects.meta(obj)
        if meta.name:
            meta.name = f"{meta.name[:40]}-p{next(_unique)}"
        if verb == "status":  # a valid seed first, then its status as the mutation left it
            seed = api_pb2.Object()
            seed.CopyFrom(obj)
            seed_kind = objects.kind_of(obj).kind
            fresh = manifest.from_dict(corpus.seed(next(
                n for n in corpus.SEED_NAMES if n.startswith(f"{seed_kind}:"))))
            objects.meta(fresh).name = f"s{next(_unique)}"
            try:
                created = client.create(fresh)
            except ClientError:
                return
            inner, sent = objects.unwrap(created), objects.unwrap(seed)
            if "status" not in inner.DESCRIPTOR.fields_by_name:
                return
            inner.status.CopyFrom(sent.status)
            code, err = outcome(lambda: client.update_status(created))
        elif verb == "apply":
            code, err = outcome(lambda: client.apply(obj))
        else:
            code, err = outcome(lambda: client.create(obj))
        codes[f"{verb} {code.name}"] += 1
        check_answer(code, err, obj)

    check()
    corpus.report(capsys, f"real apiserver, protobuf mutations {dict(codes)}",
                  sum(codes.values()))


def test_apply_over_an_unreadable_last_applied_annotation(client: Client) -> None:
    """The annotation is anyone's to write; apply used to fail INTERNAL on it."""
    for i, garbage in enumerate(('{"a": ', "[1, 2]", "1" * 5000)):
        obj = manifest.from_dict(corpus.seed("ConfigMap:configmap-game-demo"))
        objects.meta(obj).name = f"garbage-annotation-{i}"
        objects.meta(obj).annotations["kubectl.kubernetes.io/last-applied-configuration"] = \
            garbage
        client.create(obj)
        objects.meta(obj).annotations.clear()
        obj.config_map.data["added"] = "yes"
        result = client.apply(obj)
        assert result.object.config_map.data["added"] == "yes"


def _configmap(name: str = "", **meta: Any) -> api_pb2.Object:
    obj = api_pb2.Object()
    obj.config_map.metadata.name = name
    for key, value in meta.items():
        target = getattr(obj.config_map.metadata, key)
        if isinstance(value, dict):
            target.update(value)
        else:
            setattr(obj.config_map.metadata, key, value)
    return obj


def _of(kind: str, name: str) -> api_pb2.Object:
    doc = {"Namespace": {"apiVersion": "v1", "kind": "Namespace"},
           "Service": {"apiVersion": "v1", "kind": "Service",
                       "spec": {"ports": [{"port": 80}]}}}[kind]
    return manifest.from_dict({**doc, "metadata": {"name": name}})


def _n(prefix: str, length: int) -> str:
    """A valid name of exactly `length` characters, unique to this run."""
    head = f"{prefix}{next(_unique)}-"
    return head + "a" * (length - len(head))


LIMIT_CASES = [
    # (id, object, expected field path or "" for created)
    ("subdomain-253", lambda: _configmap(_n("c", 253)), ""),
    ("subdomain-254", lambda: _configmap(_n("c", 254)), "metadata.name"),
    ("subdomain-label-64-is-fine", lambda: _configmap(_n("c", 70)), ""),
    ("namespace-name-63", lambda: _of("Namespace", _n("n", 63)), ""),
    ("namespace-name-64", lambda: _of("Namespace", _n("n", 64)), "metadata.name"),
    ("service-name-63", lambda: _of("Service", _n("s", 63)), ""),
    ("service-name-64", lambda: _of("Service", _n("s", 64)), "metadata.name"),
    ("object-namespace-64", lambda: _configmap(_n("c", 10), namespace="n" * 64),
     "metadata.namespace"),
    ("label-name-63", lambda: _configmap(_n("c", 10), labels={"k" * 63: "v"}), ""),
    ("label-name-64", lambda: _configmap(_n("c", 10), labels={"k" * 64: "v"}),
     "metadata.labels"),
    ("label-prefix-253", lambda: _configmap(_n("c", 10), labels={"p" * 253 + "/k": "v"}), ""),
    ("label-prefix-254", lambda: _configmap(_n("c", 10), labels={"p" * 254 + "/k": "v"}),
     "metadata.labels"),
    ("label-value-63", lambda: _configmap(_n("c", 10), labels={"k": "v" * 63}), ""),
    ("label-value-64", lambda: _configmap(_n("c", 10), labels={"k": "v" * 64}),
     "metadata.labels.k"),
    ("annotation-name-64", lambda: _configmap(_n("c", 10), annotations={"k" * 64: ""}),
     "metadata.annotations"),
    ("annotations-256KiB", lambda: _configmap(
        _n("c", 10), annotations={"k": "v" * (MAX_ANNOTATIONS_BYTES - 1)}), ""),
    ("annotations-256KiB-and-1", lambda: _configmap(
        _n("c", 10), annotations={"k": "v" * MAX_ANNOTATIONS_BYTES}), "metadata.annotations"),
    ("generate-name-long", lambda: _configmap(generate_name="g" * 300), ""),
    ("generate-name-service-long", lambda: _service_generated("s" * 80), ""),
    ("generate-name-bad", lambda: _configmap(generate_name="Bad_"), "metadata.name"),
]


def _service_generated(prefix: str) -> api_pb2.Object:
    obj = _of("Service", "x")
    obj.service.metadata.name = ""
    obj.service.metadata.generate_name = prefix
    return obj


@pytest.mark.parametrize(("make", "field"), [pytest.param(m, f, id=i) for i, m, f in LIMIT_CASES])
def test_names_at_and_over_their_limits(client: Client, make: Callable[[], api_pb2.Object],
                                        field: str) -> None:
    obj = make()
    code, err = outcome(lambda: client.create(obj))
    if not field:
        assert code == grpc.StatusCode.OK, err and err.message
        return
    assert code == grpc.StatusCode.INVALID_ARGUMENT and err is not None, code
    assert err.reason == "Invalid", err.reason
    assert field in [v.field for v in err.field_violations], err.field_violations


BAD_LABEL_SELECTORS = ["a in (b", "a in b", "a b", "=b", "a=b=c", "(", ")", "!",
                       "!=a", "a notin", "in (a)", "a,,b", "a=" + "v" * 64, "k" * 64,
                       "a/b/c=d", "_a=b", "a=-b", "a in (x" + ",y" * 1000, "a\x00=b"]
BAD_FIELD_SELECTORS = ["metadata.name", "metadata..name=x", "spec=x", "spec.containers=x",
                       "nope=x", "=x", ".=x", "metadata.labels=x", "status.conditions=x"]


@pytest.mark.parametrize(("which", "selector"), [
    *(pytest.param("label_selector", s, id=f"label:{s[:24]!r}") for s in BAD_LABEL_SELECTORS),
    *(pytest.param("field_selector", s, id=f"field:{s[:24]!r}") for s in BAD_FIELD_SELECTORS),
])
def test_bad_selectors_are_bad_requests(client: Client, which: str, selector: str) -> None:
    """List and Watch alike: INVALID_ARGUMENT, reason BadRequest, never internal."""
    for call in (lambda: client.list("pods", "default", **{which: selector}),
                 lambda: next(iter(client.watch("pods", "default", timeout=5,
                                                **{which: selector})), None)):
        code, err = outcome(call)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, selector)
        assert err is not None and err.reason == "BadRequest", err
        if which == "label_selector":
            assert "unable to parse requirement" in err.message, err.message


def test_selectors_fuzzed_never_internal(client: Client,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    codes: Counter[str] = Counter()
    alphabet = st.sampled_from([*"ab=!,() inotx.-/_\t", "in", "notin", "metadata.name"])

    @fuzz_settings(100)
    @given(st.lists(alphabet, max_size=12).map("".join), st.lists(alphabet, max_size=8).map(
        "".join))
    def check(label_selector: str, field_selector: str) -> None:
        code, err = outcome(lambda: client.list("pods", "default", label_selector=label_selector,
                                                field_selector=field_selector))
        codes[code.name] += 1
        assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), err

    check()
    corpus.report(capsys, f"real apiserver, selectors {dict(codes)}", sum(codes.values()))
