"""The small parsers bad input reaches first, fuzzed: quantities, label and field
selectors, cron schedules, name rules. Each raises only its documented error, fast."""

from __future__ import annotations

import contextlib
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kemu.api import labels, names, quantity
from kemu.api.v1 import core_pb2
from kemu.services.apiserver import errors, fields, validation
from tests.fuzz import corpus

SLOW = 0.5  # seconds: any single parse slower than this is a denial of service


def fuzz_settings(n: int) -> settings:
    return settings(max_examples=n, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def text_of(alphabet: str, *extra: str) -> st.SearchStrategy[str]:
    pieces = st.sampled_from([*alphabet, *extra])
    return st.lists(pieces, max_size=30).map("".join) | st.text(max_size=30)


def test_quantities_parse_or_raise_quantity_error(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0

    @fuzz_settings(3000)
    @given(text_of("0123456789.+-eE iKMGTPnumk%", "Ki", "Mi", "e9", "e99999", "1e-"))
    def check(text: str) -> None:
        nonlocal count
        count += 1
        started = time.perf_counter()
        for convert in (quantity.parse, quantity.millicores, quantity.to_bytes):
            with contextlib.suppress(quantity.QuantityError):
                convert(text)
        assert time.perf_counter() - started < SLOW, text

    check()
    corpus.report(capsys, "quantities", count)


@pytest.mark.parametrize("text", ["1e999999999", "1e999990", "1.5e1000000", "9" * 5000,
                                  "1e" + "9" * 5000, "1e-" + "9" * 5000, "1e31", "-1e40",
                                  "\u0663"])
def test_quantities_past_any_capacity_are_quantity_errors(text: str) -> None:
    """Found by fuzzing: decimal.Overflow and int()'s digit limit escaped as internal errors,
    and `1e999990` as bytes kept int() busy for half a minute."""
    started = time.perf_counter()
    with pytest.raises(quantity.QuantityError):
        quantity.to_bytes(text)
    assert time.perf_counter() - started < SLOW


@pytest.mark.parametrize(("text", "value"), [("1e30", 10**30), ("8Ei", 8 * 2**60),
                                             ("500m", 1), ("1e-99", 1), ("128Mi", 2**27)])
def test_large_real_quantities_still_parse(text: str, value: int) -> None:
    assert quantity.to_bytes(text) == value


def test_selectors_parse_or_raise_their_error(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0

    @fuzz_settings(3000)
    @given(text_of("ab=!,() \t./-_x", "in", "notin", "metadata.name", "status.phase"))
    def check(text: str) -> None:
        nonlocal count
        count += 1
        started = time.perf_counter()
        with contextlib.suppress(labels.SelectorError):
            labels.parse(text)
        with contextlib.suppress(errors.BadRequest):
            fields.parse(text, core_pb2.Pod)
        assert time.perf_counter() - started < SLOW, text

    check()
    corpus.report(capsys, "label and field selectors", count)


@pytest.mark.parametrize(("text", "problem"), [
    ("app=" + "v" * 64, "must be no more than 63 characters"),
    ("k" * 64, "name part must be no more than 63 characters"),
    ("p" * 254 + "/k", "prefix part must be no more than 253 characters"),
    ("a/b/c=d", "prefix part a lowercase RFC 1123 subdomain"),
    ("app in (ok,-bad)", "a valid label must be an empty string"),
])
def test_label_selector_keys_and_values_are_checked(text: str, problem: str) -> None:
    """As Kubernetes' parser: a selector no label could match is a BadRequest."""
    with pytest.raises(labels.SelectorError, match="unable to parse requirement") as caught:
        labels.parse(text)
    assert problem in str(caught.value)


@pytest.mark.parametrize("text", ["app=web", "app.kubernetes.io/name in (a,b)", "!x", "a!=",
                                  "k" * 63 + "=" + "v" * 63, "p" * 253 + "/k"])
def test_label_selectors_at_the_limits_parse(text: str) -> None:
    labels.parse(text)


def test_cron_schedules_and_name_rules_never_raise(capsys: pytest.CaptureFixture[str]) -> None:
    count = 0
    rules = (names.dns1123_label, names.dns1123_subdomain, names.dns1035_label,
             names.qualified_name, names.label_value, names.port_name)

    @fuzz_settings(1500)
    @given(text_of("0123456789*/,-? LW#JANFEBMONSUN@", "@daily", "TZ=", "*/0"))
    def check(text: str) -> None:
        nonlocal count
        count += 1
        assert validation.cron_schedule(text) is None or validation.cron_schedule(text)
        for rule in rules:
            assert isinstance(rule(text), list)

    check()
    corpus.report(capsys, "cron schedules and name rules", count)
