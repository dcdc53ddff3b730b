"""More than one bot process on one PostgreSQL database (issue 14): two real BotCores, each
with its own store connection pool, on a fresh database in the session's throwaway cluster,
against the real sandbox over HTTP. What must hold:

- an event delivered to both processes becomes one job, created once, delivered once;
- a killed process's job is taken over within the lease time and delivered once, never paid again;
- a process that stops hands its leases back, so another carries its jobs on at once;
- one person's job places are counted in the database, across processes.

Plus the settings that choose the backend and Discord's shards.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from adapters.base import Incoming
from bot.catalog import load_catalog
from bot.config import Settings
from bot.core import BotCore
from bot.ima import ImaClient
from bot.sandbox import Sandbox
from bot.store import Store
from bot.store.pgcluster import Cluster
from tests.conftest import RecordingConversation, close_core, make_settings, new_pg_database

#: short, so a take-over is quick to see, yet long enough for a loaded machine (two suites side by side)
LEASE_S = 1.0


async def open_process(settings: Settings, owner: str) -> BotCore:
    """One bot process: its own IMA client and its own connection pool to the shared database."""
    store = await Store.open(settings.db_url, lease_s=settings.bot_lease_s, owner=owner)
    return BotCore(
        settings=settings, client=ImaClient.from_settings(settings), store=store, catalog=load_catalog()
    )


def kill(core: BotCore) -> None:
    """What SIGKILL leaves: the process's jobs stop mid-step and its leases stay, unrenewed."""
    if core._leases is not None:
        core._leases.cancel()
    for running in list(core._jobs.values()):
        running.task.cancel()


async def until(condition: Callable[[], Awaitable[bool]], within: float = 30) -> None:
    async with asyncio.timeout(within):
        while not await condition():  # noqa: ASYNC110
            await asyncio.sleep(0.02)


def say(text: str, user: str = "u1", event: str = "ev-1") -> Incoming:
    return Incoming(platform="console", chat_id=f"chat-{user}", user_id=user, text=text, event_id=event)


@pytest.fixture
async def pg_settings(sandbox: Sandbox, tmp_path: Path, pg_cluster: Cluster) -> Settings:
    url = await new_pg_database(pg_cluster)
    return make_settings(sandbox, tmp_path / "unused.sqlite3", bot_db_url=url, bot_lease_s=LEASE_S)


async def test_an_event_delivered_to_two_processes_is_one_job_paid_and_delivered_once(
    sandbox: Sandbox, pg_settings: Settings
) -> None:
    a, b = await open_process(pg_settings, "a"), await open_process(pg_settings, "b")
    conv_a, conv_b = RecordingConversation(), RecordingConversation()
    try:
        started = await asyncio.gather(
            a.handle(say("make a video of a fox in the snow"), conv_a),
            b.handle(say("make a video of a fox in the snow"), conv_b),
        )
        runs = [r for r in started if r is not None]
        assert len(runs) == 1
        assert await runs[0].wait() == "delivered"
        assert len(conv_a.of("video")) + len(conv_b.of("video")) == 1
        assert len(sandbox.ledger) == 1
    finally:
        await close_core(a)
        await close_core(b)


async def test_a_killed_process_is_taken_over_within_the_lease_time_and_paid_once(
    sandbox: Sandbox, pg_settings: Settings
) -> None:
    a, b = await open_process(pg_settings, "a"), await open_process(pg_settings, "b")
    conv_a, conv_b = RecordingConversation(), RecordingConversation()
    try:
        await b.resume(lambda target: conv_b)  # b is up: renewing, and watching for expired leases
        run = await a.handle(say("make a 10 second video of waves on black rocks with Kling O1"), conv_a)
        assert run is not None

        async def created() -> bool:
            job = await a.store.get_job(run.job_id)
            return job is not None and job.status == "running"

        await until(created)
        kill(a)
        killed_at = time.monotonic()

        async def taken_over() -> bool:
            return bool(b._jobs) or bool(conv_b.of("video"))

        await until(taken_over)
        took = time.monotonic() - killed_at
        assert took < LEASE_S * 2.5, took  # the lease ran out, then b's next look picked it up
        await b.wait_idle()
        assert len(conv_b.of("video")) == 1 and conv_a.of("video") == []
        assert len(sandbox.ledger) == 1  # polled on, never created again
        job = await b.store.get_job(run.job_id)
        assert job is not None and job.status == "delivered"
    finally:
        await close_core(a)
        await close_core(b)


async def test_a_stopping_process_hands_its_jobs_over_at_once(
    sandbox: Sandbox, pg_settings: Settings
) -> None:
    slow = pg_settings.model_copy(update={"bot_lease_s": 30.0})
    a, b = await open_process(slow, "a"), await open_process(pg_settings, "b")
    conv_a, conv_b = RecordingConversation(), RecordingConversation()
    try:
        await b.resume(lambda target: conv_b)
        run = await a.handle(say("make a 10 second video of a lighthouse in a storm with Kling O1"), conv_a)
        assert run is not None

        async def created() -> bool:
            job = await a.store.get_job(run.job_id)
            return job is not None and job.status == "running"

        await until(created)
        await a.cancel_all()  # a rolling restart: a stops and hands its leases back
        stopped_at = time.monotonic()
        await until(lambda: asyncio.sleep(0, bool(b._jobs) or bool(conv_b.of("video"))))
        assert time.monotonic() - stopped_at < 30 / 2  # long before a's 30 s lease could expire
        await b.wait_idle()
        assert len(conv_b.of("video")) == 1 and len(sandbox.ledger) == 1
    finally:
        await close_core(a)
        await close_core(b)


async def test_one_persons_job_places_are_shared_by_every_process(
    sandbox: Sandbox, pg_settings: Settings
) -> None:
    one = pg_settings.model_copy(update={"bot_max_jobs_per_user": 1})
    a, b = await open_process(one, "a"), await open_process(one, "b")
    conv_a, conv_b = RecordingConversation(), RecordingConversation()
    try:
        started = await asyncio.gather(
            a.handle(say("make a video of a paper boat", event="e1"), conv_a),
            b.handle(say("make a video of a hot air balloon", event="e2"), conv_b),
        )
        assert len([r for r in started if r is not None]) == 1
        refusal = a.t("chat.too_many_jobs", "en", limit=1)
        assert (conv_a.texts() + conv_b.texts()).count(refusal) == 1, conv_a.texts() + conv_b.texts()
        await a.wait_idle()
        await b.wait_idle()
    finally:
        await close_core(a)
        await close_core(b)


# -- settings -------------------------------------------------------------------------------------------
def test_the_database_is_chosen_by_url_and_the_path_still_works(tmp_path: Path) -> None:
    assert (
        Settings(_env_file=None, bot_db_path=tmp_path / "x.sqlite3").db_url
        == f"sqlite:///{tmp_path}/x.sqlite3"
    )
    url = "postgresql://bot:secret@127.0.0.1:5432/bot"
    assert Settings(_env_file=None, bot_db_url=url).db_url == url
    assert Settings(_env_file=None, bot_db_url="").db_url == "sqlite:///data/bot.sqlite3"
    with pytest.raises(ValueError, match="BOT_DB_URL"):
        Settings(_env_file=None, bot_db_url="mysql://x/y")


async def test_a_sqlite_url_opens_the_sqlite_store(tmp_path: Path) -> None:
    store = await Store.open(f"sqlite:///{tmp_path}/a/b.sqlite3")
    assert not store.shared and (tmp_path / "a" / "b.sqlite3").exists()
    await store.close()


def test_discord_shards_from_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    import discord

    from adapters.discord.adapter import DiscordAdapter
    from bot.core import BotCore

    def client(**env: str) -> discord.Client:
        for k, v in env.items():
            monkeypatch.setenv(k, v)
        settings = Settings(_env_file=None, discord_token="t")
        for k in env:
            monkeypatch.delenv(k)
        return DiscordAdapter(settings, BotCore.__new__(BotCore)).client

    plain = client()
    assert not isinstance(plain, discord.AutoShardedClient)
    some = client(DISCORD_SHARD_COUNT="4", DISCORD_SHARD_IDS="0,2")
    assert isinstance(some, discord.AutoShardedClient) and some.shard_count == 4 and some.shard_ids == [0, 2]
    every = client(DISCORD_SHARD_COUNT="2")
    assert isinstance(every, discord.AutoShardedClient) and every.shard_count == 2 and every.shard_ids is None
    auto = client(DISCORD_SHARD_COUNT="auto")
    assert isinstance(auto, discord.AutoShardedClient) and auto.shard_count is None
    with pytest.raises(ValueError, match="DISCORD_SHARD_IDS"):
        client(DISCORD_SHARD_IDS="1")
    with pytest.raises(ValueError, match="not below"):
        client(DISCORD_SHARD_COUNT="2", DISCORD_SHARD_IDS="0,2")
