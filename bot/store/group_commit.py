"""Group commit for the one SQLite connection: writes from many coroutines, one transaction.

aiosqlite runs every statement in the connection's own thread and hands the result back, so a
write of three statements is four thread hand-offs, and each commit waits for the one before.
With 300 messages at once that queue, not SQLite, is what people wait for (p95 ~1.5 s before
their notice). Here a write is one function of the sqlite3 connection; everything queued while a
batch runs goes into the next one, which runs as one call in the database thread: one hand-off
and one commit for the whole batch. Each write runs inside its own SAVEPOINT, so a write that
fails (or undoes itself with `Undo`) leaves no trace and does not take the others with it.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

#: one write: runs in the database thread, inside the batch's transaction
Write = Callable[[sqlite3.Connection], Any]
#: how a batch is run in the database thread (aiosqlite's connection thread)
RunInThread = Callable[[Callable[[sqlite3.Connection], list["Outcome"]]], Awaitable[list["Outcome"]]]


class Undo(Exception):
    """Raised by a write to roll back what it wrote and still answer `value` (not an error)."""

    def __init__(self, value: object) -> None:
        super().__init__(value)
        self.value = value


@dataclass(frozen=True)
class Outcome:
    """What one write of a batch came to: its value, or the exception it raised."""

    value: Any = None
    error: BaseException | None = None


def run_batch(writes: list[Write], conn: sqlite3.Connection) -> list[Outcome]:
    """Every write of a batch in one transaction, each in its own savepoint (database thread)."""
    outcomes: list[Outcome] = []
    try:
        if not conn.in_transaction:
            conn.execute("BEGIN IMMEDIATE")
        for write in writes:
            conn.execute("SAVEPOINT one_write")
            try:
                outcome = Outcome(write(conn))
            except Undo as undo:
                outcome = Outcome(undo.value)
                _undo_one(conn, undo)
            except Exception as e:
                outcome = Outcome(error=e)
                _undo_one(conn, e)
            conn.execute("RELEASE one_write")
            outcomes.append(outcome)
        conn.commit()
    except Exception as e:  # the transaction itself failed (disk full, I/O): nothing of the batch holds
        if conn.in_transaction:
            conn.rollback()
        return [Outcome(error=e) for _ in writes]
    except BaseException:  # not a write's own failure: nothing of the batch may be committed later
        if conn.in_transaction:
            conn.rollback()
        raise
    return outcomes


def _undo_one(conn: sqlite3.Connection, cause: Exception) -> None:
    """Roll back one write to its savepoint. When SQLite has already rolled back the whole
    transaction (an I/O error, a full disk), every write of the batch fails with that cause."""
    try:
        conn.execute("ROLLBACK TO one_write")
    except sqlite3.Error:
        raise cause from None


def run_reads(reads: list[Write], conn: sqlite3.Connection) -> list[Outcome]:
    """Every read of a batch, one after another, outside any transaction (database thread)."""
    outcomes: list[Outcome] = []
    for read in reads:
        try:
            outcomes.append(Outcome(read(conn)))
        except Exception as e:
            outcomes.append(Outcome(error=e))
    return outcomes


class GroupCommit:
    """Queues writes and commits them in batches, one batch at a time, in arrival order.
    With `runner=run_reads` it batches reads the same way (one hand-off, no transaction)."""

    def __init__(
        self,
        run_in_thread: RunInThread,
        runner: Callable[[list[Write], sqlite3.Connection], list[Outcome]] = run_batch,
    ) -> None:
        self._run_in_thread = run_in_thread
        self._runner = runner
        self._queued: list[tuple[Write, asyncio.Future[Any], Callable[[], None] | None]] = []
        self._flushing: asyncio.Task[None] | None = None

    async def submit(self, write: Write, *, then: Callable[[], None] | None = None) -> Any:
        """Run `write` in the next batch; its value once the batch is committed. A caller that
        is cancelled while it waits does not stop the write: it may still be committed. `then`
        runs on the loop as soon as the batch has ended, before anyone sees its outcome, even
        when the caller stopped waiting (to forget what the write made stale)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((write, future, then))
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush())
        return await future

    async def drain(self) -> None:
        """Wait until every queued write is committed (before the connection is closed)."""
        while self._flushing is not None and not self._flushing.done():
            await asyncio.shield(self._flushing)

    async def _flush(self) -> None:
        while self._queued:
            batch, self._queued = self._queued, []
            writes = [w for w, _, _ in batch]
            try:
                outcomes = await self._run_in_thread(functools.partial(self._runner, writes))
            except Exception as e:  # the database thread is gone (closed connection)
                outcomes = [Outcome(error=e) for _ in batch]
            except BaseException:  # interrupted (shutdown): no caller may wait for ever
                _abort(batch)
                raise
            for _, _, then in batch:
                if then is not None:
                    then()
            for (_, future, _), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue  # its caller was cancelled; the write stands or fell all the same
                if outcome.error is not None:
                    future.set_exception(outcome.error)
                else:
                    future.set_result(outcome.value)


def _abort(batch: list[tuple[Write, asyncio.Future[Any], Callable[[], None] | None]]) -> None:
    """Answer every caller of a batch that was interrupted before it was committed."""
    for _, future, _ in batch:
        if not future.done():
            future.set_exception(WriteAborted("the database work was interrupted before it was committed"))


class WriteAborted(Exception):
    """A batch was interrupted (the process is stopping): its writes were not committed."""
