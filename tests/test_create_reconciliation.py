"""Issue 11: one rule for "was it created?", a create timeout of its own, and retries that
match their words. Real HTTP to the sandbox on 127.0.0.1, a real SQLite file."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from adapters.base import FailureView, Incoming
from bot.config import Settings
from bot.core import BotCore
from bot.ima import ImaClient
from bot.ima.credit import match_rule
from bot.ima.errors import CreateUncertain, ServerError
from bot.ima.types import TaskSpec
from bot.sandbox import Sandbox, SandboxConfig
from tests.conftest import TIME_SCALE, RecordingConversation, close_core, make_settings, open_core
from tests.waiting import wait_until

PUPPY = "make a video of a puppy running"  # Wan 2.6 at its defaults (720P, 5 s): nothing to lower


def client_for(sb: Sandbox, **kw: Any) -> ImaClient:
    options: dict[str, Any] = {
        "base_url": sb.base_url,
        "api_key": sb.config.api_key,
        "upload_base_url": sb.base_url,
        "upload_app_key": sb.config.upload_app_key,
        "timeout_s": 5.0,
    }
    options.update(kw)
    return ImaClient(**options)


async def wan_spec(sb: Sandbox) -> TaskSpec:
    """A valid Wan 2.6 text-to-video create, priced from the sandbox's product list."""
    async with client_for(sb) as c:
        product = await c.find_product("text_to_video", "wan2.6-t2v")
    assert product is not None
    params = product.defaults()
    return TaskSpec("text_to_video", product, match_rule(product, params), "a puppy", params)


async def run(core: BotCore, text: str) -> RecordingConversation:
    conv = RecordingConversation()
    job = await core.handle(Incoming(platform="console", chat_id="c", user_id="u", text=text), conv)
    assert job is not None, conv.events
    await asyncio.wait_for(job.wait(), 60)
    return conv


@pytest.fixture
async def sb(tmp_path: Path) -> AsyncIterator[Sandbox]:
    async with Sandbox(SandboxConfig(port=0, time_scale=TIME_SCALE, media_dir=tmp_path / "media")) as s:
        yield s


# -- the one rule: only IMA's own envelope says "not created" ------------------------------------
async def test_a_create_that_goes_through_but_is_answered_502_is_uncertain_and_paid_once(sb: Sandbox) -> None:
    spec = await wan_spec(sb)
    sb.force_create_then_502()
    async with client_for(sb) as c:
        with pytest.raises(CreateUncertain) as info:
            await c.create(spec)
    assert info.value.http_status == 502 and not info.value.retryable
    [entry] = sb.ledger
    assert entry.answer == "502"


async def test_imas_own_500_envelope_on_create_means_not_created(sb: Sandbox) -> None:
    spec = await wan_spec(sb)
    sb.force_create_error(status=500)
    async with client_for(sb) as c:
        with pytest.raises(ServerError):
            await c.create(spec)
    assert sb.ledger == []


async def test_the_bot_never_pays_twice_when_a_gateway_answers_502_after_the_create(
    sb: Sandbox, tmp_path: Path
) -> None:
    # 1080P asked: before, the 502 read as "not created" and the bot created again at 720P
    core = await open_core(make_settings(sb, tmp_path / "b.sqlite3"))
    try:
        sb.force_create_then_502()
        conv = await run(core, "用万生成一段海浪的视频,1080P")
        [failure] = conv.of("failure")
        assert isinstance(failure, FailureView) and failure.kind == "create_uncertain"
        assert failure.alternatives == () and failure.retry_label is None
        assert "可能仍会生成" in failure.text and "不会再次提交" in failure.text
        await asyncio.sleep(0.3)
        assert len(sb.ledger) == 1
        [row] = await core.store.recent_jobs("console", "u")
        assert row.status == "uncertain" and row.task_ids == []
    finally:
        await close_core(core)


# -- the create call's own timeout -------------------------------------------------------------
async def test_a_create_slower_than_the_request_timeout_is_still_answered(tmp_path: Path) -> None:
    # 985 ms of latency plus a create answered 300 ms late, against a 1 s request timeout:
    # before, the task was charged and rendered but the bot never learned its id
    config = SandboxConfig(port=0, time_scale=TIME_SCALE, latency_ms=985, media_dir=tmp_path / "m")
    async with Sandbox(config) as sb:
        spec = await wan_spec(sb)
        settings = make_settings(sb, tmp_path / "b.sqlite3", ima_request_timeout_s=1.0)
        assert settings.ima_create_timeout_s == 60
        sb.force_create_hang(0.3)
        async with ImaClient.from_settings(settings) as c:
            task_id = await c.create(spec)
        [entry] = sb.ledger
        assert entry.task_id == task_id


def test_the_create_timeout_is_a_setting_of_its_own() -> None:
    assert Settings(_env_file=None).ima_create_timeout_s == 60
    assert Settings(_env_file=None, ima_create_timeout_s=5).ima_create_timeout_s == 5


# -- retries that match their words ------------------------------------------------------------
async def test_a_lone_500_is_retried_at_the_same_settings(sb: Sandbox, tmp_path: Path) -> None:
    core = await open_core(make_settings(sb, tmp_path / "b.sqlite3"))
    try:
        sb.force_create_error(status=500)
        conv = await run(core, "用万生成一段海浪的视频,1080P")
        assert conv.kinds()[-1] == "video", conv.events
        [entry] = sb.ledger
        assert str(entry.parameters["resolution"]).upper() == "1080P"  # what was asked, not 720P
        assert any("重试" in t for t in conv.texts()) and not any("720P" in t for t in conv.texts())
    finally:
        await close_core(core)


async def test_a_lone_500_with_nothing_to_lower_is_retried_not_final(sb: Sandbox, tmp_path: Path) -> None:
    core = await open_core(make_settings(sb, tmp_path / "b.sqlite3"))
    try:
        sb.force_create_error(status=500)
        conv = await run(core, PUPPY)
        assert conv.kinds()[-1] == "video", conv.events
        assert len(sb.ledger) == 1
    finally:
        await close_core(core)


async def test_a_500_after_one_attempt_does_not_claim_retries(sb: Sandbox, tmp_path: Path) -> None:
    core = await open_core(make_settings(sb, tmp_path / "b.sqlite3", ima_max_retries=0))
    try:
        sb.force_create_error(status=500)
        conv = await run(core, PUPPY)
        [failure] = conv.of("failure")
        assert isinstance(failure, FailureView) and failure.kind == "server_error"
        assert "retr" not in failure.text.lower(), failure.text
    finally:
        await close_core(core)


async def test_500s_that_outlast_the_retries_say_the_retries_did_not_help(
    sb: Sandbox, tmp_path: Path
) -> None:
    core = await open_core(make_settings(sb, tmp_path / "b.sqlite3", ima_max_retries=2))
    try:
        for _ in range(3):
            sb.force_create_error(status=500)
        conv = await run(core, PUPPY)
        [failure] = conv.of("failure")
        assert isinstance(failure, FailureView) and failure.kind == "server_error"
        assert "automatic retries didn't help" in failure.text
        [row] = await core.store.recent_jobs("console", "u")
        assert row.attempts == 3 and sb.ledger == []
    finally:
        await close_core(core)


async def test_a_create_the_bot_gave_up_on_is_still_made_and_never_sent_again(tmp_path: Path) -> None:
    # the service finishes a create that has arrived even when the bot stops waiting for it
    config = SandboxConfig(port=0, time_scale=TIME_SCALE, latency_ms=600, media_dir=tmp_path / "m")
    async with Sandbox(config) as sb:
        spec = await wan_spec(sb)
        async with client_for(sb, create_timeout_s=0.2) as c:
            with pytest.raises(CreateUncertain):
                await c.create(spec)
        await wait_until(lambda: bool(sb.ledger), "the sandbox to make the task it was sent")
        assert len(sb.ledger) == 1
