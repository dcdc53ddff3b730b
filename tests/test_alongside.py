"""Two halves of one step at once: the awaited half first, failures only once both have ended."""

from __future__ import annotations

import asyncio

import pytest

from bot.alongside import alongside


async def test_the_half_run_here_starts_before_the_background_half() -> None:
    order: list[str] = []

    async def half(name: str) -> None:
        order.append(name)

    await alongside(half("background"), half("here"))
    assert order == ["here", "background"]


async def test_a_failure_here_is_raised_only_once_the_background_half_has_ended() -> None:
    background_ended = asyncio.Event()

    async def background() -> None:
        await asyncio.sleep(0.01)
        background_ended.set()

    async def here() -> None:
        raise RuntimeError("notice")

    with pytest.raises(RuntimeError, match="notice"):
        await alongside(background(), here())
    assert background_ended.is_set()


async def test_a_background_failure_is_raised_once_the_half_here_has_ended() -> None:
    here_ended = asyncio.Event()

    async def background() -> None:
        raise RuntimeError("booking")

    async def here() -> None:
        await asyncio.sleep(0.01)
        here_ended.set()

    with pytest.raises(RuntimeError, match="booking"):
        await alongside(background(), here())
    assert here_ended.is_set()


async def test_when_both_fail_the_background_failure_is_raised() -> None:
    async def fails(what: str) -> None:
        await asyncio.sleep(0)
        raise RuntimeError(what)

    with pytest.raises(RuntimeError, match="booking"):
        await alongside(fails("booking"), fails("notice"))


async def test_stopping_the_step_stops_both_halves() -> None:
    halves: list[asyncio.Task[None]] = []
    both_running = asyncio.Event()

    async def forever() -> None:
        halves.append(asyncio.current_task())  # type: ignore[arg-type]
        if len(halves) == 2:
            both_running.set()
        await asyncio.sleep(3600)

    step = asyncio.ensure_future(alongside(forever(), forever()))
    await asyncio.wait_for(both_running.wait(), 5)
    step.cancel()
    await asyncio.wait((step,), timeout=5)
    assert step.cancelled()
    assert all(h.done() for h in halves)
