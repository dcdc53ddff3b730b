"""Writes from many coroutines are committed together, each all-or-nothing (bot.store.group_commit)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bot.store.group_commit import GroupCommit, Outcome, Undo, WriteAborted
from bot.store.sqlite import SqliteStore


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    c = sqlite3.connect(tmp_path / "t.sqlite3", check_same_thread=False)
    c.execute("CREATE TABLE t (k TEXT PRIMARY KEY)")
    c.commit()
    yield c
    c.close()


class Thread:
    """Runs each batch in a worker thread, as aiosqlite does, and counts the hand-offs."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.calls = 0

    async def __call__(self, work: Callable[[sqlite3.Connection], list[Outcome]]) -> list[Outcome]:
        self.calls += 1
        return await asyncio.to_thread(work, self.conn)


def insert(key: str) -> Callable[[sqlite3.Connection], int]:
    return lambda c: c.execute("INSERT INTO t VALUES (?)", (key,)).rowcount


def keys(conn: sqlite3.Connection) -> list[str]:
    return [r[0] for r in conn.execute("SELECT k FROM t ORDER BY k")]


async def test_writes_queued_at_once_are_committed_in_a_few_hand_offs(conn: sqlite3.Connection) -> None:
    thread = Thread(conn)
    commit = GroupCommit(thread)
    results = await asyncio.gather(*(commit.submit(insert(f"k{i:03}")) for i in range(200)))
    assert results == [1] * 200
    assert keys(conn) == [f"k{i:03}" for i in range(200)]
    assert thread.calls <= 2  # the first write alone, then everything queued behind it


async def test_a_failing_write_leaves_no_trace_and_the_others_in_its_batch_stand(
    conn: sqlite3.Connection,
) -> None:
    def half_then_fail(c: sqlite3.Connection) -> None:
        c.execute("INSERT INTO t VALUES ('half')")
        c.execute("INSERT INTO t VALUES ('a')")  # already there: the whole write fails

    commit = GroupCommit(Thread(conn))
    results = await asyncio.gather(
        commit.submit(insert("a")),
        commit.submit(half_then_fail),
        commit.submit(insert("b")),
        return_exceptions=True,
    )
    assert results[0] == 1 and isinstance(results[1], sqlite3.IntegrityError) and results[2] == 1
    assert keys(conn) == ["a", "b"]


async def test_an_undone_write_answers_its_value_and_writes_nothing(conn: sqlite3.Connection) -> None:
    def seen_before(c: sqlite3.Connection) -> bool:
        c.execute("INSERT INTO t VALUES ('x')")
        raise Undo(False)

    commit = GroupCommit(Thread(conn))
    assert await commit.submit(seen_before) is False
    assert keys(conn) == []


async def test_a_caller_cancelled_while_waiting_does_not_stop_its_write(conn: sqlite3.Connection) -> None:
    commit = GroupCommit(Thread(conn))
    waiting = asyncio.ensure_future(commit.submit(insert("kept")))
    await asyncio.sleep(0)
    waiting.cancel()
    await commit.drain()
    assert keys(conn) == ["kept"]


async def test_the_sqlite_store_does_its_work_in_the_connection_thread(tmp_path: Path) -> None:
    # the one private name of aiosqlite the store uses (Connection._execute): if an upgrade
    # renames it, this fails here rather than every store call failing
    store = await SqliteStore.connect(tmp_path / "bot.sqlite3")
    try:
        here = threading.get_ident()
        there = await store._in_thread(lambda c: (threading.get_ident(), c.execute("SELECT 1").fetchone()[0]))
        assert there[0] != here and there[1] == 1
    finally:
        await store.close()


class Interrupted(BaseException):
    """Not a write's own failure (as KeyboardInterrupt is not): the batch must not half-commit."""


async def test_an_interrupted_batch_commits_nothing_and_every_caller_is_answered(tmp_path: Path) -> None:
    store = await SqliteStore.connect(tmp_path / "bot.sqlite3")
    try:
        await store._write(lambda c: c.execute("CREATE TABLE t (x INTEGER)"))

        def interrupted(c: sqlite3.Connection) -> None:
            c.execute("INSERT INTO t VALUES (1)")
            raise Interrupted

        caller = asyncio.ensure_future(store._write(interrupted))
        with pytest.raises(WriteAborted):
            await asyncio.wait_for(caller, 10)
        await store._write(lambda c: c.execute("INSERT INTO t VALUES (2)"))  # the next batch commits
        assert await store._read(lambda c: [r[0] for r in c.execute("SELECT x FROM t")]) == [2]
    finally:
        await store.close()


async def test_a_preference_change_whose_caller_stopped_waiting_is_what_is_read_after(tmp_path: Path) -> None:
    store = await SqliteStore.connect(tmp_path / "bot.sqlite3")
    try:
        await store.set_preference("feishu", "u1", "text_to_video", "kling-o1", "kling-video-o1", "Kling O1")
        # a slow batch holds the change back while a read of the old value goes ahead of it
        slow = asyncio.ensure_future(store._write(lambda c: time.sleep(0.2)))
        await asyncio.sleep(0.01)
        change = asyncio.ensure_future(
            store.set_preference("feishu", "u1", "text_to_video", "wan26", "wan2.6-t2v", "Wan 2.6")
        )
        await asyncio.sleep(0)
        read = asyncio.ensure_future(store.get_preference("feishu", "u1", "text_to_video"))
        await asyncio.sleep(0.05)
        change.cancel()  # the caller gives up; the write stands all the same
        await read
        await slow
        await store._writes.drain()
        pref = await store.get_preference("feishu", "u1", "text_to_video")
        assert pref is not None and pref.model_key == "wan26"
    finally:
        await store.close()


async def test_what_follows_a_write_runs_before_its_caller_sees_the_outcome(conn: sqlite3.Connection) -> None:
    commits = GroupCommit(Thread(conn))
    followed: list[str] = []

    async def caller() -> None:
        await commits.submit(insert("a"), then=lambda: followed.append("then"))
        followed.append("caller")

    await caller()
    assert followed == ["then", "caller"]


async def test_what_follows_a_write_runs_when_its_caller_stopped_waiting(conn: sqlite3.Connection) -> None:
    commits = GroupCommit(Thread(conn))
    followed: list[str] = []
    waiting = asyncio.ensure_future(commits.submit(insert("a"), then=lambda: followed.append("then")))
    await asyncio.sleep(0)
    waiting.cancel()  # the write stands all the same, and what follows it too
    await commits.drain()
    assert followed == ["then"]
    assert conn.execute("SELECT k FROM t").fetchall() == [("a",)]
