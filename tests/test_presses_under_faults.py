"""A press, an OK or a create interrupted at the worst moment: nothing is lost, nothing is paid
twice, and nobody is told "already done" about something that never happened."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from adapters.base import Incoming
from bot.core import BotCore
from bot.sandbox import Sandbox
from bot.store import Job, JobRequest
from tests.conftest import RecordingConversation, close_core, make_settings, open_core

PROMPT = "make a video of a puppy running"


def _old_job(job_id: str, status: str) -> Job:
    return Job(
        id=job_id,
        platform="console",
        chat_id="c",
        user_id="u",
        language="en",
        task_type="text_to_video",
        prompt="a puppy",
        request=JobRequest(text="a puppy"),
        status=status,
        model_key="wan26",
    )


async def _stopped_during(core: BotCore, method: str, call: Callable[[], Awaitable[Any]]) -> None:
    """Run `call` and stop it (as a shutdown does) the moment it reaches `core.store.<method>`."""
    reached = asyncio.Event()
    original = getattr(core.store, method)

    async def watched(*args: Any, **kwargs: Any) -> Any:
        reached.set()
        return await original(*args, **kwargs)

    setattr(core.store, method, watched)
    task = asyncio.ensure_future(call())
    await asyncio.wait_for(reached.wait(), 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    setattr(core.store, method, original)


@pytest.mark.parametrize("stopped_at", ["job_images", "intake", "forget_questions_about"])
async def test_a_retry_press_stopped_midway_is_run_once_after_the_restart(
    sandbox: Sandbox, tmp_path: Path, stopped_at: str
) -> None:
    settings = make_settings(sandbox, tmp_path / "bot.sqlite3")
    core = await open_core(settings)
    await core.store.add_job(_old_job("old0000000000001", "failed"))
    conv = RecordingConversation()
    await _stopped_during(
        core,
        stopped_at,
        lambda: core.rerun("old0000000000001", user_id="u", model_id=None, conversation=conv),
    )
    await close_core(core)

    core = await open_core(settings)
    try:
        resumed = await core.resume(lambda _target: RecordingConversation())
        again = RecordingConversation()
        pressed = await core.rerun("old0000000000001", user_id="u", model_id=None, conversation=again)
        running = [*resumed, *([pressed] if pressed else [])]
        # the press either wrote its job (resumed now) or nothing (so pressing again runs it)
        assert len(running) == 1, (resumed, again.texts())
        assert await running[0].wait() == "delivered"
        assert len(sandbox.ledger) == 1
    finally:
        await close_core(core)


@pytest.mark.parametrize("stopped_at", ["save_leased", "forget_questions_about", "job_images"])
async def test_an_ok_stopped_midway_is_run_once_after_the_restart(
    sandbox: Sandbox, tmp_path: Path, stopped_at: str
) -> None:
    settings = make_settings(sandbox, tmp_path / "bot.sqlite3", bot_confirm_above_credits=1)
    core = await open_core(settings)
    asked = await core.handle(Incoming("console", "c", "u", PROMPT), RecordingConversation())
    assert asked is not None and await asked.wait() == "awaiting_confirm"
    await _stopped_during(
        core,
        stopped_at,
        lambda: core.confirm(asked.job_id, user_id="u", conversation=RecordingConversation()),
    )
    await close_core(core)

    core = await open_core(settings)
    try:
        resumed = await core.resume(lambda _target: RecordingConversation())
        pressed = await core.confirm(asked.job_id, user_id="u", conversation=RecordingConversation())
        running = [*resumed, *([pressed] if pressed else [])]
        assert len(running) == 1
        assert await running[0].wait() == "delivered"
        assert len(sandbox.ledger) == 1
    finally:
        await close_core(core)


async def test_an_ok_for_a_job_cancelled_meanwhile_starts_nothing(sandbox: Sandbox, tmp_path: Path) -> None:
    db = tmp_path / "bot.sqlite3"
    core = await open_core(make_settings(sandbox, db, bot_confirm_above_credits=1))
    try:
        conv = RecordingConversation()
        asked = await core.handle(Incoming("console", "c", "u", PROMPT), conv)
        assert asked is not None and await asked.wait() == "awaiting_confirm"
        job_id = asked.job_id
        original = core.store.save_leased
        cancels: list[str] = []

        async def cancelled_first(job: Job, **changes: Any) -> bool:
            # the "cancel" lands between the OK's look at the job and its write
            if not cancels:
                cancels.append(job.id)
                await core.cancel(job.id, platform="console", user_id="u", conversation=conv)
            return await original(job, **changes)

        core.store.save_leased = cancelled_first  # type: ignore[method-assign]
        pressed = RecordingConversation()
        assert await core.confirm(job_id, user_id="u", conversation=pressed) is None
        assert pressed.texts(), "the press is answered"
        assert sandbox.ledger == []
        assert len(conv.of("notice")) == 1  # no second, "generating" notice
        stored = await core.store.get_job(job_id)
        assert stored is not None and stored.status == "cancelled"
    finally:
        await close_core(core)
    with sqlite3.connect(db) as c:
        assert (
            c.execute("SELECT state FROM spend WHERE job_id=? AND state='reserved'", (job_id,)).fetchall()
            == []
        )


async def test_a_shutdown_as_a_create_goes_out_runs_the_job_after_the_restart(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = make_settings(sandbox, tmp_path / "bot.sqlite3")
    core = await open_core(settings)
    marking = asyncio.Event()
    original = core.store.save_leased

    async def save_leased(job: Job, **changes: Any) -> bool:
        if changes.get("status") == "creating":
            marking.set()
        return await original(job, **changes)

    core.store.save_leased = save_leased  # type: ignore[method-assign]
    running = await core.handle(Incoming("console", "c", "u", PROMPT), RecordingConversation())
    assert running is not None
    await asyncio.wait_for(marking.wait(), 10)
    await close_core(core)  # shutdown while "creating" is being written, before the request left
    assert sandbox.ledger == []

    core = await open_core(settings)
    try:
        told = RecordingConversation()
        resumed = await core.resume(lambda _target: told)
        assert [await r.wait() for r in resumed] == ["delivered"]
        assert "failure" not in told.kinds()  # no "may still be made and charged"
        assert len(sandbox.ledger) == 1
    finally:
        await close_core(core)
