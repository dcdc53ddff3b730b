"""Only a real video request spends: commands, answers and chat through the real core, the
sandbox over HTTP and a SQLite file. The sandbox's ledger is the bill: every paid task is in it."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from PIL import Image

from adapters.base import FailureView, ImageInput, Incoming, NoticeView
from bot.core import BotCore
from bot.sandbox import Sandbox
from bot.store import WAITING
from bot.store.sqlite import SqliteStore
from tests.conftest import RecordingConversation, close_core, make_settings, open_core
from tests.waiting import wait_until


def say(
    text: str, *, user: str = "u1", chat: str = "chat", event: str | None = None, mentioned: bool = True
) -> Incoming:
    return Incoming(
        platform="console", chat_id=chat, user_id=user, text=text, event_id=event, mentioned=mentioned
    )


async def run(
    core: BotCore, text: str, conv: RecordingConversation | None = None, **kw: object
) -> RecordingConversation:
    conv = conv or RecordingConversation()
    job = await core.handle(say(text, **kw), conv)  # type: ignore[arg-type]
    if job is not None:
        await asyncio.wait_for(job.wait(), 60)
    return conv


CHATTER = [
    "help",
    "帮助",
    "/help",
    "有哪些模型?",
    "/models",
    "你好",
    "取消",
    "好的",
    "asdkjh qwe zzxq",
    "谢谢",
    "thanks, looks great",
    "🙂",
    "jobs",
    "我的任务",
    "yes",
    "no",
    "不用了",
    "how are you?",
    "以后都用Runway",
    "用Runway生成海浪",
    "生成一段视频",
    "我现在用的什么模型",
]


@pytest.mark.parametrize("text", CHATTER)
async def test_chatter_and_commands_answer_in_words_and_spend_nothing(
    core: BotCore, sandbox: Sandbox, text: str
) -> None:
    conv = await run(core, text)
    assert sandbox.ledger == []
    assert conv.kinds() == ["text"], conv.events
    assert conv.texts()[0].strip()


async def test_help_gives_examples_in_the_users_language(core: BotCore) -> None:
    assert "一只小狗" in (await run(core, "帮助")).texts()[0]
    assert "puppy" in (await run(core, "help")).texts()[0]


async def test_models_lists_live_prices_and_times(core: BotCore) -> None:
    text = (await run(core, "有哪些模型?")).texts()[0]
    assert "Wan 2.6" in text and "积分起" in text


async def test_an_unknown_model_is_named_and_the_offered_ones_listed(core: BotCore) -> None:
    text = (await run(core, "用Runway生成海浪")).texts()[0]
    assert "Runway" in text and "Wan 2.6" in text


async def test_a_preference_alone_is_saved_and_confirmed_without_a_video(
    core: BotCore, sandbox: Sandbox
) -> None:
    conv = await run(core, "以后都用海螺")
    assert "Hailuo 2.3" in conv.texts()[0] and sandbox.ledger == []
    assert "Hailuo 2.3" in (await run(core, "我现在用的什么模型")).texts()[0]


async def test_group_chatter_without_a_mention_gets_no_answer(core: BotCore, sandbox: Sandbox) -> None:
    for text in ("谢谢", "a cat on the moon", "help"):
        conv = await run(core, text, mentioned=False)
        assert conv.events == [] and sandbox.ledger == []


async def test_yes_after_a_failure_reruns_once_with_the_suggested_model(
    core: BotCore, sandbox: Sandbox
) -> None:
    first = await run(core, "用 Sora 2 Pro 生成一个女人在海边跳舞的视频")
    failure = first.of("failure")[0]
    assert isinstance(failure, FailureView) and sandbox.ledger == []
    again = await run(core, "好的")
    assert again.kinds()[-1] == "video", again.events
    [entry] = sandbox.ledger
    assert entry.model_id == failure.alternatives[0].model_id
    # the question was answered: a second yes is just chat
    assert (await run(core, "好的")).kinds() == ["text"] and len(sandbox.ledger) == 1


async def test_a_named_choice_after_a_failure_uses_that_model(core: BotCore, sandbox: Sandbox) -> None:
    await run(core, "用 Sora 2 Pro 生成一个女人在海边跳舞的视频")
    conv = await run(core, "用第二个")
    assert conv.kinds()[-1] == "video", conv.events
    [entry] = sandbox.ledger
    assert entry.model_id == "kling-video-o1"


async def test_no_after_a_failure_is_acknowledged_and_spends_nothing(core: BotCore, sandbox: Sandbox) -> None:
    await run(core, "用 Sora 2 Pro 生成一个女人在海边跳舞的视频")
    conv = await run(core, "不用了")
    assert conv.kinds() == ["text"] and sandbox.ledger == []


async def test_a_failure_button_pressed_twice_starts_one_task(core: BotCore, sandbox: Sandbox) -> None:
    first = await run(core, "用 Sora 2 Pro 生成一个女人在海边跳舞的视频")
    failure = first.of("failure")[0]
    assert isinstance(failure, FailureView)
    convs = [RecordingConversation(), RecordingConversation()]
    jobs = await asyncio.gather(
        *(
            core.rerun(
                failure.job_id, user_id="u1", model_id=failure.alternatives[0].model_id, conversation=c
            )
            for c in convs
        )
    )
    started = [j for j in jobs if j is not None]
    assert len(started) == 1
    await asyncio.wait_for(started[0].wait(), 60)
    assert len(sandbox.ledger) == 1
    assert any("已经执行过" in t for c in convs for t in c.texts())


async def test_a_burst_from_one_person_starts_at_most_their_limit(core: BotCore, sandbox: Sandbox) -> None:
    convs = [RecordingConversation() for _ in range(50)]
    jobs = await asyncio.gather(
        *(core.handle(say(f"a red fox running number {i}", event=f"e{i}"), c) for i, c in enumerate(convs))
    )
    started = [j for j in jobs if j is not None]
    assert len(started) == core.settings.bot_max_jobs_per_user
    await asyncio.wait_for(asyncio.gather(*(j.wait() for j in started)), 60)
    assert len(sandbox.ledger) == core.settings.bot_max_jobs_per_user
    refused = sum(1 for c in convs if c.kinds() == ["text"])
    assert refused == 50 - len(started)


async def test_a_redelivered_event_is_answered_once(core: BotCore) -> None:
    first = await run(core, "help", event="ev-1")
    second = await run(core, "help", event="ev-1")
    assert first.kinds() == ["text"] and second.events == []


async def test_cancel_with_nothing_running_says_so(core: BotCore) -> None:
    text = (await run(core, "cancel")).texts()[0]
    assert "nothing to cancel" in text


async def test_cancel_stops_a_running_job_and_says_it_may_be_charged(core: BotCore, sandbox: Sandbox) -> None:
    sandbox.force_task_never_finishes()
    conv = RecordingConversation()
    job = await core.handle(say("a lighthouse in a storm"), conv)
    assert job is not None
    await wait_until(lambda: bool(sandbox.ledger), "the task to be created")
    stop = await run(core, "cancel")
    assert "may still charge" in stop.texts()[0]
    assert await job.wait() == "cancelled"
    row = await core.store.get_job(job.job_id)
    assert row is not None and row.status == "cancelled"


async def test_a_prompt_longer_than_the_service_takes_is_refused_before_paying(
    core: BotCore, sandbox: Sandbox
) -> None:
    conv = await run(core, "a cat " * 1200)
    assert "5000" in conv.texts()[0] and sandbox.ledger == []


async def test_animate_without_a_picture_asks_for_it(core: BotCore, sandbox: Sandbox) -> None:
    conv = await run(core, "把这张图动起来")
    assert "图片" in conv.texts()[0] and sandbox.ledger == []


# -- the price question ---------------------------------------------------------------------------


@pytest.fixture
async def asking_core(sandbox: Sandbox, tmp_path: Path) -> AsyncIterator[BotCore]:
    core = await open_core(make_settings(sandbox, tmp_path / "ask.sqlite3", bot_confirm_above_credits=100))
    yield core
    await close_core(core)


async def test_an_expensive_job_waits_for_a_yes_and_creates_nothing_before(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    conv = await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    notice = conv.of("notice")[0]
    assert isinstance(notice, NoticeView) and notice.confirm_label and "122" in notice.text
    assert sandbox.ledger == []
    done = await run(asking_core, "确认")
    assert done.kinds()[-1] == "video", done.events
    assert len(sandbox.ledger) == 1


async def test_the_confirm_button_works_once(asking_core: BotCore, sandbox: Sandbox) -> None:
    conv = await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    notice = conv.of("notice")[0]
    assert isinstance(notice, NoticeView)
    presses = await asyncio.gather(
        *(
            asking_core.confirm(notice.job_id, user_id="u1", conversation=RecordingConversation())
            for _ in range(3)
        )
    )
    started = [j for j in presses if j is not None]
    assert len(started) == 1
    await asyncio.wait_for(started[0].wait(), 60)
    assert len(sandbox.ledger) == 1


async def test_a_yes_covers_only_the_price_it_was_given_for(asking_core: BotCore, sandbox: Sandbox) -> None:
    conv = await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    notice = conv.of("notice")[0]
    assert isinstance(notice, NoticeView) and "122" in notice.text
    asked = await asking_core.store.get_job(notice.job_id)
    assert asked is not None
    await asking_core.store.save_job(asked, credits=100)  # the price the question named, since risen
    done = await run(asking_core, "确认")
    failure = done.of("failure")[0]
    assert isinstance(failure, FailureView) and failure.kind == "price_rose"
    assert "122" in failure.text and "100" in failure.text and failure.retry_label is not None
    assert sandbox.ledger == []


@pytest.mark.parametrize("reply", ["用海螺", "always use Hailuo", "换成海螺", "清除偏好"])
async def test_naming_a_model_is_not_a_yes_to_the_price(
    asking_core: BotCore, sandbox: Sandbox, reply: str
) -> None:
    conv = await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    notice = conv.of("notice")[0]
    assert isinstance(notice, NoticeView) and notice.confirm_label
    answer = await run(asking_core, reply)
    assert answer.texts() and not answer.of("notice") and sandbox.ledger == []
    row = await asking_core.store.get_job(notice.job_id)
    assert row is not None and row.status == WAITING  # the question is still open: a yes starts it
    assert (await run(asking_core, "确认")).kinds()[-1] == "video"
    assert len(sandbox.ledger) == 1


async def test_a_confirm_pressed_after_its_question_expired_starts_nothing(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    conv = await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    notice = conv.of("notice")[0]
    assert isinstance(notice, NoticeView) and notice.confirm_label
    asked = await asking_core.store.get_job(notice.job_id)
    assert asked is not None and asked.request.answer_by is not None
    asked.request.answer_by = 0.0  # the ten minutes are over
    await asking_core.store.save_job(asked, request=asked.request)
    pressed = RecordingConversation()
    assert await asking_core.confirm(notice.job_id, user_id="u1", conversation=pressed) is None
    assert pressed.texts() and sandbox.ledger == []
    row = await asking_core.store.get_job(notice.job_id)
    assert row is not None and row.status == "expired"


async def test_declining_the_price_ends_the_job_unpaid(asking_core: BotCore, sandbox: Sandbox) -> None:
    conv = await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    notice = conv.of("notice")[0]
    assert isinstance(notice, NoticeView)
    assert "没有消耗积分" in (await run(asking_core, "no")).texts()[0]
    row = await asking_core.store.get_job(notice.job_id)
    assert row is not None and row.status == "cancelled" and sandbox.ledger == []


def pictures(n: int) -> tuple[ImageInput, ...]:
    """`n` small real PNGs, each a different colour."""
    out = []
    for i in range(n):
        buf = io.BytesIO()
        Image.new("RGB", (64, 48), (10 + 90 * i, 120, 200)).save(buf, "PNG")
        out.append(ImageInput(data=buf.getvalue(), filename=f"picture{i}.png"))
    return tuple(out)


async def _model_saved(core: BotCore, user: str = "u1") -> str | None:
    saved = await core.store.get_preference("console", user, "text_to_video")
    return saved.model_key if saved else None


async def test_a_no_to_the_price_puts_back_the_model_the_request_replaced(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    await run(asking_core, "以后都用可灵")
    kling = await _model_saved(asking_core)
    assert kling is not None
    await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    assert await _model_saved(asking_core) != kling  # the words named Sora: saved with the job
    said = (await run(asking_core, "no")).texts()[0]
    assert await _model_saved(asking_core) == kling and sandbox.ledger == []
    assert "没有消耗积分" in said and "Kling" in said


async def test_cancelling_a_price_question_puts_back_the_model_the_request_replaced(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    await run(asking_core, "以后都用可灵")
    kling = await _model_saved(asking_core)
    await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    said = (await run(asking_core, "取消")).texts()[0]
    assert kling is not None and await _model_saved(asking_core) == kling
    assert "Kling" in said and sandbox.ledger == []


async def test_a_no_to_the_price_saves_no_model_when_none_was_saved_before(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    said = (await run(asking_core, "no")).texts()[0]
    assert await _model_saved(asking_core) is None
    assert "Sora 2 Pro" in said and sandbox.ledger == []


async def test_a_no_to_the_price_leaves_a_model_saved_since_the_question(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    await run(asking_core, "以后都用海螺")  # the question stays open (a model named is no yes)
    hailuo = await _model_saved(asking_core)
    said = (await run(asking_core, "no")).texts()[0]
    assert hailuo is not None and await _model_saved(asking_core) == hailuo
    assert "没有消耗积分" in said and "Sora" not in said and sandbox.ledger == []


async def test_a_yes_to_the_price_keeps_the_model_the_request_named(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    await run(asking_core, "以后都用可灵")
    await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    sora = await _model_saved(asking_core)
    assert (await run(asking_core, "确认")).kinds()[-1] == "video"
    assert await _model_saved(asking_core) == sora and len(sandbox.ledger) == 1


async def test_a_no_to_the_price_leaves_the_same_model_saved_again_since(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    await run(asking_core, "以后都用可灵")
    await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    await run(asking_core, "以后都用 Sora 2 Pro")  # said in so many words: theirs, whatever the no
    sora = await _model_saved(asking_core)
    await run(asking_core, "no")
    assert sora is not None and await _model_saved(asking_core) == sora and sandbox.ledger == []


async def test_a_no_to_one_price_leaves_the_model_another_yes_started(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    await run(asking_core, "以后都用可灵")
    first = (await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")).of("notice")[0]
    second = (await run(asking_core, "用 Sora 2 Pro 生成一只狗在月球上跳舞")).of("notice")[0]
    assert isinstance(first, NoticeView) and isinstance(second, NoticeView)
    sora = await _model_saved(asking_core)
    started = await asking_core.confirm(second.job_id, user_id="u1", conversation=RecordingConversation())
    assert started is not None and await started.wait() == "delivered"
    await asking_core.decline(first.job_id, user_id="u1", conversation=RecordingConversation())
    assert await _model_saved(asking_core) == sora and len(sandbox.ledger) == 1


async def test_a_no_to_a_retrys_price_puts_back_the_model_its_answer_replaced(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    await run(asking_core, "以后都用可灵")
    kling = await _model_saved(asking_core)
    sandbox.force_task_failure()
    failed = await run(asking_core, "生成一只猫在月球上跳舞")
    assert failed.of("failure") and len(sandbox.ledger) == 1
    asked = await run(asking_core, "用 Sora 2 Pro")  # "try another model?": this one, at 122 pts
    assert [n for n in asked.of("notice") if isinstance(n, NoticeView) and n.confirm_label]
    await run(asking_core, "no")
    assert kling is not None and await _model_saved(asking_core) == kling and len(sandbox.ledger) == 1


async def test_a_model_named_to_retry_a_picture_job_is_saved_and_put_back_for_pictures(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    [picture] = pictures(1)
    sandbox.force_task_failure()
    failed = RecordingConversation()
    job = await asking_core.handle(
        Incoming("console", "chat", "u1", "让这张图动起来", images=(picture,)), failed
    )
    assert job is not None and await job.wait() != "delivered" and failed.of("failure")
    await run(asking_core, "用 Sora 2 Pro")  # "try another model?": this one, for the picture
    saved = await asking_core.store.get_preference("console", "u1", "image_to_video")
    assert saved is not None and saved.model_name == "Sora 2 Pro"
    assert await _model_saved(asking_core) is None  # not the text-only preference
    await run(asking_core, "no")
    assert await asking_core.store.get_preference("console", "u1", "image_to_video") is None
    assert len(sandbox.ledger) == 1


async def test_a_model_named_to_retry_a_picture_job_is_the_one_that_animates_pictures(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    [picture] = pictures(1)
    sandbox.force_task_failure()
    job = await asking_core.handle(
        Incoming("console", "chat", "u1", "让这张图动起来", images=(picture,)), RecordingConversation()
    )
    assert job is not None and await job.wait() != "delivered"
    retried = await run(asking_core, "用 Vidu Q2")  # Vidu Q2 animates a picture as Vidu Q2 Pro
    assert retried.kinds()[-1] == "video", retried.events
    assert [(e.task_type, e.model_id) for e in sandbox.ledger][-1] == ("image_to_video", "viduq2-pro")
    saved = await asking_core.store.get_preference("console", "u1", "image_to_video")
    assert saved is not None and saved.model_id == "viduq2-pro"


async def test_a_model_named_for_a_task_it_cannot_do_is_not_saved_for_it(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    conv = RecordingConversation()
    asked = Incoming("console", "chat", "u1", "用 Wan 2.6 从第一张过渡到第二张", images=pictures(2))
    job = await asking_core.handle(asked, conv)
    if job is not None:
        await job.wait()
    assert await asking_core.store.get_preference("console", "u1", "first_last_frame_to_video") is None


async def test_cancelling_a_price_question_answers_in_the_language_of_the_cancel(
    asking_core: BotCore, sandbox: Sandbox
) -> None:
    await run(asking_core, "以后都用可灵")
    await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    said = (await run(asking_core, "cancel")).texts()[0]
    assert said.endswith("\n" + asking_core.t("confirm.preference_back", "en", model="Kling O1")), said


async def test_a_price_question_survives_a_restart(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = make_settings(sandbox, tmp_path / "restart.sqlite3", bot_confirm_above_credits=100)
    first = await open_core(settings)
    await run(first, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    await close_core(first)
    second = await open_core(settings)
    try:
        done = await run(second, "yes")
        assert done.kinds()[-1] == "video", done.events
        assert len(sandbox.ledger) == 1
    finally:
        await close_core(second)


async def test_an_expired_price_question_starts_nothing(asking_core: BotCore, sandbox: Sandbox) -> None:
    conv = await run(asking_core, "用 Sora 2 Pro 生成一只猫在月球上跳舞")
    notice = conv.of("notice")[0]
    assert isinstance(notice, NoticeView)
    store = asking_core.store
    assert isinstance(store, SqliteStore)  # the question's expiry is moved by hand, in SQLite
    await store._db.execute("UPDATE open_questions SET expires_at = 0")
    await store._db.commit()
    late = await run(asking_core, "确认")
    assert "10" in late.texts()[0] and sandbox.ledger == []
    row = await asking_core.store.get_job(notice.job_id)
    assert row is not None and row.status == "expired"
