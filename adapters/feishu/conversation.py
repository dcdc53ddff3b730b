"""One job's replies in one Feishu chat: a card patched in place, then the video as media."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from adapters.base import FailureView, NoticeView, ProgressView, VideoView
from adapters.feishu import cards
from adapters.feishu.api import FeishuApi, FeishuApiError
from adapters.feishu.media import MAX_IMAGE_BYTES, MAX_VIDEO_BYTES, duration_ms, fetch_capped
from bot import i18n

log = logging.getLogger(__name__)

#: ReplyTarget.state key holding the card's message id
CARD_STATE_KEY = "card_message_id"


def idempotency_key(job_id: str, what: str) -> str:
    """The `uuid` of one of a job's messages (the final card, the media, the link): the same for
    every attempt at that message, so Feishu sends it once (within an hour; at most 50 chars)."""
    return f"{job_id}:{what}"[:50]


def mention(open_id: str) -> str:
    """A text message's @-mention of one person (Feishu message content, text: `<at user_id="ou_...">
    </at>`; the name between the tags may stay empty, the client shows the person's name). Unlike
    a patched card, a new message that mentions someone notifies them."""
    return f'<at user_id="{open_id}"></at>'


class CardBook:
    """The patcher that last wrote each card, by message id (bounded, in memory).

    A pressed button names only its card's message id; this finds what the card shows now, so the
    card can be patched without the buttons that press used up, through the same patcher (the
    latest state wins there, so a late progress frame cannot bring a button back). After a restart
    the book is empty: such a card keeps its buttons, which the core answers once anyway.
    """

    def __init__(self, max_size: int = 2000) -> None:
        self.max_size = max_size
        self._patchers: OrderedDict[str, CardPatcher] = OrderedDict()

    def note(self, message_id: str, patcher: CardPatcher) -> None:
        self._patchers[message_id] = patcher
        self._patchers.move_to_end(message_id)
        while len(self._patchers) > self.max_size:
            self._patchers.popitem(last=False)

    def get(self, message_id: str | None) -> CardPatcher | None:
        return self._patchers.get(message_id) if message_id else None


class CardPatcher:
    """Keeps one card up to date: at most one PATCH per `min_interval_s`, the latest state wins.

    Feishu allows 5 updates per second per message; progress arrives faster than a person can
    read it, so intermediate states are dropped, never queued. A final state (the video, the
    failure) must be seen: when its patch fails for good (the card was recalled, is older than
    14 days, or Feishu keeps refusing), it is sent as a new message instead, which later presses
    then patch. A new message for a final state carries the job's idempotency key, so a delivery
    repeated after a restart shows once.

    `clock` and `sleep` pace the patches (monotonic seconds); tests hand in a fake pair.
    """

    def __init__(
        self,
        api: FeishuApi,
        chat_id: str,
        reply_to: str | None,
        *,
        message_id: str | None,
        min_interval_s: float,
        book: CardBook | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.api = api
        self.chat_id = chat_id
        self.reply_to = reply_to
        self.message_id = message_id
        self.min_interval_s = min_interval_s
        self.book = book
        self._clock = clock
        self._sleep = sleep
        self._wanted: dict[str, Any] | None = None
        #: the idempotency key of the wanted card when it is a final state (else None)
        self._wanted_key: str | None = None
        self._sending: dict[str, Any] | None = None
        self._written: dict[str, Any] | None = None
        self._last_write = float("-inf")
        self._flusher: asyncio.Task[None] | None = None

    @property
    def current(self) -> dict[str, Any] | None:
        """The card as it will look once pending writes are done (None: nothing known)."""
        for card in (self._wanted, self._sending, self._written):
            if card is not None:
                return card
        return None

    async def send(self, card: dict[str, Any], *, final_key: str | None = None) -> None:
        """Show `card` now: a new message when there is none yet, else a patch (waits its turn).
        With `final_key` the card is a final state: it is shown as a new message (sent with
        that idempotency key) if it cannot be patched in."""
        self._wanted, self._wanted_key = card, final_key
        await self.flush()

    def update(self, card: dict[str, Any]) -> None:
        """Ask for `card` to be shown soon; returns at once."""
        self._wanted, self._wanted_key = card, None
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._drain())

    async def flush(self) -> None:
        """Wait until the latest wanted card has been written."""
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._drain())
        await asyncio.shield(self._flusher)

    async def _drain(self) -> None:
        while self._wanted is not None:
            wait = self._last_write + self.min_interval_s - self._clock()
            if wait > 0:
                await self._sleep(wait)
            card, key = self._wanted, self._wanted_key
            self._wanted = self._wanted_key = None
            if card is None:
                continue
            self._last_write = self._clock()
            self._sending = card
            try:
                await self._write(card, key)
            finally:
                self._sending = None

    async def _write(self, card: dict[str, Any], final_key: str | None) -> None:
        try:
            if self.message_id is None:
                self.message_id = await self.api.send(
                    self.chat_id, "interactive", card, reply_to=self.reply_to, uuid=final_key
                )
            else:
                await self.api.patch_card(self.message_id, card)
        except FeishuApiError as e:
            if final_key is None:
                # a lost progress frame is harmless; the next state (or the final one) follows
                log.warning("card write failed: %s", e)
                return
            if self.message_id is None:
                log.error("final card not sent: %s", e)
                return
            # the final state must be seen: the stale card stays, the end comes as a new message
            log.warning("final card patch of %s failed (%s); sending it as a new message", self.message_id, e)
            try:
                self.message_id = await self.api.send(
                    self.chat_id, "interactive", card, reply_to=self.reply_to, uuid=final_key
                )
            except FeishuApiError as e2:
                log.error("final card not sent: %s", e2)
                return
        self._written = card
        if self.book is not None:
            self.book.note(self.message_id, self)


class FeishuConversation:
    """Implements `adapters.base.Conversation` for one Feishu chat (and one job)."""

    def __init__(
        self,
        api: FeishuApi,
        chat_id: str,
        *,
        reply_to: str | None = None,
        language: str = "zh",
        card_message_id: str | None = None,
        min_patch_interval_s: float = 1.0,
        max_video_bytes: int = MAX_VIDEO_BYTES,
        user_id: str | None = None,
        chat_type: str | None = None,
        card: CardPatcher | None = None,
        book: CardBook | None = None,
    ) -> None:
        self.api = api
        self.chat_id = chat_id
        self.reply_to = reply_to
        self.language = language
        self.max_video_bytes = max_video_bytes
        #: the person this conversation answers (their buttons carry it) and the kind of chat
        self.user_id = user_id
        self.chat_type = chat_type
        self.card = card or CardPatcher(
            api, chat_id, reply_to, message_id=card_message_id, min_interval_s=min_patch_interval_s, book=book
        )
        self._title = ""
        self._notice_text = ""

    @property
    def is_group(self) -> bool:
        return self.chat_type not in (None, "p2p")

    def _owner(self, user_id: str | None = None) -> cards.Owner:
        return cards.Owner(self.language, user_id or self.user_id, self.chat_type)

    @property
    def target_state(self) -> dict[str, str]:
        """What a resumed job needs to keep patching the same card (saved by the core with the
        job, handed back in ReplyTarget.state)."""
        return {CARD_STATE_KEY: self.card.message_id} if self.card.message_id else {}

    async def notice(self, view: NoticeView) -> None:
        self._title, self._notice_text = view.title, view.text
        await self.card.send(
            cards.card(view.title, [view.text], actions=cards.notice_buttons(view, self._owner()))
        )

    async def progress(self, view: ProgressView) -> None:
        title = self._title or view.text.splitlines()[0]
        template = "orange" if view.overdue else "blue"
        self.card.update(
            cards.card(
                title,
                [self._notice_text, view.text],
                template=template,
                actions=cards.progress_buttons(view, self._owner()),
            )
        )

    async def video(self, view: VideoView) -> None:
        fetched = await fetch_capped(view.url, self.max_video_bytes)
        media_sent = False
        reason: str | None = None
        if fetched.data is not None:
            try:
                await self._send_media(fetched.data, view)
                media_sent = True
            except FeishuApiError as e:
                log.warning("video upload failed, linking instead: %s", e)
                reason = i18n.t("feishu.upload_failed", self.language)
        elif fetched.too_large:
            reason = i18n.t("feishu.too_large", self.language, limit=self.max_video_bytes // (1024 * 1024))
        else:
            log.warning("video download failed (%s), linking instead", fetched.error)
            reason = i18n.t("feishu.upload_failed", self.language)
        blocks = [view.caption] if media_sent else [view.caption, reason or ""]
        actions = (
            [] if media_sent else [cards.link_button(i18n.t("feishu.open_video", self.language), view.url)]
        )
        actions += cards.video_buttons(view, self._owner(view.requester))
        title = view.caption.splitlines()[0]
        await self.card.send(
            cards.card(title, blocks, template="green", actions=actions),
            final_key=idempotency_key(view.job_id, "card"),
        )
        # a patched card notifies nobody: in a group the link goes out as a new message that
        # @-mentions whoever asked, so they hear that their video is ready
        requester = view.requester or self.user_id
        link = f"{mention(requester)} {view.link_text}" if self.is_group and requester else view.link_text
        await self._send_text(link, uuid=idempotency_key(view.job_id, "link"))

    async def _send_media(self, data: bytes, view: VideoView) -> None:
        """Upload the mp4 and its cover, then post them as one media message (plays inline)."""
        file_key = await self.api.upload_video(
            data, f"{view.job_id}.mp4", await duration_ms(data, view.duration_s)
        )
        content: dict[str, str] = {"file_key": file_key}
        if view.cover_url:
            cover = await fetch_capped(view.cover_url, MAX_IMAGE_BYTES)
            if cover.data is not None:
                try:
                    content["image_key"] = await self.api.upload_image(cover.data)
                except FeishuApiError as e:  # the video still plays without its cover
                    log.warning("cover upload failed: %s", e)
        await self.api.send(
            self.chat_id, "media", content, reply_to=self.reply_to, uuid=idempotency_key(view.job_id, "media")
        )

    async def failure(self, view: FailureView) -> None:
        await self.card.send(
            cards.failure_card(view, self.language, self._owner()),
            final_key=idempotency_key(view.job_id, "card"),
        )

    async def text(self, text: str) -> None:
        await self._send_text(text)

    async def _send_text(self, text: str, *, uuid: str | None = None) -> None:
        try:
            await self.api.send(
                self.chat_id, "text", {"text": cards.fit_text(text)}, reply_to=self.reply_to, uuid=uuid
            )
        except FeishuApiError as e:
            log.warning("text reply failed: %s", e)
