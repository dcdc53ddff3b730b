"""A new job is planned before its row is first written, so the row is written once, whole;
a job that waited while the product list changed is planned again against the new one."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import bot.orchestrator
from adapters.base import Incoming, NoticeView
from bot.ima.types import Product
from bot.sandbox import Sandbox
from bot.store import Job
from bot.store.model import WAITING
from tests.conftest import RecordingConversation, close_core, make_settings, open_core

PROMPT = "make a video of a puppy running"


async def test_a_new_job_is_written_with_its_model_and_price(sandbox: Sandbox, tmp_path: Path) -> None:
    core = await open_core(make_settings(sandbox, tmp_path / "bot.sqlite3"))
    try:
        await core.client.products("text_to_video")  # a product list at hand, as after the first message
        written: list[tuple[str | None, int | None]] = []
        intake = core.store.intake

        async def watched(platform: str, ids: Any, job: Job | None = None, *args: Any, **kwargs: Any) -> bool:
            if job is not None:
                written.append((job.model_key, job.credits))
            return bool(await intake(platform, ids, job, *args, **kwargs))

        core.store.intake = watched  # type: ignore[method-assign,assignment]
        conv = RecordingConversation()
        running = await core.handle(Incoming("console", "c", "u", PROMPT), conv)
        assert running is not None and await running.wait() == "delivered"
        notice = conv.of("notice")[0]
        assert isinstance(notice, NoticeView)
        [(model_key, credits)] = written
        assert model_key is not None and credits == notice.credits
        stored = await core.store.get_job(running.job_id)
        assert stored is not None and stored.model_key == model_key
    finally:
        await close_core(core)


async def test_a_job_is_planned_again_when_the_product_list_changed_while_it_waited(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    core = await open_core(make_settings(sandbox, tmp_path / "bot.sqlite3", bot_max_concurrent_jobs=1))
    planned: collections.Counter[str] = collections.Counter()
    real_plan = bot.orchestrator.Orchestrator._plan

    def counted(self: bot.orchestrator.Orchestrator, job: Job, offers: Any) -> Any:
        planned[job.id] += 1
        return real_plan(self, job, offers)

    monkeypatch.setattr(bot.orchestrator.Orchestrator, "_plan", counted)
    try:
        await core.client.products("text_to_video")
        first = await core.handle(Incoming("console", "c", "u1", PROMPT), RecordingConversation())
        waiting = await core.handle(Incoming("console", "c", "u2", PROMPT), RecordingConversation())
        assert first is not None and waiting is not None
        core.client.invalidate()  # the list is fetched again before the waiting job starts
        assert [await first.wait(), await waiting.wait()] == ["delivered", "delivered"]
        assert planned[first.job_id] == 1  # planned once, at intake
        assert planned[waiting.job_id] == 2  # and again against the list in use when it started
    finally:
        await close_core(core)


class _Books:
    """What the store is asked: the credits booked with each intake, and the reservations made
    as jobs run."""

    def __init__(self, core: Any) -> None:
        self.at_intake: list[int | None] = []
        self.as_it_runs = 0
        intake, reserve = core.store.intake, core.store.reserve_spend

        async def watched_intake(*args: Any, **kwargs: Any) -> bool:
            if len(args) > 2:  # a job's intake (a command's has no job)
                self.at_intake.append(kwargs.get("book"))
            return bool(await intake(*args, **kwargs))

        async def watched_reserve(*args: Any, **kwargs: Any) -> Any:
            self.as_it_runs += 1
            return await reserve(*args, **kwargs)

        core.store.intake = watched_intake
        core.store.reserve_spend = watched_reserve


@contextlib.asynccontextmanager
async def _core_with_books(
    sandbox: Sandbox, tmp_path: Path, **overrides: Any
) -> AsyncIterator[tuple[Any, _Books]]:
    """A core with a product list at hand (as after the first message), and what its store is asked."""
    core = await open_core(make_settings(sandbox, tmp_path / "bot.sqlite3", **overrides))
    try:
        await core.client.products("text_to_video")
        yield core, _Books(core)
    finally:
        await close_core(core)


async def _one_running_one_queued(core: Any) -> tuple[Any, Any]:
    """u1's job takes the one slot; u2's waits for it (BOT_MAX_CONCURRENT_JOBS=1)."""
    first = await core.handle(Incoming("console", "c", "u1", PROMPT), RecordingConversation())
    queued = await core.handle(Incoming("console", "c", "u2", PROMPT), RecordingConversation())
    assert first is not None and queued is not None
    return first, queued


#: one job at a time, and a price question above 30 credits (the default model's 25 is below it)
_QUEUED_UNDER_A_QUESTION: dict[str, Any] = {"bot_max_concurrent_jobs": 1, "bot_confirm_above_credits": 30}


async def test_the_credits_are_reserved_with_the_row_when_no_limit_can_refuse_them(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with _core_with_books(sandbox, tmp_path) as (core, books):
        conv = RecordingConversation()
        running = await core.handle(Incoming("console", "c", "u", PROMPT), conv)
        assert running is not None and await running.wait() == "delivered"
        notice = conv.of("notice")[0]
        assert isinstance(notice, NoticeView)
        assert books.at_intake == [notice.credits] and books.as_it_runs == 0
        [(_, credits, jobs)] = await core.store.usage("console", 0, user_id="u")
        assert (credits, jobs) == (notice.credits, 1)


async def test_with_a_daily_limit_the_credits_are_reserved_as_the_job_runs(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with _core_with_books(sandbox, tmp_path, bot_user_daily_credits=1000) as (core, books):
        running = await core.handle(Incoming("console", "c", "u", PROMPT), RecordingConversation())
        assert running is not None and await running.wait() == "delivered"
        assert books.at_intake == [None] and books.as_it_runs == 1  # checked against the limit


async def test_a_job_that_asks_first_books_nothing_at_intake(sandbox: Sandbox, tmp_path: Path) -> None:
    async with _core_with_books(sandbox, tmp_path, bot_confirm_above_credits=1) as (core, books):
        waiting = await core.handle(Incoming("console", "c", "u", PROMPT), RecordingConversation())
        assert waiting is not None and await waiting.wait() == WAITING
        assert books.at_intake == [None] and books.as_it_runs == 0
        assert await core.store.usage("console", 0, user_id="u") == [("", 0, 0)]


async def test_a_queued_job_cancelled_gives_back_the_credits_booked_at_intake(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with _core_with_books(sandbox, tmp_path, bot_max_concurrent_jobs=1) as (core, books):
        first, queued = await _one_running_one_queued(core)
        assert books.at_intake[1] is not None
        await core.cancel(
            queued.job_id, user_id="u2", platform="console", conversation=RecordingConversation()
        )
        assert await core.store.usage("console", 0, user_id="u2") == [("", 0, 0)]
        assert await first.wait() == "delivered"


def _dearer(core: Any, factor: int) -> None:
    """From now on the product list the service answers costs `factor` times as much."""
    cache = core.client._cache
    fetch = cache._fetch

    async def dearer(category: str) -> list[Product]:
        return [
            dataclasses.replace(
                p,
                credit_rules=tuple(dataclasses.replace(r, points=r.points * factor) for r in p.credit_rules),
            )
            for p in await fetch(category)
        ]

    cache._fetch = dearer


async def test_a_booked_job_repriced_into_a_price_question_holds_no_credits(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # booked at intake at 25 pts, under the 30-credit question; repriced to 75 while it waits
    # for a slot, it is planned again and asks first: a job waiting for a yes holds nothing
    async with _core_with_books(sandbox, tmp_path, **_QUEUED_UNDER_A_QUESTION) as (core, _):
        first, queued = await _one_running_one_queued(core)
        assert await core.store.usage("console", 0, user_id="u2") == [("", 25, 1)]
        _dearer(core, 3)
        core.client.invalidate()
        assert [await first.wait(), await queued.wait()] == ["delivered", WAITING]
        assert await core.store.usage("console", 0, user_id="u2") == [("", 0, 0)]


async def test_a_booked_job_resumed_into_a_price_question_holds_no_credits(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with _core_with_books(sandbox, tmp_path, **_QUEUED_UNDER_A_QUESTION) as (core, _):
        _, queued = await _one_running_one_queued(core)
    # stopped while queued: "accepted", its credits booked
    core = await open_core(make_settings(sandbox, tmp_path / "bot.sqlite3", **_QUEUED_UNDER_A_QUESTION))
    try:
        _dearer(core, 3)
        resumed = {r.job_id: r for r in await core.resume(lambda target: RecordingConversation())}
        assert await resumed[queued.job_id].wait() == WAITING
        assert await core.store.usage("console", 0, user_id="u2") == [("", 0, 0)]
    finally:
        await close_core(core)
