"""The PostgreSQL backend (asyncpg): one database that several bot processes share.

- Events are de-duplicated by their primary key (insert-or-nothing), whichever process gets them.
- Each unfinished job is owned through a lease (lease_owner, lease_until: seconds on the
  database's clock, so hosts need not agree on the time). The owner renews it while the job
  runs; a process picks up unowned or expired jobs with FOR UPDATE SKIP LOCKED; the statements
  that mark "creating" (money) and "delivering" check the lease in their WHERE clause, so only
  one process ever creates or delivers a job. A stopping process hands its leases back.
- Budgets and per-person job places are checked and reserved under transaction-scoped advisory
  locks on the person and the chat, so two processes cannot both pass the same limit.

Migrations are versioned in table schema_version, applied under an advisory lock (processes
that start together migrate once).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeAlias

import asyncpg

from bot.store.base import DEFAULT_LEASE_S, Store
from bot.store.model import (
    ACTIVE,
    FINAL,
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

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

#: the same schema as SQLite's MIGRATIONS, version for version, in PostgreSQL's types
PG_MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema
    """
    CREATE TABLE preferences (
        platform   TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        task_type  TEXT NOT NULL,
        model_key  TEXT NOT NULL,
        model_id   TEXT NOT NULL,
        model_name TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL,
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
        credits     BIGINT,
        image_urls  TEXT NOT NULL DEFAULT '[]',
        task_ids    TEXT NOT NULL DEFAULT '[]',
        attempts    INTEGER NOT NULL DEFAULT 0,
        est_min     INTEGER,
        est_max     INTEGER,
        error_kind  TEXT,
        result_url  TEXT,
        cover_url   TEXT,
        target_state TEXT NOT NULL DEFAULT '{}',
        created_at  DOUBLE PRECISION NOT NULL,
        updated_at  DOUBLE PRECISION NOT NULL,
        started_at  DOUBLE PRECISION,
        finished_at DOUBLE PRECISION
    );
    CREATE INDEX jobs_status ON jobs(status);
    CREATE INDEX jobs_user ON jobs(platform, user_id, created_at);
    CREATE TABLE seen_events (
        platform TEXT NOT NULL,
        event_id TEXT NOT NULL,
        seen_at  DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (platform, event_id)
    );
    """,
    # 2: pictures kept with their job; questions to one person in one chat; once-only actions
    """
    CREATE TABLE job_images (
        job_id       TEXT NOT NULL,
        position     INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        data         BYTEA,
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
        asked_at   DOUBLE PRECISION NOT NULL,
        expires_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (platform, chat_id, user_id)
    );
    CREATE TABLE used_actions (
        action_id TEXT PRIMARY KEY,
        used_at   DOUBLE PRECISION NOT NULL
    );
    """,
    # 3: credits reserved, spent or released per job; admins' runtime changes
    """
    CREATE TABLE spend (
        job_id     TEXT PRIMARY KEY,
        platform   TEXT NOT NULL,
        chat_id    TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        credits    BIGINT NOT NULL,
        state      TEXT NOT NULL,
        created_at DOUBLE PRECISION NOT NULL
    );
    CREATE INDEX spend_user ON spend(platform, user_id, created_at);
    CREATE INDEX spend_chat ON spend(platform, chat_id, created_at);
    CREATE TABLE overrides (
        key        TEXT PRIMARY KEY,
        value      TEXT NOT NULL,
        updated_at DOUBLE PRECISION NOT NULL
    );
    """,
    # 4: leases: which process owns a job until when (the database's clock, epoch seconds)
    """
    ALTER TABLE jobs ADD COLUMN lease_owner TEXT;
    ALTER TABLE jobs ADD COLUMN lease_until DOUBLE PRECISION;
    CREATE INDEX jobs_unfinished ON jobs(created_at) WHERE status IN ('accepted', 'creating', 'running', 'delivering');
    """,
)

#: a connection lent by the pool
Connection: TypeAlias = "PoolConnectionProxy[Any] | asyncpg.Connection[Any]"

#: one key for the migration lock, shared by every bot process
_MIGRATION_LOCK = 0x1_3A_B0_7
_NOW = "EXTRACT(EPOCH FROM clock_timestamp())::double precision"
_FREE = f"(lease_owner IS NULL OR lease_until < {_NOW})"


async def _change_preference(con: Connection, platform: str, user_id: str, change: PreferenceChange) -> int:
    """Save (or, with no model, forget) one person's preference for one task type."""
    if change.model_key is None:
        return await _forget_preference(con, platform, user_id, change.task_type)
    await con.execute(
        "INSERT INTO preferences VALUES ($1,$2,$3,$4,$5,$6,$7) ON CONFLICT (platform, user_id, task_type) "
        "DO UPDATE SET model_key=EXCLUDED.model_key, model_id=EXCLUDED.model_id, "
        "model_name=EXCLUDED.model_name, updated_at=EXCLUDED.updated_at",
        platform,
        user_id,
        change.task_type,
        change.model_key,
        change.model_id,
        change.model_name,
        change.at,
    )
    return 1


async def _forget_preference(con: Connection, platform: str, user_id: str, task_type: str | None) -> int:
    """Forget one task type's preference, or all of a person's; how many were removed."""
    if task_type is None:
        status = await con.execute(
            "DELETE FROM preferences WHERE platform=$1 AND user_id=$2", platform, user_id
        )
    else:
        status = await con.execute(
            "DELETE FROM preferences WHERE platform=$1 AND user_id=$2 AND task_type=$3",
            platform,
            user_id,
            task_type,
        )
    return _count(status)


def _count(status: str) -> int:
    """Rows touched, from asyncpg's command tag ("INSERT 0 1", "DELETE 3", "UPDATE 0")."""
    try:
        return int(status.rsplit(" ", 1)[-1])
    except (ValueError, IndexError):
        return 0


async def _take_place(con: Connection, job: Job, max_active: int) -> None:
    """Count the job's person's jobs under way; TooManyJobs when they have `max_active`."""
    # one person's job places, counted and taken under a lock on that person
    await con.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", f"places:{job.platform}:{job.user_id}"
    )
    active = await con.fetchval(
        "SELECT COUNT(*) FROM jobs WHERE platform=$1 AND user_id=$2 AND status = ANY($3::text[])",
        job.platform,
        job.user_id,
        list(ACTIVE),
    )
    if active >= max_active:
        raise TooManyJobs(f"{job.platform}:{job.user_id}")


async def _book(con: Connection, job: Job, credits: int, now: float) -> None:
    """Reserve `credits` for `job` in the spend ledger (again: the new amount)."""
    await con.execute(
        "INSERT INTO spend VALUES ($1,$2,$3,$4,$5,'reserved',$6) ON CONFLICT (job_id) DO UPDATE SET "
        "credits=EXCLUDED.credits, state='reserved'",
        job.id,
        job.platform,
        job.chat_id,
        job.user_id,
        credits,
        now,
    )


async def _claim(con: Connection, action_id: str, now: float) -> None:
    """Mark an action used, or roll the transaction back when it was used before."""
    status = await con.execute(
        "INSERT INTO used_actions VALUES ($1,$2) ON CONFLICT DO NOTHING", action_id, now
    )
    if _count(status) != 1:
        raise _Rollback


class _Rollback(Exception):
    """Leaves a transaction block, undoing what it wrote."""


class PostgresStore(Store):
    """The store on a PostgreSQL database, shared by any number of bot processes."""

    shared = True

    def __init__(
        self, pool: asyncpg.Pool, *, lease_s: float = DEFAULT_LEASE_S, owner: str | None = None
    ) -> None:
        super().__init__(lease_s=lease_s, owner=owner)
        self._pool = pool

    @classmethod
    async def connect(
        cls, url: str, *, lease_s: float = DEFAULT_LEASE_S, owner: str | None = None, max_size: int = 10
    ) -> PostgresStore:
        """Connect (creating and migrating the schema as needed) to the database at `url`."""
        pool = await asyncpg.create_pool(url, min_size=1, max_size=max_size, command_timeout=60)
        store = cls(pool, lease_s=lease_s, owner=owner)
        try:
            await store._migrate()
        except BaseException:
            await pool.close()
            raise
        return store

    async def _migrate(self) -> None:
        async with self._pool.acquire() as con:
            await con.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
            try:
                await con.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
                version = await con.fetchval("SELECT MAX(version) FROM schema_version") or 0
                for number, script in enumerate(PG_MIGRATIONS[version:], start=version + 1):
                    async with con.transaction():
                        await con.execute(script)
                        await con.execute("INSERT INTO schema_version VALUES ($1)", number)
            finally:
                await con.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[Connection]:
        async with self._pool.acquire() as con, con.transaction():
            yield con

    async def schema_version(self) -> int:
        return int(await self._pool.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    async def close(self) -> None:
        await self._pool.close()

    # -- preferences -------------------------------------------------------------------------
    async def get_preference(self, platform: str, user_id: str, task_type: str) -> Preference | None:
        row = await self._pool.fetchrow(
            "SELECT model_key, model_id, model_name, updated_at FROM preferences "
            "WHERE platform=$1 AND user_id=$2 AND task_type=$3",
            platform,
            user_id,
            task_type,
        )
        return Preference(row[0], row[1], row[2], row[3]) if row else None

    async def set_preference(
        self, platform: str, user_id: str, task_type: str, model_key: str, model_id: str, model_name: str
    ) -> float:
        change = PreferenceChange(task_type, model_key, model_id, model_name)
        async with self._pool.acquire() as con:
            await _change_preference(con, platform, user_id, change)
        return change.at

    async def clear_preference(self, platform: str, user_id: str, task_type: str | None = None) -> int:
        async with self._pool.acquire() as con:
            return await _forget_preference(con, platform, user_id, task_type)

    async def preferences(self, platform: str, user_id: str) -> dict[str, Preference]:
        rows = await self._pool.fetch(
            "SELECT task_type, model_key, model_id, model_name, updated_at FROM preferences "
            "WHERE platform=$1 AND user_id=$2",
            platform,
            user_id,
        )
        return {r[0]: Preference(r[1], r[2], r[3], r[4]) for r in rows}

    # -- seen events -------------------------------------------------------------------------
    async def seen_any(self, platform: str, event_ids: Sequence[str]) -> bool:
        if not event_ids:
            return False
        row = await self._pool.fetchrow(
            "SELECT 1 FROM seen_events WHERE platform=$1 AND event_id = ANY($2::text[]) LIMIT 1",
            platform,
            list(event_ids),
        )
        return row is not None

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
        try:
            async with self._transaction() as con:
                if once is not None:
                    await _claim(con, once, now)
                for event_id in event_ids:
                    status = await con.execute(
                        "INSERT INTO seen_events VALUES ($1,$2,$3) ON CONFLICT DO NOTHING",
                        platform,
                        event_id,
                        now,
                    )
                    if _count(status) != 1:
                        raise _Rollback
                if job is not None:
                    if max_active is not None:
                        await _take_place(con, job, max_active)
                    await self._insert_job(con, job)
                    if images:
                        await con.executemany(
                            "INSERT INTO job_images VALUES ($1,$2,$3,$4,$5)",
                            [(job.id, i, im.content_type, im.data, im.url) for i, im in enumerate(images)],
                        )
                    if preference is not None:
                        await _change_preference(con, job.platform, job.user_id, preference)
                    if book is not None:
                        await _book(con, job, book, now)
        except _Rollback:
            return False
        return True

    async def prune_seen(self, older_than_s: float = 7 * 86400) -> int:
        async with self._transaction() as con:
            status = await con.execute(
                "DELETE FROM seen_events WHERE seen_at < $1", time.time() - older_than_s
            )
            await con.execute("DELETE FROM open_questions WHERE expires_at < $1", time.time())
            await con.execute("DELETE FROM used_actions WHERE used_at < $1", time.time() - older_than_s)
        return _count(status)

    # -- jobs --------------------------------------------------------------------------------
    async def add_job(self, job: Job) -> None:
        async with self._transaction() as con:
            await self._insert_job(con, job)

    async def _insert_job(self, con: Connection, job: Job) -> None:
        row = encode_job(job)
        cols = [*row, "lease_owner", "lease_until"]
        marks = [f"${i}" for i in range(1, len(row) + 2)] + [f"{_NOW} + ${len(row) + 2}"]
        await con.execute(
            f"INSERT INTO jobs ({','.join(cols)}) VALUES ({','.join(marks)})",
            *row.values(),
            self.owner,
            self.lease_s,
        )

    async def job_images(self, job_id: str) -> list[StoredImage]:
        rows = await self._pool.fetch(
            "SELECT content_type, data, url FROM job_images WHERE job_id=$1 ORDER BY position", job_id
        )
        return [StoredImage(r[0], bytes(r[1]) if r[1] is not None else None, r[2]) for r in rows]

    async def drop_job_images(self, job_id: str) -> None:
        await self._pool.execute("DELETE FROM job_images WHERE job_id=$1", job_id)

    def _update(self, job: Job, changes: dict[str, Any], leased: bool) -> tuple[str, list[Any]]:
        apply_changes(job, changes)
        row = encode_job(job)
        args: list[Any] = [job.id, list(FINAL)]
        sets = []
        status_arg = ""
        for k, v in row.items():
            if k != "id":
                args.append(v)
                sets.append(f"{k}=${len(args)}")
                if k == "status":
                    status_arg = f"${len(args)}"
        finished = job.status == WAITING or job.status in FINAL
        if finished:
            sets.append("lease_owner=NULL, lease_until=NULL")  # nobody's: waiting for a yes, or done
        elif leased:
            args += [self.owner, self.lease_s]
            sets.append(f"lease_owner=${len(args) - 1}, lease_until={_NOW} + ${len(args)}")
        # a finished job stays finished
        where = f"id=$1 AND NOT (status = ANY($2::text[]) AND {status_arg}::text <> ALL($2::text[]))"
        if leased:
            where += " AND status <> ALL($2::text[])"
            if not finished:
                where += f" AND (lease_owner = ${len(args) - 1} OR {_FREE})"
        return f"UPDATE jobs SET {', '.join(sets)} WHERE {where}", args

    async def save_job(self, job: Job, **changes: Any) -> Job:
        sql, args = self._update(job, changes, leased=False)
        await self._pool.execute(sql, *args)
        return job

    async def get_job(self, job_id: str) -> Job | None:
        row = await self._pool.fetchrow("SELECT * FROM jobs WHERE id=$1", job_id)
        return decode_job(row) if row else None

    async def unfinished_jobs(self) -> list[Job]:
        rows = await self._pool.fetch(
            "SELECT * FROM jobs WHERE status = ANY($1::text[]) ORDER BY created_at", list(ACTIVE)
        )
        return [decode_job(r) for r in rows]

    async def recent_jobs(self, platform: str, user_id: str, limit: int = 10) -> list[Job]:
        rows = await self._pool.fetch(
            "SELECT * FROM jobs WHERE platform=$1 AND user_id=$2 ORDER BY created_at DESC LIMIT $3",
            platform,
            user_id,
            limit,
        )
        return [decode_job(r) for r in rows]

    async def active_jobs(self, platform: str, user_id: str) -> list[Job]:
        rows = await self._pool.fetch(
            "SELECT * FROM jobs WHERE platform=$1 AND user_id=$2 AND status = ANY($3::text[]) ORDER BY created_at",
            platform,
            user_id,
            [*ACTIVE, WAITING],
        )
        return [decode_job(r) for r in rows]

    # -- leases ----------------------------------------------------------------------------------
    async def claim_jobs(self, limit: int | None = None) -> list[Job]:
        rows = await self._pool.fetch(
            f"""
            UPDATE jobs SET lease_owner=$1, lease_until={_NOW} + $2
            WHERE id IN (
                SELECT id FROM jobs
                WHERE status = ANY($3::text[]) AND {_FREE}
                ORDER BY created_at
                LIMIT $4
                FOR UPDATE SKIP LOCKED
            )
            RETURNING *
            """,
            self.owner,
            self.lease_s,
            list(ACTIVE),
            limit,
        )
        return sorted((decode_job(r) for r in rows), key=lambda j: j.created_at)

    async def save_leased(self, job: Job, *, once: str | None = None, **changes: Any) -> bool:
        sql, args = self._update(job, changes, leased=True)
        if once is None:
            return _count(await self._pool.execute(sql, *args)) == 1
        now = time.time()
        try:
            async with self._transaction() as con:
                await _claim(con, once, now)
                if _count(await con.execute(sql, *args)) != 1:
                    raise _Rollback  # not saved: the action stays unused
        except _Rollback:
            return False
        return True

    async def renew_leases(self, job_ids: Sequence[str]) -> set[str]:
        if not job_ids:
            return set()
        async with self._transaction() as con:
            await con.execute(
                f"UPDATE jobs SET lease_owner=$1, lease_until={_NOW} + $2 "
                f"WHERE id = ANY($3::text[]) AND status = ANY($4::text[]) AND (lease_owner=$1 OR {_FREE})",
                self.owner,
                self.lease_s,
                list(job_ids),
                list(ACTIVE),
            )
            rows = await con.fetch(
                "SELECT id FROM jobs WHERE id = ANY($2::text[]) AND lease_owner IS NOT NULL AND lease_owner <> $1",
                self.owner,
                list(job_ids),
            )
        return {r[0] for r in rows}

    async def release_leases(self, job_ids: Sequence[str] | None = None) -> int:
        if job_ids is None:
            status = await self._pool.execute(
                "UPDATE jobs SET lease_owner=NULL, lease_until=NULL WHERE lease_owner=$1", self.owner
            )
        else:
            status = await self._pool.execute(
                "UPDATE jobs SET lease_owner=NULL, lease_until=NULL WHERE lease_owner=$1 AND id = ANY($2::text[])",
                self.owner,
                list(job_ids),
            )
        return _count(status)

    # -- open questions ------------------------------------------------------------------------
    async def ask(self, question: OpenQuestion) -> None:
        await self._pool.execute(
            "INSERT INTO open_questions VALUES ($1,$2,$3,$4,$5,$6,$7,$8) "
            "ON CONFLICT (platform, chat_id, user_id) DO UPDATE SET kind=EXCLUDED.kind, job_id=EXCLUDED.job_id, "
            "options=EXCLUDED.options, asked_at=EXCLUDED.asked_at, expires_at=EXCLUDED.expires_at",
            *question_row(question),
        )

    async def take_question(
        self, platform: str, chat_id: str, user_id: str, kind: str | None = None
    ) -> OpenQuestion | None:
        # read and removed in one statement: of two processes answering, one gets it
        row = await self._pool.fetchrow(
            "DELETE FROM open_questions WHERE platform=$1 AND chat_id=$2 AND user_id=$3 "
            "AND ($4::text IS NULL OR kind=$4) RETURNING *",
            platform,
            chat_id,
            user_id,
            kind,
        )
        return question_from(row) if row else None

    async def forget_questions_about(self, job_id: str) -> None:
        await self._pool.execute("DELETE FROM open_questions WHERE job_id=$1", job_id)

    # -- actions that may happen once ---------------------------------------------------------
    async def use_once(self, action_id: str) -> bool:
        status = await self._pool.execute(
            "INSERT INTO used_actions VALUES ($1,$2) ON CONFLICT DO NOTHING", action_id, time.time()
        )
        return _count(status) == 1

    # -- credits: budgets and usage ------------------------------------------------------------
    async def reserve_spend(
        self, job: Job, credits: int, since: float, user_limit: int | None, chat_limit: int | None
    ) -> tuple[str, int] | None:
        async with self._transaction() as con:
            # always the person first, then the chat: two processes never wait on each other in a circle
            for scope, column, value, limit in (
                ("user", "user_id", job.user_id, user_limit),
                ("chat", "chat_id", job.chat_id, chat_limit),
            ):
                if limit is None:
                    continue
                await con.execute(
                    "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                    f"spend:{scope}:{job.platform}:{value}",
                )
                used = int(
                    await con.fetchval(
                        f"SELECT COALESCE(SUM(credits), 0) FROM spend WHERE platform=$1 AND {column}=$2 "
                        "AND created_at>=$3 AND state<>'released' AND job_id<>$4",
                        job.platform,
                        value,
                        since,
                        job.id,
                    )
                )
                if used + credits > limit:
                    return scope, max(0, limit - used)
            await _book(con, job, credits, time.time())
        return None

    async def set_spend_state(self, job_id: str, state: str, credits: int | None = None) -> None:
        if credits is None:
            await self._pool.execute("UPDATE spend SET state=$1 WHERE job_id=$2", state, job_id)
        else:
            await self._pool.execute(
                "UPDATE spend SET state=$1, credits=$2 WHERE job_id=$3", state, credits, job_id
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
        args: list[Any] = [platform, since]
        where = ["platform=$1", "created_at>=$2", "state<>'released'"]
        if user_id is not None:
            args.append(user_id)
            where.append(f"user_id=${len(args)}")
        if chat_id is not None:
            args.append(chat_id)
            where.append(f"chat_id=${len(args)}")
        group = by if by in ("user_id", "chat_id") else None
        select = f"{group}, " if group else "''::text, "
        sql = f"SELECT {select}COALESCE(SUM(credits),0), COUNT(*) FROM spend WHERE {' AND '.join(where)}"
        if group:
            sql += f" GROUP BY {group} ORDER BY 2 DESC LIMIT 20"
        rows = await self._pool.fetch(sql, *args)
        return [(str(r[0]), int(r[1]), int(r[2])) for r in rows]

    # -- an admin's runtime changes -------------------------------------------------------------
    async def overrides(self) -> dict[str, str]:
        rows = await self._pool.fetch("SELECT key, value FROM overrides")
        return {str(r[0]): str(r[1]) for r in rows}

    async def set_override(self, key: str, value: str) -> None:
        await self._pool.execute(
            "INSERT INTO overrides VALUES ($1,$2,$3) ON CONFLICT (key) DO UPDATE SET value=EXCLUDED.value, "
            "updated_at=EXCLUDED.updated_at",
            key,
            value,
            time.time(),
        )
