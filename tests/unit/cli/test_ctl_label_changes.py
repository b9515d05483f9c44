"""label/annotate arguments: KEY=VAL and KEY-, --overwrite, and kubectl's errors."""

from __future__ import annotations

import pytest

from kemu.cli.ctl.cmd_label import Changes, apply_changes, parse_changes, split_args
from kemu.cli.ctl.errors import CtlError


@pytest.mark.parametrize(("args", "resources", "changes"), [
    pytest.param(["pod", "x", "a=1", "b-"], ["pod", "x"], ["a=1", "b-"], id="type-name"),
    pytest.param(["pod/x", "a=1"], ["pod/x"], ["a=1"], id="slashed"),
    pytest.param(["pods", "a", "b", "k-"], ["pods", "a", "b"], ["k-"], id="several-names"),
])
def test_split_args(args: list[str], resources: list[str], changes: list[str]) -> None:
    assert split_args(args) == (resources, changes)


@pytest.mark.parametrize(("current", "changes", "overwrite", "after", "changed"), [
    pytest.param({}, Changes({"a": "1"}, []), False, {"a": "1"}, True, id="add"),
    pytest.param({"a": "1"}, Changes({"a": "1"}, []), False, {"a": "1"}, False, id="same"),
    pytest.param({"a": "1"}, Changes({"a": "2"}, []), True, {"a": "2"}, True, id="overwrite"),
    pytest.param({"a": "1"}, Changes({}, ["a"]), False, {}, True, id="remove"),
    pytest.param({}, Changes({}, ["a"]), False, {}, False, id="remove-missing"),
])
def test_apply_changes(current: dict[str, str], changes: Changes, overwrite: bool,
                       after: dict[str, str], changed: bool) -> None:
    assert apply_changes(current, changes, overwrite) is changed
    assert current == after


def test_overwrite_is_required_to_change_a_value() -> None:
    with pytest.raises(CtlError) as info:
        apply_changes({"k": "v"}, Changes({"k": "w"}, []), overwrite=False)
    assert str(info.value) == "'k' already has a value (v), and --overwrite is false"


@pytest.mark.parametrize(("tokens", "message"), [
    pytest.param(["bad key=1"], "invalid label spec", id="bad-key"),
    pytest.param(["k=" + "v" * 70], "invalid label spec", id="value-too-long"),
    pytest.param(["k=1", "k-"], "can not both modify and remove", id="both"),
    pytest.param(["k"], "invalid label format", id="no-operator"),
])
def test_parse_errors(tokens: list[str], message: str) -> None:
    with pytest.raises(CtlError, match=message):
        parse_changes(tokens, "label")


def test_annotation_values_may_be_anything() -> None:
    assert parse_changes(["note=a long, free text: ok"], "annotate").set == {
        "note": "a long, free text: ok"}
