"""`kemuctl delete --cascade` as kubectl takes it: background, foreground, orphan, the older
true/false, a bare --cascade meaning background (also right before the resource), and a
one-line error naming a bad value."""

from __future__ import annotations

import pytest

from kemu.api.v1 import api_pb2
from kemu.cli.ctl.cmd_delete import cascade_policy
from kemu.cli.ctl.errors import CtlError
from kemu.cli.kemuctl import build_parser


@pytest.mark.parametrize(("argv", "policy", "resources"), [
    pytest.param(["pod", "web"], api_pb2.BACKGROUND, ["pod", "web"], id="default"),
    pytest.param(["pod", "web", "--cascade=orphan"], api_pb2.ORPHAN, ["pod", "web"],
                 id="orphan"),
    pytest.param(["pod", "web", "--cascade=foreground"], api_pb2.FOREGROUND, ["pod", "web"],
                 id="foreground"),
    pytest.param(["pod", "web", "--cascade=Background"], api_pb2.BACKGROUND, ["pod", "web"],
                 id="any-case"),
    pytest.param(["deploy", "web", "--cascade=false"], api_pb2.ORPHAN, ["deploy", "web"],
                 id="false-is-orphan"),
    pytest.param(["deploy", "web", "--cascade=true"], api_pb2.BACKGROUND, ["deploy", "web"],
                 id="true-is-background"),
    pytest.param(["deploy", "web", "--cascade"], api_pb2.BACKGROUND, ["deploy", "web"],
                 id="bare-at-the-end"),
    pytest.param(["--cascade", "deploy", "web"], api_pb2.BACKGROUND, ["deploy", "web"],
                 id="bare-before-the-type"),
    pytest.param(["--cascade", "deploy/web"], api_pb2.BACKGROUND, ["deploy/web"],
                 id="bare-before-type-slash-name"),
    pytest.param(["--cascade", "-f", "x.yaml"], api_pb2.BACKGROUND, [], id="bare-before-flag"),
])
def test_cascade_values(argv: list[str], policy: int, resources: list[str]) -> None:
    args = build_parser("delete").parse_intermixed_args(argv)
    assert cascade_policy(args) == policy
    assert args.resources == resources


def test_bad_value_is_one_line() -> None:
    args = build_parser("delete").parse_intermixed_args(["pod", "web", "--cascade=maybe"])
    with pytest.raises(CtlError, match=r'invalid cascade value \(maybe\). Must be '
                                       r'"background", "foreground", or "orphan"'):
        cascade_policy(args)
