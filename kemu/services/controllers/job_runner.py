"""How the Job and CronJob controllers run: their own event recorder, an initial key for
every cached owner, then the queue's workers.

Both controllers record events through an `EventRecorder` they make themselves unless a
recorder is given (unit tests pass a fake); the one they made is started with the workers
and stopped with them, so that nothing outlives `run()` when the manager cancels it.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from kemu.client.events import EventRecorder, EventWriter, ObjectRecorder
from kemu.client.informer import Informer, key_of
from kemu.client.workqueue import WorkQueue, run_workers
from kemu.services.controllers.controllerref import log_sync_error


def recorder_for(client: EventWriter, component: str, given: ObjectRecorder | None
                 ) -> tuple[ObjectRecorder, EventRecorder | None]:
    """The recorder to emit to, and the one the controller owns (None when given)."""
    if given is not None:
        return given, None
    own = EventRecorder(client, component)
    return own, own


async def run_controller(owners: Informer, queue: WorkQueue[str],
                         reconcile: Callable[[str], Awaitable[None]], workers: int, *,
                         name: str, log: logging.Logger,
                         recorder: EventRecorder | None) -> None:
    """Queue every cached owner, then run the workers until cancelled."""
    if recorder is not None:
        recorder.start()

    def on_error(key: str, e: Exception) -> None:
        log_sync_error(log, name, key, queue.num_requeues(key), e)
    for obj in owners.list():
        queue.add(key_of(obj))
    try:
        await run_workers(queue, reconcile, workers, on_error=on_error)
    finally:
        if recorder is not None:
            await recorder.stop()
