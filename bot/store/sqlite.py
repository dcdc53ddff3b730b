"""The SQLite backend (aiosqlite): one file, one process — the default.

Jobs are written before every step that costs or delivers, so a restart can resume polling
and deliver exactly once. Migrations are versioned with PRAGMA user_version. Leases are
written (the schema is the PostgreSQL one) but never contended: the one process owns every
job, and a restart takes them all back at once.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from bot.store.base import DEFAULT_LEASE_S, Store
from bot.store.group_commit import GroupCommit, Undo, run_reads
from bot.store.model import (
    ACTIVE,
    FINAL,
    JOB_COLUMNS,
    WAITING,
    Job,
    OpenQuestion,
    Preference,
    PreferenceChange,
    StoredImage,
    TooManyJobs,
    apply_changes,
    decode_job,
    encode_job,
    question_from,
    question_row,
)

T = TypeVar("T")

#: how many people's preferences are kept in memory at most
PREFERENCES_KEPT = 50_000

MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE preferences (
        platform   TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        task_type  TEXT NOT NULL,
        model_key  TEXT NOT NULL,
        model_id   TEXT NOT NULL,
        model_name TEXT NOT NULL,
        updated_at REAL NOT NULL,
        PRIMARY KEY (platform, user_id, task_type)
    );
    CREATE TABLE jobs (
        id          TEXT PRIMARY KEY,
        platform    TEXT NOT NULL,
        chat_id     TEXT NOT NULL,
        user_id     TEXT NOT NULL,
        reply_to    TEXT,
        language    TEXT NOT NULL,
        status      TEXT NOT NULL,
        task_type   TEXT NOT NULL,
        prompt      TEXT NOT NULL,
        request     TEXT NOT NULL,
        model_key   TEXT,
        model_id    TEXT,
        model_name  TEXT,
        model_version TEXT,
        params      TEXT NOT NULL DEFAULT '{}',
        credits     INTEGER,
        image_urls  TEXT NOT NULL DEFAULT '[]',
        task_ids    TEXT NOT NULL DEFAULT '[]',
        attempts    INTEGER NOT NULL DEFAULT 0,
        est_min     INTEGER,
        est_max     INTEGER,
        error_kind  TEXT,
        result_url  TEXT,
        cover_url   TEXT,
        target_state TEXT NOT NULL DEFAULT '{}',
        created_at  REAL NOT NULL,
        updated_at  REAL NOT NULL,
        started_at  REAL,
        finished_at REAL
    );
    CREATE INDEX jobs_status ON jobs(status);
    CREATE INDEX jobs_user ON jobs(platform, user_id, created_at);
    CREATE TABLE seen_events (
        platform TEXT NOT NULL,
        event_id TEXT NOT NULL,
        seen_at  REAL NOT NULL,
        PRIMARY KEY (platform, event_id)
    );
    """,
    # 2: pictures a job needs, kept from intake so a restart can still upload them;
    #    questions the bot asked one person in one chat (retry with X? confirm N credits?)
    """
    CREATE TABLE job_images (
        job_id       TEXT NOT NULL,
        position     INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        data         BLOB,
        url          TEXT,
        PRIMARY KEY (job_id, position)
    );
    CREATE TABLE open_questions (
        platform   TEXT NOT NULL,
        chat_id    TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        kind       TEXT NOT NULL,
        job_id     TEXT NOT NULL,
        options    TEXT NOT NULL DEFAULT '[]',
        asked_at   REAL NOT NULL,
        expires_at REAL NOT NULL,
        PRIMARY KEY (platform, chat_id, user_id)
    );
    CREATE TABLE used_actions (
        action_id TEXT PRIMARY KEY,
        used_at   REAL NOT NULL
    );
    """,
    # 3: credits reserved, spent or released per job (budgets, usage); admins' runtime changes
    """
    CREATE TABLE spend (
        job_id     TEXT PRIMARY KEY,
        platform   TEXT NOT NULL,
        chat_id    TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        credits    INTEGER NOT NULL,
        state      TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX spend_user ON spend(platform, user_id, created_at);
    CREATE INDEX spend_chat ON spend(platform, chat_id, created_at);
    CREATE TABLE overrides (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at REAL NOT NULL
    );
    """,
    # 4: leases: which process owns a job until when (several processes on PostgreSQL; SQLite
    #    writes them too but one process owns every job)
    """
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until REAL;
    """,
)


_FINAL_MARKS = ",".join("?" for _ in FINAL)
#: a finished job stays finished: no write takes it back to an unfinished state
_STAYS_FINISHED = f"NOT (status IN ({_FINAL_MARKS}) AND ? NOT IN ({_FINAL_MARKS}))"


class SqliteStore(Store):
    """The store on one SQLite file: one connection, WAL journal, writes committed in groups."""

    def __init__(
        self, db: aiosqlite.Connection, *, lease_s: float = DEFAULT_LEASE_S, owner: str | None = None
    ) -> None:
        super().__init__(lease_s=lease_s, owner=owner)
        self._db = db
        # one connection is shared by every coroutine: each read and each batch of writes is one
        # call in its thread, so no write is ever seen half-done and a burst costs few hand-offs
        self._writes = GroupCommit(self._in_thread)
        self._reads = GroupCommit(self._in_thread, runner=run_reads)
        # one process owns the file (bot.store.base), so what it last read or wrote of a
        # preference is what the file holds: a message need not ask the database again. A read
        # that overlapped a change is not kept (the change count moved on meanwhile).
        self._preferences: dict[tuple[str, str], dict[str, Preference | None]] = {}
        self._preference_changes = 0
        # who has any preference at all, when that fits in memory (read at connect): everyone
        # else has none, and their messages skip the database read (most people never set one)
        self._with_preferences: set[tuple[str, str]] | None = None

    async def _in_thread(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` on the sqlite3 connection in aiosqlite's connection thread, in one hand-off.
        (aiosqlite's `_execute` is the one private name used; tests/test_group_commit.py guards it.)"""
        db = self._db
        result: T = await db._execute(lambda: work(db._conn))  # type: ignore[no-untyped-call]
        return result

    async def _read(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` (a query) in the next batch of reads."""
        result: T = await self._reads.submit(work)
        return result

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` as one all-or-nothing write in the next group commit."""
        result: T = await self._writes.submit(work)
        return result

    @classmethod
    async def connect(
        cls, path: Path | str, *, lease_s: float = DEFAULT_LEASE_S, owner: str | None = None
    ) -> SqliteStore:
        """Open (creating and migrating as needed) the SQLite file at `path`."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path))
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=5000")
        store = cls(db, lease_s=lease_s, owner=owner)
        await store._migrate()
        await store._learn_who_has_preferences()
        return store

    async def _learn_who_has_preferences(self) -> None:
        """Read who has a preference, unless there are more such people than memory keeps."""
        sql = "SELECT DISTINCT platform, user_id FROM preferences LIMIT ?"
        rows = await self._read(lambda c: c.execute(sql, (PREFERENCES_KEPT + 1,)).fetchall())
        self._with_preferences = {(r[0], r[1]) for r in rows} if len(rows) <= PREFERENCES_KEPT else None

    async def _migrate(self) -> None:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            await self._db.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")

    async def schema_version(self) -> int:
        async with self._db.execute("PRAGMA user_version") as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def close(self) -> None:
        await self._reads.drain()
        await self._writes.drain()
        await self._db.close()

    # -- preferences -------------------------------------------------------------------------
    async def get_preference(self, platform: str, user_id: str, task_type: str) -> Preference | None:
        sql = (
            "SELECT model_key, model_id, model_name, updated_at FROM preferences "
            "WHERE platform=? AND user_id=? AND task_type=?"
        )
        who = (platform, user_id)
        if self._with_preferences is not None and who not in self._with_preferences:
            return None
        known = self._preferences.get(who, {})
        if task_type in known:
            return known[task_type]
        changes = self._preference_changes
        row = await self._read(lambda c: c.execute(sql, (platform, user_id, task_type)).fetchone())
        found = Preference(row[0], row[1], row[2], row[3]) if row else None
        if changes == self._preference_changes:
            if len(self._preferences) >= PREFERENCES_KEPT:
                self._preferences.clear()  # a bound on memory; they are read again as needed
            self._preferences.setdefault((platform, user_id), {})[task_type] = found
        return found

    async def set_preference(
        self, platform: str, user_id: str, task_type: str, model_key: str, model_id: str, model_name: str
    ) -> float:
        change = PreferenceChange(task_type, model_key, model_id, model_name)
        await self._change_preferences(
            platform, user_id, lambda c: _change_preference(c, platform, user_id, change)
        )
        return change.at

    async def clear_preference(self, platform: str, user_id: str, task_type: str | None = None) -> int:
        removed: int = await self._change_preferences(
            platform, user_id, lambda c: _forget_preference(c, platform, user_id, task_type)
        )
        return removed

    async def _change_preferences(
        self, platform: str, user_id: str, work: Callable[[sqlite3.Connection], T]
    ) -> T:
        """Write a change to a person's preferences; what is known of them is forgotten before,
        and again the moment the write has ended (before anyone can read the memory again), even
        when the caller stops waiting (the write stands)."""
        self._forget_preferences(platform, user_id)
        result: T = await self._writes.submit(work, then=lambda: self._forget_preferences(platform, user_id))
        return result

    def _forget_preferences(self, platform: str, user_id: str) -> None:
        """Drop what is known of a person's preferences (they are being changed): from now on
        they may have one, so their reads go to the database."""
        self._preference_changes += 1
        self._preferences.pop((platform, user_id), None)
        if self._with_preferences is not None:
            self._with_preferences.add((platform, user_id))
            if len(self._with_preferences) > PREFERENCES_KEPT:
                self._with_preferences = None  # a bound on memory: everyone's reads go to the file

    async def preferences(self, platform: str, user_id: str) -> dict[str, Preference]:
        sql = (
            "SELECT task_type, model_key, model_id, model_name, updated_at FROM preferences "
            "WHERE platform=? AND user_id=?"
        )
        rows = await self._read(lambda c: c.execute(sql, (platform, user_id)).fetchall())
        return {r[0]: Preference(r[1], r[2], r[3], r[4]) for r in rows}

    # -- seen events -------------------------------------------------------------------------
    async def seen_any(self, platform: str, event_ids: Sequence[str]) -> bool:
        if not event_ids:
            return False
        marks = ",".join("?" for _ in event_ids)
        sql = f"SELECT 1 FROM seen_events WHERE platform=? AND event_id IN ({marks}) LIMIT 1"
        return await self._read(lambda c: c.execute(sql, (platform, *event_ids)).fetchone() is not None)

    async def intake(
        self,
        platform: str,
        event_ids: Sequence[str],
        job: Job | None = None,
        images: Sequence[StoredImage] = (),
        *,
        max_active: int | None = None,
        once: str | None = None,
        preference: PreferenceChange | None = None,
        book: int | None = None,
    ) -> bool:
        now = time.time()
        row = self._job_row(job) if job is not None else None
        pictures = (
            [(job.id, i, im.content_type, im.data, im.url) for i, im in enumerate(images)] if job else []
        )

        def write(c: sqlite3.Connection) -> bool:
            if event_ids and not _mark_seen(c, platform, event_ids, now):
                raise Undo(False)  # any id seen before undoes the whole intake
            if once is not None:
                _claim(c, once, now)
            if job is not None and row is not None:
                if max_active is not None and _active_count(c, job) >= max_active:
                    raise TooManyJobs(f"{job.platform}:{job.user_id}")
                _insert(c, "jobs", row)
                if pictures:
                    c.executemany("INSERT INTO job_images VALUES (?,?,?,?,?)", pictures)
                if preference is not None:
                    _change_preference(c, job.platform, job.user_id, preference)
                if book is not None:
                    _book(c, job, book, now)
            return True

        if job is None or preference is None:
            return await self._write(write)
        accepted: bool = await self._change_preferences(job.platform, job.user_id, write)
        return accepted

    async def prune_seen(self, older_than_s: float = 7 * 86400) -> int:
        now = time.time()

        def write(c: sqlite3.Connection) -> int:
            cur = c.execute("DELETE FROM seen_events WHERE seen_at < ?", (now - older_than_s,))
            c.execute("DELETE FROM open_questions WHERE expires_at < ?", (now,))
            c.execute("DELETE FROM used_actions WHERE used_at < ?", (now - older_than_s,))
            return cur.rowcount

        return await self._write(write)

    # -- jobs --------------------------------------------------------------------------------
    def _job_row(self, job: Job) -> dict[str, Any]:
        """A new job's row, leased to this process."""
        row = encode_job(job)
        row["lease_owner"] = self.owner
        row["lease_until"] = time.time() + self.lease_s
        return row

    async def add_job(self, job: Job) -> None:
        row = self._job_row(job)
        await self._write(lambda c: _insert(c, "jobs", row))

    async def job_images(self, job_id: str) -> list[StoredImage]:
        sql = "SELECT content_type, data, url FROM job_images WHERE job_id=? ORDER BY position"
        rows = await self._read(lambda c: c.execute(sql, (job_id,)).fetchall())
        return [StoredImage(r[0], r[1], r[2]) for r in rows]

    async def drop_job_images(self, job_id: str) -> None:
        await self._write(lambda c: c.execute("DELETE FROM job_images WHERE job_id=?", (job_id,)))

    def _update(self, job: Job, changes: dict[str, Any], leased: bool) -> tuple[str, tuple[Any, ...]]:
        apply_changes(job, changes)
        row = encode_job(job)
        sets = [f"{k}=?" for k in row if k != "id"]
        values: list[Any] = [v for k, v in row.items() if k != "id"]
        if leased or job.status == WAITING or job.status in FINAL:
            # taken (or kept) by this process; a job that waits for a yes or is finished is nobody's
            owned = leased and job.status != WAITING and job.status not in FINAL
            sets += ["lease_owner=?", "lease_until=?"]
            values += [self.owner if owned else None, time.time() + self.lease_s if owned else None]
        where = f"id=? AND {_STAYS_FINISHED}"
        args = (*values, job.id, *FINAL, job.status, *FINAL)
        if leased:
            where += f" AND status NOT IN ({_FINAL_MARKS})"
            args = (*args, *FINAL)
        return f"UPDATE jobs SET {','.join(sets)} WHERE {where}", args

    async def save_job(self, job: Job, **changes: Any) -> Job:
        sql, args = self._update(job, changes, leased=False)
        await self._write(lambda c: c.execute(sql, args))
        return job

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._read(lambda c: c.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone())
        return decode_job(row) if row else None

    async def _jobs(self, sql: str, args: Sequence[Any]) -> list[Job]:
        rows = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [decode_job(r) for r in rows]

    async def unfinished_jobs(self) -> list[Job]:
        marks = ",".join("?" for _ in ACTIVE)
        return await self._jobs(f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at", ACTIVE)

    async def recent_jobs(self, platform: str, user_id: str, limit: int = 10) -> list[Job]:
        return await self._jobs(
            "SELECT * FROM jobs WHERE platform=? AND user_id=? ORDER BY created_at DESC LIMIT ?",
            (platform, user_id, limit),
        )

    async def active_jobs(self, platform: str, user_id: str) -> list[Job]:
        statuses = (*ACTIVE, WAITING)
        marks = ",".join("?" for _ in statuses)
        return await self._jobs(
            f"SELECT * FROM jobs WHERE platform=? AND user_id=? AND status IN ({marks}) ORDER BY created_at",
            (platform, user_id, *statuses),
        )

    # -- leases: one process owns every job ------------------------------------------------------
    async def claim_jobs(self, limit: int | None = None) -> list[Job]:
        jobs = await self.unfinished_jobs()
        if limit is not None:
            jobs = jobs[:limit]
        if jobs:
            marks = ",".join("?" for _ in jobs)
            args = (self.owner, time.time() + self.lease_s, *(j.id for j in jobs))
            await self._write(
                lambda c: c.execute(
                    f"UPDATE jobs SET lease_owner=?, lease_until=? WHERE id IN ({marks})", args
                )
            )
        return jobs

    async def save_leased(self, job: Job, *, once: str | None = None, **changes: Any) -> bool:
        sql, args = self._update(job, changes, leased=True)
        now = time.time()

        def write(c: sqlite3.Connection) -> bool:
            if once is not None:
                _claim(c, once, now)
            if c.execute(sql, args).rowcount != 1:
                raise Undo(False)  # not saved: the action stays unused
            return True

        return await self._write(write)

    async def renew_leases(self, job_ids: Sequence[str]) -> set[str]:
        return set()  # nobody else could have taken them

    async def release_leases(self, job_ids: Sequence[str] | None = None) -> int:
        sql = "UPDATE jobs SET lease_owner=NULL, lease_until=NULL WHERE lease_owner=?"
        args: tuple[Any, ...] = (self.owner,)
        if job_ids is not None:
            sql += f" AND id IN ({','.join('?' for _ in job_ids)})"
            args = (*args, *job_ids)
        return await self._write(lambda c: c.execute(sql, args).rowcount)

    # -- open questions ------------------------------------------------------------------------
    async def ask(self, question: OpenQuestion) -> None:
        args = question_row(question)
        await self._write(
            lambda c: c.execute("INSERT OR REPLACE INTO open_questions VALUES (?,?,?,?,?,?,?,?)", args)
        )

    async def take_question(
        self, platform: str, chat_id: str, user_id: str, kind: str | None = None
    ) -> OpenQuestion | None:
        key = (platform, chat_id, user_id)

        def write(c: sqlite3.Connection) -> OpenQuestion | None:
            where = "WHERE platform=? AND chat_id=? AND user_id=?"
            row = c.execute(f"SELECT * FROM open_questions {where}", key).fetchone()
            if row is None:
                return None
            question = question_from(row)
            if kind is not None and question.kind != kind:
                return None
            c.execute(f"DELETE FROM open_questions {where}", key)
            return question

        return await self._write(write)

    async def forget_questions_about(self, job_id: str) -> None:
        await self._write(lambda c: c.execute("DELETE FROM open_questions WHERE job_id=?", (job_id,)))

    # -- actions that may happen once ---------------------------------------------------------
    async def use_once(self, action_id: str) -> bool:
        now = time.time()

        def write(c: sqlite3.Connection) -> bool:
            _claim(c, action_id, now)
            return True

        return await self._write(write)

    # -- credits: budgets and usage ------------------------------------------------------------
    async def reserve_spend(
        self, job: Job, credits: int, since: float, user_limit: int | None, chat_limit: int | None
    ) -> tuple[str, int] | None:
        now = time.time()

        def write(c: sqlite3.Connection) -> tuple[str, int] | None:
            for scope, column, value, limit in (
                ("user", "user_id", job.user_id, user_limit),
                ("chat", "chat_id", job.chat_id, chat_limit),
            ):
                if limit is None:
                    continue
                row = c.execute(
                    f"SELECT COALESCE(SUM(credits), 0) FROM spend WHERE platform=? AND {column}=? "
                    "AND created_at>=? AND state!='released' AND job_id!=?",
                    (job.platform, value, since, job.id),
                ).fetchone()
                used = int(row[0]) if row else 0
                if used + credits > limit:
                    return scope, max(0, limit - used)
            _book(c, job, credits, now)
            return None

        return await self._write(write)

    async def set_spend_state(self, job_id: str, state: str, credits: int | None = None) -> None:
        args: tuple[object, ...]
        if credits is None:
            sql, args = "UPDATE spend SET state=? WHERE job_id=?", (state, job_id)
        else:
            sql, args = "UPDATE spend SET state=?, credits=? WHERE job_id=?", (state, credits, job_id)
        await self._write(lambda c: c.execute(sql, args))

    async def usage(
        self,
        platform: str,
        since: float,
        *,
        user_id: str | None = None,
        chat_id: str | None = None,
        by: str | None = None,
    ) -> list[tuple[str, int, int]]:
        where = ["platform=?", "created_at>=?", "state!='released'"]
        args: list[Any] = [platform, since]
        if user_id is not None:
            where.append("user_id=?")
            args.append(user_id)
        if chat_id is not None:
            where.append("chat_id=?")
            args.append(chat_id)
        group = by if by in ("user_id", "chat_id") else None
        select = f"{group}, " if group else "'', "
        sql = f"SELECT {select}COALESCE(SUM(credits),0), COUNT(*) FROM spend WHERE {' AND '.join(where)}"
        if group:
            sql += f" GROUP BY {group} ORDER BY 2 DESC LIMIT 20"
        rows = await self._read(lambda c: c.execute(sql, args).fetchall())
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    # -- an admin's runtime changes -------------------------------------------------------------
    async def overrides(self) -> dict[str, str]:
        rows = await self._read(lambda c: c.execute("SELECT key, value FROM overrides").fetchall())
        return {str(r[0]): str(r[1]) for r in rows}

    async def set_override(self, key: str, value: str) -> None:
        args = (key, value, time.time())
        await self._write(
            lambda c: c.execute(
                "INSERT INTO overrides VALUES (?,?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value, "
                "updated_at=excluded.updated_at",
                args,
            )
        )


def _insert(c: sqlite3.Connection, table: str, row: dict[str, Any]) -> None:
    c.execute(
        f"INSERT INTO {table} ({','.join(row)}) VALUES ({','.join('?' for _ in row)})", tuple(row.values())
    )


def _change_preference(c: sqlite3.Connection, platform: str, user_id: str, change: PreferenceChange) -> int:
    """Save (or, with no model, forget) one person's preference for one task type."""
    if change.model_key is None:
        return _forget_preference(c, platform, user_id, change.task_type)
    c.execute(
        "INSERT INTO preferences VALUES (?,?,?,?,?,?,?) ON CONFLICT(platform, user_id, task_type) "
        "DO UPDATE SET model_key=excluded.model_key, model_id=excluded.model_id, "
        "model_name=excluded.model_name, updated_at=excluded.updated_at",
        (
            platform,
            user_id,
            change.task_type,
            change.model_key,
            change.model_id,
            change.model_name,
            change.at,
        ),
    )
    return 1


def _forget_preference(c: sqlite3.Connection, platform: str, user_id: str, task_type: str | None) -> int:
    """Forget one task type's preference, or all of a person's; how many were removed."""
    if task_type is None:
        return int(
            c.execute("DELETE FROM preferences WHERE platform=? AND user_id=?", (platform, user_id)).rowcount
        )
    sql = "DELETE FROM preferences WHERE platform=? AND user_id=? AND task_type=?"
    return int(c.execute(sql, (platform, user_id, task_type)).rowcount)


def _mark_seen(c: sqlite3.Connection, platform: str, event_ids: Sequence[str], now: float) -> bool:
    """Mark every id seen, in one statement; False when any of them was seen before."""
    marks = ",".join("(?,?,?)" for _ in event_ids)
    cur = c.execute(
        f"INSERT OR IGNORE INTO seen_events VALUES {marks}",
        [v for event_id in event_ids for v in (platform, event_id, now)],
    )
    return bool(cur.rowcount == len(event_ids))


def _book(c: sqlite3.Connection, job: Job, credits: int, now: float) -> None:
    """Reserve `credits` for `job` in the spend ledger (again: the new amount)."""
    c.execute(
        "INSERT INTO spend VALUES (?,?,?,?,?,'reserved',?) ON CONFLICT(job_id) DO UPDATE SET "
        "credits=excluded.credits, state='reserved'",
        (job.id, job.platform, job.chat_id, job.user_id, credits, now),
    )


def _claim(c: sqlite3.Connection, action_id: str, now: float) -> None:
    """Mark an action used, or undo the whole write (answering False) when it was used before."""
    if c.execute("INSERT OR IGNORE INTO used_actions VALUES (?,?)", (action_id, now)).rowcount != 1:
        raise Undo(False)


def _active_count(c: sqlite3.Connection, job: Job) -> int:
    """How many of this person's jobs are under way (within the batch's transaction)."""
    marks = ",".join("?" for _ in ACTIVE)
    row = c.execute(
        f"SELECT COUNT(*) FROM jobs WHERE platform=? AND user_id=? AND status IN ({marks})",
        (job.platform, job.user_id, *ACTIVE),
    ).fetchone()
    return int(row[0]) if row else 0


__all__ = ["JOB_COLUMNS", "MIGRATIONS", "SqliteStore"]
