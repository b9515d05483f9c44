"""Group commit: one writer applies every pending write in one SQLite transaction.

Why: an fsynced commit costs the same for one row or a thousand, so the writer
drains everything that queued up while the previous commit was on disk,
applies it (each request still gets its own revision), commits once, and only
then acknowledges each request and publishes the watch events. The apply and
the blocking commit run on a dedicated thread, so the event loop keeps taking
requests and the next batch grows while the disk works.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kemu.services.store import backend
from kemu.services.store.errors import StorageError, StoreError, Unavailable
from kemu.services.store.mvcc import KVWriter, RevisionEvents, WriteOp, WriteResult

log = logging.getLogger(__name__)

# Bound the size of one transaction so a flood of writes still commits often.
MAX_BATCH = 2000

Outcome = WriteResult | StoreError


class Writer:
    """The single writer: queue, batch, apply, commit, then acknowledge."""

    def __init__(
        self,
        data_dir: Path,
        *,
        fsync: bool,
        revision: int,
        compact_revision: int,
        on_commit: Callable[[list[RevisionEvents], int, int], None],
    ) -> None:
        self._conn = backend.connect(data_dir, fsync=fsync, cache_mb=16)
        leases = set(backend.load_leases(self._conn))
        self._kv = KVWriter(
            self._conn, revision=revision, compact_revision=compact_revision, leases=leases
        )
        self._on_commit = on_commit
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="store-writer")
        self._pending: list[tuple[WriteOp, asyncio.Future[Outcome]]] = []
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failed: BaseException | None = None
        self._closing = False
        self.batches = 0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="store-writer")

    async def submit(self, op: WriteOp) -> WriteResult:
        """Queue a write; returns once it is durable (or raises its StoreError)."""
        if self._closing or self._failed is not None:
            raise Unavailable("etcdserver: server stopped")
        fut: asyncio.Future[Outcome] = asyncio.get_running_loop().create_future()
        self._pending.append((op, fut))
        self._wakeup.set()
        outcome = await fut
        if isinstance(outcome, StoreError):
            raise outcome
        return outcome

    async def close(self) -> None:
        """Finish what is queued, then stop the writer thread."""
        self._closing = True
        self._wakeup.set()
        if self._task is not None:
            await self._task
        await asyncio.get_running_loop().run_in_executor(self._executor, self._conn.close)
        self._executor.shutdown(wait=True)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                if self._closing:
                    return
                await self._wakeup.wait()
                self._wakeup.clear()
                continue
            batch = self._pending[:MAX_BATCH]
            del self._pending[:MAX_BATCH]
            ops = [op for op, _ in batch]
            try:
                outcomes = await loop.run_in_executor(self._executor, self._apply, ops)
            except BaseException as e:  # the database is unusable: fail loudly, refuse more
                log.exception("store writer failed; refusing further writes")
                self._failed = e
                err = Unavailable(f"etcdserver: storage failure: {e}")
                for _, fut in (*batch, *self._pending):
                    if not fut.done():
                        fut.set_result(err)
                self._pending.clear()
                return
            self.batches += 1
            changes = [o.changes for o in outcomes if isinstance(o, WriteResult) and o.changes]
            self._on_commit(changes, self._kv.rev, self._kv.compact_rev)
            for (_, fut), outcome in zip(batch, outcomes, strict=True):
                if not fut.done():
                    fut.set_result(outcome)

    def _apply(self, ops: list[WriteOp]) -> list[Outcome]:
        """Runs on the writer thread: one transaction for the whole batch."""
        started = time.perf_counter()
        kv = self._kv
        saved = kv.begin_batch()
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            outcomes: list[Outcome] = []
            for op in ops:
                try:
                    outcomes.append(kv.apply(op))
                except StoreError as e:
                    outcomes.append(e)
            kv.end_batch(saved)
            self._conn.execute("COMMIT")
        except sqlite3.Error as e:
            kv.rollback_batch(saved)
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise StorageError(str(e)) from e
        except BaseException:
            kv.rollback_batch(saved)
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise
        elapsed = time.perf_counter() - started
        if elapsed > 0.5:
            log.warning("store commit slow: ops=%d duration=%.3fs", len(ops), elapsed)
        return outcomes
