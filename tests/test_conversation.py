"""End-to-end conversations: BotCore → real HTTP → the sandbox, a real SQLite file, real mp4s."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import av
import httpx
import pytest
from PIL import Image
from pydantic import SecretStr

from adapters.base import FailureView, ImageInput, Incoming, NoticeView, ProgressView, VideoView
from bot.core import BotCore
from bot.sandbox import Sandbox, SandboxConfig
from tests.conftest import TIME_SCALE, RecordingConversation, close_core, make_settings, open_core


def say(
    text: str, *, user: str = "u1", event: str | None = None, images: tuple[ImageInput, ...] = ()
) -> Incoming:
    return Incoming(
        platform="console", chat_id="chat", user_id=user, text=text, images=images, event_id=event
    )


async def run(core: BotCore, text: str, **kw: object) -> RecordingConversation:
    conv = RecordingConversation()
    job = await core.handle(say(text, **kw), conv)  # type: ignore[arg-type]
    if job is not None:
        await asyncio.wait_for(job.wait(), 60)
    return conv


def only(conv: RecordingConversation, kind: str) -> object:
    items = conv.of(kind)
    assert len(items) == 1, conv.events
    return items[0]


async def mp4_duration(url: str) -> float:
    async with httpx.AsyncClient() as http:
        r = await http.get(url)
    r.raise_for_status()
    with av.open(io.BytesIO(r.content), "r") as container:
        assert container.streams.video[0].codec_context.name == "h264"
        assert container.duration is not None
        return container.duration / 1_000_000


async def until_status(core: BotCore, job_id: str, status: str) -> None:
    """Wait until the job's row says `status` (the store is the only witness of a step)."""
    async with asyncio.timeout(30):
        while (job := await core.store.get_job(job_id)) is None or job.status != status:  # noqa: ASYNC110
            await asyncio.sleep(0.01)


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


# -- success -------------------------------------------------------------------------------------
async def test_chinese_request_gets_notice_rising_progress_and_a_playable_video(core: BotCore) -> None:
    conv = await run(core, "用可灵生成一段小狗在草地上奔跑的视频 5秒")
    assert conv.kinds()[0] == "notice" and conv.kinds()[-1] == "video"
    notice = only(conv, "notice")
    assert (
        isinstance(notice, NoticeView) and notice.model_name == "Kling O1" and "开始生成视频" in notice.text
    )
    assert f"{notice.credits} pts" in notice.text
    percents = [p.percent for p in conv.of("progress") if isinstance(p, ProgressView)]
    assert len(percents) >= 2 and percents == sorted(percents) and percents[-1] <= 95
    video = only(conv, "video")
    assert isinstance(video, VideoView) and "视频生成成功" in video.caption and video.url in video.link_text
    assert abs(await mp4_duration(video.url) - 5) < 0.6


async def test_english_request_is_answered_in_english(core: BotCore) -> None:
    conv = await run(core, "make a video of a waterfall in a forest, 5 seconds")
    notice = only(conv, "notice")
    assert isinstance(notice, NoticeView) and "Starting video generation" in notice.text
    video = only(conv, "video")
    assert isinstance(video, VideoView) and "Video ready" in video.caption
    assert await mp4_duration(video.url) > 0


async def test_credits_in_the_notice_come_from_the_matched_rule(core: BotCore, sandbox: Sandbox) -> None:
    conv = await run(core, "用万生成一段海浪的视频,10秒,1080P")
    notice = only(conv, "notice")
    assert isinstance(notice, NoticeView)
    [entry] = sandbox.ledger
    assert notice.credits == entry.credit


async def test_an_image_is_uploaded_and_animated(core: BotCore, sandbox: Sandbox) -> None:
    conv = await run(core, "把这张图动起来", images=(ImageInput(data=png(), filename="cat.png"),))
    assert conv.kinds()[-1] == "video", conv.events
    [entry] = sandbox.ledger
    assert entry.task_type == "image_to_video"
    assert entry.parameters["input_images"][0].startswith(sandbox.base_url)


# -- fitting -------------------------------------------------------------------------------------
async def test_a_duration_over_the_maximum_is_clamped_and_said(core: BotCore, sandbox: Sandbox) -> None:
    conv = await run(core, "用万生成一段1分钟的城市夜景视频")
    notice = only(conv, "notice")
    assert isinstance(notice, NoticeView) and "最长 15 秒" in notice.text
    assert int(sandbox.ledger[0].parameters["duration"]) == 15


async def test_4k_goes_to_a_model_that_renders_it_and_stays_4k(core: BotCore, sandbox: Sandbox) -> None:
    conv = await run(core, "生成4K的雪山视频")
    notice = only(conv, "notice")
    assert isinstance(notice, NoticeView) and notice.model_name == "Google Veo 3.1"
    [entry] = sandbox.ledger
    assert str(entry.parameters["resolution"]).upper() == "4K" and entry.credit == notice.credits


async def test_a_model_without_the_task_type_is_refused_with_models_that_have_it(
    core: BotCore, sandbox: Sandbox
) -> None:
    images = (ImageInput(data=png(), filename="a.png"), ImageInput(data=png(), filename="b.png"))
    conv = await run(core, "用 Sora 2 Pro 做首尾帧过渡视频,从第一张到第二张", images=images)
    failure = only(conv, "failure")
    assert isinstance(failure, FailureView) and failure.kind == "unsupported_task"
    assert len(failure.alternatives) == 2 and sandbox.ledger == []


# -- preferences ---------------------------------------------------------------------------------
async def test_a_saved_preference_is_used_and_the_recommendation_hinted(core: BotCore) -> None:
    first = await run(core, "以后都用可灵")
    assert any("已记住" in t for t in first.texts())
    conv = await run(core, "生成一段小猫玩毛线的视频")
    notice = only(conv, "notice")
    assert isinstance(notice, NoticeView) and notice.model_name == "Kling O1"
    video = only(conv, "video")
    assert isinstance(video, VideoView) and "Wan 2.6" in video.caption


async def test_naming_a_model_says_once_that_it_is_remembered(core: BotCore) -> None:
    first = await run(core, "用海螺生成一段樱花飘落的视频")
    notice = only(first, "notice")
    assert isinstance(notice, NoticeView) and "已记住" in notice.text and "Hailuo 2.3" in notice.text
    again = await run(core, "用海螺生成一段雪花飘落的视频")
    notice = only(again, "notice")
    assert isinstance(notice, NoticeView) and "已记住" not in notice.text


async def test_asking_for_the_best_gets_the_premium_model_without_a_cheaper_nudge(core: BotCore) -> None:
    conv = await run(core, "用最好的模型生成海浪")
    notice = only(conv, "notice")
    assert isinstance(notice, NoticeView) and notice.model_name == "Kling O1"
    assert "高端模型" in notice.text and "省点积分" not in notice.text


async def test_an_expensive_named_request_names_a_cheaper_way(core: BotCore) -> None:
    conv = await run(core, "用万生成 10秒 1080P 的海浪")
    notice = only(conv, "notice")
    assert isinstance(notice, NoticeView) and notice.credits > 50
    assert "省点积分" in notice.text and "高端模型" not in notice.text


async def test_handing_the_choice_back_clears_the_preference(core: BotCore) -> None:
    await run(core, "以后都用可灵")
    cleared = await run(core, "你选一个吧")
    assert cleared.texts() and not cleared.of("notice")
    conv = await run(core, "生成一段小猫玩毛线的视频")
    notice = only(conv, "notice")
    assert isinstance(notice, NoticeView) and notice.model_name == "Wan 2.6"


async def test_a_video_request_that_hands_the_choice_back_uses_the_recommendation(core: BotCore) -> None:
    await run(core, "以后都用可灵")
    conv = await run(core, "帮我选个模型生成海浪视频")
    notice = only(conv, "notice")
    assert isinstance(notice, NoticeView) and notice.model_name == "Wan 2.6"
    assert await core.store.get_preference("console", "u1", "text_to_video") is None


async def test_preferences_belong_to_one_user(core: BotCore) -> None:
    await run(core, "以后都用可灵", user="alice")
    conv = await run(core, "生成一段小猫玩毛线的视频", user="bob")
    notice = only(conv, "notice")
    assert isinstance(notice, NoticeView) and notice.model_name == "Wan 2.6"


# -- failures ------------------------------------------------------------------------------------
def assert_uncertain(conv: RecordingConversation) -> FailureView:
    """An uncertain create is said plainly and offers nothing that could pay a second time."""
    failure = only(conv, "failure")
    assert isinstance(failure, FailureView) and failure.kind == "create_uncertain", conv.events
    assert "may still be made" in failure.text and "will not send it again" in failure.text
    assert failure.alternatives == () and failure.retry_label is None
    return failure


def stale_rule(sandbox: Sandbox, *, times: int) -> None:
    """The next `times` creates are refused as IMA refuses a stale credit rule (6010)."""
    for _ in range(times):
        sandbox.force_create_error(code=6010, message="Attribute ID does not match the calculated rule")


def assert_failure(conv: RecordingConversation, kind: str, *words: str) -> FailureView:
    failure = only(conv, "failure")
    assert isinstance(failure, FailureView) and failure.kind == kind, conv.events
    assert len(failure.alternatives) == 2
    for w in words:
        assert w in failure.text
    for technical in ("401", "4008", "6006", "6010", "attribute_id", "Traceback", "HTTP"):
        assert technical not in failure.text
    return failure


async def test_a_wrong_key_says_how_to_get_one(sandbox: Sandbox, tmp_path: Path) -> None:
    core = await open_core(make_settings(sandbox, tmp_path / "b.sqlite3", ima_api_key=SecretStr("ima_wrong")))
    try:
        conv = await run(core, "生成一段小狗奔跑的视频")
        assert_failure(conv, "unauthorized", "API密钥无效", "imaclaw.ai/imaclaw/apikey")
    finally:
        await close_core(core)


async def test_running_out_of_points_says_where_to_buy(tmp_path: Path) -> None:
    async with Sandbox(
        SandboxConfig(port=0, time_scale=TIME_SCALE, balance=3, media_dir=tmp_path / "m")
    ) as sb:
        core = await open_core(make_settings(sb, tmp_path / "b.sqlite3"))
        try:
            conv = await run(core, "make a video of a puppy running")
            assert_failure(conv, "insufficient_points", "Insufficient points", "imaclaw/subscription")
            assert sb.ledger == []
        finally:
            await close_core(core)


async def test_server_errors_at_the_same_settings_twice_lower_the_asked_resolution_and_say_so(
    core: BotCore, sandbox: Sandbox
) -> None:
    sandbox.force_create_error(status=500)
    sandbox.force_create_error(status=500)
    conv = await run(core, "用万生成一段海浪的视频,1080P")
    assert conv.kinds()[-1] == "video", conv.events
    assert any("1080P" in t and "720P" in t and "连续两次失败" in t for t in conv.texts()), conv.texts()
    [entry] = sandbox.ledger
    assert str(entry.parameters["resolution"]).upper() == "720P"


async def test_credit_mismatch_that_persists_ends_in_plain_words(core: BotCore, sandbox: Sandbox) -> None:
    for _ in range(4):
        sandbox.force_create_error(code=6006, message="credit mismatch")
    conv = await run(core, "生成一段小狗奔跑的视频")
    assert_failure(conv, "credit_mismatch", "积分计算异常")


async def test_attribute_mismatch_that_persists_ends_in_plain_words(core: BotCore, sandbox: Sandbox) -> None:
    stale_rule(sandbox, times=4)
    # Wan's dearest rule first: the rules tried next cost less (a dearer one would stop it as price_rose)
    conv = await run(core, "make a video of a puppy running, 1080p, 15 seconds")
    assert_failure(conv, "attribute_mismatch", "Model parameters incompatible")
    assert sandbox.ledger == []


async def test_one_attribute_mismatch_is_recovered(core: BotCore, sandbox: Sandbox) -> None:
    stale_rule(sandbox, times=1)
    conv = await run(core, "make a video of a puppy running")
    assert conv.kinds()[-1] == "video", conv.events
    assert len(sandbox.ledger) == 1


async def test_a_recovery_that_would_cost_more_than_the_notice_said_stops_unpaid(
    core: BotCore, sandbox: Sandbox
) -> None:
    # twice the same stale rule: the next best one is Wan's 1080P rule, 40 pts instead of 25
    stale_rule(sandbox, times=2)
    conv = await run(core, "make a video of a puppy running")
    notice = only(conv, "notice")
    assert isinstance(notice, NoticeView) and notice.credits == 25
    failure = assert_failure(conv, "price_rose", "40 pts instead of the 25 pts", "nothing was charged")
    assert failure.retry_label is not None
    assert not any("turned down" in text for text in conv.texts())  # no "trying 1080P" before the stop
    assert sandbox.ledger == []
    again = RecordingConversation()  # Retry plans again at today's price, with a notice of its own
    running = await core.rerun(failure.job_id, user_id="u1", model_id=None, conversation=again)
    assert running is not None and await running.wait() == "delivered"
    assert isinstance(only(again, "notice"), NoticeView)
    assert [entry.credit for entry in sandbox.ledger] == [25]


async def test_a_recovery_never_changes_what_the_user_asked_for(core: BotCore, sandbox: Sandbox) -> None:
    # twice the same stale rule: Wan's next rule is 720P, cheaper, but 1080P was asked for
    stale_rule(sandbox, times=2)
    conv = await run(core, "make a video of a puppy running, 1080p")
    assert_failure(conv, "attribute_mismatch", "Model parameters incompatible")
    assert sandbox.ledger == []


async def test_a_recovery_that_changes_a_default_says_so(core: BotCore, sandbox: Sandbox) -> None:
    # Veo's default is 8 s (140 pts); after the same stale rule twice, its 4 s rule (70 pts)
    stale_rule(sandbox, times=2)
    conv = await run(core, "用 Veo 生成一段海浪拍打礁石的视频")
    assert conv.kinds()[-1] == "video", conv.events
    assert any("改用 4s" in text for text in conv.texts()), conv.texts()
    assert [e.credit for e in sandbox.ledger] == [70]


async def test_an_invalid_product_attribute_is_recovered_by_pricing_again(
    core: BotCore, sandbox: Sandbox
) -> None:
    sandbox.force_create_error(code=400, message="Invalid product attribute")
    conv = await run(core, "make a video of a puppy running")
    assert conv.kinds()[-1] == "video", conv.events
    assert len(sandbox.ledger) == 1


async def test_a_task_that_fails_while_generating_offers_retry_and_two_models(
    core: BotCore, sandbox: Sandbox
) -> None:
    sandbox.force_task_failure(message="render node lost")
    conv = await run(core, "make a video of a puppy running")
    failure = assert_failure(conv, "task_failed", "Video generation failed, try another model")
    assert failure.retry_label is not None and "render node" not in failure.text


async def test_forgetting_the_preferred_model_after_a_failure_starts_nothing(
    core: BotCore, sandbox: Sandbox
) -> None:
    sandbox.force_task_failure(message="render node lost")
    assert isinstance((await run(core, "用可灵生成一段小狗在草地上奔跑的视频")).of("failure")[0], FailureView)
    answer = await run(core, "清除偏好")
    assert answer.texts() and not answer.of("notice") and len(sandbox.ledger) == 1
    assert await core.store.get_preference("console", "u1", "text_to_video") is None


async def test_naming_a_model_after_a_failure_runs_it_again_with_that_model_and_remembers_it(
    core: BotCore, sandbox: Sandbox
) -> None:
    sandbox.force_task_failure(message="render node lost")
    await run(core, "用可灵生成一段小狗在草地上奔跑的视频")
    answer = await run(core, "以后都用海螺")
    assert answer.kinds()[-1] == "video", answer.events
    assert [e.model_name for e in sandbox.ledger] == ["Kling O1", "Hailuo 2.3"]
    pref = await core.store.get_preference("console", "u1", "text_to_video")
    assert pref is not None and pref.model_name == "Hailuo 2.3"


async def test_a_model_option_the_bot_does_not_offer_runs_no_other_model(
    core: BotCore, sandbox: Sandbox
) -> None:
    # Discord's /video model option takes free text: a typo or another service's model
    conv = RecordingConversation()
    incoming = Incoming(
        "discord",
        "chat",
        "u1",
        "a puppy running on grass",
        overrides={"model_id": "runway-gen3"},
        video_command=True,
    )
    assert await core.handle(incoming, conv) is None
    assert "runway-gen3" in conv.texts()[0] and "Wan 2.6" in conv.texts()[0]
    assert sandbox.ledger == []


async def test_a_model_option_may_be_a_name_people_use(core: BotCore, sandbox: Sandbox) -> None:
    conv = RecordingConversation()
    incoming = Incoming(
        "discord",
        "chat",
        "u1",
        "a puppy running on grass",
        overrides={"model_id": "可灵"},
        video_command=True,
    )
    running = await core.handle(incoming, conv)
    assert running is not None and await running.wait() == "delivered"
    assert [e.model_name for e in sandbox.ledger] == ["Kling O1"]


async def test_a_few_words_naming_a_model_change_no_preference_until_they_are_a_request(
    core: BotCore, sandbox: Sandbox
) -> None:
    asked = await run(core, "sora is overrated")
    assert asked.of("notice") and sandbox.ledger == []  # it asks first
    assert await core.store.get_preference("console", "u1", "text_to_video") is None


async def test_sora_refuses_people_and_suggests_permissive_models(core: BotCore, sandbox: Sandbox) -> None:
    conv = await run(core, "用 Sora 2 Pro 生成一个女人在海边跳舞的视频")
    failure = assert_failure(conv, "content_policy", "Sora 2 Pro")
    assert [a.model_name for a in failure.alternatives] == ["Wan 2.6", "Kling O1"]
    assert failure.retry_label is None and sandbox.ledger == []


async def test_a_generation_that_never_ends_times_out(sandbox: Sandbox, tmp_path: Path) -> None:
    core = await open_core(make_settings(sandbox, tmp_path / "b.sqlite3", ima_job_timeout_s=150))
    try:
        sandbox.force_task_never_finishes()
        conv = await run(core, "make a video of a puppy running")
        failure = assert_failure(conv, "render_timeout", "took too long", "may still finish and be charged")
        assert {a.model_name for a in failure.alternatives} & {"Vidu Q2", "Hailuo 2.0"}
        assert failure.retry_label is None  # the same model again could pay twice
    finally:
        await close_core(core)


async def test_a_create_call_that_never_answers_is_not_sent_twice(sandbox: Sandbox, tmp_path: Path) -> None:
    core = await open_core(make_settings(sandbox, tmp_path / "b.sqlite3", ima_create_timeout_s=1.0))
    try:
        sandbox.force_create_hang(3)
        conv = await run(core, "make a video of a puppy running")
        assert_uncertain(conv)
        await asyncio.sleep(0.2)
        assert len(sandbox.ledger) == 1
    finally:
        await close_core(core)


# -- delivery guarantees -------------------------------------------------------------------------
async def test_a_redelivered_event_starts_one_job(core: BotCore, sandbox: Sandbox) -> None:
    a, b = RecordingConversation(), RecordingConversation()
    job = await core.handle(say("生成一段小狗奔跑的视频", event="om_1"), a)
    again = await core.handle(say("生成一段小狗奔跑的视频", event="om_1"), b)
    assert job is not None and again is None
    await job.wait()
    assert len(sandbox.ledger) == 1 and b.events == []


async def test_a_job_interrupted_by_a_stop_is_resumed_and_delivered_once(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = make_settings(sandbox, tmp_path / "b.sqlite3")
    first = await open_core(settings)
    conv = RecordingConversation()
    job = await first.handle(say("用可灵生成一段小狗奔跑的视频"), conv)
    assert job is not None
    await until_status(first, job.job_id, "running")  # the task exists and its id is saved
    await close_core(first)
    assert "video" not in conv.kinds()

    second = await open_core(settings)
    try:
        resumed_conv = RecordingConversation()
        resumed = await second.resume(lambda target: resumed_conv)
        assert len(resumed) == 1
        await asyncio.wait_for(resumed[0].wait(), 60)
        assert resumed_conv.kinds().count("video") == 1 and len(sandbox.ledger) == 1
        assert await second.resume(lambda target: resumed_conv) == []
    finally:
        await close_core(second)


async def test_a_job_stopped_while_its_create_call_was_in_flight_is_not_created_again(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = make_settings(sandbox, tmp_path / "b.sqlite3")
    first = await open_core(settings)
    sandbox.force_create_hang(2)  # the service takes the task but answers late
    job = await first.handle(say("make a video of a puppy running"), RecordingConversation())
    assert job is not None
    await until_status(first, job.job_id, "creating")
    await close_core(first)  # the bot stops before the answer: was it charged? it can't know

    second = await open_core(settings)
    try:
        conv = RecordingConversation()
        [resumed] = await second.resume(lambda target: conv)
        assert await resumed.wait() == "uncertain"
        assert_uncertain(conv)
        assert await second.resume(lambda target: conv) == []  # a second restart sends nothing either
        await asyncio.sleep(2.5)
        assert len(sandbox.ledger) == 1
    finally:
        await close_core(second)


@pytest.mark.parametrize("text", ["", "   ", "🙂", "?"])
async def test_a_message_without_a_description_asks_for_one(core: BotCore, text: str) -> None:
    conv = await run(core, text)
    assert conv.kinds() == ["text"]


async def test_a_non_image_attachment_is_refused_and_nothing_is_spent(
    core: BotCore, sandbox: Sandbox
) -> None:
    conv = await run(
        core, "把这张图动起来", images=(ImageInput(data=b"MZ\x90\x00 binary", filename="x.exe"),)
    )
    assert conv.kinds() == ["text"] and "x.exe" in conv.texts()[0] and sandbox.ledger == []


async def test_a_redelivered_image_merged_into_an_earlier_request_starts_nothing(
    core: BotCore, sandbox: Sandbox
) -> None:
    merged = Incoming(
        platform="feishu",
        chat_id="chat",
        user_id="u1",
        text="把这张图动起来",
        images=(ImageInput(data=png()),),
        event_id="om_text",
        extra_event_ids=("om_image",),
    )
    job = await core.handle(merged, RecordingConversation())
    assert job is not None
    await job.wait()
    replay = Incoming(
        platform="feishu",
        chat_id="chat",
        user_id="u1",
        text="",
        images=(ImageInput(data=png()),),
        event_id="om_image",
    )
    assert await core.handle(replay, RecordingConversation()) is None
    assert len(sandbox.ledger) == 1


class CardConversation(RecordingConversation):
    """Like a platform conversation that edits one message: it exposes that message's id."""

    def __init__(self) -> None:
        super().__init__()
        self.target_state = {"card_message_id": "om_card_1"}


async def test_a_resumed_job_gets_back_the_message_it_was_editing(sandbox: Sandbox, tmp_path: Path) -> None:
    settings = make_settings(sandbox, tmp_path / "b.sqlite3")
    first = await open_core(settings)
    job = await first.handle(say("用可灵生成一段小狗奔跑的视频"), CardConversation())
    assert job is not None
    await until_status(first, job.job_id, "running")
    await close_core(first)

    second = await open_core(settings)
    try:
        targets = []
        conv = RecordingConversation()
        [resumed] = await second.resume(lambda target: targets.append(target) or conv)  # type: ignore[func-returns-value]
        await resumed.wait()
        assert targets[0].state == {"card_message_id": "om_card_1"} and targets[0].chat_id == "chat"
    finally:
        await close_core(second)


# a picture link that works is fetched by the bot and uploaded: tests/test_links.py
@pytest.mark.parametrize(
    "link", ["http://127.0.0.1:8765/a.png", "https://10.0.0.8/x.jpg", "file:///etc/passwd.png"]
)
async def test_a_hostile_picture_link_is_refused_and_nothing_is_spent(
    core: BotCore, sandbox: Sandbox, link: str
) -> None:
    conv = await run(core, f"animate this {link}")
    assert conv.kinds() == ["text"] and "image link" in conv.texts()[0] and sandbox.ledger == []


class BrokenVideoConversation(RecordingConversation):
    """A platform whose rich video message fails (an upload refused, an API down)."""

    async def video(self, view: VideoView) -> None:
        raise RuntimeError("platform refused the media message")


async def test_when_the_video_message_fails_the_link_is_still_sent(core: BotCore) -> None:
    conv = BrokenVideoConversation()
    job = await core.handle(say("make a video of a puppy running"), conv)
    assert job is not None and await job.wait() == "delivered"
    assert "failure" not in conv.kinds() and ".mp4" in conv.texts()[-1]


async def test_jobs_over_the_concurrency_limit_are_told_they_wait(sandbox: Sandbox, tmp_path: Path) -> None:
    core = await open_core(make_settings(sandbox, tmp_path / "b.sqlite3", bot_max_concurrent_jobs=1))
    try:
        first, second = RecordingConversation(), RecordingConversation()
        a = await core.handle(say("make a video of a puppy running", user="a"), first)
        b = await core.handle(say("make a video of a kitten running", user="b"), second)
        assert a is not None and b is not None
        assert await a.wait() == "delivered" and await b.wait() == "delivered"
        assert second.kinds()[0] == "text" and "Queued" in second.texts()[0]
        assert "text" not in first.kinds()
    finally:
        await close_core(core)


async def test_under_injected_faults_every_job_ends_in_a_video_or_plain_words(tmp_path: Path) -> None:
    config = SandboxConfig(
        port=0,
        time_scale=TIME_SCALE,
        seed=11,
        fail_rate=0.2,
        error_rate_429=0.15,
        error_rate_500=0.15,
        media_dir=tmp_path / "m",
    )
    async with Sandbox(config) as sb:
        core = await open_core(make_settings(sb, tmp_path / "b.sqlite3"))
        try:
            convs = [RecordingConversation() for _ in range(12)]
            jobs = [
                await core.handle(say(f"make a video of wave number {i}", user=f"u{i}"), c)
                for i, c in enumerate(convs)
            ]
            statuses = await asyncio.gather(*(j.wait() for j in jobs if j is not None))
            assert len(statuses) == 12
            for conv, status in zip(convs, statuses, strict=True):
                assert conv.kinds()[-1] == ("video" if status == "delivered" else "failure"), conv.events
            assert "delivered" in statuses and "failed" in statuses  # the seed gives both
            rows = [await core.store.get_job(j.job_id) for j in jobs if j is not None]
            assert all(r is not None and len(r.task_ids) <= 1 for r in rows)
            assert len(sb.ledger) == sum(len(r.task_ids) for r in rows if r is not None)
        finally:
            await close_core(core)


class FlakyPlatformConversation(RecordingConversation):
    """A platform that refuses the notice and every progress update."""

    async def notice(self, view: NoticeView) -> None:
        raise RuntimeError("card rejected")

    async def progress(self, view: ProgressView) -> None:
        raise RuntimeError("rate limited by the platform")


async def test_a_platform_refusing_updates_does_not_fail_a_paid_task(core: BotCore, sandbox: Sandbox) -> None:
    conv = FlakyPlatformConversation()
    job = await core.handle(say("用可灵生成一段小狗奔跑的视频"), conv)
    assert job is not None and await job.wait() == "delivered"
    assert conv.kinds() == ["video"] and len(sandbox.ledger) == 1


async def test_one_person_cannot_run_more_jobs_than_the_limit(sandbox: Sandbox, tmp_path: Path) -> None:
    core = await open_core(make_settings(sandbox, tmp_path / "b.sqlite3", bot_max_jobs_per_user=2))
    try:
        convs = [RecordingConversation() for _ in range(3)]
        jobs = [
            await core.handle(say(f"make a video of boat {i}", user="alice"), c) for i, c in enumerate(convs)
        ]
        other = await core.handle(say("make a video of a plane", user="bob"), RecordingConversation())
        assert jobs[2] is None and "2 videos in progress" in convs[2].texts()[0]
        assert other is not None
        await asyncio.gather(*(j.wait() for j in [*jobs[:2], other] if j is not None))
        assert len(sandbox.ledger) == 3
        again = await core.handle(say("make a video of boat 3", user="alice"), RecordingConversation())
        assert again is not None
        await again.wait()
    finally:
        await close_core(core)
