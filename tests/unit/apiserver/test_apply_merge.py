"""kubectl apply's three-way merge."""

from __future__ import annotations

import pytest

from kemu.services.apiserver.registry import three_way_merge


@pytest.mark.parametrize(("live", "last", "config", "expected"), [
    pytest.param({"a": 1, "b": 2}, {"a": 1}, {"a": 3}, {"a": 3, "b": 2}, id="config-wins"),
    pytest.param({"a": 1, "b": 2}, {"a": 1, "b": 2}, {"a": 1}, {"a": 1}, id="removed-key"),
    pytest.param({"spec": {"replicas": 5, "x": 1}}, {"spec": {"x": 1}}, {"spec": {"x": 2}},
                 {"spec": {"replicas": 5, "x": 2}}, id="live-only-key-kept"),
    pytest.param({"l": [1, 2, 3]}, {"l": [1]}, {"l": [4]}, {"l": [4]}, id="lists-replaced"),
    pytest.param({"m": {"k": "v", "s": "server"}}, {"m": {"k": "v"}}, {"m": {}},
                 {"m": {"s": "server"}}, id="nested-removal"),
])
def test_three_way_merge(live: dict, last: dict, config: dict, expected: dict) -> None:
    assert three_way_merge(live, last, config) == expected
