"""Column layout as Go's tabwriter does it, which kubectl's get and describe rely on."""

from __future__ import annotations

import pytest

from kemu.cli.ctl.tabwriter import format_text, table


def test_get_table_pads_by_three_and_leaves_last_column_unpadded() -> None:
    text = table([["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
                  ["web-1", "1/1", "Running", "0", "5m"]])
    assert text.splitlines() == [
        "NAME    READY   STATUS    RESTARTS   AGE",
        "web-1   1/1     Running   0          5m",
    ]


def test_min_width_is_six() -> None:
    assert table([["A", "B"], ["x", "y"]]).splitlines() == ["A     B", "x     y"]


@pytest.mark.parametrize(("text", "expected"), [
    pytest.param("Name:\tweb\nService Account:\tdefault\n",
                 "Name:             web\nService Account:  default\n", id="one-block"),
    pytest.param("Name:\tx\nContainers:\n  c:\n    Image:\tnginx\n",
                 "Name:  x\nContainers:\n  c:\n    Image:  nginx\n",
                 id="a-line-without-tab-ends-the-block"),
    pytest.param("Labels:\ta=1\n\tb=2\n", "Labels:  a=1\n         b=2\n",
                 id="continuation-lines-align-under-the-value"),
])
def test_describe_layout(text: str, expected: str) -> None:
    assert format_text(text, minwidth=0, padding=2) == expected
