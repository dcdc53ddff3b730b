"""The Store interface every backend implements, and `Store.open(url)` that picks one.

- SQLite (aiosqlite, the default): one file, one process. Leases are written but not needed:
  the one process owns every job, and a restart takes them all back at once.
- PostgreSQL (asyncpg): several processes share one database. Each job is owned through a
  lease (owner id + expiry) renewed while it runs; unowned or expired jobs are picked up with
  FOR UPDATE SKIP LOCKED; the steps that pay or deliver check the lease in the same statement
  that marks them, so two processes never both create or both deliver a job.
"""

from __future__ import annotations

import os
import socket
import uuid
from abc import ABC, abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.store.model import Job, OpenQuestion, Preference, PreferenceChange, StoredImage

#: how long a job stays owned without a renewal (BOT_LEASE_S)
DEFAULT_LEASE_S = 30.0


def sqlite_path(url: str) -> str:
    """The file of a `sqlite:///relative/path` or `sqlite:////absolute/path` URL (or a plain path)."""
    if url.startswith("sqlite:///"):
        return url.removeprefix("sqlite:///")
    if url.startswith("sqlite://"):
        return url.removeprefix("sqlite://")
    return url


def is_postgres(url: str) -> bool:
    return url.startswith(("postgresql://", "postgres://"))


def new_owner_id() -> str:
    """Names this process in the leases it holds (host, pid and a random part: pids repeat)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Store(ABC):
    """The bot's database. `await Store.open(url_or_path)`: a SQLite path or `sqlite:///…` URL,
    or a `postgresql://…` URL."""

    #: True when several processes may share the database (jobs are then owned through leases)
    shared: bool = False

    def __init__(self, *, lease_s: float = DEFAULT_LEASE_S, owner: str | None = None) -> None:
        self.lease_s = lease_s
        self.owner = owner or new_owner_id()

    @classmethod
    async def open(
        cls, path: Path | str, *, lease_s: float = DEFAULT_LEASE_S, owner: str | None = None
    ) -> Store:
        """Open (creating and migrating as needed) the database at `path`."""
        target = str(path)
        if is_postgres(target):
            from bot.store.postgres import PostgresStore

            return await PostgresStore.connect(target, lease_s=lease_s, owner=owner)
        from bot.store.sqlite import SqliteStore

        return await SqliteStore.connect(sqlite_path(target), lease_s=lease_s, owner=owner)

    @abstractmethod
    async def schema_version(self) -> int: ...

    @abstractmethod
    async def close(self) -> None: ...

    # -- preferences -------------------------------------------------------------------------
    @abstractmethod
    async def get_preference(self, platform: str, user_id: str, task_type: str) -> Preference | None: ...

    @abstractmethod
    async def set_preference(
        self, platform: str, user_id: str, task_type: str, model_key: str, model_id: str, model_name: str
    ) -> float:
        """Save one person's preferred model for one task type; the updated_at it was saved with."""

    @abstractmethod
    async def clear_preference(self, platform: str, user_id: str, task_type: str | None = None) -> int:
        """Forget one task type's preference, or all of a user's; returns how many were removed."""

    @abstractmethod
    async def preferences(self, platform: str, user_id: str) -> dict[str, Preference]:
        """Every preferred model of one person, by task type."""

    # -- seen events -------------------------------------------------------------------------
    @abstractmethod
    async def seen_any(self, platform: str, event_ids: Sequence[str]) -> bool:
        """True when any of the ids was seen before (a cheap read before the real intake)."""

    async def mark_seen(self, platform: str, event_id: str) -> bool:
        """Remember an event id; True the first time, False for a redelivery."""
        return await self.intake(platform, [event_id])

    @abstractmethod
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
        """Accept one message: mark its event ids seen and write its job (with its pictures and
        this process's lease on it) in ONE transaction, so a crash can neither lose the request
        nor leave it half-recorded. False, writing nothing, when any of the ids was seen before
        (a redelivery, here or in another process), or when the action `once` names (a button
        press: "rerun:<job>") was used before; it is claimed in the same transaction. With
        `max_active`, raises TooManyJobs, writing nothing, when the job's person already has that
        many jobs under way. `preference`: the change to the job's person's preferred model
        the request made, written with the job."""

    @abstractmethod
    async def prune_seen(self, older_than_s: float = 7 * 86400) -> int: ...

    # -- jobs --------------------------------------------------------------------------------
    @abstractmethod
    async def add_job(self, job: Job) -> None: ...

    @abstractmethod
    async def job_images(self, job_id: str) -> list[StoredImage]:
        """The pictures kept with a job at intake, in order."""

    @abstractmethod
    async def drop_job_images(self, job_id: str) -> None:
        """Forget a job's picture bytes once they are uploaded (the job keeps their URLs)."""

    @abstractmethod
    async def save_job(self, job: Job, **changes: Any) -> Job:
        """Apply `changes` to `job` and write the whole row. A finished job stays finished: a
        write that would take it from a final state back to an unfinished one is ignored."""

    @abstractmethod
    async def get_job(self, job_id: str) -> Job | None: ...

    @abstractmethod
    async def unfinished_jobs(self) -> list[Job]: ...

    @abstractmethod
    async def recent_jobs(self, platform: str, user_id: str, limit: int = 10) -> list[Job]: ...

    @abstractmethod
    async def active_jobs(self, platform: str, user_id: str) -> list[Job]:
        """A person's jobs that are not finished yet (or wait for their OK), oldest first."""

    # -- leases --------------------------------------------------------------------------------
    @abstractmethod
    async def claim_jobs(self, limit: int | None = None) -> list[Job]:
        """Take the lease on unfinished jobs nobody holds (unowned, or their lease expired) and
        return them, oldest first. SQLite: every unfinished job (one process owns them all)."""

    @abstractmethod
    async def save_leased(self, job: Job, *, once: str | None = None, **changes: Any) -> bool:
        """`save_job`, but only while this process holds (or may take) the job's lease and the
        job is not finished — checked and written in one statement, which also renews the lease.
        False, writing nothing, when another process holds it or it is finished. With `once`,
        the action it names ("confirm:<job>") is claimed in the same transaction: False, writing
        nothing, when it was used before; left unused when the job could not be saved."""

    @abstractmethod
    async def renew_leases(self, job_ids: Sequence[str]) -> set[str]:
        """Extend this process's leases on `job_ids`; returns the ids another process holds now
        (lost: stop working on them)."""

    @abstractmethod
    async def release_leases(self, job_ids: Sequence[str] | None = None) -> int:
        """Hand leases back (all of this process's when None), so another process picks the
        jobs up at once rather than after the lease time."""

    # -- open questions ------------------------------------------------------------------------
    @abstractmethod
    async def ask(self, question: OpenQuestion) -> None:
        """Remember a question to one person in one chat (replacing an older one there)."""

    @abstractmethod
    async def take_question(
        self, platform: str, chat_id: str, user_id: str, kind: str | None = None
    ) -> OpenQuestion | None:
        """The person's question in this chat, removed as it is read (an answer is used once);
        None when there is none, or when `kind` is given and the question is of another kind
        (it then stays open). An expired one is returned too (see `expires_at`), so the caller
        can say it expired."""

    @abstractmethod
    async def forget_questions_about(self, job_id: str) -> None:
        """A question is moot once its job was answered another way (a button instead of words)."""

    # -- actions that may happen once ---------------------------------------------------------
    @abstractmethod
    async def use_once(self, action_id: str) -> bool:
        """Claim an action (a button press on one message); True only the first time, across
        double presses, redeliveries, restarts and processes."""

    # -- credits: budgets and usage ------------------------------------------------------------
    @abstractmethod
    async def reserve_spend(
        self, job: Job, credits: int, since: float, user_limit: int | None, chat_limit: int | None
    ) -> tuple[str, int] | None:
        """Check and reserve `credits` for `job` in one transaction. None when reserved (again,
        for a job that already holds a reservation); ("user" | "chat", credits left) when that
        budget would be exceeded, reserving nothing."""

    @abstractmethod
    async def set_spend_state(self, job_id: str, state: str, credits: int | None = None) -> None:
        """Mark a job's credits "spent" (with what it finally cost) or "released"."""

    @abstractmethod
    async def usage(
        self,
        platform: str,
        since: float,
        *,
        user_id: str | None = None,
        chat_id: str | None = None,
        by: str | None = None,
    ) -> list[tuple[str, int, int]]:
        """Credits (reserved or spent) and jobs since `since`: for one person or chat, or per
        "user_id" / "chat_id" (`by`), largest first. Rows are (who, credits, jobs)."""

    # -- an admin's runtime changes -------------------------------------------------------------
    @abstractmethod
    async def overrides(self) -> dict[str, str]: ...

    @abstractmethod
    async def set_override(self, key: str, value: str) -> None: ...
