"""Waiting for a job: its end, or "cancelled" when the job was stopped, but never a lost stop."""

from __future__ import annotations

import asyncio

from bot.core import RunningJob


def _forever() -> asyncio.Task[str]:
    async def job() -> str:
        await asyncio.sleep(3600)
        return "delivered"

    return asyncio.ensure_future(job())


async def test_a_stopped_job_is_waited_for_as_cancelled() -> None:
    running = RunningJob("j1", _forever())
    waiter = asyncio.ensure_future(running.wait())
    await asyncio.sleep(0)
    running.task.cancel()
    assert await waiter == "cancelled"


async def test_a_waiter_stopped_with_its_job_stays_stopped() -> None:
    running = RunningJob("j1", _forever())
    waiter = asyncio.ensure_future(running.wait())
    await asyncio.sleep(0)
    running.task.cancel()
    waiter.cancel()  # a shutdown stops both in the same turn of the loop
    await asyncio.wait((waiter,), timeout=5)
    assert waiter.cancelled()
