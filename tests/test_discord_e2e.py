"""The Discord adapter on a real BotCore and the in-process IMA sandbox (tiny time scale):
a /video command and a failure-button press, seen as the edits Discord would receive."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from types import SimpleNamespace

import discord
import pytest

from adapters.discord.fetch import VideoFetcher
from adapters.discord.handlers import Conversations, Handlers, VideoOptions
from bot.config import Settings
from bot.core import BotCore
from bot.sandbox import Sandbox
from tests.test_discord import FakeInteraction, as_discord, description, press


@pytest.fixture
async def fetcher() -> AsyncIterator[VideoFetcher]:
    f = VideoFetcher(timeout_s=10)
    yield f
    await f.aclose()


def interaction(**kw: object) -> FakeInteraction:
    """A stand-in interaction created now (its token is fresh by the real clock)."""
    return FakeInteraction(created_at=discord.utils.utcnow(), **kw)  # type: ignore[arg-type]


def handlers(core: BotCore, settings: Settings, fetcher: VideoFetcher) -> Handlers:
    # real clocks: the sandbox runs at 1 % speed, so the 5 s throttle leaves one progress edit
    return Handlers(core, settings, Conversations(fetcher))


async def wait_for_jobs(core: BotCore) -> None:
    await core.wait_idle()


async def test_video_command_on_the_real_core_edits_notice_progress_then_the_playable_video(
    core: BotCore, settings: Settings, fetcher: VideoFetcher
) -> None:
    h = handlers(core, settings, fetcher)
    inter = interaction(locale="zh-CN")
    await h.video(
        as_discord(inter), VideoOptions("一只小狗在草地上奔跑 竖屏", model="wan2.6-t2v", duration=5)
    )
    await wait_for_jobs(core)
    names = inter.log.names()
    assert names[0] == "defer"
    # every step edits the one response; the requester is then pinged in a message of its own
    assert set(names[1:-1]) == {"edit_original"} and names[-1] == "followup.send"
    assert f"<@{inter.user.id}>" in inter.log.of("followup.send")[0]["content"]
    edits = inter.log.of("edit_original")
    assert "Wan 2.6" in description(edits[0]) and "积分" in description(edits[0])
    percents = [int(m.group(1)) for kw in edits[1:-1] if (m := re.search(r"(\d+)%", description(kw)))]
    assert percents == sorted(percents) and len(percents) >= 1
    final = edits[-1]
    (job,) = await core.recent_jobs("discord", str(inter.user.id))
    assert job.status == "delivered" and job.url
    assert job.url in final["content"]
    assert "Wan 2.6" in description(final)
    # the sandbox's mp4 is small: attached as a file too, under the interaction's upload limit
    (file,) = final["attachments"]
    assert isinstance(file, discord.File)


async def test_failure_buttons_on_the_real_core_rerun_the_job_with_the_chosen_model(
    core: BotCore, settings: Settings, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    h = handlers(core, settings, fetcher)
    sandbox.force_task_failure()
    inter = interaction()
    await h.video(as_discord(inter), VideoOptions("a puppy running on grass", model="wan2.6-t2v"))
    await wait_for_jobs(core)
    failed = inter.log.of("edit_original")[-1]
    buttons = failed["view"].children
    assert buttons, "a failure offers buttons"
    custom_ids = [b.custom_id for b in buttons]
    switch = next(cid for cid in custom_ids if cid.split(":")[3])  # imabot:rerun:<job>:<model>:<user>
    press_inter = interaction(client=SimpleNamespace(button_handler=h))
    await press(switch, press_inter)
    await wait_for_jobs(core)
    final = press_inter.log.of("edit_original")[-1]
    jobs = await core.recent_jobs("discord", str(inter.user.id))
    assert [j.status for j in jobs] == ["delivered", "failed"]
    assert jobs[0].url is not None and jobs[0].url in final["content"]
    assert switch.split(":")[3] != "wan2.6-t2v"
