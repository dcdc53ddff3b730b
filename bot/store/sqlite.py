"""The SQLite backend (aiosqlite): one file, one process — the default.

Jobs are written before every step that costs or delivers, so a restart can resume polling
and deliver exactly once. Migrations are versioned with PRAGMA user_version. Leases are
written (the schema is the PostgreSQL one) but never contended: the one process owns every
job, and a restart takes them all back at once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from bot.store.base import DEFAULT_LEASE_S, Store
from bot.store.model import (
    ACTIVE,
    FINAL,
    JOB_COLUMNS,
    WAITING,
    Job,
    OpenQuestion,
    Preference,
    StoredImage,
    TooManyJobs,
    apply_changes,
    decode_job,
    encode_job,
    question_from,
)

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
    """The store on one SQLite file: one connection, WAL journal."""

    def __init__(
        self, db: aiosqlite.Connection, *, lease_s: float = DEFAULT_LEASE_S, owner: str | None = None
    ) -> None:
        super().__init__(lease_s=lease_s, owner=owner)
        self._db = db
        # One connection is shared by every coroutine: a write that spans several statements
        # must not be committed half-way by another coroutine's commit. Every write holds this.
        self._writing = asyncio.Lock()

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[aiosqlite.Connection]:
        """One all-or-nothing write: committed at the end, rolled back on any error."""
        async with self._writing:
            try:
                yield self._db
            except BaseException:
                await self._db.rollback()
                raise
            await self._db.commit()

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
        return store

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
        await self._db.close()

    # -- preferences -------------------------------------------------------------------------
    async def get_preference(self, platform: str, user_id: str, task_type: str) -> Preference | None:
        sql = (
            "SELECT model_key, model_id, model_name, updated_at FROM preferences "
            "WHERE platform=? AND user_id=? AND task_type=?"
        )
        async with self._db.execute(sql, (platform, user_id, task_type)) as cur:
            row = await cur.fetchone()
        return Preference(row[0], row[1], row[2], row[3]) if row else None

    async def set_preference(
        self, platform: str, user_id: str, task_type: str, model_key: str, model_id: str, model_name: str
    ) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO preferences VALUES (?,?,?,?,?,?,?) ON CONFLICT(platform, user_id, task_type) "
                "DO UPDATE SET model_key=excluded.model_key, model_id=excluded.model_id, "
                "model_name=excluded.model_name, updated_at=excluded.updated_at",
                (platform, user_id, task_type, model_key, model_id, model_name, time.time()),
            )

    async def clear_preference(self, platform: str, user_id: str, task_type: str | None = None) -> int:
        async with self._transaction() as db:
            if task_type is None:
                cur = await db.execute(
                    "DELETE FROM preferences WHERE platform=? AND user_id=?", (platform, user_id)
                )
            else:
                cur = await db.execute(
                    "DELETE FROM preferences WHERE platform=? AND user_id=? AND task_type=?",
                    (platform, user_id, task_type),
                )
        return cur.rowcount

    async def preferences(self, platform: str, user_id: str) -> dict[str, Preference]:
        async with self._db.execute(
            "SELECT task_type, model_key, model_id, model_name, updated_at FROM preferences "
            "WHERE platform=? AND user_id=?",
            (platform, user_id),
        ) as cur:
            rows = await cur.fetchall()
        return {r[0]: Preference(r[1], r[2], r[3], r[4]) for r in rows}

    # -- seen events -------------------------------------------------------------------------
    async def seen_any(self, platform: str, event_ids: Sequence[str]) -> bool:
        if not event_ids:
            return False
        marks = ",".join("?" for _ in event_ids)
        async with self._db.execute(
            f"SELECT 1 FROM seen_events WHERE platform=? AND event_id IN ({marks}) LIMIT 1",
            (platform, *event_ids),
        ) as cur:
            return await cur.fetchone() is not None

    async def intake(
        self,
        platform: str,
        event_ids: Sequence[str],
        job: Job | None = None,
        images: Sequence[StoredImage] = (),
        *,
        max_active: int | None = None,
    ) -> bool:
        now = time.time()
        async with self._transaction() as db:
            if event_ids:
                # one statement for all ids: fewer round trips to the database thread per message
                marks = ",".join("(?,?,?)" for _ in event_ids)
                cur = await db.execute(
                    f"INSERT OR IGNORE INTO seen_events VALUES {marks}",
                    [v for event_id in event_ids for v in (platform, event_id, now)],
                )
                if cur.rowcount != len(event_ids):
                    await db.rollback()
                    return False
            if job is not None:
                if max_active is not None and await self._active_count(db, job) >= max_active:
                    raise TooManyJobs(f"{job.platform}:{job.user_id}")
                await self._insert_job(db, job)
                if images:
                    await db.executemany(
                        "INSERT INTO job_images VALUES (?,?,?,?,?)",
                        [(job.id, i, im.content_type, im.data, im.url) for i, im in enumerate(images)],
                    )
        return True

    @staticmethod
    async def _active_count(db: aiosqlite.Connection, job: Job) -> int:
        marks = ",".join("?" for _ in ACTIVE)
        async with db.execute(
            f"SELECT COUNT(*) FROM jobs WHERE platform=? AND user_id=? AND status IN ({marks})",
            (job.platform, job.user_id, *ACTIVE),
        ) as cur:
            row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def prune_seen(self, older_than_s: float = 7 * 86400) -> int:
        async with self._transaction() as db:
            cur = await db.execute("DELETE FROM seen_events WHERE seen_at < ?", (time.time() - older_than_s,))
            await db.execute("DELETE FROM open_questions WHERE expires_at < ?", (time.time(),))
            await db.execute("DELETE FROM used_actions WHERE used_at < ?", (time.time() - older_than_s,))
        return cur.rowcount

    # -- jobs --------------------------------------------------------------------------------
    async def add_job(self, job: Job) -> None:
        async with self._transaction() as db:
            await self._insert_job(db, job)

    async def _insert_job(self, db: aiosqlite.Connection, job: Job) -> None:
        row = encode_job(job)
        row["lease_owner"] = self.owner
        row["lease_until"] = time.time() + self.lease_s
        cols = ",".join(row)
        marks = ",".join("?" for _ in row)
        await db.execute(f"INSERT INTO jobs ({cols}) VALUES ({marks})", tuple(row.values()))

    async def job_images(self, job_id: str) -> list[StoredImage]:
        async with self._db.execute(
            "SELECT content_type, data, url FROM job_images WHERE job_id=? ORDER BY position", (job_id,)
        ) as cur:
            rows = await cur.fetchall()
        return [StoredImage(r[0], r[1], r[2]) for r in rows]

    async def drop_job_images(self, job_id: str) -> None:
        async with self._transaction() as db:
            await db.execute("DELETE FROM job_images WHERE job_id=?", (job_id,))

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
        async with self._transaction() as db:
            await db.execute(sql, args)
        return job

    async def get_job(self, job_id: str) -> Job | None:
        async with self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)) as cur:
            row = await cur.fetchone()
        return decode_job(row) if row else None

    async def unfinished_jobs(self) -> list[Job]:
        marks = ",".join("?" for _ in ACTIVE)
        async with self._db.execute(
            f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at", ACTIVE
        ) as cur:
            rows = await cur.fetchall()
        return [decode_job(r) for r in rows]

    async def recent_jobs(self, platform: str, user_id: str, limit: int = 10) -> list[Job]:
        async with self._db.execute(
            "SELECT * FROM jobs WHERE platform=? AND user_id=? ORDER BY created_at DESC LIMIT ?",
            (platform, user_id, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [decode_job(r) for r in rows]

    async def active_jobs(self, platform: str, user_id: str) -> list[Job]:
        statuses = (*ACTIVE, WAITING)
        marks = ",".join("?" for _ in statuses)
        async with self._db.execute(
            f"SELECT * FROM jobs WHERE platform=? AND user_id=? AND status IN ({marks}) ORDER BY created_at",
            (platform, user_id, *statuses),
        ) as cur:
            rows = await cur.fetchall()
        return [decode_job(r) for r in rows]

    # -- leases: one process owns every job ------------------------------------------------------
    async def claim_jobs(self, limit: int | None = None) -> list[Job]:
        jobs = await self.unfinished_jobs()
        if limit is not None:
            jobs = jobs[:limit]
        if jobs:
            marks = ",".join("?" for _ in jobs)
            async with self._transaction() as db:
                await db.execute(
                    f"UPDATE jobs SET lease_owner=?, lease_until=? WHERE id IN ({marks})",
                    (self.owner, time.time() + self.lease_s, *(j.id for j in jobs)),
                )
        return jobs

    async def save_leased(self, job: Job, **changes: Any) -> bool:
        sql, args = self._update(job, changes, leased=True)
        async with self._transaction() as db:
            cur = await db.execute(sql, args)
        return cur.rowcount == 1

    async def renew_leases(self, job_ids: Sequence[str]) -> set[str]:
        return set()  # nobody else could have taken them

    async def release_leases(self, job_ids: Sequence[str] | None = None) -> int:
        async with self._transaction() as db:
            if job_ids is None:
                cur = await db.execute(
                    "UPDATE jobs SET lease_owner=NULL, lease_until=NULL WHERE lease_owner=?", (self.owner,)
                )
            else:
                marks = ",".join("?" for _ in job_ids)
                cur = await db.execute(
                    f"UPDATE jobs SET lease_owner=NULL, lease_until=NULL WHERE lease_owner=? AND id IN ({marks})",
                    (self.owner, *job_ids),
                )
        return cur.rowcount

    # -- open questions ------------------------------------------------------------------------
    async def ask(self, question: OpenQuestion) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT OR REPLACE INTO open_questions VALUES (?,?,?,?,?,?,?,?)",
                (
                    question.platform,
                    question.chat_id,
                    question.user_id,
                    question.kind,
                    question.job_id,
                    json.dumps(list(question.options)),
                    question.asked_at,
                    question.expires_at,
                ),
            )

    async def take_question(self, platform: str, chat_id: str, user_id: str) -> OpenQuestion | None:
        async with self._transaction() as db:
            async with db.execute(
                "SELECT * FROM open_questions WHERE platform=? AND chat_id=? AND user_id=?",
                (platform, chat_id, user_id),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            await db.execute(
                "DELETE FROM open_questions WHERE platform=? AND chat_id=? AND user_id=?",
                (platform, chat_id, user_id),
            )
        return question_from(row)

    async def forget_questions_about(self, job_id: str) -> None:
        async with self._transaction() as db:
            await db.execute("DELETE FROM open_questions WHERE job_id=?", (job_id,))

    # -- actions that may happen once ---------------------------------------------------------
    async def use_once(self, action_id: str) -> bool:
        async with self._transaction() as db:
            cur = await db.execute(
                "INSERT OR IGNORE INTO used_actions VALUES (?,?)", (action_id, time.time())
            )
        return cur.rowcount == 1

    # -- credits: budgets and usage ------------------------------------------------------------
    async def reserve_spend(
        self, job: Job, credits: int, since: float, user_limit: int | None, chat_limit: int | None
    ) -> tuple[str, int] | None:
        async with self._transaction() as db:
            for scope, column, value, limit in (
                ("user", "user_id", job.user_id, user_limit),
                ("chat", "chat_id", job.chat_id, chat_limit),
            ):
                if limit is None:
                    continue
                async with db.execute(
                    f"SELECT COALESCE(SUM(credits), 0) FROM spend WHERE platform=? AND {column}=? "
                    "AND created_at>=? AND state!='released' AND job_id!=?",
                    (job.platform, value, since, job.id),
                ) as cur:
                    row = await cur.fetchone()
                used = int(row[0]) if row else 0
                if used + credits > limit:
                    return scope, max(0, limit - used)
            await db.execute(
                "INSERT INTO spend VALUES (?,?,?,?,?,'reserved',?) ON CONFLICT(job_id) DO UPDATE SET "
                "credits=excluded.credits, state='reserved'",
                (job.id, job.platform, job.chat_id, job.user_id, credits, time.time()),
            )
        return None

    async def set_spend_state(self, job_id: str, state: str, credits: int | None = None) -> None:
        async with self._transaction() as db:
            if credits is None:
                await db.execute("UPDATE spend SET state=? WHERE job_id=?", (state, job_id))
            else:
                await db.execute(
                    "UPDATE spend SET state=?, credits=? WHERE job_id=?", (state, credits, job_id)
                )

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
        async with self._db.execute(sql, args) as cur:
            rows = await cur.fetchall()
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    # -- an admin's runtime changes -------------------------------------------------------------
    async def overrides(self) -> dict[str, str]:
        async with self._db.execute("SELECT key, value FROM overrides") as cur:
            rows = await cur.fetchall()
        return {str(r[0]): str(r[1]) for r in rows}

    async def set_override(self, key: str, value: str) -> None:
        async with self._transaction() as db:
            await db.execute(
                "INSERT INTO overrides VALUES (?,?,?) ON CONFLICT(key) DO UPDATE SET value=excluded.value, "
                "updated_at=excluded.updated_at",
                (key, value, time.time()),
            )


__all__ = ["JOB_COLUMNS", "MIGRATIONS", "SqliteStore"]
