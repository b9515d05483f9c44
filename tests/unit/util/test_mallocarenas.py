"""A kemu process caps glibc's malloc arenas at two (MALLOC_ARENA_MAX=2) before gRPC's
threads start, so threads that allocate at once share them instead of each holding an
arena's high-water mark; glibc's own malloc_stats() counts the arenas."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

SCRIPT = """
import ctypes, sys, threading
if sys.argv[1] == "limit":
    from kemu.util import mallocarenas
    print(mallocarenas.limit(), flush=True)
barrier = threading.Barrier(8)
def work():
    barrier.wait()
    keep = [bytearray(200) for _ in range(20000)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
for t in threads:
    t.start()
for t in threads:
    t.join()
ctypes.CDLL(None).malloc_stats()
"""


def arenas(mode: str, **env: str) -> tuple[str, int]:
    """(what limit() printed, arenas malloc_stats() reports) for 8 allocating threads."""
    base = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    done = subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True,
                          text=True, check=True, env={**base, **env})
    return done.stdout.strip(), sum(1 for line in done.stderr.splitlines()
                                    if line.startswith("Arena "))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")
def test_eight_threads_share_two_arenas() -> None:
    assert arenas("limit") == ("True", 2)
    assert arenas("none")[1] > 2  # without it each thread gets its own: the test can fail


def test_an_explicit_malloc_arena_max_wins() -> None:
    assert arenas("limit", MALLOC_ARENA_MAX="3")[0] == "False"
