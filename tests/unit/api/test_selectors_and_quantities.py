"""Label selector syntax and resource quantities."""

from __future__ import annotations

from decimal import Decimal

import pytest

from kemu.api import labels, quantity


@pytest.mark.parametrize(("selector", "labels_", "matches"), [
    pytest.param("app=web", {"app": "web"}, True, id="eq"),
    pytest.param("app==web", {"app": "web"}, True, id="eqeq"),
    pytest.param("app!=web", {"app": "db"}, True, id="ne"),
    pytest.param("app!=web", {}, True, id="ne-missing"),
    pytest.param("env in (a, b)", {"env": "b"}, True, id="in"),
    pytest.param("env notin (a,b)", {"env": "a"}, False, id="notin"),
    pytest.param("env", {"env": ""}, True, id="exists"),
    pytest.param("!env", {"env": "x"}, False, id="not-exists"),
    pytest.param("app=web,tier=fe", {"app": "web"}, False, id="and"),
    pytest.param("", {"x": "y"}, True, id="empty"),
])
def test_label_selectors(selector: str, labels_: dict[str, str], matches: bool) -> None:
    assert labels.parse(selector).matches(labels_) is matches


@pytest.mark.parametrize("bad", ["app=(", "a b c", "in (x)"])
def test_bad_selectors_raise(bad: str) -> None:
    with pytest.raises(labels.SelectorError):
        labels.parse(bad)


@pytest.mark.parametrize(("text", "value"), [
    pytest.param("500m", Decimal("0.5"), id="milli"),
    pytest.param("1", Decimal(1), id="one"),
    pytest.param("128Mi", Decimal(128 * 2**20), id="mebi"),
    pytest.param("1G", Decimal(10**9), id="giga"),
    pytest.param("1.5", Decimal("1.5"), id="decimal"),
    pytest.param("2e3", Decimal(2000), id="exponent"),
])
def test_quantities(text: str, value: Decimal) -> None:
    assert quantity.parse(text) == value


def test_millicores_and_bytes() -> None:
    assert quantity.millicores("250m") == 250
    assert quantity.millicores("1.0001") == 1001
    assert quantity.to_bytes("1Ki") == 1024
    with pytest.raises(quantity.QuantityError):
        quantity.parse("12XB")
