"""Durable state on one SQLite file (aiosqlite): preferences, jobs, seen events.

Jobs are written before every step that costs or delivers, so a restart can resume polling
and deliver exactly once. Migrations are versioned with PRAGMA user_version.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import aiosqlite

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
)

#: states a job passes through; the FINAL ones end it
ACTIVE = ("accepted", "creating", "running", "delivering")
#: priced and waiting for its requester's OK (not resumed at start-up: nothing runs until a yes)
WAITING = "awaiting_confirm"
FINAL = ("delivered", "failed", "cancelled", "expired", "uncertain")

_JSON_FIELDS = {"request", "params", "image_urls", "task_ids", "target_state"}


@dataclass
class Job:
    """One user request, from accepted to delivered or failed."""

    id: str
    platform: str
    chat_id: str
    user_id: str
    language: str
    task_type: str
    prompt: str
    request: dict[str, Any]
    status: str = "accepted"
    reply_to: str | None = None
    model_key: str | None = None
    model_id: str | None = None
    model_name: str | None = None
    model_version: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    credits: int | None = None
    image_urls: list[str] = field(default_factory=list)
    task_ids: list[str] = field(default_factory=list)
    attempts: int = 0
    est_min: int | None = None
    est_max: int | None = None
    error_kind: str | None = None
    result_url: str | None = None
    cover_url: str | None = None
    target_state: dict[str, str] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None


@dataclass(frozen=True)
class StoredImage:
    """A picture kept with its job: verified bytes, or the public URL it came from."""

    content_type: str
    data: bytes | None = None
    url: str | None = None


@dataclass(frozen=True)
class OpenQuestion:
    """Something the bot asked one person in one chat, waiting for a yes or no.

    kind: "retry" (a failed job; `options` are model ids to try, first = suggested) or
    "confirm" (a job over the confirm threshold waits for a yes before it is paid)."""

    platform: str
    chat_id: str
    user_id: str
    kind: str
    job_id: str
    options: tuple[str, ...]
    asked_at: float
    expires_at: float


@dataclass(frozen=True)
class Preference:
    model_key: str
    model_id: str
    model_name: str
    updated_at: float


_JOB_COLUMNS = [f.name for f in fields(Job)]


def _encode(job: Job) -> dict[str, Any]:
    row = asdict(job)
    for k in _JSON_FIELDS:
        row[k] = json.dumps(row[k], ensure_ascii=False)
    return row


def _decode(row: aiosqlite.Row) -> Job:
    data = {k: row[k] for k in _JOB_COLUMNS}
    for k in _JSON_FIELDS:
        data[k] = json.loads(data[k])
    return Job(**data)


class Store:
    """The bot's database. Open with `await Store.open(path)`; one connection, WAL journal."""

    def __init__(self, db: aiosqlite.Connection) -> None:
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
    async def open(cls, path: Path | str) -> Store:
        """Open (creating and migrating as needed) the SQLite file at `path`."""
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        db = await aiosqlite.connect(str(path))
        db.row_factory = aiosqlite.Row
        await db.execute("PRAGMA journal_mode=WAL")
        await db.execute("PRAGMA synchronous=NORMAL")
        await db.execute("PRAGMA busy_timeout=5000")
        store = cls(db)
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
        """Forget one task type's preference, or all of a user's; returns how many were removed."""
        async with self._transaction() as db:
            if task_type is None:
                cur = await db.execute("DELETE FROM preferences WHERE platform=? AND user_id=?", (platform, user_id))
            else:
                cur = await db.execute(
                    "DELETE FROM preferences WHERE platform=? AND user_id=? AND task_type=?",
                    (platform, user_id, task_type),
                )
        return cur.rowcount

    # -- seen events -------------------------------------------------------------------------
    async def seen_any(self, platform: str, event_ids: Sequence[str]) -> bool:
        """True when any of the ids was seen before (a cheap read before the real intake)."""
        if not event_ids:
            return False
        marks = ",".join("?" for _ in event_ids)
        async with self._db.execute(
            f"SELECT 1 FROM seen_events WHERE platform=? AND event_id IN ({marks}) LIMIT 1", (platform, *event_ids)
        ) as cur:
            return await cur.fetchone() is not None

    async def mark_seen(self, platform: str, event_id: str) -> bool:
        """Remember an event id; True the first time, False for a redelivery."""
        return await self.intake(platform, [event_id])

    async def intake(
        self, platform: str, event_ids: Sequence[str], job: Job | None = None,
        images: Sequence[StoredImage] = (),
    ) -> bool:
        """Accept one message: mark its event ids seen and write its job (with its pictures) in
        ONE transaction, so a crash can neither lose the request nor leave it half-recorded.
        False, writing nothing, when any of the ids was seen before (a redelivery)."""
        now = time.time()
        async with self._transaction() as db:
            for event_id in event_ids:
                cur = await db.execute("INSERT OR IGNORE INTO seen_events VALUES (?,?,?)", (platform, event_id, now))
                if cur.rowcount != 1:
                    await db.rollback()
                    return False
            if job is not None:
                await self._insert_job(db, job)
                await db.executemany(
                    "INSERT INTO job_images VALUES (?,?,?,?,?)",
                    [(job.id, i, im.content_type, im.data, im.url) for i, im in enumerate(images)],
                )
        return True

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

    @staticmethod
    async def _insert_job(db: aiosqlite.Connection, job: Job) -> None:
        row = _encode(job)
        cols = ",".join(row)
        marks = ",".join("?" for _ in row)
        await db.execute(f"INSERT INTO jobs ({cols}) VALUES ({marks})", tuple(row.values()))

    async def job_images(self, job_id: str) -> list[StoredImage]:
        """The pictures kept with a job at intake, in order."""
        async with self._db.execute(
            "SELECT content_type, data, url FROM job_images WHERE job_id=? ORDER BY position", (job_id,)
        ) as cur:
            rows = await cur.fetchall()
        return [StoredImage(r[0], r[1], r[2]) for r in rows]

    async def drop_job_images(self, job_id: str) -> None:
        """Forget a job's picture bytes once they are uploaded (the job keeps their URLs)."""
        async with self._transaction() as db:
            await db.execute("DELETE FROM job_images WHERE job_id=?", (job_id,))

    async def save_job(self, job: Job, **changes: Any) -> Job:
        """Apply `changes` to `job` and write the whole row (one small row: simpler than diffs)."""
        for k, v in changes.items():
            if k not in _JOB_COLUMNS:
                raise AttributeError(k)
            setattr(job, k, v)
        job.updated_at = time.time()
        row = _encode(job)
        sets = ",".join(f"{k}=?" for k in row if k != "id")
        values = [v for k, v in row.items() if k != "id"]
        async with self._transaction() as db:
            await db.execute(f"UPDATE jobs SET {sets} WHERE id=?", (*values, job.id))
        return job

    async def get_job(self, job_id: str) -> Job | None:
        async with self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)) as cur:
            row = await cur.fetchone()
        return _decode(row) if row else None

    async def unfinished_jobs(self) -> list[Job]:
        marks = ",".join("?" for _ in ACTIVE)
        async with self._db.execute(
            f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY created_at", ACTIVE
        ) as cur:
            rows = await cur.fetchall()
        return [_decode(r) for r in rows]

    async def preferences(self, platform: str, user_id: str) -> dict[str, Preference]:
        """Every preferred model of one person, by task type."""
        async with self._db.execute(
            "SELECT task_type, model_key, model_id, model_name, updated_at FROM preferences WHERE platform=? AND user_id=?",
            (platform, user_id),
        ) as cur:
            rows = await cur.fetchall()
        return {r[0]: Preference(r[1], r[2], r[3], r[4]) for r in rows}

    async def recent_jobs(self, platform: str, user_id: str, limit: int = 10) -> list[Job]:
        async with self._db.execute(
            "SELECT * FROM jobs WHERE platform=? AND user_id=? ORDER BY created_at DESC LIMIT ?",
            (platform, user_id, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [_decode(r) for r in rows]

    async def active_jobs(self, platform: str, user_id: str) -> list[Job]:
        """A person's jobs that are not finished yet (or wait for their OK), oldest first."""
        statuses = (*ACTIVE, WAITING)
        marks = ",".join("?" for _ in statuses)
        async with self._db.execute(
            f"SELECT * FROM jobs WHERE platform=? AND user_id=? AND status IN ({marks}) ORDER BY created_at",
            (platform, user_id, *statuses),
        ) as cur:
            rows = await cur.fetchall()
        return [_decode(r) for r in rows]

    # -- open questions ------------------------------------------------------------------------
    async def ask(self, question: OpenQuestion) -> None:
        """Remember a question to one person in one chat (replacing an older one there)."""
        async with self._transaction() as db:
            await db.execute(
                "INSERT OR REPLACE INTO open_questions VALUES (?,?,?,?,?,?,?,?)",
                (question.platform, question.chat_id, question.user_id, question.kind, question.job_id,
                 json.dumps(list(question.options)), question.asked_at, question.expires_at),
            )

    async def take_question(self, platform: str, chat_id: str, user_id: str) -> OpenQuestion | None:
        """The person's question in this chat, removed as it is read (an answer is used once);
        None when there is none. An expired one is returned too (see `expires_at`), so the
        caller can say it expired."""
        async with self._transaction() as db:
            async with db.execute(
                "SELECT * FROM open_questions WHERE platform=? AND chat_id=? AND user_id=?",
                (platform, chat_id, user_id),
            ) as cur:
                row = await cur.fetchone()
            if row is None:
                return None
            await db.execute(
                "DELETE FROM open_questions WHERE platform=? AND chat_id=? AND user_id=?", (platform, chat_id, user_id)
            )
        return OpenQuestion(row["platform"], row["chat_id"], row["user_id"], row["kind"], row["job_id"],
                            tuple(json.loads(row["options"])), row["asked_at"], row["expires_at"])

    async def forget_questions_about(self, job_id: str) -> None:
        """A question is moot once its job was answered another way (a button instead of words)."""
        async with self._transaction() as db:
            await db.execute("DELETE FROM open_questions WHERE job_id=?", (job_id,))

    # -- actions that may happen once ---------------------------------------------------------
    async def use_once(self, action_id: str) -> bool:
        """Claim an action (a button press on one message); True only the first time, across
        double presses, redeliveries and restarts."""
        async with self._transaction() as db:
            cur = await db.execute("INSERT OR IGNORE INTO used_actions VALUES (?,?)", (action_id, time.time()))
        return cur.rowcount == 1

    # -- credits: budgets and usage ------------------------------------------------------------
    async def reserve_spend(
        self, job: Job, credits: int, since: float, user_limit: int | None, chat_limit: int | None
    ) -> tuple[str, int] | None:
        """Check and reserve `credits` for `job` in one transaction. None when reserved (again,
        for a job that already holds a reservation); ("user" | "chat", credits left) when that
        budget would be exceeded, reserving nothing."""
        async with self._transaction() as db:
            for scope, column, value, limit in (("user", "user_id", job.user_id, user_limit),
                                                 ("chat", "chat_id", job.chat_id, chat_limit)):
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
        """Mark a job's credits "spent" (with what it finally cost) or "released"."""
        async with self._transaction() as db:
            if credits is None:
                await db.execute("UPDATE spend SET state=? WHERE job_id=?", (state, job_id))
            else:
                await db.execute("UPDATE spend SET state=?, credits=? WHERE job_id=?", (state, credits, job_id))

    async def usage(self, platform: str, since: float, *, user_id: str | None = None,
                    chat_id: str | None = None, by: str | None = None) -> list[tuple[str, int, int]]:
        """Credits (reserved or spent) and jobs since `since`: for one person or chat, or per
        "user_id" / "chat_id" (`by`), largest first. Rows are (who, credits, jobs)."""
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
                "updated_at=excluded.updated_at", (key, value, time.time()),
            )
