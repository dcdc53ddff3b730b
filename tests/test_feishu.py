"""The Feishu adapter against a local fake of the open platform, fed recorded events through the
SDK's own dispatcher (as the long connection does), with a small scripted core."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lark_oapi as lark
import pytest
from pydantic import SecretStr

from adapters.base import (
    Alternative,
    Conversation,
    FailureView,
    Incoming,
    NoticeView,
    ProgressView,
    ReplyTarget,
    VideoView,
)
from adapters.feishu import FeishuAdapter, FeishuConversation, ws
from adapters.feishu.conversation import CardPatcher
from adapters.feishu.pending import RecentIds
from bot import i18n
from bot.config import Settings
from tests.fixtures.feishu.fake_open_platform import BOT_OPEN_ID, PNG_1PX, Call, FakeFeishu

FIXTURES = Path(__file__).parent / "fixtures" / "feishu"
USER = "ou_84aad35d084aa403a838cf73ee18467"
MP4 = b"\x00\x00\x00\x18ftypmp42" + bytes(4000)
JPEG = b"\xff\xd8\xff\xe0" + bytes(500)
#: a merge window no loaded machine outlasts between two events a test sends back to back
LONG_WINDOW_S = 60.0


def payload(name: str, *, fresh: bool = True, **message: Any) -> bytes:
    """A recorded event; `fresh` dates it now (recordings are old, and old events are ignored)."""
    data = json.loads((FIXTURES / f"{name}.json").read_text(encoding="utf-8"))
    msg = data["event"].get("message")
    if msg is not None:
        if fresh:
            msg["create_time"] = str(int(time.time() * 1000))
        msg.update(message)
    return json.dumps(data, ensure_ascii=False).encode()


@dataclass
class FakeJob:
    job_id: str
    task: asyncio.Task[str]

    async def wait(self) -> str:
        return await self.task


class ScriptedCore:
    """Stands in for BotCore: de-duplicates on event_id, then plays notice → progress → outcome."""

    def __init__(self, video_url: str = "", cover_url: str | None = None) -> None:
        self.video_url = video_url
        self.cover_url = cover_url
        self.outcome = "video"
        self.incoming: list[Incoming] = []
        self.reruns: list[dict[str, Any]] = []
        self.seen: set[str] = set()
        self.jobs: list[asyncio.Task[str]] = []

    def t(self, key: str, language: str, **values: object) -> str:
        return i18n.t(key, language, **values)

    async def handle(self, incoming: Incoming, conversation: Conversation) -> FakeJob | None:
        if incoming.event_id:
            if incoming.event_id in self.seen:
                return None
            self.seen.add(incoming.event_id)
        self.incoming.append(incoming)
        if not incoming.mentioned:
            return None  # like the core: group talk not addressed to the bot starts nothing
        job_id = f"job{len(self.incoming)}"
        return self._job(job_id, conversation)

    async def rerun(
        self,
        job_id: str,
        *,
        user_id: str,
        model_id: str | None,
        conversation: Conversation,
        same_seed: bool = False,
        roles: tuple[str, ...] = (),
    ) -> FakeJob | None:
        self.reruns.append(
            {
                "job_id": job_id,
                "user_id": user_id,
                "model_id": model_id,
                **({"same_seed": True} if same_seed else {}),
            }
        )
        return self._job(f"{job_id}-rerun", conversation)

    def _job(self, job_id: str, conversation: Conversation) -> FakeJob:
        task = asyncio.create_task(self._play(job_id, conversation))
        self.jobs.append(task)
        return FakeJob(job_id, task)

    async def settle(self) -> None:
        """Wait for every job this core started."""
        await asyncio.gather(*self.jobs)

    async def _play(self, job_id: str, conv: Conversation) -> str:
        await conv.notice(
            NoticeView(job_id, "🎬 Starting", "🎬 Starting\n• Model: Wan 2.6", "Wan 2.6", 25, 60, 120)
        )
        for pct in (10, 40, 80):
            await conv.progress(ProgressView(job_id, pct, pct, 120, f"⏳ Generating… {pct}%"))
            await asyncio.sleep(0.06)
        if self.outcome == "failure":
            await conv.failure(
                FailureView(
                    job_id,
                    "❌ Failed",
                    "❌ Failed\n• Reason: timeout",
                    "timeout",
                    alternatives=(
                        Alternative("hailuo-2.0", "Hailuo 2.0", "Hailuo 2.0 (5 pts)"),
                        Alternative("vidu-q2", "Vidu Q2", "Vidu Q2 (6 pts)"),
                    ),
                    retry_label="🔁 Retry",
                )
            )
            return "failed"
        await conv.video(
            VideoView(
                job_id,
                self.video_url,
                self.cover_url,
                "✅ Video ready!\n• Model: Wan 2.6",
                f"🔗 Video link:\n{self.video_url}",
                "Wan 2.6",
                duration_s=5.0,
            )
        )
        return "delivered"

    async def model_choices(self, task_type: str, language: str) -> list[Any]:
        return []

    async def set_preference(
        self, platform: str, user_id: str, task_type: str, model_id: str, language: str
    ) -> str:
        return ""

    async def clear_preference(
        self, platform: str, user_id: str, task_type: str | None, language: str
    ) -> str:
        return ""

    async def recent_jobs(self, platform: str, user_id: str, limit: int = 10) -> list[Any]:
        return []

    # no test on this core presses Confirm, No thanks or Cancel, or asks for usage: not scripted
    async def confirm(
        self, job_id: str, *, user_id: str, conversation: Conversation, roles: tuple[str, ...] = ()
    ) -> FakeJob | None:
        raise NotImplementedError

    async def decline(self, job_id: str, *, user_id: str, conversation: Conversation) -> None:
        raise NotImplementedError

    async def cancel(
        self,
        job_id: str | None,
        *,
        platform: str,
        user_id: str,
        conversation: Conversation,
        language: str | None = None,
    ) -> None:
        raise NotImplementedError

    async def usage(self, platform: str, user_id: str, chat_id: str, language: str) -> str:
        raise NotImplementedError


def feishu_settings(**overrides: object) -> Settings:
    values: dict[str, object] = {
        "feishu_app_id": "cli_a1b2c3d4e5f6",
        "feishu_app_secret": SecretStr("secret"),
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


@pytest.fixture
async def fake() -> AsyncIterator[FakeFeishu]:
    async with FakeFeishu() as f:
        yield f


@pytest.fixture
def core(fake: FakeFeishu) -> ScriptedCore:
    return ScriptedCore(fake.serve_video("v1.mp4", MP4), fake.serve_video("v1.jpg", JPEG))


async def make_adapter(fake: FakeFeishu, core: Any, **kw: Any) -> FeishuAdapter:
    settings = kw.pop("settings", None) or feishu_settings()
    kw.setdefault("min_patch_interval_s", 0.05)
    kw.setdefault("merge_window_s", 0.3)
    # the fake holds Feishu's 5 sends a second per chat: two jobs in a row meet it; back off briefly
    kw.setdefault("rate_limit_backoff_s", 0.05)
    adapter = FeishuAdapter(settings, core, domain_override=fake.url, **kw)
    await adapter.prepare()
    return adapter


@pytest.fixture
async def adapter(fake: FakeFeishu, core: ScriptedCore) -> FeishuAdapter:
    return await make_adapter(fake, core)


async def feed(adapter: FeishuAdapter, data: bytes) -> Any:
    """Deliver an event the way the long connection does: from another thread, through the SDK."""
    return await asyncio.to_thread(ws.dispatch, adapter.dispatcher, data)


async def settle(adapter: FeishuAdapter) -> None:
    """Wait until the events reached the core and the jobs it started have finished."""
    await adapter.wait_idle()
    await adapter.core.settle()  # type: ignore[attr-defined]


async def deliver(adapter: FeishuAdapter, *names: str) -> None:
    for name in names:
        await feed(adapter, payload(name))
    await settle(adapter)


def cards_of(calls: list[Call]) -> list[dict[str, Any]]:
    return [
        c.content
        for c in calls
        if c.body.get("msg_type", "interactive") == "interactive" and c.kind in ("create", "reply", "patch")
    ]


def card_text(card: dict[str, Any]) -> str:
    return "\n".join(el["text"]["content"] for el in card["elements"] if el["tag"] == "div")


def buttons(card: dict[str, Any]) -> list[dict[str, Any]]:
    return [b for el in card["elements"] if el["tag"] == "action" for b in el["actions"]]


class FakeTime:
    """A monotonic clock that moves only when the test moves it, and a sleep that waits on it:
    how often a patcher writes then depends on the test's steps, not on how busy the machine is."""

    def __init__(self) -> None:
        self.now = 0.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self.now + delay, wake))
        await wake

    async def advance(self, seconds: float) -> None:
        """Move the clock on, wake every sleeper that is due, and let the woken run."""
        self.now += seconds
        due = [wake for at, wake in self._sleepers if at <= self.now]
        self._sleepers = [(at, wake) for at, wake in self._sleepers if at > self.now]
        for wake in due:
            if not wake.done():
                wake.set_result(None)
        await asyncio.sleep(0)


# -- receiving ---------------------------------------------------------------------------------------
async def test_private_text_becomes_one_request_keyed_on_message_id(
    adapter: FeishuAdapter, core: ScriptedCore
) -> None:
    await deliver(adapter, "p2p_text")
    assert len(core.incoming) == 1
    inc = core.incoming[0]
    assert (inc.platform, inc.chat_id, inc.user_id) == ("feishu", "oc_p2p_chat_0001", USER)
    assert inc.event_id == "om_p2p_text_0001"
    assert inc.text == "用可灵生成一段小狗在草地上奔跑的视频,10秒,竖屏"
    assert inc.reply_to is None


async def test_private_success_sends_card_patches_rising_percent_then_media_then_link(
    adapter: FeishuAdapter, fake: FakeFeishu, core: ScriptedCore
) -> None:
    await deliver(adapter, "p2p_text")
    kinds = fake.kinds()
    assert kinds[0] == "create" and fake.calls[-1].kind == "create"
    first = fake.of("create")[0]
    assert first.body["msg_type"] == "interactive" and first.body["receive_id"] == "oc_p2p_chat_0001"
    assert first.content["config"]["update_multi"] is True
    card_id = "om_sent_0001"
    patches = fake.of("patch")
    assert patches and all(p.body["message_id"] == card_id for p in patches)
    percents = [int(s.split("%")[0].split()[-1]) for p in patches if "%" in (s := card_text(p.content))]
    assert percents == sorted(percents) and len(percents) >= 2
    media = [c for c in fake.of("create") if c.body["msg_type"] == "media"]
    upload = fake.of("file")[0]
    assert (
        upload.body["file_type"] == "mp4"
        and upload.body["duration"] == "5000"
        and upload.body["file"] == len(MP4)
    )
    assert len(media) == 1
    file_key = media[0].content["file_key"]
    assert file_key.startswith("file_v3_") and media[0].content["image_key"].startswith("img_v3_")
    link = fake.calls[-1]
    assert link.body["msg_type"] == "text" and core.video_url in link.content["text"]
    order = [
        c.kind if c.body.get("msg_type") != "media" else "media"
        for c in fake.calls
        if c.kind in ("create", "patch", "file")
    ]
    assert order.index("file") < order.index("media") < len(order) - 1
    assert order[-1] == "create"  # the link text closes the conversation


async def test_group_mention_is_stripped_and_replies_thread_to_the_message(
    adapter: FeishuAdapter, fake: FakeFeishu, core: ScriptedCore
) -> None:
    await deliver(adapter, "group_mention")
    assert core.incoming[0].text == "a puppy running on grass with @Alice, 5 seconds"
    assert core.incoming[0].reply_to == "om_group_text_0002"
    assert adapter.bot_open_id == BOT_OPEN_ID
    replies = fake.of("reply")
    assert replies and all(r.body["message_id"] == "om_group_text_0002" for r in replies)
    assert not [c for c in fake.of("create")]


async def test_while_the_bots_own_id_is_unknown_no_group_mention_counts(
    fake: FakeFeishu, core: ScriptedCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # an @ of another bot looks the same without it: counted, it would start a paid video
    fake.bot_info_down = True
    adapter = await make_adapter(fake, core)
    assert adapter.bot_open_id is None
    await deliver(adapter, "group_mention")
    assert [i.mentioned for i in core.incoming] == [False]
    fake.bot_info_down = False
    monkeypatch.setattr("adapters.feishu.adapter.BOT_ID_RETRY_S", 0.0)  # asked again at the next message
    await feed(adapter, payload("group_mention").replace(b"om_group_text_0002", b"om_group_text_0099"))
    await settle(adapter)
    assert adapter.bot_open_id == BOT_OPEN_ID
    assert [i.mentioned for i in core.incoming] == [False, True]


async def test_group_message_without_bot_mention_reaches_the_core_as_not_mentioned(
    adapter: FeishuAdapter, fake: FakeFeishu, core: ScriptedCore
) -> None:
    # the core may read it only as an answer to its own question; the adapter sends nothing
    await deliver(adapter, "group_no_mention")
    assert [(i.text, i.mentioned) for i in core.incoming] == [("lunch anyone? @Alice", False)]
    assert fake.kinds() == []


async def test_private_messages_are_always_mentioned(adapter: FeishuAdapter, core: ScriptedCore) -> None:
    await deliver(adapter, "p2p_text")
    await deliver(adapter, "group_mention")
    assert [i.mentioned for i in core.incoming] == [True, True]


async def test_redelivered_event_creates_one_job(
    adapter: FeishuAdapter, fake: FakeFeishu, core: ScriptedCore
) -> None:
    await deliver(adapter, "p2p_text", "p2p_text")
    assert len(core.incoming) == 1
    assert len([c for c in fake.of("create") if c.body["msg_type"] == "interactive"]) == 1


async def test_redelivery_after_restart_reaches_core_with_same_event_id(
    fake: FakeFeishu, core: ScriptedCore
) -> None:
    first = await make_adapter(fake, core)
    await deliver(first, "p2p_text")
    restarted = await make_adapter(fake, core)  # a new process: only the core's store remembers
    await deliver(restarted, "p2p_text")
    assert len(core.incoming) == 1  # the core saw the same event_id and refused it
    assert core.seen == {"om_p2p_text_0001"}


async def test_event_from_long_before_start_is_ignored(adapter: FeishuAdapter, core: ScriptedCore) -> None:
    old_ms = int((time.time() - 3 * 3600) * 1000)
    await feed(adapter, payload("p2p_text", fresh=False, create_time=str(old_ms)))
    await settle(adapter)
    assert core.incoming == []


async def test_image_then_text_within_window_is_one_request(fake: FakeFeishu, core: ScriptedCore) -> None:
    adapter = await make_adapter(fake, core, merge_window_s=LONG_WINDOW_S)
    await feed(adapter, payload("p2p_image"))
    await deliver(adapter, "p2p_text_after_image")
    assert len(core.incoming) == 1
    inc = core.incoming[0]
    assert inc.text == "让这只猫慢慢眨眼" and inc.event_id == "om_p2p_text_0005"
    assert inc.extra_event_ids == ("om_p2p_image_0004",)  # a replayed image must not start a job
    assert [i.data for i in inc.images] == [PNG_1PX]
    res = fake.of("resource")[0].body
    assert res == {"message_id": "om_p2p_image_0004", "file_key": "img_v3_0004_cat", "type": "image"}


async def test_image_alone_after_window_is_its_own_request(
    adapter: FeishuAdapter, core: ScriptedCore
) -> None:
    await feed(adapter, payload("p2p_image"))
    await settle(adapter)  # waits the merge window out
    assert len(core.incoming) == 1
    assert core.incoming[0].text == "" and core.incoming[0].event_id == "om_p2p_image_0004"
    assert len(core.incoming[0].images) == 1 and not core.incoming[0].ask_first


async def test_an_image_waiting_for_its_text_at_shutdown_is_still_a_request_that_asks_first(
    fake: FakeFeishu, core: ScriptedCore
) -> None:
    # Feishu has had its acknowledgement: dropped here, the picture would be lost for good
    adapter = FeishuAdapter(feishu_settings(), core, domain_override=fake.url, merge_window_s=LONG_WINDOW_S)
    runner = asyncio.create_task(adapter.start())
    await fake.wait_connected()
    await feed(adapter, payload("p2p_image"))
    await adapter.stop()  # well inside the merge window
    await asyncio.wait_for(runner, 10)
    await core.settle()  # the job it started (its notice) ends before the fake closes
    # a request of its own that asks before it spends: its text may come after the restart
    assert [(i.text, i.event_id, len(i.images), i.ask_first) for i in core.incoming] == [
        ("", "om_p2p_image_0004", 1, True)
    ]


async def fed_while_stopping(fake: FakeFeishu, core: ScriptedCore, *names: str) -> FeishuAdapter:
    """An adapter that receives the `names` events after its shutdown has begun, run to its end
    (and the jobs its core started, so the fake closes with nothing in flight)."""
    adapter = FeishuAdapter(feishu_settings(), core, domain_override=fake.url, merge_window_s=LONG_WINDOW_S)
    runner = asyncio.create_task(adapter.start())
    await fake.wait_connected()
    stopping = asyncio.create_task(adapter.stop())
    await asyncio.sleep(0)  # the shutdown has begun
    for name in names:
        await feed(adapter, payload(name))
    await asyncio.wait_for(runner, 10)
    await core.settle()
    await stopping
    return adapter


async def test_an_image_arriving_while_the_bot_stops_is_a_request_that_asks_first(
    fake: FakeFeishu, core: ScriptedCore
) -> None:
    # handed over while the connection closes: holding it for a text would outlive the run
    adapter = await fed_while_stopping(fake, core, "p2p_image")
    assert [(i.event_id, i.ask_first) for i in core.incoming] == [("om_p2p_image_0004", True)]
    assert not adapter._timers


async def test_a_picture_and_its_text_arriving_while_the_bot_stops_are_one_request(
    fake: FakeFeishu, core: ScriptedCore
) -> None:
    await fed_while_stopping(fake, core, "p2p_image", "p2p_text_after_image")
    [request] = core.incoming
    assert request.text and len(request.images) == 1 and not request.ask_first


async def test_a_picture_that_cannot_be_fetched_starts_nothing_and_says_so(
    fake: FakeFeishu, core: ScriptedCore
) -> None:
    # a text-only video (or the wrong frame first) is not what was asked for: nothing goes on
    fake.refused_resources = {"img_v3_0004_cat"}
    adapter = await make_adapter(fake, core, merge_window_s=LONG_WINDOW_S)
    await feed(adapter, payload("p2p_image"))
    await deliver(adapter, "p2p_text_after_image")
    assert core.incoming == []
    [answer] = [c for c in fake.calls if c.kind in ("create", "reply")]
    assert answer.content["text"] == i18n.t("image.download_failed", "zh")


async def test_a_held_picture_that_cannot_be_fetched_starts_nothing_and_says_so(
    fake: FakeFeishu, core: ScriptedCore
) -> None:
    fake.refused_resources = {"img_v3_0004_cat"}
    adapter = await make_adapter(fake, core)
    await feed(adapter, payload("p2p_image"))
    await settle(adapter)  # the window ran out with no text
    assert core.incoming == []
    assert [c.content.get("text") for c in fake.calls if c.kind in ("create", "reply")] == [
        i18n.t("image.download_failed", "en")
    ]


async def test_text_after_window_does_not_take_the_image(adapter: FeishuAdapter, core: ScriptedCore) -> None:
    await feed(adapter, payload("p2p_image"))
    await settle(adapter)  # the window ran out: the image went to the core alone
    await deliver(adapter, "p2p_text_after_image")
    assert [len(i.images) for i in core.incoming] == [1, 0]


async def test_group_post_brings_its_text_and_image(adapter: FeishuAdapter, core: ScriptedCore) -> None:
    await deliver(adapter, "group_post")
    inc = core.incoming[0]
    assert inc.text == "first frame is this, the sun rises slowly"
    assert [i.data for i in inc.images] == [PNG_1PX]
    assert inc.event_id == "om_group_post_0006" and inc.reply_to == "om_group_post_0006"


async def test_chat_outside_allowlist_is_answered_once_then_ignored(
    fake: FakeFeishu, core: ScriptedCore
) -> None:
    adapter = await make_adapter(fake, core, settings=feishu_settings(feishu_allowed_chats=["oc_other"]))
    await deliver(adapter, "p2p_text")
    await feed(adapter, payload("p2p_text", message_id="om_p2p_text_0099"))
    await settle(adapter)
    assert core.incoming == []
    answers = fake.of("create")
    assert len(answers) == 1
    assert answers[0].content["text"] == i18n.t("feishu.not_allowed", "zh")


# -- delivering --------------------------------------------------------------------------------------
async def test_oversized_video_is_linked_from_the_card_with_the_reason(
    fake: FakeFeishu, core: ScriptedCore
) -> None:
    adapter = await make_adapter(fake, core, max_video_bytes=1000)
    await deliver(adapter, "p2p_text")
    assert fake.of("file") == []
    assert not [c for c in fake.of("create") if c.body["msg_type"] == "media"]
    final = fake.of("patch")[-1].content
    assert [b["url"] for b in buttons(final)] == [core.video_url]
    assert i18n.t("feishu.too_large", "zh", limit=0) in card_text(final)
    assert core.video_url in fake.calls[-1].content["text"]


async def test_rejected_upload_falls_back_to_a_link(
    adapter: FeishuAdapter, fake: FakeFeishu, core: ScriptedCore
) -> None:
    fake.fail_file_upload = True
    await deliver(adapter, "p2p_text")
    assert not [c for c in fake.of("create") if c.body["msg_type"] == "media"]
    final = fake.of("patch")[-1].content
    assert i18n.t("feishu.upload_failed", "zh") in card_text(final)
    assert [b["url"] for b in buttons(final)] == [core.video_url]


async def test_failure_card_offers_two_models_and_retry(
    adapter: FeishuAdapter, fake: FakeFeishu, core: ScriptedCore
) -> None:
    core.outcome = "failure"
    await deliver(adapter, "p2p_text")
    final = fake.of("patch")[-1].content
    assert final["header"]["template"] == "red" and "timeout" in card_text(final)
    values = [b["value"] for b in buttons(final)]
    assert [(v["job_id"], v["model_id"]) for v in values] == [
        ("job1", "hailuo-2.0"),
        ("job1", "vidu-q2"),
        ("job1", ""),
    ]
    assert [b["text"]["content"] for b in buttons(final)] == [
        "Hailuo 2.0 (5 pts)",
        "Vidu Q2 (6 pts)",
        "🔁 Retry",
    ]


class HeldRerunCore(ScriptedCore):
    """A core whose reruns wait until the test lets them through."""

    def __init__(self, video_url: str = "", cover_url: str | None = None) -> None:
        super().__init__(video_url, cover_url)
        self.let_through = asyncio.Event()

    async def rerun(
        self,
        job_id: str,
        *,
        user_id: str,
        model_id: str | None,
        conversation: Conversation,
        same_seed: bool = False,
        roles: tuple[str, ...] = (),
    ) -> FakeJob | None:
        await self.let_through.wait()
        return await super().rerun(
            job_id, user_id=user_id, model_id=model_id, conversation=conversation, same_seed=same_seed
        )


async def test_button_press_reruns_with_that_model_and_toasts_within_the_call(fake: FakeFeishu) -> None:
    core = HeldRerunCore(fake.serve_video("v1.mp4", MP4), fake.serve_video("v1.jpg", JPEG))
    adapter = await make_adapter(fake, core)
    # the toast comes back while the rerun is still held: the call never waits for the core,
    # so it stays inside Feishu's 3 s however long the core takes
    result = await asyncio.wait_for(feed(adapter, payload("card_action")), 30)
    assert core.reruns == []
    answer = json.loads(lark.JSON.marshal(result))
    assert answer["toast"]["type"] == "info"
    assert answer["toast"]["content"] == i18n.t("feishu.toast_started", "en", model="Hailuo 2.0")
    core.let_through.set()
    await settle(adapter)
    assert core.reruns == [{"job_id": "job_failed_01", "user_id": USER, "model_id": "hailuo-2.0"}]
    # the rerun's card answers in the same chat, under the card that was pressed
    assert fake.of("reply")[0].body["message_id"] == "om_card_0007"


async def test_retry_button_reruns_the_same_model(adapter: FeishuAdapter, core: ScriptedCore) -> None:
    data = json.loads(payload("card_action"))
    data["event"]["action"]["value"].update(model_id="", model_name="")
    result = await feed(adapter, json.dumps(data).encode())
    await settle(adapter)
    assert core.reruns[0]["model_id"] is None
    assert json.loads(lark.JSON.marshal(result))["toast"]["content"] == i18n.t("feishu.toast_retry", "en")


async def test_card_patches_are_coalesced_and_latest_wins(
    fake: FakeFeishu, adapter: FeishuAdapter, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake.plant_card("om_card", {"config": {"update_multi": True}, "elements": []}, chat_id="oc_x")
    now = FakeTime()
    patcher = CardPatcher(
        adapter.api, "oc_x", None, message_id="om_card", min_interval_s=0.25, clock=now.clock, sleep=now.sleep
    )
    patched_at: list[float] = []
    patch_card = adapter.api.patch_card

    async def noting_when(message_id: str, card: dict[str, Any]) -> None:
        patched_at.append(now.clock())
        await patch_card(message_id, card)

    monkeypatch.setattr(adapter.api, "patch_card", noting_when)
    # 0.3125 s of updates, one every 1/32 s (binary fractions: the fake clock adds up exactly)
    for i in range(10):
        patcher.update({"n": i, "config": {"update_multi": True}})
        await now.advance(1 / 32)
    await now.advance(0.25)  # the last update's turn
    await patcher.flush()
    patches = fake.of("patch")
    # one patch at once, at most one a turn later, and the latest state once its turn came
    assert 2 <= len(patches) <= 3
    assert patches[-1].content["n"] == 9
    assert all(later - earlier >= 0.25 for earlier, later in itertools.pairwise(patched_at))


async def test_resumed_conversation_patches_the_saved_card(adapter: FeishuAdapter, fake: FakeFeishu) -> None:
    fake.plant_card("om_old_card", {"config": {"update_multi": True}, "elements": []})
    conv = adapter.conversation_for(
        ReplyTarget("feishu", "oc_p2p_chat_0001", USER, None, "en", {"card_message_id": "om_old_card"})
    )
    assert isinstance(conv, FeishuConversation)
    await conv.progress(ProgressView("j", 50, 30, 60, "⏳ 50%"))
    await conv.card.flush()
    assert [(c.kind, c.body["message_id"]) for c in fake.of("patch")] == [("patch", "om_old_card")]


async def test_tenant_token_is_fetched_once_and_reused(adapter: FeishuAdapter, fake: FakeFeishu) -> None:
    await deliver(adapter, "p2p_text")
    assert len(fake.of("token")) == 1
    assert fake.of("token")[0].body == {"app_id": "cli_a1b2c3d4e5f6", "app_secret": "secret"}


async def test_start_serves_until_stop(fake: FakeFeishu, core: ScriptedCore) -> None:
    adapter = FeishuAdapter(feishu_settings(), core, domain_override=fake.url)
    runner = asyncio.create_task(adapter.start())
    await fake.wait_connected()  # the real ws.Client, against the fake's long-connection endpoint
    assert not runner.done()
    await adapter.stop()
    await asyncio.wait_for(runner, 10)
    assert adapter._ws_thread is not None and not adapter._ws_thread.is_alive()


async def test_expired_token_is_renewed_and_the_call_retried(
    adapter: FeishuAdapter, fake: FakeFeishu, core: ScriptedCore
) -> None:
    await deliver(adapter, "p2p_text")
    fake.rotate_token()
    await feed(adapter, payload("p2p_text", message_id="om_p2p_text_0100"))
    await settle(adapter)
    assert len(fake.of("token")) == 2
    assert len([c for c in fake.of("create") if c.body["msg_type"] == "media"]) == 2


async def test_messages_from_other_bots_are_ignored(adapter: FeishuAdapter, core: ScriptedCore) -> None:
    data = json.loads(payload("p2p_text"))
    data["event"]["sender"]["sender_type"] = "app"
    await feed(adapter, json.dumps(data).encode())
    await settle(adapter)
    assert core.incoming == []


async def test_unsupported_message_kinds_are_ignored(adapter: FeishuAdapter, core: ScriptedCore) -> None:
    await feed(adapter, payload("p2p_text", message_type="sticker", content='{"file_key":"sticker_1"}'))
    await settle(adapter)
    assert core.incoming == []


async def test_button_in_a_chat_outside_allowlist_is_refused_with_a_toast(
    fake: FakeFeishu, core: ScriptedCore
) -> None:
    adapter = await make_adapter(fake, core, settings=feishu_settings(feishu_allowed_chats=["oc_other"]))
    result = await feed(adapter, payload("card_action"))
    await settle(adapter)
    assert core.reruns == []
    assert json.loads(lark.JSON.marshal(result))["toast"]["type"] == "error"


async def test_text_arriving_while_the_image_downloads_still_joins_it(
    fake: FakeFeishu, core: ScriptedCore, monkeypatch: pytest.MonkeyPatch
) -> None:
    adapter = await make_adapter(fake, core, merge_window_s=LONG_WINDOW_S)
    downloaded = asyncio.Event()
    download_image = adapter.api.download_image

    async def held_download(message_id: str, image_key: str) -> bytes:
        await downloaded.wait()
        return await download_image(message_id, image_key)

    monkeypatch.setattr(adapter.api, "download_image", held_download)
    await feed(adapter, payload("p2p_image"))
    await feed(adapter, payload("p2p_text_after_image"))  # the image is still downloading
    downloaded.set()
    await settle(adapter)
    assert len(core.incoming) == 1
    assert len(core.incoming[0].images) == 1 and core.incoming[0].text == "让这只猫慢慢眨眼"


async def test_the_adapter_is_ready_for_resumed_jobs_once_its_token_works(
    fake: FakeFeishu, core: ScriptedCore
) -> None:
    adapter = FeishuAdapter(feishu_settings(), core, domain_override=fake.url)
    waiting = asyncio.create_task(adapter.wait_ready())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await adapter.prepare()
    await asyncio.wait_for(waiting, 10)


async def test_a_message_id_seen_within_the_memory_span_is_a_repeat() -> None:
    now = FakeTime()
    seen = RecentIds(ttl_s=3600, clock=now.clock)
    assert seen.add("om_1")
    now.now = 3599.0
    assert not seen.add("om_1")


async def test_a_message_id_is_forgotten_once_the_memory_span_has_passed() -> None:
    now = FakeTime()
    seen = RecentIds(ttl_s=3600, clock=now.clock)
    seen.add("om_1")
    now.now = 3601.0
    assert seen.add("om_1")
