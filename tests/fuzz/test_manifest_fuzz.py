"""Bad input to manifest loading and the apiserver's create path, fuzzed without processes.

Whatever the document, loading raises ManifestError or gives an Object; whatever the
Object, a (dry-run) create returns it or raises one of the apiserver's own errors, an
Invalid naming at least one field; what it accepts can be turned back into a manifest.
Each test prints how many cases it tried (`[fuzz] ...` on stderr, shown under -q).
"""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kemu.api import kinds, manifest, objects
from kemu.api.v1 import api_pb2
from kemu.services.apiserver import errors, registry, validation
from tests.fuzz import corpus, dryrun


def fuzz_settings(n: int) -> settings:
    """Reproducible in CI: derandomized, no example database, no per-example deadline."""
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def load_or_error(doc: Any) -> api_pb2.Object | None:
    try:
        return manifest.from_dict(doc)
    except manifest.ManifestError as e:
        assert str(e)
        return None


def create_checked(obj: api_pb2.Object) -> api_pb2.Object | errors.APIError:
    result = dryrun.create(dryrun.new_registry(), obj)
    if isinstance(result, errors.APIError):
        dryrun.check_error(result, obj)
    else:
        objects.to_dict(result)  # what was accepted can be shown and applied again
    return result


def test_arbitrary_text_loads_or_raises_manifest_error(capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    count = 0
    yamlish = st.text(alphabet=st.sampled_from(list("{}[]:,-&*!|>'\"#%@` \n\tab1.~?<=")),
                      max_size=80)

    @fuzz_settings(1500)
    @given(st.one_of(st.text(max_size=200), yamlish,
                     corpus.JSONISH.map(lambda d: yaml.safe_dump(d)[:200])))
    def check(text: str) -> None:
        nonlocal count
        count += 1
        with contextlib.suppress(manifest.ManifestError):
            manifest.load_all(text)

    check()
    corpus.report(capsys, "manifest text", count)


@pytest.mark.parametrize("text", [
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata: {name: a}\nspec: {priority: "
                 + "9" * 5000 + "}\n", id="int-past-4300-digits"),
    pytest.param("[" * 2000 + "]" * 2000, id="nested-2000-deep"),
    pytest.param("{a: " * 3000 + "1" + "}" * 3000, id="mappings-3000-deep"),
    pytest.param("apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n"
                 "  creationTimestamp: 2024-13-45T99:00:00Z\n", id="month-13"),
    pytest.param("!!python/object:os.system {}", id="python-tag"),
    pytest.param("apiVersion: v1\nkind: ConfigMap\nmetadata: &m\n  name: a\n  labels: *m\n",
                 id="self-referencing-alias"),
])
def test_hostile_yaml_is_a_manifest_error(text: str) -> None:
    with pytest.raises(manifest.ManifestError):
        manifest.load_all(text)


@pytest.mark.parametrize("doc", [
    pytest.param({"kind": 10**5000, "apiVersion": "v1"}, id="kind-huge-int"),
    pytest.param({"kind": "Pod", "apiVersion": "v1", "metadata": {"name": [[[[[["x"]]]]]]}},
                 id="name-deep-list"),
    pytest.param({"kind": "Pod", "apiVersion": "v1", "spec": {"priority": 10**5000}},
                 id="priority-huge-int"),
])
def test_hostile_documents_are_manifest_errors(doc: dict[str, Any]) -> None:
    with pytest.raises(manifest.ManifestError):
        manifest.from_dict(doc)


def test_arbitrary_documents_of_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0
    kind_names = sorted(corpus.SERVED_KINDS)

    @fuzz_settings(800)
    @given(corpus.JSONISH, st.sampled_from(kind_names), st.booleans())
    def check(doc: Any, kind: str, typed: bool) -> None:
        nonlocal count
        count += 1
        if typed and isinstance(doc, dict):
            found = kinds.by_kind(kind)
            assert found is not None
            doc = {**doc, "kind": kind, "apiVersion": found.api_version}
        obj = load_or_error(doc)
        if obj is not None:
            create_checked(obj)

    check()
    corpus.report(capsys, "arbitrary documents", count)


def test_mutated_manifests_of_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    count, outcomes = 0, {"manifest error": 0, "created": 0, "api error": 0}
    seen_kinds: set[str] = set()

    @fuzz_settings(2000)
    @given(corpus.mutated())
    def check(doc: dict[str, Any]) -> None:
        nonlocal count
        count += 1
        obj = load_or_error(doc)
        if obj is None:
            outcomes["manifest error"] += 1
            return
        seen_kinds.add(objects.kind_of(obj).kind)
        result = create_checked(obj)
        outcomes["api error" if isinstance(result, errors.APIError) else "created"] += 1

    check()
    corpus.report(capsys, f"mutated manifests {outcomes}", count)
    assert seen_kinds == corpus.SEEDED_KINDS, corpus.SEEDED_KINDS - seen_kinds
    assert all(outcomes.values()), outcomes


def test_protobuf_level_mutations_of_every_kind(capsys: pytest.CaptureFixture[str]) -> None:
    """What a gRPC client can send and no manifest can spell: the create path answers with
    an APIError or stores something that still renders; update rules and the status path
    (validated like a write, status as sent) never crash either."""
    count = 0
    seeds = {n: manifest.from_dict(corpus.seed(n)) for n in corpus.SEED_NAMES}

    @fuzz_settings(2000)
    @given(corpus.proto_mutated(), st.sampled_from(corpus.SEED_NAMES))
    def check(obj: api_pb2.Object, old_name: str) -> None:
        nonlocal count
        count += 1
        create_checked(obj)
        reg = dryrun.new_registry()
        old = seeds[old_name]
        same_kind = old.WhichOneof("kind") == obj.WhichOneof("kind")
        try:
            reg._validate(obj, old if same_kind else None)
        except errors.Invalid as e:
            dryrun.check_error(e, obj)
        else:
            objects.to_dict(obj)  # an UpdateStatus would store the status as sent

    check()
    corpus.report(capsys, "protobuf-level mutations", count)


@pytest.mark.parametrize("mutate", [
    pytest.param(lambda o: setattr(o.node.status.conditions.add().last_heartbeat_time,
                                   "seconds", 2**63 - 1), id="time-past-year-9999"),
    pytest.param(lambda o: setattr(o.node.metadata.creation_timestamp, "nanos", -1),
                 id="negative-nanos"),
    pytest.param(lambda o: setattr(o.node.status.conditions.add().last_transition_time,
                                   "nanos", 10**9), id="nanos-one-second"),
])
def test_times_no_manifest_can_spell_are_invalid(mutate: Any) -> None:
    """Found by the protobuf-level fuzz: such a time was stored, and then every read as
    YAML/JSON (kemuctl -o yaml, apply's merge) failed with an internal error."""
    obj = manifest.from_dict(corpus.seed("Node:node-worker"))
    mutate(obj)
    with pytest.raises(errors.Invalid) as caught:
        dryrun.new_registry()._validate(obj)
    assert all(e.path for e in caught.value.errors)
    assert "between 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z" in str(caught.value)


@pytest.mark.parametrize("value", [float("nan"), float("inf"), None, True])
def test_int_or_string_that_is_neither_is_invalid(value: Any) -> None:
    """A DaemonSet with updateStrategy OnDelete keeps rollingUpdate unchecked; a NaN or a
    bool there was stored and could not be rendered."""
    obj = manifest.from_dict(corpus.seed("DaemonSet:daemonset-fluentd"))
    ds = obj.daemon_set
    ds.spec.update_strategy.type = "OnDelete"
    surge = ds.spec.update_strategy.rolling_update.max_surge
    if value is None:
        surge.null_value = 0
    elif isinstance(value, bool):
        surge.bool_value = value
    else:
        surge.number_value = value
    errs = validation.representable(ds)
    assert [e.path for e in errs] == ["spec.updateStrategy.rollingUpdate.maxSurge"]


@pytest.mark.parametrize("annotation", ['{"a": ', "[1, 2]", '"text"', "1" * 5000,
                                        "[" * 50000 + "]" * 50000, "null"])
def test_unreadable_last_applied_annotation_is_a_first_apply(annotation: str) -> None:
    """Anyone may write the annotation; apply used to json.loads it and fail INTERNAL."""
    assert registry._last_applied(annotation) == {}
    assert registry._last_applied('{"spec": {"replicas": 2}}') == {"spec": {"replicas": 2}}
