"""Issue 13 on Feishu: the adapter against a fake open platform that is no kinder than Feishu.

The fake (tests/fixtures/feishu/fake_open_platform.py) enforces the documented rules — shared
cards only, 30 KB cards, 5 patches a second per message and 5 sends a second per chat, the
upload rules, media made of an mp4 upload, `uuid` sending one message per hour — and answers
rate limits as Feishu does. The adapter has to live with all of them: back off, cut what is too
long, send an end it cannot patch in as a new message, and show a delivery repeated after a
restart once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from adapters.base import FailureView, NoticeView, ProgressView, ReplyTarget, VideoView
from adapters.feishu import FeishuApiError, FeishuConversation
from adapters.feishu import cards as feishu_cards
from adapters.feishu.api import FeishuApi
from adapters.feishu.conversation import idempotency_key
from tests.fixtures.feishu.fake_open_platform import FakeFeishu
from tests.test_feishu import (
    MP4,
    ScriptedCore,
    buttons,
    card_text,
    deliver,
    make_adapter,
)
from tests.test_feishu import core as core  # fixtures, by their names
from tests.test_feishu import fake as fake

CHAT = "oc_p2p_chat_0001"
SHARED = {"config": {"update_multi": True}, "elements": []}


@pytest.fixture
async def strict_api(fake: FakeFeishu) -> FeishuApi:
    """The adapter's API client, retrying nothing: every refusal shows."""
    return FeishuApi(fake.url, "cli_a1b2c3d4e5f6", "secret", rate_limit_retries=0)


def stopped_clock() -> Callable[[], float]:
    """Every call in the same second, however slowly the machine makes them."""
    now = time.time()
    return lambda: now


async def refused(call: Any) -> int:
    with pytest.raises(FeishuApiError) as e:
        await call
    return e.value.code


# -- the fake holds Feishu's rules ---------------------------------------------------------------------
async def test_cards_are_patched_only_when_shared_small_and_not_too_often(
    fake: FakeFeishu, strict_api: FeishuApi
) -> None:
    fake.clock = stopped_clock()
    unshared = await strict_api.send(CHAT, "interactive", {"elements": []})
    assert await refused(strict_api.patch_card(unshared, SHARED)) == 230099  # update_multi on both
    card = await strict_api.send(CHAT, "interactive", SHARED)
    assert await refused(strict_api.patch_card(card, {"elements": []})) == 230099
    big = {**SHARED, "elements": [{"tag": "div", "text": {"tag": "plain_text", "content": "长" * 11000}}]}
    assert await refused(strict_api.patch_card(card, big)) == 230025  # over 30 KB
    assert await refused(strict_api.send(CHAT, "interactive", big)) == 230025
    for _ in range(5):
        await strict_api.patch_card(card, SHARED)
    assert await refused(strict_api.patch_card(card, SHARED)) == 230020  # 5 a second per message
    fake.recall(card)
    assert await refused(strict_api.patch_card(card, SHARED)) == 230011
    old = await strict_api.send("oc_other", "interactive", SHARED)
    fake.age(old, 15 * 86400)
    assert await refused(strict_api.patch_card(old, SHARED)) == 230031  # 14 days


async def test_uploads_and_media_follow_the_upload_rules(fake: FakeFeishu, strict_api: FeishuApi) -> None:
    assert await refused(strict_api.upload_video(b"", "empty.mp4", 1000)) == 234001
    assert await refused(strict_api.upload_video(bytes(30 * 1024 * 1024 + 1), "big.mp4", 1000)) == 234006
    assert await refused(strict_api.upload_image(b"")) == 234001
    key = await strict_api.upload_video(MP4, "v.mp4", 5000)
    # an mp4 upload is sent as media; as a "file" message it is refused
    assert await refused(strict_api.send(CHAT, "file", {"file_key": key})) == 230055
    assert await refused(strict_api.send(CHAT, "media", {"file_key": "file_v3_unknown"})) == 230001
    assert (
        await refused(strict_api.send(CHAT, "media", {"file_key": key, "image_key": "img_unknown"})) == 230001
    )
    await strict_api.send(CHAT, "media", {"file_key": key})
    assert [m.msg_type for m in fake.sent()] == ["media"]


async def test_sends_are_limited_to_five_a_second_per_chat_and_uuid_sends_once(
    fake: FakeFeishu, strict_api: FeishuApi
) -> None:
    fake.clock = stopped_clock()
    first = await strict_api.send(CHAT, "text", {"text": "hi"}, uuid="job1:link")
    assert await strict_api.send(CHAT, "text", {"text": "hi"}, uuid="job1:link") == first
    for i in range(4):
        await strict_api.send(CHAT, "text", {"text": f"{i}"})
    assert await refused(strict_api.send(CHAT, "text", {"text": "one too many"})) == 230020
    await strict_api.send("oc_other_chat", "text", {"text": "another chat is not limited"})
    assert [c.duplicate for c in fake.of("create")][:2] == [False, True]


# -- rate limits ---------------------------------------------------------------------------------------
async def test_rate_limited_calls_are_retried_after_a_pause(fake: FakeFeishu, core: ScriptedCore) -> None:
    adapter = await make_adapter(fake, core, rate_limit_backoff_s=0.01)
    fake.limit("create", 2, code=99991400, reset_s=0)  # HTTP 429 + x-ogw-ratelimit-reset
    fake.limit("patch", 1, code=230020)
    fake.limit("file", 1, code=99991400)
    await deliver(adapter, "p2p_text")
    assert [c.code for c in fake.rejected] == [99991400, 99991400, 230020, 99991400]
    assert [m.msg_type for m in fake.sent()] == ["interactive", "media", "text"]
    assert fake.sent("interactive")[0].content["header"]["template"] == "green"


async def test_the_wait_follows_what_feishu_says(fake: FakeFeishu, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="adapters.feishu.api")
    api = FeishuApi(fake.url, "cli_a1b2c3d4e5f6", "secret", backoff_s=0.01, max_wait_s=0.3)
    fake.limit("create", 1, code=99991400, reset_s=1)
    started = asyncio.get_running_loop().time()
    await api.send(CHAT, "text", {"text": "hi"})
    # the reset Feishu named (1 s), capped at max_wait_s: asked for by the log, kept by the clock
    # (only from below: a busy machine may add to a wait, never shorten it)
    assert "retrying in 0.30 s" in caplog.text
    assert asyncio.get_running_loop().time() - started >= 0.29


# -- sizes ---------------------------------------------------------------------------------------------
async def test_a_long_prompt_is_cut_with_an_ellipsis_to_fit_the_card_limit(
    fake: FakeFeishu, core: ScriptedCore
) -> None:
    adapter = await make_adapter(fake, core)
    conv = adapter.conversation_for(ReplyTarget("feishu", CHAT, "ou_x", None, "zh"))
    prompt = "一只猫在月球上跳舞，" * 800  # 8,000 characters, 24 KB, twice (notice and progress)
    await conv.notice(NoticeView("job1", "🎬", f"🎬\n• {prompt}", "Wan 2.6", 25, 60, 120))
    await conv.progress(ProgressView("job1", 50, 30, 60, f"⏳ 50%\n{prompt}"))
    await conv.card.flush()  # type: ignore[attr-defined]
    await conv.text("长" * 60000)  # 180 KB of text: over the 150 KB of a text message
    assert fake.rejected == []
    shown = fake.sent("interactive")[0].content
    blocks = [el["text"]["content"] for el in shown["elements"] if el["tag"] == "div"]
    assert len(blocks) == 2 and all(b.endswith("…") for b in blocks)
    assert feishu_cards.body_size(shown) <= feishu_cards.MAX_CARD_BODY
    assert fake.sent("text")[0].content["text"].endswith("…")


# -- an end that cannot be patched in ------------------------------------------------------------------
@pytest.mark.parametrize("lost", ["recalled", "older than 14 days"])
async def test_a_final_state_that_cannot_be_patched_is_sent_as_a_new_card(
    fake: FakeFeishu, core: ScriptedCore, lost: str
) -> None:
    adapter = await make_adapter(fake, core)
    conv = adapter.conversation_for(ReplyTarget("feishu", CHAT, "ou_x", None, "en"))
    assert isinstance(conv, FeishuConversation)
    await conv.notice(
        NoticeView("job1", "🎬", "🎬 Wan 2.6", "Wan 2.6", 25, 60, 120, cancel_label="❌ Cancel")
    )
    stale = conv.card.message_id
    assert stale is not None
    if lost == "recalled":
        fake.recall(stale)
    else:
        fake.age(stale, 15 * 86400)
    await conv.progress(ProgressView("job1", 40, 30, 60, "⏳ 40%"))  # lost, harmlessly
    await conv.card.flush()
    await conv.failure(
        FailureView("job1", "❌ Failed", "❌ Failed\n• Reason: timeout", "timeout", retry_label="🔁 Retry")
    )
    new = [c for c in fake.of("create") if c.body["msg_type"] == "interactive" and c.sent_id != stale]
    assert len(new) == 1 and new[0].body["uuid"] == idempotency_key("job1", "card")
    assert "timeout" in card_text(new[0].content) and buttons(new[0].content)
    assert conv.card.message_id == new[0].sent_id  # later presses patch the new card
    assert conv.target_state == {"card_message_id": new[0].sent_id}


# -- a delivery repeated after a restart shows once ----------------------------------------------------
@pytest.mark.parametrize("chat", ["p2p", "group"])
async def test_a_delivery_repeated_after_a_restart_shows_one_video(
    fake: FakeFeishu, core: ScriptedCore, chat: str
) -> None:
    adapter = await make_adapter(fake, core)
    reply_to = "om_group_text_0002" if chat == "group" else None  # in a group: replies to the request
    target = ReplyTarget("feishu", CHAT, "ou_x", reply_to, "en")
    view = VideoView(
        "job1",
        core.video_url,
        None,
        "✅ Video ready!",
        f"🔗 {core.video_url}",
        "Wan 2.6",
        duration_s=5.0,
        again_label="🔁 Again",
        requester="ou_x",
    )
    first = adapter.conversation_for(target)
    await first.notice(NoticeView("job1", "🎬", "🎬 Wan 2.6", "Wan 2.6", 25, 60, 120))
    card_id = first.target_state["card_message_id"]  # type: ignore[attr-defined]
    await first.video(view)  # shown; then the bot is killed before "delivered" is saved
    # the restarted bot resumes the job with the state the core kept, and delivers it again
    again = adapter.conversation_for(
        ReplyTarget("feishu", CHAT, "ou_x", reply_to, "en", {"card_message_id": card_id})
    )
    await again.video(view)
    assert [m.msg_type for m in fake.sent()][-3:] == ["interactive", "media", "text"]
    assert len(fake.sent("media")) == 1 and len(fake.sent("text")) == 1
    repeats = [c.body["uuid"] for c in fake.calls if c.duplicate]
    assert repeats == [idempotency_key("job1", "media"), idempotency_key("job1", "link")]
    assert fake.rejected == []


async def test_a_resumed_end_whose_card_is_gone_is_also_sent_once(
    fake: FakeFeishu, core: ScriptedCore
) -> None:
    adapter = await make_adapter(fake, core)
    fake.plant_card("om_old", SHARED)
    fake.recall("om_old")
    failure = FailureView("job2", "❌ Failed", "❌ Failed", "timeout")
    for _ in range(2):  # delivered, killed, resumed, delivered again
        conv = adapter.conversation_for(
            ReplyTarget("feishu", CHAT, "ou_x", None, "en", {"card_message_id": "om_old"})
        )
        await conv.failure(failure)
    assert len(fake.sent("interactive")) == 2  # the planted card and one failure card
    assert [c.duplicate for c in fake.of("create")] == [False, True]
