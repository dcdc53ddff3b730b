"""Issue 13 on Discord: the adapter against stand-ins that are no kinder than Discord.

Messages over 2,000 characters, uploads over the limit, rate limits, a nonce sent twice, the
interaction token running out, a restart in the middle of a delivery, command syncs, a refused
intent and a refused login — and, with Feishu beside it, one platform failing while the other
keeps serving. The stand-ins' rules and their sources are in tests/test_discord.py.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import discord
import pytest

from adapters.base import Conversation
from adapters.discord import DiscordAdapter, sdk
from adapters.discord.adapter import ImaDiscordClient
from adapters.discord.conversation import MAX_NONCE, DiscordConversation, nonce_for
from adapters.discord.fetch import VideoFetcher
from adapters.discord.handlers import Conversations, VideoOptions
from adapters.discord.tree import LocaleTranslator
from adapters.feishu import FeishuAdapter
from adapters.supervise import READY, RETRYING, Supervisor
from tests.fixtures.feishu.fake_open_platform import FakeFeishu
from tests.test_discord import (
    BIG_VIDEO,
    UPLOAD_LIMIT,
    Clock,
    FakeChannel,
    FakeCore,
    FakeInteraction,
    Log,
    as_discord,
    check_message,
    conversation,
    description,
    failure_view,
    http_response,
    make_handlers,
    notice_view,
    press,
    progress_view,
    settings,
    video_view,
)
from tests.test_discord import clock as clock  # fixtures, by their names
from tests.test_discord import fetcher as fetcher
from tests.test_discord import video_server as video_server
from tests.test_feishu import ScriptedCore, feishu_settings, payload
from tests.waiting import wait_until

USER = "1100000000000000001"


# -- the stand-ins hold Discord's rules -------------------------------------------------------------
async def test_the_stand_ins_refuse_what_discord_refuses() -> None:
    with pytest.raises(discord.HTTPException) as too_long:
        check_message({"content": "x" * 2001}, UPLOAD_LIMIT)
    assert too_long.value.code == 50035
    with pytest.raises(discord.HTTPException) as too_big:
        check_message({"file": discord.File(io.BytesIO(BIG_VIDEO), "v.mp4")}, UPLOAD_LIMIT)
    assert (too_big.value.status, too_big.value.code) == (413, 40005)
    log = Log()
    channel = FakeChannel(log)
    first = await channel.send(content="a", nonce="v:job1")
    again = await channel.send(content="a", nonce="v:job1")
    assert again is first and len(log.of("channel.send")) == 1
    log.limit("channel.send", 0.5)
    with pytest.raises(discord.RateLimited):
        await channel.send(content="b")


# -- sizes -------------------------------------------------------------------------------------------
async def test_a_long_link_text_is_cut_to_discords_2000_characters(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    inter = FakeInteraction()
    conv = conversation(inter, fetcher, clock)
    await inter.response.defer(thinking=True)
    view = video_view("https://cdn.example/v.mp4")
    view = type(view)(**{**view.__dict__, "link_text": "🔗 " + "长" * 3000})
    await conv.video(view)
    (final,) = inter.log.of("edit_original")
    assert len(final["content"]) == 2000 and final["content"].endswith("…")


async def test_an_upload_discord_refuses_as_too_large_is_shown_as_the_link(
    fetcher: VideoFetcher, clock: Clock, video_server: str
) -> None:
    url = f"{video_server}/big.mp4"
    inter = FakeInteraction(filesize_limit=UPLOAD_LIMIT)
    # the conversation believes more fits (a limit that changed, a stale guild): Discord says 413
    conv = conversation(inter, fetcher, clock, limit=len(BIG_VIDEO) + 1)
    await inter.response.defer(thinking=True)
    await conv.video(video_view(url))
    (final,) = inter.log.of("edit_original")
    assert "attachments" not in final
    assert url in final["content"] and f"<{url}>" not in final["content"]  # the link plays instead


# -- rate limits -------------------------------------------------------------------------------------
async def test_a_rate_limited_progress_frame_is_skipped_and_the_end_waits_its_turn(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    inter = FakeInteraction()
    conv = conversation(inter, fetcher, clock)
    await inter.response.defer(thinking=True)
    await conv.notice(notice_view())
    inter.log.limit("edit_original", 20.0)
    clock.advance(6)
    await conv.progress(progress_view(10, 6))  # refused: skipped, and quiet for 20 s
    clock.advance(6)
    await conv.progress(progress_view(40, 12))  # within the 20 s: not even tried
    clock.advance(16)
    await conv.progress(progress_view(60, 28))
    inter.log.limit("edit_original", 0.01, times=2, as_429=True)
    await conv.failure(failure_view())  # an end is tried again after retry_after
    shown = [description(kw) for kw in inter.log.of("edit_original")]
    assert len(shown) == 3 and "60%" in shown[1] and "Reason" in shown[2]
    assert [kw["call"] for kw in inter.log.of("rate_limited")] == ["edit_original"] * 3


async def test_words_the_core_says_wait_out_a_rate_limit_too(fetcher: VideoFetcher, clock: Clock) -> None:
    inter = FakeInteraction()
    conv = conversation(inter, fetcher, clock)
    await inter.response.defer(thinking=True)
    inter.log.limit("edit_original", 0.01, as_429=True)
    await conv.text("🔧 retrying (attempt 1)")
    assert [kw["content"] for kw in inter.log.of("edit_original")] == ["🔧 retrying (attempt 1)"]


# -- the original response, a restart, and one message per delivery ---------------------------------
async def test_a_video_jobs_original_response_is_saved_and_a_resumed_job_edits_it(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    async def notice_only(conv: Conversation) -> str:
        await conv.notice(notice_view())
        return "running"

    core = FakeCore(notice_only)
    inter = FakeInteraction()
    h = make_handlers(core, fetcher, clock)
    await h.video(as_discord(inter), VideoOptions("a cat"))
    await core.jobs[0].wait()
    state = core.conversations[0].target_state  # type: ignore[attr-defined]
    assert state == {"message_id": str(inter.original_id)}
    # after a restart: the adapter rebuilds the conversation from the saved state
    channel = inter.channel
    status = cast(discord.PartialMessage, channel.get_partial_message(int(state["message_id"])))
    resumed = Conversations(fetcher, clock=clock.monotonic, now=clock.now).for_channel(
        channel, status, requester=USER, language="en"
    )
    await resumed.progress(progress_view(70, 70))
    done = video_view("not-a-url")
    await resumed.video(type(done)(**{**done.__dict__, "requester": USER}))
    edits = inter.log.of("message.edit")
    assert [kw["message"] for kw in edits] == [inter.original_id] * 2
    assert "70%" in description(edits[0]) and "Video ready" in description(edits[1])
    # the only new message is the ping, which the video's edit could not give
    (ping,) = inter.log.of("channel.send")
    assert f"<@{USER}>" in ping["content"]


async def test_a_delivery_repeated_after_a_restart_posts_one_message(fetcher: VideoFetcher) -> None:
    log = Log()
    channel = FakeChannel(log)

    def after_restart() -> DiscordConversation:
        # a job resumed without a saved message: nothing to edit, so it posts in the channel
        return Conversations(fetcher).for_channel(channel, requester=USER, language="en")

    view = video_view("not-a-url", job="0123456789abcdef")
    view = type(view)(**{**view.__dict__, "requester": USER})
    await after_restart().video(view)  # shown, then the bot is killed before saving "delivered"
    await after_restart().video(view)  # the resumed job delivers again
    posted = log.of("channel.send")
    assert [kw["nonce"] for kw in posted] == ["v:0123456789abcdef", "r:0123456789abcdef"]
    assert len(log.of("channel.send.same_nonce")) == 2  # Discord returned the first two
    assert all(len(nonce_for("j" * 40, w)) <= MAX_NONCE for w in ("v", "r", "p12"))


async def test_a_resumed_job_whose_message_is_gone_posts_a_new_one(fetcher: VideoFetcher) -> None:
    log = Log()
    channel = FakeChannel(log)

    class Gone:
        id = 42

        async def edit(self, **kw: Any) -> None:
            raise discord.NotFound(
                http_response(404, "Not Found"), {"code": 10008, "message": "Unknown Message"}
            )

    conv = Conversations(fetcher).for_channel(channel, Gone(), requester=USER, language="en")  # type: ignore[arg-type]
    await conv.failure(failure_view("job7"))
    (posted,) = log.of("channel.send")
    assert posted["nonce"] == "f:job7" and conv.status_message_id == posted["message"]


# -- "not your job" is private ----------------------------------------------------------------------
async def test_not_your_job_is_private_even_on_a_button_that_names_no_requester(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    core = FakeCore()
    core.owners["job1"] = "5"
    h = make_handlers(core, fetcher, clock)
    other = FakeInteraction(client=SimpleNamespace(button_handler=h), user_id=6)
    await press("imabot:rerun:job1:", other)  # an old button: no requester in its custom_id
    assert other.log.of("defer")[0] == {"thinking": True, "ephemeral": True}
    owner = FakeInteraction(client=SimpleNamespace(button_handler=h), user_id=5)
    await press("imabot:rerun:job1:", owner)
    assert owner.log.of("defer")[0] == {"thinking": True}


# -- commands, intents, login -----------------------------------------------------------------------
async def test_commands_are_synced_globally_only_when_they_changed(
    monkeypatch: pytest.MonkeyPatch, fetcher: VideoFetcher, tmp_path: Path
) -> None:
    state = tmp_path / "data" / "discord-commands.json"
    syncs: list[object] = []

    async def start(adapter: DiscordAdapter) -> str:
        async def fake_sync(*, guild: object = None) -> list[object]:
            syncs.append(guild)
            return []

        monkeypatch.setattr(adapter.client.tree, "sync", fake_sync)
        await adapter.client.tree.set_translator(LocaleTranslator())
        return await adapter.client.sync_commands()

    assert await start(DiscordAdapter(settings(), FakeCore(), fetcher=fetcher, sync_state=state)) == "global"
    # a restart with the same commands: nothing to sync
    assert (
        await start(DiscordAdapter(settings(), FakeCore(), fetcher=fetcher, sync_state=state)) == "unchanged"
    )
    changed = DiscordAdapter(settings(), FakeCore(), fetcher=fetcher, sync_state=state)

    @discord.app_commands.command(name="ping", description="ping")
    async def ping(interaction: discord.Interaction) -> None: ...

    changed.client.tree.add_command(ping)
    assert await start(changed) == "global"
    assert syncs == [None, None]  # global syncs only, never a guild as well
    assert json.loads(state.read_text(encoding="utf-8"))  # the hash kept beside the database


async def test_the_client_refused_the_message_content_intent_is_closed(
    monkeypatch: pytest.MonkeyPatch, fetcher: VideoFetcher
) -> None:
    serving, closed = asyncio.Event(), asyncio.Event()

    async def fake_start(self: ImaDiscordClient, token: str, *, reconnect: bool = True) -> None:
        if self.intents.message_content:
            raise discord.PrivilegedIntentsRequired(None)
        serving.set()
        await closed.wait()

    monkeypatch.setattr(ImaDiscordClient, "start", fake_start)
    adapter = DiscordAdapter(settings(), FakeCore(), fetcher=fetcher)
    refused = adapter.client
    runner = asyncio.create_task(adapter.start())
    await asyncio.wait_for(serving.wait(), 5)
    assert refused.is_closed() and adapter.client is not refused
    assert not adapter.client.intents.message_content
    closed.set()
    await adapter.stop()
    await asyncio.wait_for(runner, 5)


async def test_a_refused_login_leaves_nothing_open_and_the_next_attempt_starts_afresh(
    monkeypatch: pytest.MonkeyPatch, fetcher: VideoFetcher
) -> None:
    async def refused(self: ImaDiscordClient, token: str, *, reconnect: bool = True) -> None:
        raise discord.LoginFailure("Improper token has been passed.")

    monkeypatch.setattr(ImaDiscordClient, "start", refused)
    adapter = DiscordAdapter(settings(), FakeCore(), fetcher=fetcher)
    first = adapter.client
    with pytest.raises(discord.LoginFailure):
        await adapter.start()
    assert first.is_closed()
    with pytest.raises(discord.LoginFailure):
        await adapter.start()
    assert adapter.client is not first  # a closed client cannot start again
    await adapter.stop()


def test_discord_py_still_does_what_the_adapter_relies_on() -> None:
    # adapters/discord/sdk.py: a release that drops one of these fails here first
    assert sdk.missing_features() == []


# -- one platform failing never stops the other -----------------------------------------------------
async def test_discord_failing_to_log_in_leaves_feishu_serving(
    monkeypatch: pytest.MonkeyPatch, fetcher: VideoFetcher, caplog: pytest.LogCaptureFixture
) -> None:
    async def refused(self: ImaDiscordClient, token: str, *, reconnect: bool = True) -> None:
        raise discord.LoginFailure("Improper token has been passed.")

    monkeypatch.setattr(ImaDiscordClient, "start", refused)
    caplog.set_level(logging.INFO, logger="adapters.supervise")
    async with FakeFeishu() as fake:
        core = ScriptedCore(fake.serve_video("v.mp4", b"\x00\x00\x00\x18ftypmp42" + bytes(2000)))
        feishu = FeishuAdapter(feishu_settings(), core, domain_override=fake.url, min_patch_interval_s=0.05)
        discord_adapter = DiscordAdapter(settings(), FakeCore(), fetcher=fetcher)
        resumed: list[str] = []

        async def on_ready(platform: str, adapter: Any) -> None:
            resumed.append(platform)

        supervisor = Supervisor(
            {"feishu": feishu, "discord": discord_adapter},
            on_ready=on_ready,
            backoff_s=0.05,
            max_backoff_s=0.2,
        )
        runner = asyncio.create_task(supervisor.run())
        try:
            await fake.wait_connected()
            answer = await fake.push("event", json.loads(payload("p2p_text")))
            assert answer["code"] == 200
            await feishu.wait_idle()
            await core.settle()
            assert len(core.incoming) == 1 and fake.sent("media")  # Feishu delivered a video
            # three refused logins, 0.05 s, 0.1 s, 0.2 s apart
            await wait_until(lambda: supervisor.states["discord"].failures >= 3, "three refused logins")
            assert supervisor.states["feishu"].state == READY
            assert supervisor.states["discord"].state == RETRYING
            assert "LoginFailure" in (supervisor.states["discord"].error or "")
            assert resumed == ["feishu"]
        finally:
            await supervisor.stop()
            await asyncio.wait_for(runner, 10)
    report = [r.getMessage() for r in caplog.records if r.getMessage().startswith("platforms: ")]
    assert report and "feishu: ready" in report[0] and "discord: retrying" in report[0]
