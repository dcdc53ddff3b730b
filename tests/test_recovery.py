"""How a job recovers from what the service says: waits, retries, a lowered setting, giving up.

The real core against the sandbox (real HTTP, a real SQLite file), with the orchestrator's
`sleep` (and, where a deadline is the point, its `clock`) replaced by stand-ins that note each
wait asked for. The claims are about the waits the bot asks for, never about how long they
took, so a busy machine cannot change them."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Container
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.base import FailureView, Incoming, VideoView
from bot.core import BotCore
from bot.i18n import t
from bot.ima.errors import ImaError, NetworkError, RateLimited, ServerError
from bot.ima.types import Product, TaskResult
from bot.sandbox import Sandbox
from tests.conftest import TIME_SCALE, RecordingConversation, close_core, make_settings, open_core

S = TIME_SCALE  # every wait the bot asks for is scaled like the sandbox's times
#: a job timeout no test here reaches unless it means to (scaled: 2 minutes)
UNREACHED_TIMEOUT_S = 24_000.0
WAN_1080P_10S = "用万生成一段海浪的视频,1080P,10秒"
WAN_AT_ITS_LOWEST = "用万生成一段海浪的视频"  # Wan 2.6 at its defaults (720P, 5 s): nothing to lower
VEO = "用Veo生成一段海浪的视频"  # Veo at its defaults: the lowest resolution, a longer duration
#: a job timeout off the beat of the polls and the progress reports (scaled: 0.3065 s)
OFF_BEAT_TIMEOUT_S = 61.3


class Waits:
    """Stands in for the orchestrator's sleep. A wait asked before the sandbox created any task
    (the recovery's, under test) is noted and passes at once; once a task renders, waits are
    real, so polls keep the sandbox's pace instead of spinning."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.before_create: list[float] = []

    async def __call__(self, delay: float) -> None:
        if self.sandbox.ledger:
            await asyncio.sleep(delay)
            return
        self.before_create.append(delay)
        await asyncio.sleep(0)


class VirtualTime:
    """A clock that moves only by the waits asked of it: each wait is noted, moves the clock on
    by its length and passes at once. For jobs that end by the clock or by errors, not by a
    task the sandbox renders in real time."""

    #: what even a wait of nothing lets pass, as on a real clock: the poll loop counts on time
    #: moving (when rounding puts its next poll at the very instant of the last, it asks again)
    TICK_S = 1e-6

    def __init__(self) -> None:
        self.now = time.time()
        self.waits: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.waits.append(delay)
        self.now += max(delay, self.TICK_S)
        await asyncio.sleep(0)


class FlakyPolls:
    """Stands in for ImaClient.detail: the calls numbered in `running` (from 1) answer "still
    running" without asking, those in `failing` raise `error`; the others ask the sandbox."""

    def __init__(
        self,
        detail: Callable[[str], Awaitable[TaskResult]],
        error: type[ImaError],
        failing: Container[int],
        running: Container[int] = (),
    ) -> None:
        self.detail = detail
        self.error = error
        self.failing = failing
        self.running = running
        self.calls = 0

    async def __call__(self, task_id: str) -> TaskResult:
        self.calls += 1
        if self.calls in self.running:
            return TaskResult(task_id, "running")
        if self.calls in self.failing:
            raise self.error(f"poll {self.calls} failed")
        return await self.detail(task_id)


@asynccontextmanager
async def timed_core(
    sandbox: Sandbox,
    tmp_path: Path,
    sleep: Callable[[float], Awaitable[None]],
    clock: Callable[[], float] = time.time,
    **overrides: Any,
) -> AsyncIterator[BotCore]:
    """The real core on the sandbox, its orchestrator timed by these hooks."""
    settings = make_settings(
        sandbox, tmp_path / "bot.sqlite3", **{"ima_job_timeout_s": UNREACHED_TIMEOUT_S, **overrides}
    )
    core = await open_core(settings, sleep=sleep, clock=clock)
    try:
        yield core
    finally:
        await close_core(core)


async def run(core: BotCore, text: str) -> RecordingConversation:
    conv = RecordingConversation()
    job = await core.handle(Incoming(platform="console", chat_id="c", user_id="u", text=text), conv)
    assert job is not None, conv.events
    await asyncio.wait_for(job.wait(), 60)
    return conv


def delivered(conv: RecordingConversation) -> bool:
    return isinstance(conv.events[-1][1], VideoView)


def failure_of(conv: RecordingConversation) -> FailureView:
    [failure] = conv.of("failure")
    assert isinstance(failure, FailureView), conv.events
    return failure


def sent(sandbox: Sandbox) -> tuple[str, int]:
    """The resolution and duration of the one task the sandbox created."""
    [entry] = sandbox.ledger
    return str(entry.parameters["resolution"]).upper(), int(entry.parameters["duration"])


def force_500s(sandbox: Sandbox, count: int) -> None:
    for _ in range(count):
        sandbox.force_create_error(status=500)


# -- IMA's own server error: the same request again, then one setting lower ------------------------
async def test_a_lone_server_error_is_sent_again_unchanged_after_the_first_backoff(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    waits = Waits(sandbox)
    async with timed_core(sandbox, tmp_path, waits) as core:
        force_500s(sandbox, 1)
        conv = await run(core, WAN_1080P_10S)
    assert delivered(conv), conv.events
    assert waits.before_create == [2 * S]
    assert sent(sandbox) == ("1080P", 10)


async def test_a_second_server_error_in_a_row_lowers_the_resolution_and_keeps_the_duration(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with timed_core(sandbox, tmp_path, Waits(sandbox)) as core:
        force_500s(sandbox, 2)
        conv = await run(core, WAN_1080P_10S)
    assert delivered(conv), conv.events
    assert sent(sandbox) == ("720P", 10)


async def test_a_lowered_retry_is_sent_without_waiting(sandbox: Sandbox, tmp_path: Path) -> None:
    waits = Waits(sandbox)
    async with timed_core(sandbox, tmp_path, waits) as core:
        force_500s(sandbox, 2)
        await run(core, WAN_1080P_10S)
    assert waits.before_create == [2 * S]  # the first error's wait only


async def test_lowering_a_setting_the_model_chose_is_said_as_an_automatic_adjustment(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with timed_core(sandbox, tmp_path, Waits(sandbox)) as core:
        force_500s(sandbox, 2)
        conv = await run(core, VEO)
    _, seconds = sent(sandbox)
    assert conv.texts() == [
        t("progress.retrying", "zh", attempt=1),
        t("progress.degraded", "zh", what=f"{seconds}s", attempt=2),
    ]


async def test_with_the_resolution_at_its_lowest_the_duration_is_lowered_next(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with timed_core(sandbox, tmp_path, Waits(sandbox), ima_max_retries=4) as core:
        force_500s(sandbox, 4)  # two pairs: 1080P → 720P, then 10 s → 5 s
        conv = await run(core, WAN_1080P_10S)
    assert delivered(conv), conv.events
    assert sent(sandbox) == ("720P", 5)


async def test_with_nothing_left_to_lower_a_second_server_error_is_waited_out_again(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    waits = Waits(sandbox)
    async with timed_core(sandbox, tmp_path, waits) as core:
        force_500s(sandbox, 2)
        conv = await run(core, WAN_AT_ITS_LOWEST)
    assert delivered(conv), conv.events
    assert waits.before_create == [2 * S, 4 * S]
    assert conv.texts() == [t("progress.retrying", "zh", attempt=1), t("progress.retrying", "zh", attempt=2)]
    assert sent(sandbox) == ("720P", 5)


async def test_server_errors_with_a_rate_limit_between_them_lower_nothing(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with timed_core(sandbox, tmp_path, Waits(sandbox)) as core:
        sandbox.force_create_error(status=500)
        sandbox.force_create_error(status=429)
        sandbox.force_create_error(status=500)
        conv = await run(core, WAN_1080P_10S)
    assert delivered(conv), conv.events
    assert sent(sandbox) == ("1080P", 10)  # the two 500s were not in a row


async def test_a_job_waiting_out_a_server_error_is_not_marked_as_possibly_created(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # "creating" would make a restart fear a charge; IMA's 500 says nothing was created
    waits = Waits(sandbox)
    statuses: list[str] = []

    async def noting_status(delay: float) -> None:
        if not sandbox.ledger:
            [job] = await core.store.recent_jobs("console", "u", 1)
            statuses.append(job.status)
        await waits(delay)

    async with timed_core(sandbox, tmp_path, noting_status) as core:
        force_500s(sandbox, 1)
        await run(core, WAN_AT_ITS_LOWEST)
    assert statuses == ["accepted"]


# -- waiting out a busy service ------------------------------------------------------------------------
async def test_rate_limits_are_waited_out_with_doubling_waits(sandbox: Sandbox, tmp_path: Path) -> None:
    waits = Waits(sandbox)
    async with timed_core(sandbox, tmp_path, waits) as core:
        for _ in range(3):
            sandbox.force_create_error(status=429)
        conv = await run(core, WAN_AT_ITS_LOWEST)
    assert delivered(conv), conv.events
    assert waits.before_create == [2 * S, 4 * S, 8 * S]


async def test_every_wait_is_said_with_its_attempt_number(sandbox: Sandbox, tmp_path: Path) -> None:
    async with timed_core(sandbox, tmp_path, Waits(sandbox)) as core:
        for _ in range(2):
            sandbox.force_create_error(status=429)
        conv = await run(core, WAN_AT_ITS_LOWEST)
    assert conv.texts() == [t("progress.retrying", "zh", attempt=1), t("progress.retrying", "zh", attempt=2)]


async def test_no_wait_is_longer_than_thirty_scaled_seconds(sandbox: Sandbox, tmp_path: Path) -> None:
    waits = Waits(sandbox)
    async with timed_core(sandbox, tmp_path, waits, ima_max_retries=6) as core:
        for _ in range(6):
            sandbox.force_create_error(status=429)
        await run(core, WAN_AT_ITS_LOWEST)
    assert waits.before_create == [2 * S, 4 * S, 8 * S, 16 * S, 30 * S, 30 * S]


async def test_a_model_unavailable_for_now_is_waited_out_like_a_rate_limit(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    waits = Waits(sandbox)
    async with timed_core(sandbox, tmp_path, waits) as core:
        sandbox.force_create_error(status=503)
        conv = await run(core, WAN_AT_ITS_LOWEST)
    assert delivered(conv), conv.events
    assert waits.before_create == [2 * S]


async def test_a_busy_product_list_is_asked_again_after_a_backoff(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = Waits(sandbox)
    async with timed_core(sandbox, tmp_path, waits) as core:
        products = core.client.products
        refused = 0

        async def busy_twice(category: str) -> list[Product]:
            nonlocal refused
            if refused < 2:
                refused += 1
                raise RateLimited("product list busy")
            return await products(category)

        monkeypatch.setattr(core.client, "products", busy_twice)
        conv = await run(core, WAN_AT_ITS_LOWEST)
    assert delivered(conv), conv.events
    assert waits.before_create == [2 * S, 4 * S]


# -- errors a retry can fix at once, and those none can ------------------------------------------------
async def test_a_refusal_no_retry_can_change_ends_the_job_without_waiting(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    waits = Waits(sandbox)
    async with timed_core(sandbox, tmp_path, waits) as core:
        sandbox.force_create_error(code=4008)
        conv = await run(core, WAN_AT_ITS_LOWEST)
    assert failure_of(conv).kind == "insufficient_points"
    assert waits.before_create == [] and conv.texts() == []


@pytest.mark.parametrize(
    "code", [6009, 6006], ids=["no_rule_match_completed_from_the_rules", "credit_mismatch_priced_again"]
)
async def test_a_mismatch_the_bot_can_fix_is_fixed_and_sent_again_without_waiting(
    sandbox: Sandbox, tmp_path: Path, code: int
) -> None:
    waits = Waits(sandbox)
    async with timed_core(sandbox, tmp_path, waits) as core:
        sandbox.force_create_error(code=code)
        conv = await run(core, WAN_AT_ITS_LOWEST)
    assert delivered(conv), conv.events
    assert waits.before_create == [] and len(sandbox.ledger) == 1


async def test_a_pixverse_create_refused_for_its_missing_model_is_sent_again_with_it(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    async with timed_core(sandbox, tmp_path, Waits(sandbox)) as core:
        sandbox.force_create_error(code=400017)
        conv = await run(core, "用Pixverse生成一段海浪的视频")
    assert delivered(conv), conv.events
    [entry] = sandbox.ledger
    assert entry.parameters.get("model")


async def test_a_refused_model_value_on_a_model_without_one_ends_the_job_without_retrying(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    waits = Waits(sandbox)
    async with timed_core(sandbox, tmp_path, waits) as core:
        sandbox.force_create_error(code=400017)
        conv = await run(core, WAN_AT_ITS_LOWEST)  # only Pixverse has a `model` to infer
    assert failure_of(conv).kind == "bad_parameter"
    assert waits.before_create == [] and sandbox.ledger == []


async def test_an_answer_the_bot_cannot_place_ends_the_job_without_retrying(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    # retryable by policy, but no recovery step knows what to change: not sent again blindly
    waits = Waits(sandbox)
    async with timed_core(sandbox, tmp_path, waits) as core:
        sandbox.force_create_error(code=7000)
        conv = await run(core, WAN_AT_ITS_LOWEST)
    assert failure_of(conv).kind == "unknown"
    assert waits.before_create == [] and sandbox.ledger == []


# -- polling: the job's deadline, and errors worth waiting out ------------------------------------------
async def test_a_generation_past_the_job_timeout_ends_in_the_timeout_failure(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    virtual = VirtualTime()
    async with timed_core(
        sandbox, tmp_path, virtual.sleep, virtual.clock, ima_job_timeout_s=OFF_BEAT_TIMEOUT_S
    ) as core:
        sandbox.force_task_never_finishes()
        conv = await run(core, WAN_AT_ITS_LOWEST)
    failure = failure_of(conv)
    assert failure.kind == "render_timeout"
    assert t("error.render_timeout", "zh") in failure.text


async def test_a_timed_out_generation_gives_up_at_its_deadline(sandbox: Sandbox, tmp_path: Path) -> None:
    virtual = VirtualTime()
    async with timed_core(
        sandbox, tmp_path, virtual.sleep, virtual.clock, ima_job_timeout_s=OFF_BEAT_TIMEOUT_S
    ) as core:
        sandbox.force_task_never_finishes()
        await run(core, WAN_AT_ITS_LOWEST)
        [job] = await core.store.recent_jobs("console", "u", 1)
    assert job.started_at is not None and job.finished_at is not None
    # not a poll or a progress report later: the last wait ends at the deadline
    assert job.finished_at - job.started_at == pytest.approx(OFF_BEAT_TIMEOUT_S * S, abs=1e-5)


async def test_fifteen_poll_errors_in_a_row_are_waited_out_and_the_video_arrives(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with timed_core(sandbox, tmp_path, Waits(sandbox)) as core:
        polls = FlakyPolls(core.client.detail, ServerError, failing=range(1, 16))
        monkeypatch.setattr(core.client, "detail", polls)
        conv = await run(core, WAN_AT_ITS_LOWEST)
    assert delivered(conv), conv.events
    assert polls.calls > 15


async def test_a_sixteenth_poll_error_in_a_row_ends_the_job_with_that_error(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    virtual = VirtualTime()
    async with timed_core(sandbox, tmp_path, virtual.sleep, virtual.clock) as core:
        polls = FlakyPolls(core.client.detail, NetworkError, failing=range(1, 10_000))
        monkeypatch.setattr(core.client, "detail", polls)
        conv = await run(core, WAN_AT_ITS_LOWEST)
    assert failure_of(conv).kind == "network"
    assert polls.calls == 16


async def test_an_answer_between_poll_errors_starts_their_count_again(
    sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    virtual = VirtualTime()
    async with timed_core(sandbox, tmp_path, virtual.sleep, virtual.clock) as core:
        # 15 errors, "still running", 15 more errors: 30 in all, never 16 in a row
        polls = FlakyPolls(core.client.detail, NetworkError, failing=range(1, 32), running=(16,))
        monkeypatch.setattr(core.client, "detail", polls)
        conv = await run(core, WAN_AT_ITS_LOWEST)
    assert delivered(conv), conv.events
    assert polls.calls > 31
