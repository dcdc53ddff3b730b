"""The Feishu adapter: events from lark-oapi's long connection in, cards and media out."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Coroutine
from dataclasses import dataclass
from typing import Any

import lark_oapi as lark
from lark_oapi.api.im.v1 import P2ImMessageReceiveV1
from lark_oapi.event.callback.model.p2_card_action_trigger import (
    P2CardActionTrigger,
    P2CardActionTriggerResponse,
)

from adapters.base import Conversation, Core, ImageInput, Incoming, ReplyTarget
from adapters.feishu import cards, ws
from adapters.feishu.api import FeishuApi, FeishuApiError
from adapters.feishu.conversation import CARD_STATE_KEY, CardBook, FeishuConversation
from adapters.feishu.events import ReceivedMessage, parse_event
from adapters.feishu.media import MAX_VIDEO_BYTES
from adapters.feishu.pending import ImagesNotDownloaded, PendingImages, RecentIds
from bot.config import Settings
from bot.i18n import detect_language, normalize_language

log = logging.getLogger(__name__)

DOMAINS = {"feishu": lark.FEISHU_DOMAIN, "lark": lark.LARK_DOMAIN}
SHUTDOWN_GRACE_S = 5.0
#: how often the bot's own open_id is asked for again while it is unknown (seconds)
BOT_ID_RETRY_S = 30.0
#: the longest unmentioned text that may answer one of the bot's questions ("好的", "用第二个")
ANSWER_MAX_CHARS = 80


class FeishuConfigError(Exception):
    """FEISHU_APP_ID / FEISHU_APP_SECRET are missing."""

    kind = "feishu_config"


class FeishuAdapter:
    """Serves one Feishu app over the long connection (no public URL needed).

    Events arrive on the SDK's own thread; each handler only hands its work to the bot's loop and
    returns, well inside Feishu's 3 s. `dispatcher` is the SDK's EventDispatcherHandler built with
    these handlers, so recorded payloads can be fed through it exactly as the connection does.
    """

    platform = "feishu"

    def __init__(
        self,
        settings: Settings,
        core: Core,
        *,
        domain_override: str | None = None,
        merge_window_s: float = 10.0,
        stale_after_s: float = 1800.0,
        min_patch_interval_s: float = 1.0,
        max_video_bytes: int = MAX_VIDEO_BYTES,
        rate_limit_backoff_s: float = 1.0,
    ) -> None:
        if not (settings.feishu_app_id and settings.feishu_app_secret):
            raise FeishuConfigError("FEISHU_APP_ID and FEISHU_APP_SECRET are required")
        self.settings = settings
        self.core = core
        self.domain = (domain_override or DOMAINS[settings.feishu_domain]).rstrip("/")
        self.app_id = settings.feishu_app_id
        self._app_secret = settings.feishu_app_secret.get_secret_value()
        self.api = FeishuApi(self.domain, self.app_id, self._app_secret, backoff_s=rate_limit_backoff_s)
        self.allowed_chats = frozenset(settings.feishu_allowed_chats)
        self.merge_window_s = merge_window_s
        self.stale_after_s = stale_after_s
        self.min_patch_interval_s = min_patch_interval_s
        self.max_video_bytes = max_video_bytes
        self.bot_open_id: str | None = None
        self._bot_id_asked = -BOT_ID_RETRY_S  # monotonic time of the last ask
        self.started_at = time.time()
        self.dispatcher = (
            lark.EventDispatcherHandler.builder("", "")
            .register_p2_im_message_receive_v1(self._on_message)
            .register_p2_card_action_trigger(self._on_card_action)
            .build()
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._seen = RecentIds()
        self._cards = CardBook()
        self._refused_chats: set[str] = set()
        self._pending: dict[tuple[str, str], PendingImages] = {}
        self._timers: dict[tuple[str, str], asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Future[Any]] = set()
        self._stopped = asyncio.Event()
        self._ready = asyncio.Event()
        self._ws_thread: threading.Thread | None = None
        self._ws_client: ws.LongConnection | None = None
        self._ws_error: BaseException | None = None
        self._connected = False
        #: stop() was called: a start() that is still preparing ends without connecting
        self._closing = False
        #: the connection is being shut down: a picture is held without a timer, then (drained)
        #: not at all (see _shutdown)
        self._draining = False
        self._drained = False

    # -- lifecycle -------------------------------------------------------------------------------
    async def prepare(self) -> None:
        """Bind to the running loop, check the app's credentials and learn the bot's open_id;
        `start()` does this first. Raises FeishuAuthError when Feishu refuses the app."""
        self._loop = asyncio.get_running_loop()
        self.started_at = time.time()
        await self.api.token.get()
        await self._learn_bot_id()
        self._ready.set()

    async def _learn_bot_id(self) -> None:
        """Ask Feishu for the bot's own open_id (at most every BOT_ID_RETRY_S while unknown):
        until it is known, no @mention in a group counts, so nothing is spent on one that may
        be another bot's."""
        now = time.monotonic()
        if self.bot_open_id is not None or now < self._bot_id_asked + BOT_ID_RETRY_S:
            return
        self._bot_id_asked = now
        self.bot_open_id = await self.api.token.bot_open_id()
        if self.bot_open_id is None:
            log.error("Feishu: the bot's own open_id is unknown: @mentions in groups are ignored until it is")

    async def wait_ready(self) -> None:
        """Return once the adapter can send (its API token works); resumed jobs wait for this."""
        await self._ready.wait()

    @property
    def connected(self) -> bool:
        """True while the long connection is up (events can arrive)."""
        return self._connected

    async def start(self) -> None:
        """Connect the long connection in its own thread and serve until `stop()`.

        Raises when the app's credentials are refused or the long connection fails for good (the
        SDK reconnects by itself after a dropped connection); `start()` may then be called again."""
        if self._closing:
            return
        self._ready.clear()
        self._stopped.clear()
        self._ws_error = None
        self._connected = False
        self._draining = self._drained = False
        missing = ws.missing_internals()
        if missing:
            log.error(
                "lark-oapi lacks what the long connection relies on (%s); see adapters/feishu/ws.py",
                ", ".join(missing),
            )
        await self.prepare()
        if self._closing:
            return
        self._ws_thread = threading.Thread(target=self._run_ws, name="feishu-ws", daemon=True)
        self._ws_thread.start()
        await self._stopped.wait()
        await self._shutdown()
        if self._ws_error is not None:
            raise self._ws_error

    async def stop(self) -> None:
        """Stop serving; `start()` returns once the connection is closed."""
        self._closing = True
        self._stopped.set()

    def conversation_for(self, target: ReplyTarget) -> Conversation:
        # a job keeps the id of the message it answers only in a group (a p2p chat needs no thread)
        return self._conversation(
            target.chat_id,
            target.reply_to,
            target.language,
            card_message_id=target.state.get(CARD_STATE_KEY),
            user_id=target.user_id,
            chat_type="group" if target.reply_to else "p2p",
        )

    async def wait_idle(self) -> None:
        """Wait until every handed-over event has reached the core (held images included)."""
        while self._tasks or self._timers:
            pending = list(self._tasks)
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
            else:
                await asyncio.sleep(0.01)

    def _run_ws(self) -> None:
        # lark-oapi runs its connection on a loop of its own: a thread of its own keeps the bot's
        # loop free (adapters/feishu/ws.py)
        try:
            ws.LongConnection.run_here(
                self._ws_created,
                self.app_id,
                self._app_secret,
                event_handler=self.dispatcher,
                domain=self.domain,
                log_level=lark.LogLevel.INFO,
            )
        except Exception as e:
            self._ws_failed(e)
        else:
            if not self._closing:
                self._ws_failed(ConnectionError("the long connection ended"))

    def _ws_created(self, client: ws.LongConnection) -> None:
        self._ws_client = client
        client.on_connected = self._ws_connected

    def _ws_connected(self) -> None:
        """Called on the SDK's thread after each (re)connection."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._mark_connected)

    def _mark_connected(self) -> None:
        if not self._connected:
            log.info("Feishu: long connection up")
        self._connected = True

    def _ws_failed(self, error: BaseException) -> None:
        log.error("Feishu long connection ended: %s", error)
        self._ws_error = error
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._stopped.set)

    async def _shutdown(self) -> None:
        # From here on no picture waits on a timer for its text: those held now, and those that
        # arrive while the connection closes, wait until the events already handed over have run
        # (a caption that arrives meanwhile still joins its picture). What is then still held is
        # a request of its own (Feishu has had its acknowledgement and will not send it again)
        # that asks before it spends: its text may arrive after the restart as a request of its
        # own, and one video must not be paid twice.
        self._draining = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        self._connected = False
        client = self._ws_client
        if client is not None:
            # close the socket first: a connection left open makes Feishu replay its events
            await client.close()
        if self._ws_thread is not None:
            await asyncio.to_thread(self._ws_thread.join, 5)
        # asyncio.wait, not a timeout around gather: a handler still running at the deadline
        # must go on (the wait below is its last chance), not be cancelled here
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SHUTDOWN_GRACE_S
        while self._tasks and (left := deadline - loop.time()) > 0:
            await asyncio.wait(list(self._tasks), timeout=left)
        self._drained = True
        for key in list(self._pending):
            self._expire(key, ask_first=True)
        # events already handed over get a moment to reach the core; running jobs are the core's
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE_S):  # not wait_for: on 3.11 it can lose a cancel
                await self.wait_idle()
        except TimeoutError:
            for task in list(self._tasks):
                task.cancel()

    # -- handlers (called on the SDK's thread: hand over and return) ------------------------------
    def _hand_over(self, work: Coroutine[Any, Any, None]) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            work.close()
            log.error("event dropped: the adapter is not running")
            return
        future = asyncio.run_coroutine_threadsafe(work, loop)
        loop.call_soon_threadsafe(self._track, future)

    def _track(self, future: Any) -> None:
        wrapped = asyncio.wrap_future(future)
        self._tasks.add(wrapped)
        wrapped.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("Feishu event handling failed", exc_info=task.exception())

    def _on_message(self, event: P2ImMessageReceiveV1) -> None:
        self._hand_over(self._receive(event))

    def _on_card_action(self, event: P2CardActionTrigger) -> P2CardActionTriggerResponse:
        """A button press: hand it to the bot's loop and answer with a toast at once (Feishu
        waits 3 s). The core answers in the chat; the card drops the used buttons after."""
        data = event.event
        value = (data.action.value if data and data.action else None) or {}
        operator = data.operator.open_id if data and data.operator else None
        chat_id = data.context.open_chat_id if data and data.context else None
        message_id = data.context.open_message_id if data and data.context else None
        lang = normalize_language(str(value.get("lang") or "zh"))
        action = str(value.get("action") or "")
        job_id = str(value.get("job_id") or "")
        if action not in cards.ACTIONS or not (job_id and operator and chat_id) or not self._allowed(chat_id):
            return _toast("error", self.core.t("feishu.toast_failed", lang))
        owner = str(value.get("owner") or "") or None
        chat_type = str(value.get("chat_type") or "") or None
        press = Press(
            action,
            job_id,
            operator,
            str(value.get("model_id") or "") or None,
            chat_id,
            message_id,
            lang,
            owner,
            chat_type,
        )
        self._hand_over(self._press(press))
        if owner is not None and owner != operator:
            # someone else's job: the core says so in the chat; the buttons stay for the requester
            return _toast("warning", self.core.t("chat.not_your_job", lang))
        name = str(value.get("model_name") or "")
        if action in (cards.RERUN, cards.AGAIN) and press.model_id and name:
            return _toast("info", self.core.t("feishu.toast_started", lang, model=name))
        key = {
            cards.RERUN: "feishu.toast_retry",
            cards.AGAIN: "feishu.toast_again",
            cards.SAME_SEED: "feishu.toast_same_seed",
            cards.CONFIRM: "feishu.toast_confirm",
            cards.DECLINE: "feishu.toast_decline",
            cards.CANCEL: "feishu.toast_cancel",
        }[action]
        return _toast("info", self.core.t(key, lang))

    # -- on the bot's loop -----------------------------------------------------------------------
    async def _press(self, press: Press) -> None:
        """Run the core method the button stands for; the core answers in words itself, and
        every such method works once per job. The job it starts runs on in the core (and survives
        a restart there): nothing here waits for it."""
        # Confirm continues the job on the pressed card (its notice becomes the progress card);
        # the others answer under it
        conv = self._conversation(
            press.chat_id,
            press.message_id,
            press.language,
            user_id=press.operator,
            chat_type=press.chat_type,
            card_message_id=press.message_id if press.action == cards.CONFIRM else None,
        )
        if press.action == cards.SAME_SEED:
            await self.core.rerun(
                press.job_id, user_id=press.operator, model_id=None, conversation=conv, same_seed=True
            )
        elif press.action in (cards.RERUN, cards.AGAIN):
            await self.core.rerun(
                press.job_id, user_id=press.operator, model_id=press.model_id, conversation=conv
            )
        elif press.action == cards.CONFIRM:
            await self.core.confirm(press.job_id, user_id=press.operator, conversation=conv)
        elif press.action == cards.DECLINE:
            await self.core.decline(press.job_id, user_id=press.operator, conversation=conv)
        else:
            await self.core.cancel(
                press.job_id,
                platform=self.platform,
                user_id=press.operator,
                conversation=conv,
                language=press.language,
            )
        if press.owner == press.operator:
            await self._drop_buttons(press)

    async def _drop_buttons(self, press: Press) -> None:
        """Patch the pressed card without the buttons this press used up (after the core acted,
        so a progress frame written meanwhile cannot bring them back)."""
        patcher = self._cards.get(press.message_id)
        current = patcher.current if patcher is not None else None
        if patcher is None or current is None:
            return  # a card from before a restart: its buttons stay, and the core answers them once
        stripped = cards.without_buttons(current, press.job_id, cards.USED_BY[press.action])
        if stripped is not None:
            await patcher.send(stripped)

    async def _answers_bot(self, msg: ReceivedMessage) -> bool:
        """Whether an unmentioned message quotes one of the bot's own (only then may a yes
        spend). Only answer-sized texts are looked up: in a busy group, with every group
        message delivered, each quoted reply would otherwise cost an API call."""
        if msg.parent_id is None or len(msg.text) > ANSWER_MAX_CHARS:
            return False
        return await self.api.sent_by_bot(msg.parent_id)

    async def _receive(self, event: P2ImMessageReceiveV1) -> None:
        if self.bot_open_id is None:
            await self._learn_bot_id()
        msg = parse_event(event, self.bot_open_id)
        if msg is None:
            return
        # ids only, never the text: operators read chat ids here to fill FEISHU_ALLOWED_CHATS
        log.info("message %s (%s) in chat %s", msg.message_id, msg.message_type, msg.chat_id)
        if not self._seen.add(msg.message_id):
            log.info("redelivered message %s ignored", msg.message_id)
            return
        if self._is_stale(msg):
            log.info("stale message %s ignored (sent before this start)", msg.message_id)
            return
        # in a group, a message that does not @ the bot reaches the core only as a possible answer
        # to a question it asked that person ("好的" under a failure); the core never starts a
        # video from it nor chats. Its pictures are not fetched, and a chat outside the
        # allowlist hears nothing about it.
        mentioned = msg.mentions_bot or not msg.is_group
        if not self._allowed(msg.chat_id):
            if mentioned:
                await self._refuse(msg)
            return
        reply_to = msg.message_id if msg.is_group else None
        if not mentioned:
            if msg.text:
                await self._handle(
                    Incoming(
                        platform=self.platform,
                        chat_id=msg.chat_id,
                        user_id=msg.user_id,
                        text=msg.text,
                        event_id=msg.message_id,
                        reply_to=reply_to,
                        mentioned=False,
                        answers_bot=await self._answers_bot(msg),
                    ),
                    msg.chat_type,
                )
            return
        key = (msg.chat_id, msg.user_id)
        if msg.message_type == "image":
            # held before its download starts, so a text that arrives meanwhile still finds it
            self._hold(key, msg.message_id, asyncio.ensure_future(self._download_images(msg)), reply_to)
            return
        await self._with_held_images(msg, key, reply_to)

    async def _with_held_images(
        self, msg: ReceivedMessage, key: tuple[str, str], reply_to: str | None
    ) -> None:
        """The message, with the pictures its sender sent just before it, to the core."""
        held = self._take(key)
        try:
            images = (await held.collect() if held else []) + await self._download_images(msg)
        except ImagesNotDownloaded:
            await self._say_images_lost(msg.chat_id, msg.user_id, reply_to, msg.chat_type, msg.text)
            return
        incoming = Incoming(
            platform=self.platform,
            chat_id=msg.chat_id,
            user_id=msg.user_id,
            text=msg.text,
            images=tuple(images),
            event_id=msg.message_id,
            reply_to=reply_to,
            extra_event_ids=tuple(held.message_ids) if held else (),
        )
        await self._handle(incoming, msg.chat_type)

    async def _handle(self, incoming: Incoming, chat_type: str) -> None:
        lang = detect_language(incoming.text, incoming.language)
        conv = self._conversation(
            incoming.chat_id, incoming.reply_to, lang, user_id=incoming.user_id, chat_type=chat_type
        )
        await self.core.handle(incoming, conv)

    def _is_stale(self, msg: ReceivedMessage) -> bool:
        # Feishu re-sends for up to 6 h and replays on reconnect; a request sent long before this
        # process started is one its sender has given up on (or one already answered).
        if msg.create_time_ms is None:
            return False
        created = msg.create_time_ms / 1000
        return created < self.started_at and time.time() - created > self.stale_after_s

    def _allowed(self, chat_id: str) -> bool:
        return not self.allowed_chats or chat_id in self.allowed_chats

    async def _refuse(self, msg: ReceivedMessage) -> None:
        """Say once per chat (per run) that the bot is not enabled there; then stay quiet."""
        if msg.chat_id in self._refused_chats:
            return
        self._refused_chats.add(msg.chat_id)
        text = self.core.t("feishu.not_allowed", detect_language(msg.text))
        try:
            await self.api.send(
                msg.chat_id,
                "text",
                {"text": cards.fit_text(text)},
                reply_to=msg.message_id if msg.is_group else None,
            )
        except FeishuApiError as e:
            log.warning("could not answer a chat outside the allowlist: %s", e)

    async def _download_images(self, msg: ReceivedMessage) -> list[ImageInput]:
        """Every picture of the message, in order; ImagesNotDownloaded when any is missing."""
        out: list[ImageInput] = []
        for key in msg.image_keys:
            try:
                data = await self.api.download_image(msg.message_id, key)
            except FeishuApiError as e:
                log.warning("image %s of %s not downloaded: %s", key, msg.message_id, e)
                raise ImagesNotDownloaded(key) from e
            out.append(ImageInput(data=data, filename=f"{key}.img"))
        return out

    async def _say_images_lost(
        self, chat_id: str, user_id: str, reply_to: str | None, chat_type: str, text: str = ""
    ) -> None:
        """Tell the sender a picture could not be fetched and nothing was started."""
        lang = detect_language(text)
        conv = self._conversation(chat_id, reply_to, lang, user_id=user_id, chat_type=chat_type)
        await conv.text(self.core.t("image.download_failed", lang))

    # -- an image, then its text -----------------------------------------------------------------
    def _hold(
        self,
        key: tuple[str, str],
        message_id: str,
        download: asyncio.Future[list[ImageInput]],
        reply_to: str | None,
    ) -> None:
        """Keep an image briefly: a text from the same person in the same chat joins it."""
        held = self._pending.setdefault(key, PendingImages())
        held.message_ids.append(message_id)
        held.downloads.append(download)
        held.reply_to = held.reply_to or reply_to
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        if self._drained:  # arrived after the last look at what is held: a request at once
            self._expire(key, ask_first=True)
            return
        if self._draining:  # held without a timer: `_shutdown` takes what is left
            return
        assert self._loop is not None
        self._timers[key] = self._loop.call_later(self.merge_window_s, self._expire, key)

    def _take(self, key: tuple[str, str]) -> PendingImages | None:
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        return self._pending.pop(key, None)

    def _expire(self, key: tuple[str, str], *, ask_first: bool = False) -> None:
        """No text came: the images alone are the request (`ask_first`: see Incoming)."""
        held = self._take(key)
        if held is None:
            return
        task = asyncio.ensure_future(self._handle_images(key, held, ask_first=ask_first))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def _handle_images(
        self, key: tuple[str, str], held: PendingImages, *, ask_first: bool = False
    ) -> None:
        chat_id, user_id = key
        chat_type = "group" if held.reply_to else "p2p"
        try:
            images = await held.collect()
        except ImagesNotDownloaded:
            await self._say_images_lost(chat_id, user_id, held.reply_to, chat_type)
            return
        if not images:
            return  # pragma: no cover - a held message is a picture message
        await self._handle(
            Incoming(
                platform=self.platform,
                chat_id=chat_id,
                user_id=user_id,
                text="",
                images=tuple(images),
                event_id=held.message_ids[0],
                extra_event_ids=tuple(held.message_ids[1:]),
                reply_to=held.reply_to,
                ask_first=ask_first,
            ),
            chat_type,
        )

    def _conversation(
        self,
        chat_id: str,
        reply_to: str | None,
        language: str,
        *,
        card_message_id: str | None = None,
        user_id: str | None = None,
        chat_type: str | None = None,
    ) -> FeishuConversation:
        # a card this process is still writing keeps its one patcher (latest state wins there)
        return FeishuConversation(
            self.api,
            chat_id,
            reply_to=reply_to,
            language=language,
            card_message_id=card_message_id,
            min_patch_interval_s=self.min_patch_interval_s,
            max_video_bytes=self.max_video_bytes,
            user_id=user_id,
            chat_type=chat_type,
            card=self._cards.get(card_message_id),
            book=self._cards,
        )


@dataclass(frozen=True)
class Press:
    """One button press, as the card callback reported it."""

    action: str
    job_id: str
    operator: str  # who pressed (open_id)
    model_id: str | None
    chat_id: str
    message_id: str | None  # the pressed card
    language: str
    owner: str | None  # who the job's buttons belong to (None: a card that does not say)
    chat_type: str | None


def _toast(kind: str, content: str) -> P2CardActionTriggerResponse:
    return P2CardActionTriggerResponse({"toast": {"type": kind, "content": content}})
