"""Run a long-lived asyncio service until SIGTERM or SIGINT (the node agent's and the node
simulator's mains), and wait on it until it is stopped or one of its loops fails.

A signal may come while the service is still starting (waiting for an apiserver, say):
then the start is cancelled rather than awaited to its end. An error from the start (the
one-line reason the service cannot run) is raised as it is. The caller stops the service
afterwards in either case.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable, Sequence


async def run_until_signalled(start: Callable[[], Awaitable[None]],
                              wait: Callable[[], Awaitable[None]],
                              stopped: asyncio.Event) -> None:
    """`start()`, then `wait()`, both cut short when SIGTERM or SIGINT sets `stopped`."""
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stopped.set)
    starting = asyncio.ensure_future(start())
    stopping = asyncio.ensure_future(stopped.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if starting.done():
        stopping.cancel()
        starting.result()  # the one-line reason it cannot start, if any
        await wait()
    else:  # a signal while still starting
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting


async def wait_stopped_or_failed(stopped: asyncio.Event,
                                 tasks: Sequence[asyncio.Task[None]]) -> None:
    """Until `stopped` is set or one of `tasks` ends; a task that failed raises its error
    here (a background loop of a service must not die unnoticed)."""
    stop = asyncio.create_task(stopped.wait())
    try:
        done, _ = await asyncio.wait([stop, *tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stop.cancel()
    for t in done:
        if t is not stop and not t.cancelled() and t.exception() is not None:
            raise t.exception()  # type: ignore[misc]
