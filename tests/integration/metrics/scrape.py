"""Scraping a component's /metrics in tests: urllib, then prometheus_client's parser."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

from prometheus_client.parser import text_string_to_metric_families

Samples = list[tuple[str, dict[str, str], float]]


def scrape(address: str, path: str = "/metrics", timeout: float = 5.0) -> Samples:
    """Every sample of http://address/metrics (or `path`) as (name, labels, value)."""
    with urllib.request.urlopen(f"http://{address}{path}", timeout=timeout) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
            for s in family.samples]


def value(samples: Samples, metric: str, /, **labels: str) -> float | None:
    """The sum of the samples named `metric` whose labels include `labels` (None: none)."""
    found = [v for n, lb, v in samples if n == metric and labels.items() <= lb.items()]
    return sum(found) if found else None


def wait_metric(address: str, what: str, check: Callable[[Samples], bool],
                timeout: float = 30.0) -> Samples:
    """Scrape until `check` holds; the last scrape."""
    deadline = time.monotonic() + timeout
    while True:
        samples = scrape(address)
        if check(samples):
            return samples
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(0.1)
