"""Durable state on one SQLite file (aiosqlite): preferences, jobs, seen events.

Jobs are written before every step that costs or delivers, so a restart can resume polling
and deliver exactly once. Migrations are versioned with PRAGMA user_version.
"""

from __future__ import annotations

import json
import time
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
)

#: states a job passes through; the last two are final
ACTIVE = ("accepted", "creating", "running", "delivering")
FINAL = ("delivered", "failed")

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
        await self._db.execute(
            "INSERT INTO preferences VALUES (?,?,?,?,?,?,?) ON CONFLICT(platform, user_id, task_type) "
            "DO UPDATE SET model_key=excluded.model_key, model_id=excluded.model_id, "
            "model_name=excluded.model_name, updated_at=excluded.updated_at",
            (platform, user_id, task_type, model_key, model_id, model_name, time.time()),
        )
        await self._db.commit()

    async def clear_preference(self, platform: str, user_id: str, task_type: str | None = None) -> int:
        """Forget one task type's preference, or all of a user's; returns how many were removed."""
        if task_type is None:
            cur = await self._db.execute("DELETE FROM preferences WHERE platform=? AND user_id=?", (platform, user_id))
        else:
            cur = await self._db.execute(
                "DELETE FROM preferences WHERE platform=? AND user_id=? AND task_type=?",
                (platform, user_id, task_type),
            )
        await self._db.commit()
        return cur.rowcount

    # -- seen events -------------------------------------------------------------------------
    async def mark_seen(self, platform: str, event_id: str) -> bool:
        """Remember an event id; True the first time, False for a redelivery."""
        cur = await self._db.execute(
            "INSERT OR IGNORE INTO seen_events VALUES (?,?,?)", (platform, event_id, time.time())
        )
        await self._db.commit()
        return cur.rowcount == 1

    async def prune_seen(self, older_than_s: float = 7 * 86400) -> int:
        cur = await self._db.execute("DELETE FROM seen_events WHERE seen_at < ?", (time.time() - older_than_s,))
        await self._db.commit()
        return cur.rowcount

    # -- jobs --------------------------------------------------------------------------------
    async def add_job(self, job: Job) -> None:
        row = _encode(job)
        cols = ",".join(row)
        marks = ",".join("?" for _ in row)
        await self._db.execute(f"INSERT INTO jobs ({cols}) VALUES ({marks})", tuple(row.values()))
        await self._db.commit()

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
        await self._db.execute(f"UPDATE jobs SET {sets} WHERE id=?", (*values, job.id))
        await self._db.commit()
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

    async def recent_jobs(self, platform: str, user_id: str, limit: int = 10) -> list[Job]:
        async with self._db.execute(
            "SELECT * FROM jobs WHERE platform=? AND user_id=? ORDER BY created_at DESC LIMIT ?",
            (platform, user_id, limit),
        ) as cur:
            rows = await cur.fetchall()
        return [_decode(r) for r in rows]
