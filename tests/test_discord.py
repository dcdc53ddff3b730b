"""The Discord adapter driven at its boundary: command callbacks with stand-in interactions that
record what they were given, real discord.py attachments built from recorded payloads, a real
HTTP server on loopback for video downloads, and a fake core that drives the Conversation."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import io
import json
import re
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import aiohttp
import discord
import pytest
from aiohttp import web
from PIL import Image
from pydantic import SecretStr

from adapters.base import (
    Alternative,
    Conversation,
    FailureView,
    Incoming,
    JobSummary,
    ModelChoice,
    NoticeView,
    ProgressView,
    ReplyTarget,
    VideoView,
)
from adapters.discord import DiscordAdapter, render, sdk
from adapters.discord.buttons import (
    ACTION_TEMPLATE,
    SEED_TEMPLATE,
    TEMPLATE,
    JobActionButton,
    RerunButton,
    SameSeedButton,
)
from adapters.discord.conversation import DiscordConversation
from adapters.discord.fetch import VideoFetcher
from adapters.discord.handlers import Conversations, Handlers, VideoOptions
from adapters.discord.tree import VIDEO_OPTIONS, LocaleTranslator
from bot import i18n
from bot.config import Settings

FIXTURES = Path(__file__).parent / "fixtures" / "discord"
T0 = datetime.datetime(2025, 1, 1, 12, 0, tzinfo=datetime.UTC)
BOT_ID = 1000000000000000001


# -- stand-ins ---------------------------------------------------------------------------------------
# The stand-ins are no kinder than Discord. Sources (discord.com/developers/docs):
# [message]  resources/message "Create Message": content at most 2,000 characters; `nonce` at
#            most 25 characters, and with `enforce_nonce` (discord.py 2.x sends it with every
#            nonce) "checked for uniqueness in the past few minutes. If another message was created
#            by the same author with the same nonce, that message will be returned and no new
#            message will be created." Edit Message takes the same content limit.
# [embed]    resources/message "Embed Limits": description 4,096 characters, 6,000 in all.
# [uploads]  reference "Uploading Files": over the upload limit (10 MiB unless the guild is boosted;
#            `Interaction.filesize_limit`) Discord answers 413 / JSON error 40005 "Request entity
#            too large".
# [limits]   topics/rate-limits: a 429 carries `retry_after` (seconds); discord.py sleeps through it
#            unless it is longer than the client's max_ratelimit_timeout (then `discord.RateLimited`)
#            or, on the webhook routes of interactions, it comes without a `Via` header (then an
#            HTTPException with status 429).
MAX_CONTENT, MAX_DESCRIPTION, MAX_EMBED_TOTAL = 2000, 4096, 6000
DEFAULT_UPLOAD_LIMIT = 10 * 1024 * 1024
NONCE_WINDOW_S = 120.0  # "the past few minutes": two, to be safe


def http_response(status: int, reason: str) -> aiohttp.ClientResponse:
    """What discord.HTTPException reads of a response: its status and reason."""
    return cast(aiohttp.ClientResponse, SimpleNamespace(status=status, reason=reason))


def _refusal(status: int, code: int, message: str) -> discord.HTTPException:
    reasons = {400: "Bad Request", 413: "Payload Too Large", 429: "Too Many Requests"}
    return discord.HTTPException(
        http_response(status, reasons.get(status, "Error")),
        {"code": code, "message": message},
    )


def check_message(kw: dict[str, Any], upload_limit: int) -> None:
    """Raise what Discord answers to a message (sent or edited) that breaks [message], [embed]
    or [uploads]."""
    content = kw.get("content")
    if content is not None and len(str(content)) > MAX_CONTENT:
        raise _refusal(400, 50035, "Invalid Form Body: content must be 2000 or fewer in length.")
    nonce = kw.get("nonce")
    if nonce is not None and len(str(nonce)) > 25:
        raise _refusal(400, 50035, "Invalid Form Body: nonce must be 25 or fewer in length.")
    embed = kw.get("embed")
    if isinstance(embed, discord.Embed):
        if len(embed.description or "") > MAX_DESCRIPTION or len(embed) > MAX_EMBED_TOTAL:
            raise _refusal(400, 50035, "Invalid Form Body: embed too long.")
    files = [f for f in [kw.get("file"), *(kw.get("attachments") or [])] if isinstance(f, discord.File)]
    size = 0
    for f in files:
        size += len(f.fp.read())
        f.reset()
    if size > upload_limit:
        raise _refusal(413, 40005, "Request entity too large")


class Log:
    """Every call made on a stand-in, in order: (what, kwargs). Also holds the rate limits the
    next calls meet (see `limit`)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self._limits: list[tuple[str, float, bool]] = []

    def add(self, what: str, **kw: Any) -> None:
        self.calls.append((what, kw))

    def limit(self, what: str, retry_after: float = 0.01, *, times: int = 1, as_429: bool = False) -> None:
        """The next `times` calls of `what` ("edit_original", "message.edit", "channel.send",
        "followup.send") meet a rate limit [limits]: `discord.RateLimited`, or with `as_429` an
        HTTPException 429 whose body says retry_after."""
        self._limits.extend([(what, retry_after, as_429)] * times)

    def gate(self, what: str) -> None:
        """Raise the rate limit waiting for `what`, if any (called by the stand-ins)."""
        for i, (name, retry_after, as_429) in enumerate(self._limits):
            if name == what:
                del self._limits[i]
                self.add("rate_limited", call=what, retry_after=retry_after)
                if as_429:
                    raise discord.HTTPException(
                        http_response(429, "Too Many Requests"),
                        json.dumps(
                            {
                                "message": "You are being rate limited.",
                                "retry_after": retry_after,
                                "global": False,
                            }
                        ),
                    )
                raise discord.RateLimited(retry_after)

    def names(self) -> list[str]:
        return [n for n, _ in self.calls]

    def of(self, what: str) -> list[dict[str, Any]]:
        return [kw for n, kw in self.calls if n == what]

    def shown(self) -> list[dict[str, Any]]:
        """Everything that changed what users see (edits and new messages)."""
        return [
            kw
            for n, kw in self.calls
            if n in ("edit_original", "followup.send", "channel.send", "message.edit", "reply")
        ]


class FakeMessage:
    _next = 900

    def __init__(
        self, log: Log, where: str, message_id: int | None = None, upload_limit: int = DEFAULT_UPLOAD_LIMIT
    ) -> None:
        if message_id is None:
            FakeMessage._next += 1
            message_id = FakeMessage._next
        self.id = message_id
        self.log = log
        self.where = where
        self.upload_limit = upload_limit

    async def edit(self, **kw: Any) -> FakeMessage:
        self.log.gate("message.edit")
        check_message(kw, self.upload_limit)
        self.log.add("message.edit", message=self.id, where=self.where, **kw)
        return self


class FakeChannel:
    """A text channel: sends, with Discord's nonce rule [message], and partial messages to edit."""

    def __init__(
        self, log: Log, channel_id: int = 1300000000000000000, *, upload_limit: int = DEFAULT_UPLOAD_LIMIT
    ) -> None:
        self.id = channel_id
        self.log = log
        self.upload_limit = upload_limit
        #: messages sent here, by nonce, with when (monotonic seconds)
        self.nonces: dict[str, tuple[FakeMessage, float]] = {}

    async def send(self, **kw: Any) -> FakeMessage:
        self.log.gate("channel.send")
        check_message(kw, self.upload_limit)
        nonce = kw.get("nonce")
        if nonce is not None and nonce in self.nonces:
            earlier, at = self.nonces[str(nonce)]
            if time.monotonic() - at < NONCE_WINDOW_S:  # [message] enforce_nonce
                self.log.add("channel.send.same_nonce", message=earlier.id, **kw)
                return earlier
        msg = FakeMessage(self.log, "channel", upload_limit=self.upload_limit)
        if nonce is not None:
            self.nonces[str(nonce)] = (msg, time.monotonic())
        self.log.add("channel.send", message=msg.id, **kw)
        return msg

    def get_partial_message(self, message_id: int) -> FakeMessage:
        return FakeMessage(self.log, "channel", message_id, upload_limit=self.upload_limit)


class FakeResponse:
    def __init__(self, log: Log) -> None:
        self.log = log
        self._done = False

    def is_done(self) -> bool:
        return self._done

    async def defer(self, **kw: Any) -> None:
        assert not self._done, "responded twice"
        self._done = True
        self.log.add("defer", **kw)

    async def send_message(self, content: str | None = None, **kw: Any) -> None:
        assert not self._done, "responded twice"
        check_message({"content": content, **kw}, DEFAULT_UPLOAD_LIMIT)
        self._done = True
        self.log.add("send_message", content=content, **kw)


class FakeFollowup:
    def __init__(self, log: Log, upload_limit: int = DEFAULT_UPLOAD_LIMIT) -> None:
        self.log = log
        self.upload_limit = upload_limit

    async def send(self, **kw: Any) -> FakeMessage:
        self.log.gate("followup.send")
        check_message(kw, self.upload_limit)
        msg = FakeMessage(self.log, "followup", upload_limit=self.upload_limit)
        self.log.add("followup.send", message=msg.id, **kw)
        return msg


class FakeInteraction:
    """Quacks like discord.Interaction for what the adapter uses; records every call."""

    _next_original = 5000

    def __init__(
        self,
        *,
        locale: str = "en-US",
        guild_id: int | None = 1200000000000000000,
        user_id: int = 1100000000000000001,
        namespace: dict[str, Any] | None = None,
        client: Any = None,
        filesize_limit: int = 10 * 1024 * 1024,
        fail_edits: bool = False,
        created_at: datetime.datetime = T0,
        message: FakeMessage | None = None,
    ) -> None:
        self.log = Log()
        self.id = 1400000000000000000
        self.locale = discord.Locale(locale)
        self.guild_id = guild_id
        self.user = SimpleNamespace(id=user_id, name="alice")
        self.channel = FakeChannel(self.log, upload_limit=filesize_limit)
        self.channel_id = self.channel.id
        self.created_at = created_at
        self.filesize_limit = filesize_limit
        self.namespace = SimpleNamespace(**(namespace or {}))
        self.response = FakeResponse(self.log)
        self.followup = FakeFollowup(self.log, filesize_limit)
        self.client = client
        self.fail_edits = fail_edits
        #: the message whose button was pressed (component interactions only)
        self.message = message
        #: the id of the original response (the deferred "thinking…" message, then what it shows)
        FakeInteraction._next_original += 1
        self.original_id = FakeInteraction._next_original

    @property
    def expires_at(self) -> datetime.datetime:
        return self.created_at + datetime.timedelta(minutes=15)

    async def edit_original_response(self, **kw: Any) -> FakeMessage:
        if self.fail_edits:
            raise discord.HTTPException(http_response(401, "Unauthorized"), "Invalid Webhook Token")
        self.log.gate("edit_original")
        check_message(kw, self.filesize_limit)
        self.log.add("edit_original", **kw)
        # discord.py returns the InteractionMessage: the original response, with its id
        return FakeMessage(self.log, "original", self.original_id, upload_limit=self.filesize_limit)

    async def delete_original_response(self) -> None:
        self.log.add("delete_original")


def as_discord(interaction: FakeInteraction) -> discord.Interaction[Any]:
    """The stand-in where discord.py's type is expected: it has what the adapter uses of one."""
    return cast("discord.Interaction[Any]", interaction)


class FakeCDN:
    """discord.py's HTTP client as attachments use it: records which files were downloaded."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = files
        self.fetched: list[str] = []

    async def get_from_cdn(self, url: str) -> bytes:
        self.fetched.append(url)
        return self.files[url]


def png_bytes() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8), (200, 120, 40)).save(buf, format="PNG")
    return buf.getvalue()


def recorded_attachments(cdn: FakeCDN) -> dict[str, discord.Attachment]:
    """Real discord.Attachment objects from recorded payloads."""
    raw = json.loads((FIXTURES / "attachments.json").read_text(encoding="utf-8"))
    state: Any = SimpleNamespace(http=cdn)
    out = {}
    for name, payload in raw.items():
        if name.startswith("_"):
            continue
        cdn.files.setdefault(
            payload["url"], png_bytes() if payload["content_type"].startswith("image/") else b"%PDF-1.7"
        )
        out[name] = discord.Attachment(data=payload, state=state)
    return out


class Clock:
    """Monotonic seconds and wall time moved by hand."""

    def __init__(self) -> None:
        self.t = 1000.0
        self.wall_offset = 0.0

    def monotonic(self) -> float:
        return self.t

    def now(self) -> datetime.datetime:
        return T0 + datetime.timedelta(seconds=self.wall_offset)

    def advance(self, seconds: float) -> None:
        self.t += seconds
        self.wall_offset += seconds


class FakeJob:
    def __init__(self, job_id: str, task: asyncio.Task[str]) -> None:
        self.job_id = job_id
        self.task = task

    async def wait(self) -> str:
        return await self.task


Script = Callable[[Conversation], Coroutine[Any, Any, str]]


class FakeCore:
    """Stands in for BotCore: records requests and plays a script on the conversation."""

    def __init__(
        self, script: Script | None = None, choices: dict[str, list[ModelChoice]] | None = None
    ) -> None:
        self.script = script
        self.choices = choices or {}
        self.incoming: list[Incoming] = []
        self.conversations: list[Conversation] = []
        self.reruns: list[dict[str, Any]] = []
        self.actions: list[dict[str, Any]] = []
        self.choice_calls: list[tuple[str, str]] = []
        self.prefs: list[tuple[Any, ...]] = []
        self.jobs: list[FakeJob] = []
        #: job id -> who asked for it (listed in that person's recent jobs)
        self.owners: dict[str, str] = {}

    def _run(self, conversation: Conversation) -> FakeJob | None:
        if self.script is None:
            return None
        job = FakeJob(f"job{len(self.jobs) + 1}", asyncio.create_task(self.script(conversation)))
        self.jobs.append(job)
        return job

    async def handle(self, incoming: Incoming, conversation: Conversation) -> FakeJob | None:
        self.incoming.append(incoming)
        self.conversations.append(conversation)
        return self._run(conversation)

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
                "conversation": conversation,
                "same_seed": same_seed,
                "roles": roles,
            }
        )
        return self._run(conversation)

    async def confirm(
        self, job_id: str, *, user_id: str, conversation: Conversation, roles: tuple[str, ...] = ()
    ) -> FakeJob | None:
        self.actions.append({"action": "confirm", "job_id": job_id, "user_id": user_id, "roles": roles})
        return self._run(conversation)

    async def decline(self, job_id: str, *, user_id: str, conversation: Conversation) -> None:
        self.actions.append({"action": "decline", "job_id": job_id, "user_id": user_id})
        await conversation.text("declined")

    async def cancel(
        self,
        job_id: str | None,
        *,
        platform: str,
        user_id: str,
        conversation: Conversation,
        language: str | None = None,
    ) -> None:
        self.actions.append(
            {
                "action": "cancel",
                "job_id": job_id,
                "user_id": user_id,
                "platform": platform,
                "language": language,
            }
        )
        await conversation.text("cancelled")

    async def model_choices(self, task_type: str, language: str) -> list[ModelChoice]:
        self.choice_calls.append((task_type, language))
        return self.choices.get(task_type, [])

    async def set_preference(
        self, platform: str, user_id: str, task_type: str, model_id: str, language: str
    ) -> str:
        self.prefs.append(("set", platform, user_id, task_type, model_id))
        return f"saved {model_id} for {task_type}"

    async def clear_preference(
        self, platform: str, user_id: str, task_type: str | None, language: str
    ) -> str:
        self.prefs.append(("clear", platform, user_id, task_type))
        return "cleared"

    async def usage(self, platform: str, user_id: str, chat_id: str, language: str) -> str:
        return f"usage of {user_id}"

    async def recent_jobs(self, platform: str, user_id: str, limit: int = 10) -> list[JobSummary]:
        owned = [
            JobSummary(j, "failed", "Wan 2.6", "", None, 1735725600.0)
            for j, u in self.owners.items()
            if u == user_id
        ]
        return [
            JobSummary("j2", "running", "Kling O1", "a cat surfing", 48, 1735732800.0),
            JobSummary(
                "j1",
                "delivered",
                "Wan 2.6",
                "a puppy on grass",
                25,
                1735729200.0,
                url="https://cdn.example/v.mp4",
            ),
            *owned,
        ]

    def t(self, key: str, language: str, **values: object) -> str:
        return i18n.t(key, language, **values)


def notice_view(job: str = "job1") -> NoticeView:
    return NoticeView(
        job,
        "🎬 Starting video generation…",
        "🎬 Starting video generation\n• Model: Wan 2.6\n• Credits: 25 pts",
        "Wan 2.6",
        25,
        60,
        120,
    )


def progress_view(percent: int, elapsed: int, job: str = "job1", overdue: bool = False) -> ProgressView:
    return ProgressView(job, percent, elapsed, 120, f"⏳ Generating… {percent}%", overdue)


def video_view(url: str, job: str = "job1") -> VideoView:
    return VideoView(
        job, url, None, "✅ Video ready!\n• Model: Wan 2.6", f"🔗 Video link:\n{url}", "Wan 2.6", 5.0
    )


def failure_view(job: str = "job1") -> FailureView:
    return FailureView(
        job,
        "❌ Video generation failed",
        "❌ Video generation failed\n• Reason: Generation unsuccessful",
        "status_failed",
        alternatives=(
            Alternative("MiniMax-Hailuo-02", "Hailuo 2.0", "Hailuo 2.0 (5 pts)"),
            Alternative("kling-v2-6", "Kling 2.6", "Kling 2.6 (80 pts)"),
        ),
        retry_label="🔁 Retry",
    )


def settings(**kw: Any) -> Settings:
    return Settings(_env_file=None, discord_token=SecretStr("test-token"), **kw)


# -- fixtures ------------------------------------------------------------------------------------------
SMALL_VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"v" * 2000
BIG_VIDEO = b"\x00\x00\x00\x18ftypmp42" + b"V" * 300_000
UPLOAD_LIMIT = 100_000


@pytest.fixture
async def video_server() -> AsyncIterator[str]:
    """A loopback server with a small and a big mp4, the big one also without Content-Length."""
    hits: list[str] = []

    async def small(request: web.Request) -> web.Response:
        hits.append(request.method + " small")
        return web.Response(body=SMALL_VIDEO, content_type="video/mp4")

    async def big(request: web.Request) -> web.Response:
        hits.append(request.method + " big")
        return web.Response(body=BIG_VIDEO, content_type="video/mp4")

    async def chunked(request: web.Request) -> web.StreamResponse:
        hits.append(request.method + " chunked")
        response = web.StreamResponse(headers={"Content-Type": "video/mp4"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        if request.method != "HEAD":
            for i in range(0, len(BIG_VIDEO), 50_000):
                await response.write(BIG_VIDEO[i : i + 50_000])
        await response.write_eof()
        return response

    app = web.Application()
    app.router.add_route("*", "/small.mp4", small)
    app.router.add_route("*", "/big.mp4", big)
    app.router.add_route("*", "/chunked.mp4", chunked)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


@pytest.fixture
async def fetcher() -> AsyncIterator[VideoFetcher]:
    f = VideoFetcher(timeout_s=5)
    yield f
    await f.aclose()


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make_handlers(core: FakeCore, fetcher: VideoFetcher, clock: Clock, **settings_kw: Any) -> Handlers:
    return Handlers(
        core, settings(**settings_kw), Conversations(fetcher, clock=clock.monotonic, now=clock.now)
    )


def conversation(
    interaction: FakeInteraction, fetcher: VideoFetcher, clock: Clock, limit: int = UPLOAD_LIMIT
) -> DiscordConversation:
    return DiscordConversation(
        channel=interaction.channel,
        fetcher=fetcher,
        upload_limit=limit,
        interaction=as_discord(interaction),
        min_interval_s=5.0,
        token_margin_s=30.0,
        clock=clock.monotonic,
        now=clock.now,
    )


def description(kw: dict[str, Any]) -> str:
    embed = kw.get("embed")
    return embed.description if isinstance(embed, discord.Embed) and embed.description else ""


# -- /video --------------------------------------------------------------------------------------------
async def test_video_defers_then_hands_prompt_and_options_to_core(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    core = FakeCore()
    h = make_handlers(core, fetcher, clock)
    inter = FakeInteraction(locale="zh-CN")
    await h.video(
        as_discord(inter),
        VideoOptions(
            "小狗在草地上奔跑 竖屏 10秒",
            model="kling-video-o1",
            duration=10,
            resolution="1080P",
            aspect_ratio="9:16",
        ),
    )
    assert inter.log.names()[0] == "defer"
    assert inter.log.of("defer")[0] == {"thinking": True}
    (incoming,) = core.incoming
    assert incoming.platform == "discord"
    assert incoming.text == "小狗在草地上奔跑 竖屏 10秒"
    assert incoming.user_id == "1100000000000000001"
    assert incoming.chat_id == str(inter.channel_id)
    assert incoming.language == "zh"
    assert incoming.images == ()
    assert incoming.event_id == f"interaction:{inter.id}"
    assert incoming.overrides == {
        "model_id": "kling-video-o1",
        "duration": 10,
        "resolution": "1080P",
        "aspect_ratio": "9:16",
    }


async def test_video_with_two_images_downloads_them_and_mode_sets_task_type(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    cdn = FakeCDN({})
    att = recorded_attachments(cdn)
    core = FakeCore()
    h = make_handlers(core, fetcher, clock)
    inter = FakeInteraction()
    await h.video(
        as_discord(inter),
        VideoOptions("smooth transition", image=att["cat_png"], image2=att["end_png"], mode="first_last"),
    )
    (incoming,) = core.incoming
    assert [i.filename for i in incoming.images] == ["cat.png", "end.png"]
    assert all(i.data == png_bytes() and i.content_type == "image/png" for i in incoming.images)
    assert incoming.overrides == {"task_type": "first_last_frame_to_video"}
    assert len(cdn.fetched) == 2


async def test_video_mode_without_images_is_ignored(fetcher: VideoFetcher, clock: Clock) -> None:
    core = FakeCore()
    await make_handlers(core, fetcher, clock).video(
        as_discord(FakeInteraction()), VideoOptions("a cat", mode="reference")
    )
    assert core.incoming[0].overrides == {}


async def test_video_creative_options_reach_the_core_as_overrides_only_when_given(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    core = FakeCore()
    h = make_handlers(core, fetcher, clock)
    await h.video(
        as_discord(FakeInteraction()),
        VideoOptions(
            "fireworks over a lake",
            sound="off",
            negative_prompt="  text, watermarks ",
            seed=0,
            shot_type="multi",
            prompt_extend="on",
        ),
    )
    await h.video(as_discord(FakeInteraction()), VideoOptions("a waterfall", sound="on", prompt_extend="off"))
    # blanks and values the choices do not offer are not sent at all
    await h.video(
        as_discord(FakeInteraction()),
        VideoOptions("a cat", negative_prompt="   ", shot_type="wide", sound="loud"),
    )
    assert [i.overrides for i in core.incoming] == [
        {
            "sound": False,
            "negative_prompt": "text, watermarks",
            "seed": 0,
            "shot_type": "multi",
            "prompt_extend": True,
        },
        {"sound": True, "prompt_extend": False},
        {},
    ]


async def test_every_command_fits_discords_limits_in_every_language(fetcher: VideoFetcher) -> None:
    """At most 25 options a command; names of choices and descriptions at most 100 characters."""
    adapter = DiscordAdapter(settings(), FakeCore(), fetcher=fetcher)
    tree = adapter.client.tree
    await tree.set_translator(LocaleTranslator())
    texts: list[str] = []

    def collect(node: dict[str, Any]) -> None:
        for key in ("description", "name"):
            if key in node:
                texts.append(str(node[key]))
            texts.extend(str(v) for v in (node.get(f"{key}_localizations") or {}).values())
        assert len(node.get("options") or []) <= 25, node.get("name")
        for child in [*(node.get("options") or []), *(node.get("choices") or [])]:
            collect(child)

    for command in tree.get_commands():
        collect(await command.get_translated_payload(tree, tree.translator))  # type: ignore[arg-type]
    assert len(texts) > 50 and all(0 < len(t) <= 100 for t in texts), [t for t in texts if len(t) > 100]
    video = await tree.get_command("video").get_translated_payload(tree, tree.translator)  # type: ignore[union-attr, arg-type]
    assert [o["name"] for o in video["options"]] == list(VIDEO_OPTIONS)
    sound = next(o for o in video["options"] if o["name"] == "sound")
    assert [c["name_localizations"]["zh-CN"] for c in sound["choices"]] == [
        i18n.t("discord.sound.on", "zh"),
        i18n.t("discord.sound.off", "zh"),
    ]


async def test_non_image_attachment_is_answered_clearly_and_starts_nothing(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    cdn = FakeCDN({})
    att = recorded_attachments(cdn)
    core = FakeCore()
    inter = FakeInteraction()
    await make_handlers(core, fetcher, clock).video(
        as_discord(inter), VideoOptions("animate", image=att["report_pdf"])
    )
    (sent,) = inter.log.of("send_message")
    assert sent["content"] == i18n.t("image.not_image", "en", name="report.pdf")
    assert sent["ephemeral"] is True
    assert core.incoming == []
    assert cdn.fetched == []
    assert "defer" not in inter.log.names()


async def test_oversized_image_is_refused_before_downloading(fetcher: VideoFetcher, clock: Clock) -> None:
    cdn = FakeCDN({})
    att = recorded_attachments(cdn)
    core = FakeCore()
    inter = FakeInteraction(locale="zh-CN")
    await make_handlers(core, fetcher, clock).video(
        as_discord(inter), VideoOptions("动起来", image=att["cat_png"], image2=att["huge_png"])
    )
    (sent,) = inter.log.of("send_message")
    assert sent["content"] == i18n.t("image.too_large", "zh", size="25.0 MB", limit="10.0 MB")
    assert core.incoming == []
    assert cdn.fetched == []


async def test_video_from_a_guild_outside_the_allowlist_is_refused(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    core = FakeCore()
    inter = FakeInteraction(guild_id=42)
    await make_handlers(core, fetcher, clock, discord_allowed_guilds=[7]).video(
        as_discord(inter), VideoOptions("a cat")
    )
    assert inter.log.of("send_message")[0]["content"] == i18n.t("discord.not_allowed", "en")
    assert core.incoming == []


async def test_request_the_core_answers_with_nothing_removes_the_thinking_placeholder(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    core = FakeCore(script=None)  # e.g. a duplicate event: no job, no words
    inter = FakeInteraction()
    await make_handlers(core, fetcher, clock).video(as_discord(inter), VideoOptions("a cat"))
    assert inter.log.names() == ["defer", "delete_original"]


async def test_core_text_replaces_the_thinking_placeholder(fetcher: VideoFetcher, clock: Clock) -> None:
    class TextCore(FakeCore):
        async def handle(self, incoming: Incoming, conversation: Conversation) -> None:
            await conversation.text("Tell me what video you'd like")
            return None

    inter = FakeInteraction()
    await make_handlers(TextCore(), fetcher, clock).video(as_discord(inter), VideoOptions(" "))
    assert inter.log.names() == ["defer", "edit_original"]
    assert inter.log.of("edit_original")[0]["content"] == "Tell me what video you'd like"


# -- the edits of one job ---------------------------------------------------------------------------------
async def test_job_edits_the_original_response_notice_then_rising_percent_then_video_url(
    fetcher: VideoFetcher, clock: Clock, video_server: str
) -> None:
    url = f"{video_server}/big.mp4"

    async def script(conv: Conversation) -> str:
        await conv.notice(notice_view())
        for percent in (10, 35, 60, 90):
            clock.advance(6)
            await conv.progress(progress_view(percent, percent))
        clock.advance(6)
        await conv.video(video_view(url))
        return "delivered"

    core = FakeCore(script)
    inter = FakeInteraction(filesize_limit=UPLOAD_LIMIT)
    await make_handlers(core, fetcher, clock).video(as_discord(inter), VideoOptions("a puppy"))
    await core.jobs[0].wait()
    edits = inter.log.of("edit_original")
    assert inter.log.names() == ["defer"] + ["edit_original"] * 6
    assert "Model: Wan 2.6" in description(edits[0])
    percents = [int(m.group(1)) for kw in edits[1:5] if (m := re.search(r"(\d+)%", description(kw)))]
    assert percents == [10, 35, 60, 90]
    assert all("Model: Wan 2.6" in description(kw) and "█" in description(kw) for kw in edits[1:5])
    final = edits[-1]
    assert url in final["content"]
    assert "Video ready" in description(final)
    assert "attachments" not in final  # bigger than the upload limit: the link alone
    assert final["view"] is None


async def test_a_video_that_fits_the_upload_limit_is_attached_too(
    fetcher: VideoFetcher, clock: Clock, video_server: str
) -> None:
    url = f"{video_server}/small.mp4"
    inter = FakeInteraction()
    conv = conversation(inter, fetcher, clock)
    await inter.response.defer(thinking=True)
    await conv.video(video_view(url))
    (final,) = inter.log.of("edit_original")
    (file,) = final["attachments"]
    assert isinstance(file, discord.File)
    assert file.filename == "video.mp4"
    assert file.fp.read() == SMALL_VIDEO
    assert f"<{url}>" in final["content"]  # one player (the file), the link still there to copy


async def test_progress_edits_are_throttled_to_one_per_5_s_except_changes_of_state(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    inter = FakeInteraction()
    conv = conversation(inter, fetcher, clock)
    await inter.response.defer(thinking=True)
    await conv.notice(notice_view())
    clock.advance(0.5)
    await conv.progress(progress_view(1, 1))  # notice → running: shown at once
    for _ in range(4):
        clock.advance(1)
        await conv.progress(progress_view(2, 2))  # same state within 5 s: dropped
    clock.advance(1.2)
    await conv.progress(progress_view(5, 6))  # 5.2 s after the last edit: shown
    clock.advance(0.5)
    await conv.progress(progress_view(95, 130, overdue=True))  # running → late: shown at once
    clock.advance(0.5)
    await conv.progress(progress_view(95, 131, overdue=True))  # dropped
    clock.advance(0.5)
    await conv.failure(failure_view())  # an end always shows
    shown = [description(kw) for kw in inter.log.of("edit_original")]
    assert len(shown) == 5
    assert ["1%" in shown[1], "5%" in shown[2], "95%" in shown[3]] == [True, True, True]
    assert "Reason" in shown[4]


async def test_job_outliving_the_interaction_token_edits_the_same_message_through_the_channel(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    inter = FakeInteraction()
    conv = conversation(inter, fetcher, clock)
    await inter.response.defer(thinking=True)
    await conv.notice(notice_view())
    clock.advance(60)
    await conv.progress(progress_view(10, 60))
    clock.advance(14 * 60 + 40)  # 30 s margin before the 15-minute expiry is past
    await conv.progress(progress_view(50, 900))
    clock.advance(60)
    await conv.failure(failure_view())
    # the original response is the bot's own message: edited by the channel once the token is
    # gone, never left behind at its last percentage
    assert inter.log.names() == ["defer", "edit_original", "edit_original", "message.edit", "message.edit"]
    edits = inter.log.of("message.edit")
    assert {kw["message"] for kw in edits} == {inter.original_id}
    assert "50%" in description(edits[0]) and "Model: Wan 2.6" in description(edits[0])
    assert edits[1]["view"] is not None and "Reason" in description(edits[1])
    assert conv.status_message_id == inter.original_id


async def test_job_outliving_the_token_of_an_unknown_message_continues_in_a_new_one(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    inter = FakeInteraction()
    conv = conversation(inter, fetcher, clock)
    await inter.response.defer(thinking=True)
    clock.advance(16 * 60)  # nothing was shown while the token lived: the response's id is unknown
    await conv.notice(notice_view())
    clock.advance(60)
    await conv.failure(failure_view())
    assert inter.log.names() == ["defer", "channel.send", "message.edit"]
    posted = inter.log.of("channel.send")[0]
    assert posted["nonce"] == "n:job1"  # a repeat after a restart returns this message
    assert conv.status_message_id == posted["message"]


async def test_texts_after_the_token_expired_go_to_the_channel(fetcher: VideoFetcher, clock: Clock) -> None:
    inter = FakeInteraction()
    conv = conversation(inter, fetcher, clock)
    await inter.response.defer(thinking=True)
    await conv.notice(notice_view())
    await conv.text("🔧 retrying (attempt 1)")
    clock.advance(16 * 60)
    await conv.text("🔄 still following your video")
    assert inter.log.names() == ["defer", "edit_original", "followup.send", "channel.send"]


async def test_an_interaction_edit_refused_early_moves_to_a_channel_message(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    inter = FakeInteraction(fail_edits=True)
    conv = conversation(inter, fetcher, clock)
    await inter.response.defer(thinking=True)
    await conv.notice(notice_view())
    clock.advance(10)
    await conv.progress(progress_view(10, 10))
    assert inter.log.names() == ["defer", "channel.send", "message.edit"]


# -- failure buttons ---------------------------------------------------------------------------------
async def test_failure_shows_the_reason_with_retry_and_one_button_per_suggested_model(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    inter = FakeInteraction()
    conv = conversation(inter, fetcher, clock)
    await inter.response.defer(thinking=True)
    await conv.failure(failure_view("abc123"))
    (shown,) = inter.log.of("edit_original")
    assert "Generation unsuccessful" in description(shown)
    view = shown["view"]
    assert [(b.item.label, b.custom_id) for b in view.children] == [
        ("🔁 Retry", "imabot:rerun:abc123:"),
        ("Hailuo 2.0 (5 pts)", "imabot:rerun:abc123:MiniMax-Hailuo-02"),
        ("Kling 2.6 (80 pts)", "imabot:rerun:abc123:kling-v2-6"),
    ]
    assert all(isinstance(b, RerunButton) and len(b.custom_id) <= 100 for b in view.children)
    assert view.timeout is None


async def test_a_model_too_long_for_a_custom_id_gets_no_button(fetcher: VideoFetcher, clock: Clock) -> None:
    inter = FakeInteraction()
    conv = conversation(inter, fetcher, clock)
    await inter.response.defer(thinking=True)
    view = FailureView(
        "j", "t", "reason", "unknown", (Alternative("m" * 95, "Long", "Long"),), retry_label=None
    )
    await conv.failure(view)
    assert inter.log.of("edit_original")[0]["view"] is None


async def press(custom_id: str, interaction: FakeInteraction) -> None:
    """What discord.py does on a component press: match a template, build the item, call it."""
    for template, cls in (
        (TEMPLATE, RerunButton),
        (ACTION_TEMPLATE, JobActionButton),
        (SEED_TEMPLATE, SameSeedButton),
    ):
        match = template.fullmatch(custom_id)
        if match is not None:
            real = as_discord(interaction)
            item = await cls.from_custom_id(real, discord.ui.Button(custom_id=custom_id), match)
            await item.callback(real)
            return
    raise AssertionError(f"no button matches {custom_id!r}")


async def test_pressing_a_suggested_model_reruns_the_job_with_that_model(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    async def script(conv: Conversation) -> str:
        await conv.notice(notice_view("job9"))
        return "running"

    core = FakeCore(script)
    core.owners["abc123"] = "77"  # the button names no requester: the presser's recent jobs tell
    h = make_handlers(core, fetcher, clock)
    inter = FakeInteraction(client=SimpleNamespace(button_handler=h), user_id=77)
    await press("imabot:rerun:abc123:MiniMax-Hailuo-02", inter)
    await core.jobs[0].wait()
    (call,) = core.reruns
    assert (call["job_id"], call["user_id"], call["model_id"]) == ("abc123", "77", "MiniMax-Hailuo-02")
    assert isinstance(call["conversation"], DiscordConversation)
    assert inter.log.names() == ["defer", "edit_original"]  # a new response message follows the new job
    assert inter.log.of("defer")[0] == {"thinking": True}


async def test_pressing_retry_reruns_with_the_same_model(fetcher: VideoFetcher, clock: Clock) -> None:
    core = FakeCore()
    inter = FakeInteraction(client=SimpleNamespace(button_handler=make_handlers(core, fetcher, clock)))
    inter.user.roles = [SimpleNamespace(id=42, name="Creators")]  # the core checks who may spend
    await press("imabot:rerun:abc123:", inter)
    assert core.reruns[0]["model_id"] is None
    assert core.reruns[0]["roles"] == ("42", "Creators")
    assert inter.log.names() == ["defer", "delete_original"]


async def test_pressing_same_seed_reruns_the_job_with_its_model_and_seed(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    core = FakeCore()
    inter = FakeInteraction(
        client=SimpleNamespace(button_handler=make_handlers(core, fetcher, clock)), user_id=77
    )
    await press("imabot:seed:abc123:77", inter)
    (call,) = core.reruns
    assert (call["job_id"], call["user_id"], call["model_id"], call["same_seed"]) == (
        "abc123",
        "77",
        None,
        True,
    )
    await press(
        "imabot:rerun:abc123::77",
        FakeInteraction(
            client=SimpleNamespace(button_handler=make_handlers(core, fetcher, clock)), user_id=77
        ),
    )
    assert core.reruns[1]["same_seed"] is False  # plain Again: a new seed


def test_the_video_offers_same_seed_next_to_again_when_the_seed_is_known() -> None:
    video = VideoView(
        "job1",
        "https://v/x.mp4",
        None,
        "cap",
        "link",
        "Wan 2.6",
        again_label="🔁 Again",
        same_seed_label="🎲 Same seed (42)",
        alternatives=(Alternative("kling-v2-6", "Kling 2.6", "🔀 Try Kling 2.6"),),
        requester="77",
    )
    view = render.video(video).view
    assert view is not None
    assert [(b.item.label, b.custom_id) for b in view.children] == [  # type: ignore[attr-defined]
        ("🔁 Again", "imabot:rerun:job1::77"),
        ("🎲 Same seed (42)", "imabot:seed:job1:77"),
        ("🔀 Try Kling 2.6", "imabot:rerun:job1:kling-v2-6:77"),
    ]
    assert isinstance(view.children[1], SameSeedButton) and view.timeout is None
    unseeded = render.video(dataclasses.replace(video, same_seed_label=None)).view
    assert unseeded is not None and len(unseeded.children) == 2
    # the custom_id stays within Discord's 100 characters: no requester when it would not fit, no button when
    # not even the job id does
    assert SameSeedButton.make("j" * 84, "🎲", requester="1" * 19).custom_id == "imabot:seed:" + "j" * 84
    assert not SameSeedButton.fits("j" * 90)


async def test_setup_registers_the_buttons_and_syncs_commands_to_the_dev_guild_only(
    monkeypatch: pytest.MonkeyPatch, fetcher: VideoFetcher, tmp_path: Path
) -> None:
    adapter = DiscordAdapter(
        settings(discord_dev_guild=555), FakeCore(), fetcher=fetcher, sync_state=tmp_path / "commands.json"
    )
    synced: list[object] = []

    async def fake_sync(*, guild: object = None) -> list[object]:
        synced.append(guild.id if guild is not None else None)  # type: ignore[attr-defined]
        return []

    monkeypatch.setattr(adapter.client.tree, "sync", fake_sync)
    await adapter.client.setup_hook()
    items = sdk.dynamic_items(adapter.client)
    assert TEMPLATE in items and ACTION_TEMPLATE in items and SEED_TEMPLATE in items
    # only the dev guild: a global sync as well shows every command twice there (discord.py#9573)
    assert synced == [555]
    assert adapter.client.tree.get_command("video", guild=discord.Object(555)) is not None
    assert adapter.client.button_handler is adapter.handlers


# -- autocomplete ----------------------------------------------------------------------------------------
CHOICES = {
    "text_to_video": [
        ModelChoice("wan2.6-t2v", "Wan 2.6", "text_to_video", 25, 120, 60, 120),
        ModelChoice("kling-video-o1", "Kling O1", "text_to_video", 48, 120, 180, 360),
    ],
    "image_to_video": [
        ModelChoice("wan2.6-i2v", "Wan 2.6", "image_to_video", 25, 120, 60, 120),
        ModelChoice("pixverse", "Pixverse V5.5", "image_to_video", 24, 48, 60, 120),
        ModelChoice("pixverse", "Pixverse V4", "image_to_video", 12, 48, 60, 120),
        ModelChoice("MiniMax-Hailuo-02", "Hailuo 2.0", "image_to_video", 25, 25, 60, 120),
    ],
    "reference_image_to_video": [
        ModelChoice("viduq2", "Vidu Q2", "reference_image_to_video", 5, 70, 60, 120)
    ],
}


async def test_model_autocomplete_offers_text_to_video_models_with_credits(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    core = FakeCore(choices=CHOICES)
    choices = await make_handlers(core, fetcher, clock).model_autocomplete(
        as_discord(FakeInteraction(namespace={"prompt": "cat"})), ""
    )
    assert core.choice_calls == [("text_to_video", "en")]
    assert [(c.name, c.value) for c in choices] == [
        ("Wan 2.6 · 25–120 pts · ~120s", "wan2.6-t2v"),
        ("Kling O1 · 48–120 pts · ~360s", "kling-video-o1"),
    ]


async def test_model_autocomplete_follows_the_task_type_attached_images_imply(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    core = FakeCore(choices=CHOICES)
    h = make_handlers(core, fetcher, clock)
    choices = await h.model_autocomplete(
        as_discord(FakeInteraction(namespace={"image": "1311111111111111111"}, locale="zh-CN")), "pix"
    )
    assert core.choice_calls == [("image_to_video", "zh")]
    # versions sharing a model_id are told apart by name
    assert [(c.name, c.value) for c in choices] == [
        ("Pixverse V5.5 · 24–48 积分 · 约 120 秒", "Pixverse V5.5"),
        ("Pixverse V4 · 12–48 积分 · 约 120 秒", "Pixverse V4"),
    ]
    await h.model_autocomplete(as_discord(FakeInteraction(namespace={"image": "1", "mode": "reference"})), "")
    await h.model_autocomplete(as_discord(FakeInteraction(namespace={"image": "1", "image2": "2"})), "")
    await h.model_autocomplete(
        as_discord(FakeInteraction(namespace={"task": "reference_image_to_video"})), ""
    )
    assert [c[0] for c in core.choice_calls[1:]] == [
        "reference_image_to_video",
        "first_last_frame_to_video",
        "reference_image_to_video",
    ]


async def test_model_autocomplete_gives_up_quietly_when_the_core_is_slow(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    class SlowCore(FakeCore):
        async def model_choices(self, task_type: str, language: str) -> list[ModelChoice]:
            await asyncio.sleep(5)
            return []

    h = make_handlers(SlowCore(), fetcher, clock)
    h.table = dataclasses.replace(
        h.table, pacing=dataclasses.replace(h.table.pacing, autocomplete_timeout_s=0.05)
    )
    assert await h.model_autocomplete(as_discord(FakeInteraction()), "") == []


# -- /models /prefer /jobs /help ------------------------------------------------------------------------------
async def test_models_lists_models_per_task_type_with_credits_and_time(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    inter = FakeInteraction()
    await make_handlers(FakeCore(choices=CHOICES), fetcher, clock).models(as_discord(inter))
    assert inter.log.of("defer")[0] == {"ephemeral": True, "thinking": True}
    embed = inter.log.of("edit_original")[0]["embed"]
    fields = {f.name: f.value for f in embed.fields}
    assert list(fields) == [
        i18n.t("task.text_to_video", "en"),
        i18n.t("task.image_to_video", "en"),
        i18n.t("task.reference_image_to_video", "en"),
    ]
    assert "**Kling O1** · 48–120 pts · ~180–360s" in fields[i18n.t("task.text_to_video", "en")]
    assert "**Hailuo 2.0** · 25 pts" in fields[i18n.t("task.image_to_video", "en")]


async def test_models_says_so_when_none_are_available(fetcher: VideoFetcher, clock: Clock) -> None:
    inter = FakeInteraction(locale="zh-CN")
    await make_handlers(FakeCore(), fetcher, clock).models(as_discord(inter))
    assert inter.log.of("edit_original")[0]["embed"].description == i18n.t("discord.models.none", "zh")


async def test_prefer_model_saves_for_the_chosen_task_and_shows_the_core_answer(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    core = FakeCore()
    h = make_handlers(core, fetcher, clock)
    inter = FakeInteraction(user_id=5)
    await h.prefer_model(as_discord(inter), "kling-video-o1", "image_to_video")
    assert core.prefs == [("set", "discord", "5", "image_to_video", "kling-video-o1")]
    assert inter.log.of("edit_original")[0]["content"] == "saved kling-video-o1 for image_to_video"
    inter2 = FakeInteraction(user_id=5)
    await h.prefer_model(as_discord(inter2), "Wan 2.6")
    assert core.prefs[-1][3] == "text_to_video"


async def test_prefer_clear_forgets_all_task_types_unless_one_is_named(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    core = FakeCore()
    h = make_handlers(core, fetcher, clock)
    await h.prefer_clear(as_discord(FakeInteraction(user_id=5)))
    await h.prefer_clear(as_discord(FakeInteraction(user_id=5)), "text_to_video")
    assert core.prefs == [("clear", "discord", "5", None), ("clear", "discord", "5", "text_to_video")]


async def test_jobs_lists_running_and_recent_jobs(fetcher: VideoFetcher, clock: Clock) -> None:
    inter = FakeInteraction()
    await make_handlers(FakeCore(), fetcher, clock).jobs(as_discord(inter))
    text = inter.log.of("edit_original")[0]["embed"].description
    assert "⏳ Generating · **Kling O1** · <t:1735732800:R> · 48 pts\na cat surfing" in text
    assert "[▶️ Watch](https://cdn.example/v.mp4)" in text


async def test_help_answers_privately_in_the_users_language(fetcher: VideoFetcher, clock: Clock) -> None:
    inter = FakeInteraction(locale="zh-TW")
    await make_handlers(FakeCore(), fetcher, clock).help(as_discord(inter))
    sent = inter.log.of("send_message")[0]
    assert sent["ephemeral"] is True
    assert sent["embed"].description == i18n.t("discord.help.body", "zh-Hant")  # zh-TW reads Traditional


# -- @-mentions -------------------------------------------------------------------------------------------
def mention_message(log: Log, cdn: FakeCDN, **changes: Any) -> Any:
    raw = json.loads((FIXTURES / "mention_message.json").read_text(encoding="utf-8"))
    raw.update(changes)
    att = recorded_attachments(cdn)
    channel = FakeChannel(log, int(raw["channel_id"]))

    async def reply(**kw: Any) -> FakeMessage:
        log.gate("reply")
        check_message(kw, channel.upload_limit)
        nonce = kw.get("nonce")
        if nonce is not None and nonce in channel.nonces:  # [message]: a reply is a channel message
            earlier, at = channel.nonces[str(nonce)]
            if time.monotonic() - at < NONCE_WINDOW_S:
                log.add("reply.same_nonce", message=earlier.id, **kw)
                return earlier
        msg = FakeMessage(log, "reply")
        if nonce is not None:
            channel.nonces[str(nonce)] = (msg, time.monotonic())
        log.add("reply", message=msg.id, **kw)
        return msg

    return SimpleNamespace(
        id=int(raw["id"]),
        content=raw["content"],
        channel=channel,
        author=SimpleNamespace(id=int(raw["author"]["id"]), bot=raw["author"]["bot"]),
        mentions=[SimpleNamespace(id=int(u["id"])) for u in raw["mentions"]],
        # a reply quotes a message: discord.MessageReference.resolved, with that message's author
        reference=SimpleNamespace(resolved=SimpleNamespace(author=SimpleNamespace(id=int(raw["replies_to"]))))
        if raw.get("replies_to")
        else None,
        attachments=[att[name] for name in raw["attachments"]],
        guild=SimpleNamespace(
            id=int(raw["guild_id"]), filesize_limit=10 * 1024 * 1024, preferred_locale=discord.Locale("en-US")
        )
        if raw.get("guild_id")
        else None,
        reply=reply,
    )


async def test_a_message_mentioning_the_bot_is_understood_like_text_with_its_images(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    async def script(conv: Conversation) -> str:
        await conv.notice(notice_view())
        clock.advance(6)
        await conv.progress(progress_view(30, 30))
        return "running"

    log, cdn, core = Log(), FakeCDN({}), FakeCore(script)
    message = mention_message(log, cdn)
    await make_handlers(core, fetcher, clock).on_message(message, SimpleNamespace(id=BOT_ID))
    await core.jobs[0].wait()
    (incoming,) = core.incoming
    assert incoming.text == "用可灵让这只猫动起来,竖屏 10秒"
    assert [i.filename for i in incoming.images] == ["cat.png"]
    assert (incoming.event_id, incoming.reply_to) == ("message:1322222222222222222", "1322222222222222222")
    assert incoming.chat_id == "1300000000000000000"
    assert log.names() == ["reply", "message.edit"]  # the notice replies; progress edits that reply
    assert log.of("message.edit")[0]["message"] == log.of("reply")[0]["message"]


async def test_messages_from_bots_are_ignored(fetcher: VideoFetcher, clock: Clock) -> None:
    log, cdn, core = Log(), FakeCDN({}), FakeCore()
    h = make_handlers(core, fetcher, clock)
    await h.on_message(mention_message(log, cdn, author={"id": "9", "bot": True}), SimpleNamespace(id=BOT_ID))
    await h.on_message(
        mention_message(log, cdn, author={"id": str(BOT_ID), "bot": True}), SimpleNamespace(id=BOT_ID)
    )
    assert core.incoming == [] and log.calls == []


async def test_a_mention_with_a_non_image_attachment_is_answered_and_starts_nothing(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    log, cdn, core = Log(), FakeCDN({}), FakeCore()
    await make_handlers(core, fetcher, clock).on_message(
        mention_message(log, cdn, attachments=["report_pdf"]), SimpleNamespace(id=BOT_ID)
    )
    assert core.incoming == [] and cdn.fetched == []
    assert log.of("reply")[0]["content"] == i18n.t("image.not_image", "zh", name="report.pdf")


# -- the adapter -------------------------------------------------------------------------------------------
async def test_adapter_exposes_the_commands_with_their_options(fetcher: VideoFetcher) -> None:
    adapter = DiscordAdapter(settings(), FakeCore(), fetcher=fetcher)
    tree = adapter.client.tree
    assert adapter.platform == "discord"
    assert sorted(c.name for c in tree.get_commands()) == [
        "cancel",
        "help",
        "jobs",
        "models",
        "prefer",
        "usage",
        "video",
    ]
    video = tree.get_command("video")
    assert isinstance(video, discord.app_commands.Command)
    params = {p.name: p for p in video.parameters}
    assert list(params) == [
        "prompt",
        "model",
        "duration",
        "resolution",
        "aspect_ratio",
        "image",
        "image2",
        "mode",
        "sound",
        "negative_prompt",
        "seed",
        "shot_type",
        "prompt_extend",
    ]
    assert params["prompt"].required and not params["model"].required
    assert params["model"].autocomplete
    assert params["image"].type is discord.AppCommandOptionType.attachment
    assert [c.value for c in params["mode"].choices] == ["first_frame", "reference", "first_last"]
    assert "9:16" in [c.value for c in params["aspect_ratio"].choices]
    assert [c.value for c in params["sound"].choices] == ["on", "off"]
    assert [c.value for c in params["prompt_extend"].choices] == ["on", "off"]
    assert [c.value for c in params["shot_type"].choices] == ["single", "multi"]
    assert params["seed"].type is discord.AppCommandOptionType.integer and params["seed"].min_value == 0
    assert params["negative_prompt"].type is discord.AppCommandOptionType.string
    assert not any(
        params[n].required for n in ("sound", "negative_prompt", "seed", "shot_type", "prompt_extend")
    )
    prefer = tree.get_command("prefer")
    assert isinstance(prefer, discord.app_commands.Group)
    assert sorted(c.name for c in prefer.commands) == ["clear", "model"]


async def test_command_texts_are_localized_for_chinese_clients(fetcher: VideoFetcher) -> None:
    adapter = DiscordAdapter(settings(), FakeCore(), fetcher=fetcher)
    tree = adapter.client.tree
    await tree.set_translator(LocaleTranslator())
    payload = await tree.get_command("video").get_translated_payload(tree, tree.translator)  # type: ignore[union-attr, arg-type]
    assert payload["description"] == i18n.t("discord.cmd.video.description", "en")
    assert payload["description_localizations"]["zh-CN"] == i18n.t("discord.cmd.video.description", "zh")
    assert payload["description_localizations"]["zh-TW"] == i18n.t("discord.cmd.video.description", "zh-Hant")
    cancel = await tree.get_command("cancel").get_translated_payload(tree, tree.translator)  # type: ignore[union-attr, arg-type]
    assert cancel["description_localizations"]["zh-CN"] == i18n.t("discord.cmd.cancel.description", "zh")
    mode = next(o for o in payload["options"] if o["name"] == "mode")
    assert mode["choices"][0]["name_localizations"]["zh-CN"] == i18n.t("discord.mode.first_frame", "zh")


async def test_conversation_for_a_resumed_job_posts_in_its_channel(fetcher: VideoFetcher) -> None:
    adapter = DiscordAdapter(settings(), FakeCore(), fetcher=fetcher)
    conv = adapter.conversation_for(ReplyTarget("discord", "1300000000000000000", "5", language="en"))
    assert isinstance(conv, DiscordConversation)
    assert conv.channel.id == 1300000000000000000  # type: ignore[union-attr]
    assert conv.interaction is None and conv.status_message_id is None
    again = adapter.conversation_for(
        ReplyTarget("discord", "1300000000000000000", "5", state={"message_id": "1350"})
    )
    assert again.status_message_id == 1350  # type: ignore[attr-defined]


# -- downloading the video to attach ------------------------------------------------------------------------
async def test_fetcher_returns_a_video_that_fits(fetcher: VideoFetcher, video_server: str) -> None:
    assert await fetcher.fetch_if_fits(f"{video_server}/small.mp4", UPLOAD_LIMIT) == SMALL_VIDEO


async def test_fetcher_skips_a_video_whose_length_is_over_the_limit(
    fetcher: VideoFetcher, video_server: str
) -> None:
    assert await fetcher.fetch_if_fits(f"{video_server}/big.mp4", UPLOAD_LIMIT) is None


async def test_fetcher_stops_a_stream_without_length_once_it_is_over_the_limit(
    fetcher: VideoFetcher, video_server: str
) -> None:
    assert await fetcher.fetch_if_fits(f"{video_server}/chunked.mp4", UPLOAD_LIMIT) is None
    assert await fetcher.fetch_if_fits(f"{video_server}/chunked.mp4", len(BIG_VIDEO)) == BIG_VIDEO


async def test_a_crash_in_the_core_ends_in_a_message_not_an_endless_thinking(
    fetcher: VideoFetcher, clock: Clock
) -> None:
    class BrokenCore(FakeCore):
        async def handle(self, incoming: Incoming, conversation: Conversation) -> None:
            raise RuntimeError("bug")

    inter = FakeInteraction()
    await make_handlers(BrokenCore(), fetcher, clock).video(as_discord(inter), VideoOptions("a cat"))
    assert inter.log.of("edit_original")[0]["content"] == i18n.t("error.unknown", "en")


async def test_the_client_never_lets_message_text_ping_everyone(fetcher: VideoFetcher) -> None:
    adapter = DiscordAdapter(settings(), FakeCore(), fetcher=fetcher)
    mentions = adapter.client.allowed_mentions
    assert mentions is not None
    assert (mentions.everyone, mentions.roles, mentions.users, mentions.replied_user) == (
        False,
        False,
        False,
        True,
    )


async def test_the_adapter_is_ready_for_resumed_jobs_once_the_gateway_is(fetcher: VideoFetcher) -> None:
    adapter = DiscordAdapter(settings(), FakeCore(), fetcher=fetcher)
    waiting = asyncio.create_task(adapter.wait_ready())
    await asyncio.sleep(0.05)
    assert not waiting.done()
    await adapter.client.on_ready()
    await asyncio.wait_for(waiting, 10)
