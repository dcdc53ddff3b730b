"""Issue 9 on Discord: only a real video request spends credits.

The adapter is driven at its boundary (stand-in interactions and messages that record what
Discord would receive) on a real BotCore and the loopback IMA sandbox, whose ledger counts
every paid task: reply-pings and small talk start nothing, words typed after an @-mention are
answered without a task, direct messages need no mention, every button works once and the
message drops its buttons, /cancel, and the requester is pinged when the video is ready.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import discord
import pytest

from adapters.base import Alternative, NoticeView, ProgressView, VideoView
from adapters.discord import render
from adapters.discord.buttons import JobActionButton, RerunButton
from adapters.discord.fetch import VideoFetcher
from adapters.discord.handlers import Conversations, Handlers, VideoOptions
from bot import commands, i18n
from bot.config import Settings
from bot.core import BotCore
from bot.sandbox import Sandbox
from tests.conftest import close_core, make_settings, open_core
from tests.test_discord import (
    BOT_ID,
    FakeCDN,
    FakeCore,
    FakeInteraction,
    FakeMessage,
    Log,
    as_discord,
    description,
    http_response,
    mention_message,
    press,
)
from tests.test_discord import settings as adapter_settings

USER = 1100000000000000001  # the requester in the stand-ins and the recorded message
OTHER = 1100000000000000002
ME = SimpleNamespace(id=BOT_ID)


@pytest.fixture
async def fetcher() -> AsyncIterator[VideoFetcher]:
    f = VideoFetcher(timeout_s=10)
    yield f
    await f.aclose()


@pytest.fixture
async def pricey_core(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[BotCore]:
    """A core that asks before spending more than 1 credit (every video)."""
    c = await open_core(make_settings(sandbox, tmp_path / "pricey.sqlite3", bot_confirm_above_credits=1))
    yield c
    await close_core(c)


def handlers(core: BotCore, fetcher: VideoFetcher) -> Handlers:
    return Handlers(core, core.settings, Conversations(fetcher))


def interaction(
    h: Handlers | None = None, *, user_id: int = USER, pressed: Log | None = None, **kw: Any
) -> FakeInteraction:
    """A stand-in interaction created now; with `pressed`, a button press on a message whose
    edits go to that log."""
    message = FakeMessage(pressed, "pressed") if pressed is not None else None
    client = SimpleNamespace(button_handler=h) if h is not None else None
    return FakeInteraction(
        created_at=discord.utils.utcnow(), user_id=user_id, client=client, message=message, **kw
    )


def buttons(kw: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, custom_id) of every button on a shown message."""
    view = kw.get("view")
    return [(b.item.label, b.custom_id) for b in view.children] if view is not None else []


async def until(check: Callable[[], bool], within: float = 10.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def texts(log: Log) -> list[str]:
    return [kw.get("content") or "" for kw in log.shown()]


def message(log: Log, content: str, *, mentions: tuple[int, ...] = (), **changes: Any) -> Any:
    """A MESSAGE_CREATE like the recorded one, with this content and mentions and no attachment."""
    raw: dict[str, Any] = {
        "content": content,
        "mentions": [{"id": str(i)} for i in mentions],
        "attachments": [],
    }
    raw.update(changes)
    return mention_message(log, FakeCDN({}), **raw)


# -- messages: what counts as addressed to the bot ---------------------------------------------------
async def test_a_reply_ping_without_the_mention_in_the_text_starts_nothing_and_says_nothing(
    core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    h = handlers(core, fetcher)
    log = Log()
    # a reply to the bot with the default ping: the bot is in message.mentions, not in the text
    for i, words in enumerate(("thanks, looks great", "谢谢", "a puppy running on the grass", "yes")):
        await h.on_message(message(log, words, mentions=(BOT_ID,), id=str(1322222222222222300 + i)), ME)
    await core.wait_idle()
    assert sandbox.ledger == []
    assert log.calls == []
    assert await core.recent_jobs("discord", str(USER)) == []


async def test_words_after_an_explicit_mention_are_answered_without_a_task(
    core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    h = handlers(core, fetcher)
    log = Log()
    await h.on_message(message(log, f"<@{BOT_ID}> help", mentions=(BOT_ID,)), ME)
    await h.on_message(message(log, f"<@!{BOT_ID}> 你好", mentions=(BOT_ID,), id="1322222222222222301"), ME)
    await h.on_message(message(log, f"<@{BOT_ID}> cancel", mentions=(BOT_ID,), id="1322222222222222302"), ME)
    await core.wait_idle()
    assert sandbox.ledger == []
    replies = [kw["content"] for kw in log.of("reply")]
    assert replies[0] == commands.help_text("en")
    assert len(replies) == 3 and all(replies)
    assert replies[2] == i18n.t("cancel.none", "en")


async def test_a_direct_message_needs_no_mention_and_pings_the_requester_when_ready(
    core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    h = handlers(core, fetcher)
    log = Log()
    await h.on_message(message(log, "a puppy running on the grass", guild_id=None), ME)
    await until(lambda: len(sandbox.ledger) == 1)
    await core.wait_idle()
    (job,) = await core.recent_jobs("discord", str(USER))
    assert job.status == "delivered" and job.url
    names = log.names()
    assert names[0] == "reply" and names[-1] == "channel.send"  # the notice replies; the ping is new
    final = log.of("message.edit")[-1]
    assert job.url in final["content"]
    ping = log.of("channel.send")[-1]
    assert ping["content"] == i18n.t("discord.video_ready", "en", mention=f"<@{USER}>")
    assert ping["allowed_mentions"].users == [discord.Object(USER)]
    assert "embed" not in ping and "file" not in ping


async def test_unaddressed_guild_messages_never_download_attachments_and_long_ones_are_not_read(
    fetcher: VideoFetcher,
) -> None:
    core = FakeCore()
    h = Handlers(core, adapter_settings(), Conversations(fetcher))
    log, cdn = Log(), FakeCDN({})
    await h.on_message(mention_message(log, cdn, content="yes, go", mentions=[]), ME)  # with the cat picture
    await h.on_message(mention_message(log, cdn, content="x" * 500, mentions=[], attachments=[]), ME)
    await h.on_message(mention_message(log, cdn, content="", mentions=[]), ME)
    assert cdn.fetched == [] and log.calls == []
    (incoming,) = core.incoming
    assert (incoming.text, incoming.images, incoming.mentioned) == ("yes, go", (), False)


async def test_unaddressed_messages_from_a_guild_outside_the_allowlist_get_no_answer(
    fetcher: VideoFetcher,
) -> None:
    core = FakeCore()
    h = Handlers(core, adapter_settings(discord_allowed_guilds=[7]), Conversations(fetcher))
    log = Log()
    await h.on_message(message(log, "yes"), ME)
    assert core.incoming == [] and log.calls == []
    await h.on_message(message(log, f"<@{BOT_ID}> hi"), ME)  # addressed: told why not
    assert log.of("reply")[0]["content"] == i18n.t("discord.not_allowed", "en")


async def test_a_yes_typed_without_a_mention_answers_the_bots_question_to_that_person_only(
    pricey_core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    core = pricey_core
    h = handlers(core, fetcher)
    ask = interaction()
    await h.video(as_discord(ask), VideoOptions("a puppy running on the grass", model="wan2.6-t2v"))
    await core.wait_idle()
    assert [cid.split(":")[1] for _, cid in buttons(ask.log.of("edit_original")[-1])] == [
        "confirm",
        "decline",
    ]
    log = Log()
    # someone else says yes: not their question, nothing said
    await h.on_message(
        message(log, "yes", author={"id": str(OTHER), "bot": False}, id="1322222222222222401"), ME
    )
    await core.wait_idle()
    assert sandbox.ledger == [] and log.calls == []
    # the requester replies "yes" (the reply pings the bot, no <@id> in the text)
    await h.on_message(message(log, "yes", mentions=(BOT_ID,), id="1322222222222222402"), ME)
    await core.wait_idle()
    assert len(sandbox.ledger) == 1
    (job,) = await core.recent_jobs("discord", str(USER))
    assert job.status == "delivered"


async def test_a_yes_typed_to_the_channel_spends_nothing_until_it_replies_to_the_bot(
    pricey_core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    core = pricey_core
    h = handlers(core, fetcher)
    await h.video(as_discord(interaction()), VideoOptions("a puppy running on the grass", model="wan2.6-t2v"))
    await core.wait_idle()
    log = Log()
    # the requester says "yes" in the channel, to no one in particular: it may be for a friend
    await h.on_message(message(log, "yes", id="1322222222222222411"), ME)
    await core.wait_idle()
    assert sandbox.ledger == [] and log.calls == []
    # the same word quoting the bot's question (a reply without the ping) answers it
    await h.on_message(message(log, "yes", replies_to=str(BOT_ID), id="1322222222222222412"), ME)
    await core.wait_idle()
    assert len(sandbox.ledger) == 1


async def test_the_video_command_starts_even_a_few_words_without_asking(
    core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    # typed in a chat, "sunset" would ask first; sent with /video, it asked for a video already
    h = handlers(core, fetcher)
    await h.video(as_discord(interaction()), VideoOptions("sunset"))
    await core.wait_idle()
    assert len(sandbox.ledger) == 1
    (job,) = await core.recent_jobs("discord", str(USER))
    assert job.status == "delivered" and job.prompt == "sunset"


# -- buttons -------------------------------------------------------------------------------------------
async def test_confirm_works_once_for_the_requester_and_not_at_all_for_anyone_else(
    pricey_core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    core = pricey_core
    h = handlers(core, fetcher)
    ask = interaction()
    await h.video(as_discord(ask), VideoOptions("a cat surfing a wave", model="wan2.6-t2v"))
    await core.wait_idle()  # priced, asked, parked until a yes
    shown = ask.log.of("edit_original")[-1]
    (confirm, decline) = buttons(shown)
    assert confirm[0].startswith("✅") and confirm[1].endswith(f":{USER}")
    assert decline[0] == i18n.t("confirm.decline_button", "en")
    assert i18n.t("cancel.button", "en") not in [label for label, _ in buttons(shown)]
    assert sandbox.ledger == []

    pressed = Log()  # what happens to the message holding the buttons
    other = interaction(h, user_id=OTHER, pressed=pressed)
    await press(confirm[1], other)
    assert other.log.of("defer")[0] == {"thinking": True, "ephemeral": True}  # answered privately
    assert other.log.of("edit_original")[0]["content"] == i18n.t("chat.not_your_job", "en")
    assert pressed.calls == []  # the owner's buttons stay
    await core.wait_idle()
    assert sandbox.ledger == []

    mine = interaction(h, pressed=pressed)
    await press(confirm[1], mine)
    assert mine.log.of("defer")[0] == {"thinking": True}
    assert [kw["view"] for kw in pressed.of("message.edit")] == [None]
    await core.wait_idle()
    assert len(sandbox.ledger) == 1
    assert description(mine.log.of("edit_original")[0])  # the job's notice in the press's response

    again = interaction(h, pressed=pressed)
    await press(confirm[1], again)
    await press(decline[1], interaction(h, pressed=pressed))
    await core.wait_idle()
    assert len(sandbox.ledger) == 1
    assert again.log.of("edit_original")[0]["content"] == i18n.t("talk.already_started", "en")


async def test_no_thanks_ends_the_job_unpaid_and_removes_the_buttons(
    pricey_core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    core = pricey_core
    h = handlers(core, fetcher)
    ask = interaction()
    await h.video(as_discord(ask), VideoOptions("a cat surfing a wave", model="wan2.6-t2v"))
    await core.wait_idle()  # priced, asked, parked until a yes
    (confirm, decline) = buttons(ask.log.of("edit_original")[-1])
    pressed = Log()
    no = interaction(h, pressed=pressed)
    await press(decline[1], no)
    assert no.log.of("edit_original")[0]["content"] == i18n.t("confirm.declined", "en")
    assert [kw["view"] for kw in pressed.of("message.edit")] == [None]
    late = interaction(h, pressed=pressed)
    await press(confirm[1], late)
    await core.wait_idle()
    assert sandbox.ledger == []
    assert late.log.of("edit_original")[0]["content"] == i18n.t("talk.already_started", "en")
    (job,) = await core.recent_jobs("discord", str(USER))
    assert job.status == "cancelled"


async def test_cancel_button_on_the_progress_message_stops_the_job_once(
    core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    h = handlers(core, fetcher)
    sandbox.force_task_never_finishes()
    ask = interaction()
    await h.video(as_discord(ask), VideoOptions("a puppy running on the grass", model="wan2.6-t2v"))
    await until(lambda: len(sandbox.ledger) == 1 and len(ask.log.of("edit_original")) >= 2)
    cancel_ids = {cid for kw in ask.log.of("edit_original") for _, cid in buttons(kw)}
    (cancel,) = cancel_ids  # the notice and the progress show the same ❌ Cancel
    assert cancel.startswith("imabot:cancel:") and cancel.endswith(f":{USER}")
    assert buttons(ask.log.of("edit_original")[-1])[0][0] == i18n.t("cancel.button", "en")

    pressed = Log()
    other = interaction(h, user_id=OTHER, pressed=pressed)
    await press(cancel, other)
    assert other.log.of("edit_original")[0]["content"] == i18n.t("chat.not_your_job", "en")
    assert pressed.calls == []
    (job,) = await core.recent_jobs("discord", str(USER))
    assert job.status == "running"

    mine = interaction(h, pressed=pressed)
    await press(cancel, mine)
    (job,) = await core.recent_jobs("discord", str(USER))
    assert job.status == "cancelled"
    assert mine.log.of("edit_original")[0]["content"] == i18n.t(
        "cancel.running", "en", prompt=job.prompt[:40]
    )
    assert [kw["view"] for kw in pressed.of("message.edit")] == [None]
    twice = interaction(h, pressed=pressed)
    await press(cancel, twice)
    assert twice.log.of("edit_original")[0]["content"] == i18n.t("cancel.none", "en")
    await core.wait_idle()
    assert len(sandbox.ledger) == 1
    # /jobs shows the cancelled job in words of its own
    listing = interaction()
    await h.jobs(as_discord(listing))
    assert (
        i18n.t("discord.jobs.status.cancelled", "en")
        in listing.log.of("edit_original")[0]["embed"].description
    )


async def test_again_and_try_another_model_on_the_video_work_once_between_them(
    core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    h = handlers(core, fetcher)
    ask = interaction()
    await h.video(as_discord(ask), VideoOptions("a puppy running on the grass", model="wan2.6-t2v"))
    await core.wait_idle()
    video = ask.log.of("edit_original")[-1]
    shown = buttons(video)
    assert shown[0] == (i18n.t("again.button", "en"), f"imabot:rerun:{shown[0][1].split(':')[2]}::{USER}")
    assert len(shown) == 3 and shown[1][1].startswith("imabot:seed:") and shown[2][0].startswith("🔀")
    again, other_model = shown[0][1], shown[2][1]

    pressed = Log()
    mine = interaction(h, pressed=pressed)
    await press(again, mine)
    await core.wait_idle()
    assert len(sandbox.ledger) == 2
    assert sandbox.ledger[1].model_id == sandbox.ledger[0].model_id  # the same model again
    assert [kw["view"] for kw in pressed.of("message.edit")] == [None]
    newest = (await core.recent_jobs("discord", str(USER)))[0]
    assert newest.url and newest.url in mine.log.of("edit_original")[-1]["content"]

    late = interaction(h, pressed=pressed)
    await press(other_model, late)
    await core.wait_idle()
    assert len(sandbox.ledger) == 2
    assert late.log.of("edit_original")[0]["content"] == i18n.t("talk.already_started", "en")


async def test_try_another_model_runs_the_same_request_with_that_model(
    core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    h = handlers(core, fetcher)
    ask = interaction()
    await h.video(as_discord(ask), VideoOptions("a puppy running on the grass", model="wan2.6-t2v"))
    await core.wait_idle()
    (_, _, switch) = buttons(ask.log.of("edit_original")[-1])
    model = switch[1].split(":")[3]
    pressed = Log()
    await press(switch[1], interaction(h, pressed=pressed))
    await core.wait_idle()
    assert [e.model_id for e in sandbox.ledger] == ["wan2.6-t2v", model]
    assert sandbox.ledger[1].prompt == sandbox.ledger[0].prompt
    assert [kw["view"] for kw in pressed.of("message.edit")] == [None]


async def test_same_seed_makes_one_more_task_with_the_first_ones_seed_once(
    core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    h = handlers(core, fetcher)
    ask = interaction()
    await h.video(as_discord(ask), VideoOptions("a puppy running on the grass", model="wan2.6-t2v"))
    await core.wait_idle()
    (first,) = sandbox.ledger
    seed = int(first.parameters["seed"])
    shown = buttons(ask.log.of("edit_original")[-1])
    same = shown[1]
    assert same == (i18n.t("again.same_seed", "en", seed=seed), f"imabot:seed:{same[1].split(':')[2]}:{USER}")

    pressed = Log()
    other = interaction(h, user_id=OTHER, pressed=pressed)
    await press(same[1], other)  # not theirs: answered privately, nothing made, buttons kept
    await core.wait_idle()
    assert other.log.of("edit_original")[0]["content"] == i18n.t("chat.not_your_job", "en")
    assert len(sandbox.ledger) == 1 and pressed.calls == []

    mine = interaction(h, pressed=pressed)
    await press(same[1], mine)
    await core.wait_idle()
    assert len(sandbox.ledger) == 2
    second = sandbox.ledger[1]
    assert int(second.parameters["seed"]) == seed and second.model_id == first.model_id
    assert second.prompt == first.prompt
    assert [kw["view"] for kw in pressed.of("message.edit")] == [None]

    for cid in (same[1], shown[0][1], shown[2][1]):  # Same seed again, Again, Try <model>: all used up
        late = interaction(h, pressed=pressed)
        await press(cid, late)
        await core.wait_idle()
        assert late.log.of("edit_original")[0]["content"] == i18n.t("talk.already_started", "en")
    assert len(sandbox.ledger) == 2


# -- /video creative controls -------------------------------------------------------------------------------
async def test_video_options_sound_seed_and_negative_prompt_reach_the_create_body(
    core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    h = handlers(core, fetcher)
    ask = interaction()
    opts = VideoOptions(
        "waves on a beach",
        model="kling-v2-6",
        duration=5,
        sound="off",
        seed=42,
        negative_prompt="text, watermarks",
    )
    await h.video(as_discord(ask), opts)
    await core.wait_idle()
    (entry,) = sandbox.ledger
    assert entry.model_id == "kling-v2-6" and entry.parameters["sound"] == "off"
    assert int(entry.parameters["seed"]) == 42 and entry.parameters["negative_prompt"] == "text, watermarks"
    assert entry.prompt == "waves on a beach"
    notice = description(ask.log.of("edit_original")[0])
    for line in (
        i18n.t("controls.sound_off", "en"),
        i18n.t("controls.seed", "en", seed=42),
        i18n.t("controls.negative", "en", words="text, watermarks"),
    ):
        assert line in notice
    # the video offers the same seed again
    labels = {cid.split(":")[1]: label for label, cid in buttons(ask.log.of("edit_original")[-1])}
    assert labels["seed"] == i18n.t("again.same_seed", "en", seed=42)


async def test_video_options_sound_on_shot_type_and_prompt_extension_reach_the_create_body(
    core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    h = handlers(core, fetcher)
    first, second = interaction(), interaction()
    second.id += 1  # another invocation
    await h.video(
        as_discord(first), VideoOptions("waves on a beach", model="kling-v2-6", duration=5, sound="on")
    )
    await h.video(
        as_discord(second),
        VideoOptions("a city at night", model="wan2.6-t2v", shot_type="multi", prompt_extend="off"),
    )
    await core.wait_idle()
    # two jobs at once: which create goes out first is not part of the claim
    by_model = {e.model_id: e for e in sandbox.ledger}
    loud, wan = by_model["kling-v2-6"], by_model["wan2.6-t2v"]
    assert loud.parameters["sound"] == "on"
    assert wan.parameters["shot_type"] == "multi" and wan.parameters["prompt_extend"] in (False, "false")
    assert wan.prompt == "a city at night"


# -- /cancel ---------------------------------------------------------------------------------------------
async def test_cancel_command_stops_the_latest_job_or_says_there_is_none(
    core: BotCore, sandbox: Sandbox, fetcher: VideoFetcher
) -> None:
    h = handlers(core, fetcher)
    nothing = interaction(locale="zh-CN")
    await h.cancel(as_discord(nothing))
    assert nothing.log.of("defer")[0] == {"ephemeral": True, "thinking": True}
    assert nothing.log.of("edit_original")[0]["content"] == i18n.t("cancel.none", "zh")

    sandbox.force_task_never_finishes()
    ask = interaction()
    await h.video(as_discord(ask), VideoOptions("a puppy running on the grass", model="wan2.6-t2v"))
    await until(lambda: len(sandbox.ledger) == 1)
    stop = interaction()
    await h.cancel(as_discord(stop))
    (job,) = await core.recent_jobs("discord", str(USER))
    assert job.status == "cancelled"
    assert stop.log.of("edit_original")[0]["content"] == i18n.t(
        "cancel.running", "en", prompt=job.prompt[:40]
    )
    await core.wait_idle()
    assert len(sandbox.ledger) == 1


# -- completion ------------------------------------------------------------------------------------------
async def test_the_finished_video_is_followed_by_a_message_that_pings_only_the_requester(
    core: BotCore, settings: Settings, fetcher: VideoFetcher
) -> None:
    h = handlers(core, fetcher)
    ask = interaction(locale="zh-CN")
    await h.video(as_discord(ask), VideoOptions("一只小狗在草地上奔跑", model="wan2.6-t2v"))
    await core.wait_idle()
    names = ask.log.names()
    assert names[-2:] == ["edit_original", "followup.send"]  # the video (an edit), then the ping
    ping = ask.log.of("followup.send")[-1]
    assert ping["content"] == i18n.t("discord.video_ready", "zh", mention=f"<@{USER}>")
    mentions = ping["allowed_mentions"]
    assert (mentions.everyone, mentions.roles, mentions.users) == (False, False, [discord.Object(USER)])
    assert set(ping) <= {"message", "content", "allowed_mentions", "wait"}  # words only, no second video


# -- rendering at the boundary (no core) ---------------------------------------------------------------------
async def test_buttons_carry_the_requester_and_fall_back_to_the_old_form_when_too_long(
    fetcher: VideoFetcher,
) -> None:
    conv = Conversations(fetcher).for_channel(
        SimpleNamespace(send=None),
        requester=str(USER),
        language="en",
    )
    notice = NoticeView(
        "job1",
        "t",
        "text",
        "Wan 2.6",
        25,
        60,
        120,
        confirm_label="✅ Confirm (25 pts)",
        decline_label="✖ No thanks",
    )
    out = render.notice(notice, conv.requester)
    assert [(b.item.label, b.custom_id) for b in out.view.children] == [  # type: ignore[union-attr]
        ("✅ Confirm (25 pts)", f"imabot:confirm:job1:{USER}"),
        ("✖ No thanks", f"imabot:decline:job1:{USER}"),
    ]
    running = render.progress(
        ProgressView("job1", 40, 40, 120, "⏳ 40%", cancel_label="❌ Cancel"), None, str(USER)
    )
    assert [b.custom_id for b in running.view.children] == [f"imabot:cancel:job1:{USER}"]  # type: ignore[union-attr]
    long_model = "m" * 70
    video = VideoView(
        "job1",
        "https://v/x.mp4",
        None,
        "cap",
        "link",
        "Wan 2.6",
        again_label="🔁 Again",
        alternatives=(Alternative(long_model, "Long", "🔀 Try Long"),),
        requester=str(USER),
    )
    ids = [b.custom_id for b in render.video(video).view.children]  # type: ignore[union-attr]
    assert ids == [f"imabot:rerun:job1::{USER}", f"imabot:rerun:job1:{long_model}"]  # no room for the user
    assert all(len(i) <= 100 for i in ids)
    # a button posted before requesters were added is still understood
    item = JobActionButton.make("cancel", "job1", "❌")
    assert item.custom_id == "imabot:cancel:job1" and item.requester is None
    assert RerunButton.make("job1", None, "🔁", requester="not-a-number").custom_id == "imabot:rerun:job1:"


async def test_a_press_without_a_requester_in_its_id_keeps_the_buttons_unless_it_started_a_job(
    fetcher: VideoFetcher,
) -> None:
    async def script(conv: Any) -> str:
        return "running"

    pressed = Log()
    refusing = FakeCore()  # answers None, like "not your job"
    h = Handlers(refusing, adapter_settings(), Conversations(fetcher))
    await press("imabot:cancel:job1", interaction(h, user_id=OTHER, pressed=pressed))
    await press("imabot:rerun:job1:", interaction(h, user_id=OTHER, pressed=pressed))
    assert refusing.actions == [
        {"action": "cancel", "job_id": "job1", "user_id": str(OTHER), "platform": "discord", "language": None}
    ]
    assert pressed.calls == []
    starting = FakeCore(script)
    h2 = Handlers(starting, adapter_settings(), Conversations(fetcher))
    await press("imabot:confirm:job1", interaction(h2, pressed=pressed))
    await starting.jobs[0].wait()
    assert [kw["view"] for kw in pressed.of("message.edit")] == [None]


async def test_only_a_user_id_is_ever_pinged(fetcher: VideoFetcher) -> None:
    sent: list[dict[str, Any]] = []

    class Channel:
        async def send(self, **kw: Any) -> Any:
            sent.append(kw)
            return SimpleNamespace(id=1, edit=None)

    conv = Conversations(fetcher).for_channel(Channel(), requester=str(USER), language="zh")
    await conv._ping("<@&123>")  # a role, @everyone or anything but a user id: no ping
    await conv._ping("everyone")
    assert sent == []
    await conv._ping(str(OTHER))
    assert sent[0]["content"] == i18n.t("discord.video_ready", "zh", mention=f"<@{OTHER}>")


async def test_a_ping_that_fails_does_not_undo_the_delivered_video(fetcher: VideoFetcher) -> None:
    class Channel:
        def __init__(self) -> None:
            self.sent: list[dict[str, Any]] = []

        async def send(self, **kw: Any) -> Any:
            if "allowed_mentions" in kw:
                raise discord.HTTPException(http_response(403, "Forbidden"), "Missing Access")
            self.sent.append(kw)

            async def edit(**_: Any) -> None:
                return None

            return SimpleNamespace(id=5, edit=edit)

    channel = Channel()
    conv = Conversations(fetcher).for_channel(channel, requester=str(USER), language="en")
    await conv.video(
        VideoView("job1", "not-a-url", None, "cap", "link not-a-url", "Wan 2.6", requester=str(USER))
    )
    assert len(channel.sent) == 1 and channel.sent[0]["content"] == "link not-a-url"


async def test_usage_answers_privately_with_what_the_person_spent() -> None:
    from tests.test_discord import FakeInteraction

    class UsageCore:
        def t(self, key: str, language: str, **values: object) -> str:
            from bot import i18n

            return i18n.t(key, language, **values)

        async def usage(self, platform: str, user_id: str, chat_id: str, language: str) -> str:
            return f"{platform}:{user_id}:{chat_id}:{language}"

    from adapters.discord.handlers import Conversations, Handlers
    from bot.config import Settings

    inter = FakeInteraction()
    handlers = Handlers(UsageCore(), Settings(_env_file=None), Conversations(None))  # type: ignore[arg-type]
    await handlers.usage(as_discord(inter))
    assert inter.log.of("edit_original")[0]["content"].startswith("discord:")
