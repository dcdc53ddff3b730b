"""End to end: recorded Feishu events → the adapter → the real BotCore on the IMA sandbox, with
replies going to the local fake of the Feishu open platform."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import lark_oapi as lark
import pytest

from adapters.feishu import FeishuAdapter
from bot.core import BotCore
from tests.fixtures.feishu.fake_open_platform import FakeFeishu
from tests.test_feishu import USER, card_text, feed, feishu_settings, payload


@pytest.fixture
async def fake() -> AsyncIterator[FakeFeishu]:
    async with FakeFeishu() as f:
        yield f


@pytest.fixture
async def adapter(fake: FakeFeishu, core: BotCore) -> FeishuAdapter:
    a = FeishuAdapter(feishu_settings(), core, domain_override=fake.url, min_patch_interval_s=0.05)
    await a.prepare()
    return a


async def settle(adapter: FeishuAdapter, core: BotCore) -> None:
    await adapter.wait_idle()
    await asyncio.wait_for(core.wait_idle(), 60)


async def test_group_request_is_delivered_as_a_playable_video(
    adapter: FeishuAdapter, core: BotCore, fake: FakeFeishu
) -> None:
    await feed(adapter, payload("group_mention"))
    await settle(adapter, core)
    replies = fake.of("reply")
    assert all(r.body["message_id"] == "om_group_text_0002" for r in replies)
    assert replies[0].body["msg_type"] == "interactive"
    media = [r for r in replies if r.body["msg_type"] == "media"]
    assert len(media) == 1 and media[0].content["file_key"].startswith("file_v3_")
    upload = fake.of("file")[0].body
    assert upload["file_type"] == "mp4" and int(upload["duration"]) > 0 and upload["file"] > 0
    assert replies[-1].body["msg_type"] == "text" and "http://127.0.0.1" in replies[-1].content["text"]
    jobs = await core.recent_jobs("feishu", USER)
    assert [j.status for j in jobs] == ["delivered"]


async def test_redelivered_event_starts_one_job(
    adapter: FeishuAdapter, core: BotCore, fake: FakeFeishu
) -> None:
    await feed(adapter, payload("group_mention"))
    await feed(adapter, payload("group_mention"))
    await settle(adapter, core)
    # a new adapter (a restart) relies on the core's store alone
    again = FeishuAdapter(feishu_settings(), core, domain_override=fake.url)
    await again.prepare()
    await feed(again, payload("group_mention"))
    await settle(again, core)
    assert len(await core.recent_jobs("feishu", USER)) == 1


async def test_button_press_reruns_the_job_with_the_chosen_model(
    adapter: FeishuAdapter, core: BotCore, fake: FakeFeishu
) -> None:
    await feed(adapter, payload("group_mention"))
    await settle(adapter, core)
    job_id = (await core.recent_jobs("feishu", USER))[0].job_id
    press: dict[str, Any] = json.loads(payload("card_action"))
    press["event"]["action"]["value"].update(job_id=job_id, model_id="hailuo-2.0")
    result = await feed(adapter, json.dumps(press).encode())
    assert json.loads(lark.JSON.marshal(result))["toast"]["type"] == "info"
    await settle(adapter, core)
    jobs = await core.recent_jobs("feishu", USER)
    assert len(jobs) == 2 and {j.status for j in jobs} == {"delivered"}
    assert "Hailuo" in jobs[0].model_name or "Hailuo" in jobs[1].model_name
    cards = [
        card_text(r.content)
        for r in fake.of("reply")
        if r.body["message_id"] == "om_card_0007" and r.body["msg_type"] == "interactive"
    ]
    assert cards and "Hailuo" in cards[0]
