"""Issue 9 on Feishu: only a real video request spends, and every button works once.

Recorded events go through the SDK's dispatcher (and, for the long connection, through the real
`ws.Client` against the fake's loopback endpoint) into the adapter and the real BotCore on the
IMA sandbox; replies go to the local fake of the Feishu open platform. The sandbox's ledger is
the bill: every paid task is in it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import lark_oapi as lark
import pytest

from adapters.feishu import FeishuAdapter
from adapters.feishu import cards as feishu_cards
from bot import i18n
from bot.core import BotCore
from bot.sandbox import Sandbox
from tests.conftest import close_core, make_settings, open_core
from tests.fixtures.feishu.fake_open_platform import FakeFeishu
from tests.test_feishu import FIXTURES, USER, buttons, card_text, feed, feishu_settings, payload
from tests.waiting import wait_until

OTHER = "ou_friend_00000000000000000000000"  # Alice, in the same group
GROUP = "oc_group_chat_0002"
#: over the confirm threshold (100) in the sandbox: Sora 2 Pro, 122 credits
EXPENSIVE = "用 Sora 2 Pro 生成一只猫在月球上跳舞"
#: refused by the sandbox's Sora 2 Pro moderation: a failure card with alternatives
REFUSED = "用 Sora 2 Pro 生成一个女人在海边跳舞的视频"

_ids = iter(range(1000, 100000))


@pytest.fixture
async def fake() -> AsyncIterator[FakeFeishu]:
    async with FakeFeishu() as f:
        yield f


async def make_adapter(fake: FakeFeishu, core: BotCore) -> FeishuAdapter:
    adapter = FeishuAdapter(
        feishu_settings(),
        core,
        domain_override=fake.url,
        min_patch_interval_s=0.05,
        rate_limit_backoff_s=0.05,
    )
    await adapter.prepare()
    return adapter


@pytest.fixture
async def adapter(fake: FakeFeishu, core: BotCore) -> FeishuAdapter:
    return await make_adapter(fake, core)


@pytest.fixture
async def asking_core(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[BotCore]:
    core = await open_core(make_settings(sandbox, tmp_path / "ask.sqlite3", bot_confirm_above_credits=100))
    yield core
    await close_core(core)


@pytest.fixture
async def asking(fake: FakeFeishu, asking_core: BotCore) -> FeishuAdapter:
    return await make_adapter(fake, asking_core)


# -- driving it ----------------------------------------------------------------------------------
def group_text(
    text: str, *, mention: bool = True, user: str = USER, parent_id: str | None = None
) -> tuple[bytes, str]:
    """A group text message from `user`, @-mentioning the bot or not (and replying to
    `parent_id`); returns it and its id."""
    message_id = f"om_group_{next(_ids)}"
    data = json.loads(payload("group_mention", message_id=message_id))
    msg = data["event"]["message"]
    bot = msg["mentions"][0]
    msg["content"] = json.dumps({"text": f"@_user_1 {text}" if mention else text}, ensure_ascii=False)
    msg["mentions"] = [bot] if mention else []
    data["event"]["sender"]["sender_id"]["open_id"] = user
    if parent_id is not None:
        msg["parent_id"] = msg["root_id"] = parent_id
    return json.dumps(data, ensure_ascii=False).encode(), message_id


def p2p_text(text: str) -> bytes:
    return payload("p2p_text", message_id=f"om_p2p_{next(_ids)}", content=json.dumps({"text": text}))


async def settle(adapter: FeishuAdapter) -> None:
    await adapter.wait_idle()
    await asyncio.wait_for(adapter.core.wait_idle(), 60)  # type: ignore[attr-defined]


async def say(adapter: FeishuAdapter, text: str, **kw: Any) -> str:
    """A group message; returns its message id once everything it started has finished."""
    data, message_id = group_text(text, **kw)
    await feed(adapter, data)
    await settle(adapter)
    return message_id


def press_payload(
    button: dict[str, Any], *, card_id: str, operator: str = USER, chat_id: str = GROUP
) -> bytes:
    """The `card.action.trigger` callback Feishu sends for a press on `button` of card `card_id`."""
    data = json.loads((FIXTURES / "card_action.json").read_text(encoding="utf-8"))
    data["header"]["event_id"] = f"ev_{next(_ids)}"
    event = data["event"]
    event["operator"]["open_id"] = operator
    event["action"]["value"] = button["value"]
    event["context"].update(open_message_id=card_id, open_chat_id=chat_id)
    return json.dumps(data, ensure_ascii=False).encode()


async def press(
    adapter: FeishuAdapter,
    button: dict[str, Any],
    *,
    card_id: str,
    operator: str = USER,
    wait: bool = True,
    jobs: bool = True,
) -> dict[str, Any]:
    """Press a button as the long connection delivers it; returns the toast answered in the call.
    `wait`: until the press was handled (and, with `jobs`, every job has ended)."""
    result = await feed(adapter, press_payload(button, card_id=card_id, operator=operator))
    if wait:
        await (settle(adapter) if jobs else adapter.wait_idle())
    return dict(json.loads(lark.JSON.marshal(result))["toast"])


def writes(fake: FakeFeishu, card_id: str) -> list[dict[str, Any]]:
    """Every state card `card_id` was shown in, in order (the first send, then its patches)."""
    return [
        c.content
        for c in fake.calls
        if (c.kind in ("create", "reply") and c.sent_id == card_id)
        or (c.kind == "patch" and c.body["message_id"] == card_id)
    ]


def first_card(fake: FakeFeishu, reply_to: str) -> str:
    """The id of the card the bot answered message `reply_to` with."""
    return next(
        str(c.sent_id)
        for c in fake.of("reply")
        if c.body["message_id"] == reply_to and c.body["msg_type"] == "interactive"
    )


def texts(fake: FakeFeishu, since: int = 0) -> list[str]:
    return [
        str(c.content["text"])
        for c in fake.calls[since:]
        if c.kind in ("create", "reply") and c.body["msg_type"] == "text"
    ]


def actions_of(card: dict[str, Any]) -> list[str]:
    return [b["value"]["action"] for b in buttons(card) if "value" in b]


def button(card: dict[str, Any], action: str, index: int = 0) -> dict[str, Any]:
    return [b for b in buttons(card) if b.get("value", {}).get("action") == action][index]


# -- who is talking to the bot -------------------------------------------------------------------
async def test_group_messages_without_an_at_start_nothing_and_get_no_answer(
    adapter: FeishuAdapter, fake: FakeFeishu, sandbox: Sandbox
) -> None:
    for text in ("a cat walking on the moon, 5 seconds", "帮助", "谢谢", "好的", "取消"):
        await say(adapter, text, mention=False)
    assert sandbox.ledger == []
    assert fake.kinds() == []


@pytest.mark.parametrize("text", ["帮助", "你好", "help", "有哪些模型?", "谢谢", "asdkjh qwe zzxq"])
async def test_commands_and_chat_with_an_at_answer_in_words_and_spend_nothing(
    adapter: FeishuAdapter, fake: FakeFeishu, sandbox: Sandbox, text: str
) -> None:
    message_id = await say(adapter, text)
    assert sandbox.ledger == []
    [answer] = fake.of("create", "reply")
    assert answer.body["msg_type"] == "text" and answer.body["message_id"] == message_id
    assert answer.content["text"].strip()


async def test_help_with_an_at_gives_examples_in_chinese(adapter: FeishuAdapter, fake: FakeFeishu) -> None:
    await say(adapter, "帮助")
    assert "一只小狗" in texts(fake)[0]


async def test_a_yes_without_an_at_answers_the_bots_question_only_replying_to_it_and_only_for_that_person(
    adapter: FeishuAdapter, fake: FakeFeishu, sandbox: Sandbox
) -> None:
    asked = await say(adapter, REFUSED)
    assert sandbox.ledger == [] and fake.of("patch")[-1].content["header"]["template"] == "red"
    card = first_card(fake, asked)
    calls = len(fake.calls)
    await say(adapter, "好的", mention=False, user=OTHER, parent_id=card)  # Alice was not asked
    assert sandbox.ledger == [] and len(fake.calls) == calls
    await say(adapter, "好的", mention=False)  # the requester, to the group: maybe not to the bot
    assert sandbox.ledger == [] and len(fake.calls) == calls
    await say(adapter, "好的", mention=False, parent_id=card)  # replying to the bot's card, no @
    assert len(sandbox.ledger) == 1


async def test_a_yes_quoting_a_card_sent_before_a_restart_still_answers_it(
    adapter: FeishuAdapter, fake: FakeFeishu, sandbox: Sandbox
) -> None:
    asked = await say(adapter, REFUSED)
    card = first_card(fake, asked)
    adapter.api._sent.clear()  # what this process sent is forgotten, as after a restart
    await say(adapter, "好的", mention=False, parent_id=card)  # Feishu says who sent the card
    assert len(sandbox.ledger) == 1
    assert fake.of("get")[-1].path.endswith(card)


# -- completion notifies the requester ------------------------------------------------------------
async def test_a_finished_video_in_a_group_at_mentions_the_requester(
    adapter: FeishuAdapter, fake: FakeFeishu
) -> None:
    message_id = await say(adapter, "a puppy running on grass, 5 seconds")
    link = fake.calls[-1]
    assert link.kind == "reply" and link.body["message_id"] == message_id and link.body["msg_type"] == "text"
    assert link.at_ids == [USER] and "http://127.0.0.1" in link.content["text"]
    # the card patched in place shows Again, Same seed and Try <model>, with the views' labels
    final = writes(fake, first_card(fake, message_id))[-1]
    assert actions_of(final) == ["again", "same_seed", "again"]
    labels = [b["text"]["content"] for b in buttons(final)]
    assert labels[0] == i18n.t("again.button", "en") and labels[2].startswith("🔀")
    assert labels[1].startswith(i18n.t("again.same_seed", "en", seed="").split("(")[0])


async def test_a_finished_video_in_a_private_chat_mentions_nobody(
    adapter: FeishuAdapter, fake: FakeFeishu
) -> None:
    await feed(adapter, p2p_text("a puppy running on grass, 5 seconds"))
    await settle(adapter)
    link = fake.calls[-1]
    assert link.body["msg_type"] == "text" and link.at_ids == [] and "<at" not in link.content["text"]


# -- buttons: each calls its core method, once ----------------------------------------------------
async def test_confirm_button_starts_the_job_on_its_card_once(
    asking: FeishuAdapter, fake: FakeFeishu, sandbox: Sandbox
) -> None:
    message_id = await say(asking, EXPENSIVE)
    card_id = first_card(fake, message_id)
    [waiting] = writes(fake, card_id)
    assert actions_of(waiting) == ["confirm", "decline"] and sandbox.ledger == []
    assert [b["text"]["content"] for b in buttons(waiting)] == [
        i18n.t("confirm.button", "zh", credits=122),
        i18n.t("confirm.decline_button", "zh"),
    ]
    confirm = button(waiting, "confirm")
    # the task is answered a moment late, so the running card is shown before the video card even
    # on a loaded machine (at this time scale the render itself takes a few milliseconds)
    sandbox.force_create_hang(0.5)
    toast = await press(asking, confirm, card_id=card_id)
    assert toast == {"type": "info", "content": i18n.t("feishu.toast_confirm", "zh")}
    assert len(sandbox.ledger) == 1
    shown = writes(fake, card_id)
    # the same card goes on: its confirm buttons gone, Cancel while it runs, the video's buttons at the end
    assert all(not {"confirm", "decline"} & set(actions_of(c)) for c in shown[1:])
    # (the patch that takes the used buttons away and the running card race: either may come first)
    assert any("cancel" in actions_of(c) for c in shown[1:-1]) and actions_of(shown[-1]) == ["again", "again"]
    assert [c.at_ids for c in fake.calls if c.kind == "reply" and c.body["msg_type"] == "text"][-1] == [USER]
    # a second press: no second task, the core says it was done, the card is left as it is
    patches = len(fake.of("patch"))
    await press(asking, confirm, card_id=card_id)
    assert len(sandbox.ledger) == 1 and len(fake.of("patch")) == patches
    assert texts(fake)[-1] == i18n.t("talk.already_started", "zh")


async def test_no_thanks_button_ends_the_job_unpaid_and_the_card_drops_its_buttons(
    asking: FeishuAdapter, fake: FakeFeishu, sandbox: Sandbox
) -> None:
    message_id = await say(asking, EXPENSIVE)
    card_id = first_card(fake, message_id)
    decline = button(writes(fake, card_id)[0], "decline")
    await press(asking, decline, card_id=card_id)
    # the request named Sora 2 Pro, which nobody had saved: the no does not keep it either
    unsaved = i18n.t("confirm.preference_unsaved", "zh", model="Sora 2 Pro")
    assert texts(fake)[-1] == i18n.t("confirm.declined", "zh") + "\n" + unsaved
    final = writes(fake, card_id)[-1]
    assert actions_of(final) == [] and card_text(final) == card_text(writes(fake, card_id)[0])
    patches = len(fake.of("patch"))
    await press(asking, decline, card_id=card_id)
    await press(asking, button(writes(fake, card_id)[0], "confirm"), card_id=card_id)
    assert sandbox.ledger == [] and len(fake.of("patch")) == patches
    assert texts(fake)[-2:] == [i18n.t("talk.already_started", "zh")] * 2


async def test_someone_elses_press_gets_not_your_job_and_leaves_the_buttons(
    asking: FeishuAdapter, fake: FakeFeishu, sandbox: Sandbox
) -> None:
    message_id = await say(asking, EXPENSIVE)
    card_id = first_card(fake, message_id)
    confirm = button(writes(fake, card_id)[0], "confirm")
    toast = await press(asking, confirm, card_id=card_id, operator=OTHER)
    assert toast == {"type": "warning", "content": i18n.t("chat.not_your_job", "zh")}
    assert texts(fake)[-1] == i18n.t("chat.not_your_job", "zh")
    assert sandbox.ledger == [] and fake.of("patch") == []
    # the requester's own press still works
    await press(asking, confirm, card_id=card_id)
    assert len(sandbox.ledger) == 1


async def test_cancel_button_on_the_progress_card_stops_the_job_once(
    adapter: FeishuAdapter, fake: FakeFeishu, sandbox: Sandbox
) -> None:
    sandbox.force_task_never_finishes()
    data, message_id = group_text("a lighthouse in a storm, 5 seconds")
    await feed(adapter, data)
    await adapter.wait_idle()

    def progress_shown() -> bool:
        shown = [c.content for c in fake.of("patch")]
        return bool(sandbox.ledger and shown and "%" in card_text(shown[-1]))

    await wait_until(progress_shown, "the task to be created and the progress card to show Cancel")
    card_id = first_card(fake, message_id)
    cancel = button(writes(fake, card_id)[-1], "cancel")
    assert cancel["text"]["content"] == i18n.t("cancel.button", "en")
    await press(adapter, cancel, card_id=card_id, operator=OTHER, jobs=False)  # not theirs: it runs on
    assert texts(fake)[-1] == i18n.t("chat.not_your_job", "en")
    assert "cancel" in actions_of(writes(fake, card_id)[-1])
    toast = await press(adapter, cancel, card_id=card_id, jobs=False)
    assert toast["content"] == i18n.t("feishu.toast_cancel", "en")
    assert "may still charge" in texts(fake)[-1]
    [job] = await adapter.core.recent_jobs("feishu", USER)
    assert job.status == "cancelled" and len(sandbox.ledger) == 1
    await asyncio.sleep(0.2)  # a late progress frame must not bring the button back
    assert actions_of(writes(fake, card_id)[-1]) == []
    patches = len(fake.of("patch"))
    await press(adapter, cancel, card_id=card_id)
    assert texts(fake)[-1] == i18n.t("cancel.none", "en") and len(fake.of("patch")) == patches


async def test_try_another_model_button_reruns_once_and_the_video_card_drops_its_buttons(
    adapter: FeishuAdapter, fake: FakeFeishu, sandbox: Sandbox
) -> None:
    message_id = await say(adapter, "a puppy running on grass, 5 seconds")
    card_id = first_card(fake, message_id)
    video = writes(fake, card_id)[-1]
    other = button(video, "again", 1)
    toast = await press(adapter, other, card_id=card_id)
    assert toast["content"] == i18n.t("feishu.toast_started", "en", model=other["value"]["model_name"])
    assert len(sandbox.ledger) == 2 and sandbox.ledger[1].model_id == other["value"]["model_id"]
    assert actions_of(writes(fake, card_id)[-1]) == []
    assert card_text(writes(fake, card_id)[-1]) == card_text(video)
    # the new job answers under the pressed card and @-mentions the requester when done
    replies = [c for c in fake.of("reply") if c.body["message_id"] == card_id]
    assert replies[0].body["msg_type"] == "interactive" and replies[-1].at_ids == [USER]
    for again in (button(video, "again", 0), other):
        await press(adapter, again, card_id=card_id)
        assert texts(fake)[-1] == i18n.t("talk.already_started", "en")
    assert len(sandbox.ledger) == 2


async def test_again_button_reruns_the_same_model(
    adapter: FeishuAdapter, fake: FakeFeishu, sandbox: Sandbox
) -> None:
    message_id = await say(adapter, "a puppy running on grass, 5 seconds")
    card_id = first_card(fake, message_id)
    toast = await press(adapter, button(writes(fake, card_id)[-1], "again"), card_id=card_id)
    assert toast["content"] == i18n.t("feishu.toast_again", "en")
    assert len(sandbox.ledger) == 2 and sandbox.ledger[0].model_id == sandbox.ledger[1].model_id


async def test_same_seed_button_makes_one_more_task_with_the_same_seed_once(
    adapter: FeishuAdapter, fake: FakeFeishu, sandbox: Sandbox
) -> None:
    message_id = await say(adapter, "a puppy running on grass, 5 seconds")
    card_id = first_card(fake, message_id)
    video = writes(fake, card_id)[-1]
    (first,) = sandbox.ledger
    seed = int(first.parameters["seed"])
    same = button(video, "same_seed")
    assert same["text"]["content"] == i18n.t("again.same_seed", "en", seed=seed)
    assert same["value"]["owner"] == USER and same["value"]["model_id"] == ""
    # someone else's press: told so, nothing made, the buttons stay
    patches = len(fake.of("patch"))
    toast = await press(adapter, same, card_id=card_id, operator=OTHER)
    assert toast["type"] == "warning" and len(sandbox.ledger) == 1 and len(fake.of("patch")) == patches
    toast = await press(adapter, same, card_id=card_id)
    assert toast == {"type": "info", "content": i18n.t("feishu.toast_same_seed", "en")}
    assert len(sandbox.ledger) == 2
    second = sandbox.ledger[1]
    assert int(second.parameters["seed"]) == seed and second.model_id == first.model_id
    assert second.prompt == first.prompt
    assert actions_of(writes(fake, card_id)[-1]) == []  # Again, Same seed and Try <model> all used up
    for used in (same, button(video, "again", 0), button(video, "again", 1)):
        await press(adapter, used, card_id=card_id)
        assert texts(fake)[-1] == i18n.t("talk.already_started", "en")
    assert len(sandbox.ledger) == 2


async def test_failure_buttons_work_once(adapter: FeishuAdapter, fake: FakeFeishu, sandbox: Sandbox) -> None:
    message_id = await say(adapter, REFUSED)
    card_id = first_card(fake, message_id)
    failure = writes(fake, card_id)[-1]
    assert actions_of(failure)[:2] == ["rerun", "rerun"] and sandbox.ledger == []
    first, second = button(failure, "rerun", 0), button(failure, "rerun", 1)
    await asyncio.gather(
        press(adapter, first, card_id=card_id, wait=False),
        press(adapter, second, card_id=card_id, wait=False),
    )  # a double press
    await settle(adapter)
    assert len(sandbox.ledger) == 1
    assert actions_of(writes(fake, card_id)[-1]) == []


# -- the long connection: card presses come as "card" frames and as "event" frames ---------------
async def test_presses_over_the_long_connection_are_answered_as_card_and_as_event_frames(
    fake: FakeFeishu, asking_core: BotCore, sandbox: Sandbox
) -> None:
    adapter = FeishuAdapter(
        feishu_settings(), asking_core, domain_override=fake.url, min_patch_interval_s=0.05
    )
    runner = asyncio.create_task(adapter.start())
    try:
        await fake.wait_connected()
        data, message_id = group_text(EXPENSIVE)
        answer = await fake.push("event", json.loads(data))
        assert answer == {"code": 200, "data": None}
        await settle(adapter)
        card_id = first_card(fake, message_id)
        decline = button(writes(fake, card_id)[0], "decline")
        # as a "card" frame (lark-oapi 1.7.x alone would drop it: no answer, error 200340)
        answer = await fake.push("card", json.loads(press_payload(decline, card_id=card_id, operator=OTHER)))
        assert answer["code"] == 200
        assert answer["data"]["toast"] == {"type": "warning", "content": i18n.t("chat.not_your_job", "zh")}
        # the older, flat card callback in a "card" frame
        legacy = {
            "open_id": USER,
            "open_message_id": card_id,
            "open_chat_id": GROUP,
            "tenant_key": "t",
            "token": "c-1",
            "action": {"tag": "button", "value": decline["value"]},
        }
        answer = await fake.push("card", legacy)
        assert answer["code"] == 200 and answer["data"]["toast"]["content"] == i18n.t(
            "feishu.toast_decline", "zh"
        )
        await settle(adapter)
        assert texts(fake)[-1].startswith(i18n.t("confirm.declined", "zh"))
        # as an "event" frame: the same handler, the same once-only answer
        answer = await fake.push("event", json.loads(press_payload(decline, card_id=card_id)))
        assert answer["code"] == 200 and answer["data"]["toast"]["type"] == "info"
        await settle(adapter)
        assert texts(fake)[-1] == i18n.t("talk.already_started", "zh") and sandbox.ledger == []
    finally:
        await adapter.stop()
        await asyncio.wait_for(runner, 10)


def test_only_known_button_actions_are_offered() -> None:
    owner = feishu_cards.Owner("en", USER, "group")
    b = feishu_cards.action_button("x", feishu_cards.CANCEL, job_id="j", owner=owner)
    assert b["value"] == {
        "action": "cancel",
        "job_id": "j",
        "model_id": "",
        "model_name": "",
        "lang": "en",
        "owner": USER,
        "chat_type": "group",
    }
    assert set(feishu_cards.USED_BY) == feishu_cards.ACTIONS
    # Again, Same seed and Try <model> share one use: a press on any drops all three
    assert (
        feishu_cards.USED_BY[feishu_cards.SAME_SEED]
        == feishu_cards.USED_BY[feishu_cards.AGAIN]
        == feishu_cards.RERUNS
    )


def test_without_buttons_keeps_links_and_other_jobs_buttons() -> None:
    owner = feishu_cards.Owner("en", USER, "group")
    card = feishu_cards.card(
        "t",
        ["body"],
        actions=[
            feishu_cards.link_button("open", "http://x"),
            feishu_cards.action_button("again", feishu_cards.AGAIN, job_id="j1", owner=owner),
            feishu_cards.action_button("again", feishu_cards.AGAIN, job_id="j2", owner=owner),
        ],
    )
    stripped = feishu_cards.without_buttons(card, "j1", feishu_cards.USED_BY[feishu_cards.AGAIN])
    assert stripped is not None
    assert [b.get("url") or b["value"]["job_id"] for b in buttons(stripped)] == ["http://x", "j2"]
    assert feishu_cards.without_buttons(stripped, "j1", feishu_cards.USED_BY[feishu_cards.AGAIN]) is None
    assert len(buttons(card)) == 3  # the original is left as it was


def test_the_sdk_still_has_what_the_card_frame_fix_overrides() -> None:
    # adapters/feishu/ws.py reaches into lark_oapi.ws.client.Client; an SDK release that renames
    # these fails here first (and the long-connection test above shows whether presses still work)
    from adapters.feishu import ws

    assert ws.missing_internals() == []
    assert ws.LongConnection._handle_data_frame is not lark.ws.Client._handle_data_frame
