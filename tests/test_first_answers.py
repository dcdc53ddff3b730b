"""People first: while someone waits for the bot's first answer, calls that spend wait."""

from __future__ import annotations

import asyncio

from adapters.base import FailureView, Incoming, NoticeView, ProgressView, VideoView
from bot.core import BotCore
from bot.first_answers import FirstAnswers
from bot.sandbox import Sandbox


async def test_a_turn_is_immediate_when_no_answer_is_owed() -> None:
    answers = FirstAnswers(max_hold_s=30)
    await asyncio.wait_for(answers.turn(), 1)


async def test_a_turn_waits_until_the_owed_answer_is_given() -> None:
    answers = FirstAnswers(max_hold_s=30)
    with answers.owing():
        waiting = asyncio.ensure_future(answers.turn())
        await asyncio.sleep(0.05)
        assert not waiting.done()
    await asyncio.wait_for(waiting, 1)
    assert answers.owed == 0


async def test_a_turn_waits_no_longer_than_its_hold() -> None:
    answers = FirstAnswers(max_hold_s=0.05)
    with answers.owing():
        await asyncio.wait_for(answers.turn(), 5)  # a flood cannot hold a create for ever
        assert answers.owed == 1


async def test_a_job_stopped_just_as_its_turn_comes_stays_stopped() -> None:
    # stopped (shutdown) in the same turn of the loop as the answers run out: the stop must not
    # be lost, or the job goes on to create a task while the bot waits for it to end
    for steps in range(6):
        answers = FirstAnswers(max_hold_s=30)
        went_on: list[bool] = []

        async def job(answers: FirstAnswers, went_on: list[bool]) -> None:
            await answers.turn()
            went_on.append(True)

        with answers.owing():
            task = asyncio.ensure_future(job(answers, went_on))
            await asyncio.sleep(0)
        for _ in range(steps):
            await asyncio.sleep(0)
        if not task.cancel():
            continue  # it had already gone on and finished: nothing to stop
        await asyncio.wait((task,), timeout=5)
        assert task.cancelled() and not went_on, f"the stop was lost {steps} steps after the turn came"


class SeesTheLedger:
    """Notes, at its notice, how many tasks the sandbox had been asked to create."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.creates_before_notice: int | None = None

    async def notice(self, view: NoticeView) -> None:
        self.creates_before_notice = len(self.sandbox.ledger)

    async def progress(self, view: ProgressView) -> None: ...
    async def video(self, view: VideoView) -> None: ...
    async def failure(self, view: FailureView) -> None: ...
    async def text(self, text: str) -> None: ...


async def test_in_a_burst_every_notice_goes_out_before_the_first_create(
    core: BotCore, sandbox: Sandbox
) -> None:
    core.orchestrator.answers.max_hold_s = 60  # a loaded machine must not make this about time
    convs = [SeesTheLedger(sandbox) for _ in range(20)]
    jobs = await asyncio.gather(
        *(
            core.handle(
                Incoming("console", f"c{i}", f"u{i}", "make a video of rain on a window", event_id=f"e{i}"), c
            )
            for i, c in enumerate(convs)
        )
    )
    await asyncio.gather(*(j.wait() for j in jobs if j is not None))
    assert [c.creates_before_notice for c in convs] == [0] * 20
    assert len(sandbox.ledger) == 20
