"""One job's answers in Discord: a status message edited in place.

For a slash command the status message is the interaction's original response, edited through
the interaction token. That token lives 15 minutes (`Interaction.expires_at`); when a job
outlives it, the current state is posted as a normal channel message, which the bot can edit
for as long as it likes. Progress edits are throttled; a change of state always shows.

An edit notifies nobody, so a finished video is followed by a short message of its own that
mentions the requester (and may ping only them).
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import discord

from adapters.base import FailureView, NoticeView, ProgressView, VideoView
from adapters.discord import render
from adapters.discord.fetch import VideoFetcher, filename_for
from adapters.discord.render import Rendered
from bot import i18n

log = logging.getLogger(__name__)


class Sendable(Protocol):
    """What the conversation needs of a channel: to post a message."""

    async def send(self, *args: Any, **kwargs: Any) -> Any: ...


@dataclass
class _Status:
    """The message that shows the job; `token_bound` when editing it needs the interaction token."""

    edit: Callable[..., Awaitable[Any]]
    token_bound: bool
    message_id: int | None = None


class DiscordConversation:
    """Implements adapters.base.Conversation for one Discord interaction, message or channel."""

    def __init__(
        self,
        *,
        channel: Sendable | None,
        fetcher: VideoFetcher,
        upload_limit: int,
        interaction: discord.Interaction[Any] | None = None,
        reply_to: discord.Message | None = None,
        message: discord.Message | discord.PartialMessage | None = None,
        min_interval_s: float = 5.0,
        token_margin_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime.datetime] = discord.utils.utcnow,
        requester: str | None = None,
        language: str = i18n.DEFAULT_LANGUAGE,
    ) -> None:
        self.channel = channel
        #: the Discord user id whose job this conversation shows (goes into button custom_ids)
        self.requester = requester
        #: for the adapter's own lines (the "your video is ready" ping)
        self.language = language
        self.fetcher = fetcher
        self.upload_limit = upload_limit
        self.interaction = interaction
        self.reply_to = reply_to
        self.min_interval_s = min_interval_s
        self.token_margin = datetime.timedelta(seconds=token_margin_s)
        self._clock = clock
        self._now = now
        self._lock = asyncio.Lock()
        self._status: _Status | None = None
        #: what the status message holds: "empty" (a deferred "thinking…"), "text" or "job"
        self._holds = "empty"
        self._notice: NoticeView | None = None
        self._state: tuple[str, bool] | None = None
        self._last_edit = float("-inf")
        self._token_dead = False
        #: every message this conversation posted (not edits), for the adapter and for tests
        self.posted: list[Any] = []
        if interaction is not None:
            self._status = _Status(interaction.edit_original_response, token_bound=True)
        elif message is not None:
            self._status = _Status(message.edit, token_bound=False, message_id=message.id)
            self._holds = "job"

    # -- Conversation protocol -------------------------------------------------------------------
    async def notice(self, view: NoticeView) -> None:
        self._notice = view
        await self._show_job(("notice", False), render.notice(view, self.requester))

    async def progress(self, view: ProgressView) -> None:
        state = ("progress", view.overdue)
        if state == self._state and self._clock() - self._last_edit < self.min_interval_s:
            return  # same state, too soon: the next tick will carry a newer percentage
        await self._show_job(state, render.progress(view, self._notice, self.requester))

    async def video(self, view: VideoView) -> None:
        data = await self.fetcher.fetch_if_fits(view.url, self.upload_limit)
        await self._show_job(("video", False), render.video(view, data, filename_for(view.url), self.requester))
        if view.requester:
            await self._ping(view.requester)

    async def failure(self, view: FailureView) -> None:
        await self._show_job(("failure", False), render.failure(view, self.requester))

    async def text(self, text: str) -> None:
        async with self._lock:
            out = render.text(text)
            if self._holds == "empty" and self._usable(self._status):
                if await self._edit(out):
                    self._holds = "text"
                    return
            await self._post(out)

    async def _ping(self, user_id: str) -> None:
        """A short message of its own that mentions the requester: the video itself arrived as
        an edit, which notifies nobody. It pings that one user only; a failure to send it is
        logged, never shown instead of the video (which is already there)."""
        if not (user_id.isascii() and user_id.isdigit()):
            return
        content = render.ready_ping(i18n.t("discord.video_ready", self.language, mention=f"<@{user_id}>"))
        mentions = discord.AllowedMentions(
            everyone=False, roles=False, users=[discord.Object(id=int(user_id))], replied_user=False
        )
        try:
            async with self._lock:
                if self.interaction is not None and self.token_alive and self.interaction.response.is_done():
                    msg = await self.interaction.followup.send(content=content, allowed_mentions=mentions, wait=True)
                elif self.channel is not None:
                    msg = await self.channel.send(content=content, allowed_mentions=mentions)
                else:
                    return
                self.posted.append(msg)
        except discord.HTTPException as e:
            log.info("could not post the ready ping: %s", e)

    # -- state -------------------------------------------------------------------------------------
    @property
    def silent(self) -> bool:
        """True while nothing has been shown or posted."""
        return self._holds == "empty" and not self.posted

    @property
    def status_message_id(self) -> int | None:
        """The id of the channel/webhook message showing the job, when known."""
        return self._status.message_id if self._status else None

    @property
    def target_state(self) -> dict[str, str]:
        """Saved by the core with the job: a resumed job edits this message again."""
        return {"message_id": str(self.status_message_id)} if self.status_message_id else {}

    @property
    def token_alive(self) -> bool:
        """True while the interaction token can still be used (with a safety margin)."""
        if self.interaction is None or self._token_dead:
            return False
        return self._now() < self.interaction.expires_at - self.token_margin

    def _usable(self, status: _Status | None) -> bool:
        return status is not None and (not status.token_bound or self.token_alive)

    # -- output ------------------------------------------------------------------------------------
    async def _show_job(self, state: tuple[str, bool], out: Rendered) -> None:
        async with self._lock:
            edited = self._holds != "text" and self._usable(self._status) and await self._edit(out)
            if not edited:
                self._status = await self._post(out)
            self._holds = "job"
            self._state = state
            self._last_edit = self._clock()

    async def _edit(self, out: Rendered) -> bool:
        assert self._status is not None
        try:
            await self._status.edit(**out.edit_kwargs())
            return True
        except discord.HTTPException as e:
            if not self._status.token_bound:
                raise
            # the token died early (clock skew, a lost response): carry on in the channel
            log.info("interaction edit failed (%s); moving to a channel message", e)
            self._token_dead = True
            self._status = None
            return False

    async def _post(self, out: Rendered) -> _Status:
        """A new message: a followup while the token lives, else a reply or a channel message."""
        msg: Any
        if self.interaction is not None and self.token_alive and self.interaction.response.is_done():
            msg = await self.interaction.followup.send(wait=True, **out.send_kwargs())
            status = _Status(msg.edit, token_bound=True, message_id=getattr(msg, "id", None))
        elif self.reply_to is not None and not self.posted:
            msg = await self.reply_to.reply(**out.send_kwargs())
            status = _Status(msg.edit, token_bound=False, message_id=getattr(msg, "id", None))
        elif self.channel is not None:
            msg = await self.channel.send(**out.send_kwargs())
            status = _Status(msg.edit, token_bound=False, message_id=getattr(msg, "id", None))
        else:
            raise RuntimeError("no way to reach this conversation")
        self.posted.append(msg)
        return status
