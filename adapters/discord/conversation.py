"""One job's answers in Discord: a status message edited in place.

For a slash command the status message is the interaction's original response, edited through
the interaction token. That token lives 15 minutes (`Interaction.expires_at`); when a job
outlives it (or after a restart, with the id the core saved in `target_state`), the same message
is edited through the channel: a non-ephemeral interaction response is a message of the bot's
own, and `PATCH /channels/{id}/messages/{id}` edits it (discord/discord-api-docs#3090). Only
when that is not possible either is the current state posted as a new channel message.
Progress edits are throttled; a change of state always shows.

An edit notifies nobody, so a finished video is followed by a short message of its own that
mentions the requester (and may ping only them).

Discord's limits are kept here: message content at most 2,000 characters (render.py cuts it), an
attachment only under the upload limit (else the link alone, also when Discord answers 413 /
40005 after all), rate limits (a progress frame is skipped, an end is retried after
`retry_after`). Channel messages a job posts carry a nonce made from the job's id (see
`nonce_for`): a delivery repeated after a restart returns the message already there instead of
posting a second one.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
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

#: Discord's Create Message: "nonce: integer or string, max 25 characters"; with enforce_nonce
#: (which discord.py 2.x always sends with a nonce, discord/http.py handle_message_parameters)
#: "it will be checked for uniqueness in the past few minutes. If another message was created by
#: the same author with the same nonce, that message will be returned and no new message will
#: be created."
MAX_NONCE = 25
#: how often an end (notice, video, failure) is tried again after a rate limit
END_ATTEMPTS = 4


def nonce_for(job_id: str, what: str) -> str:
    """The nonce of one of a job's channel messages: the same in every process, so a repeated
    delivery finds the first one (short ids kept readable, longer ones hashed to fit 25)."""
    raw = f"{what}:{job_id}"
    if len(raw) <= MAX_NONCE:
        return raw
    return f"{what[:4]}:{hashlib.sha256(job_id.encode()).hexdigest()}"[:MAX_NONCE]


class _Limited(Exception):
    """Discord said to slow down for `retry_after` seconds."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"rate limited for {retry_after:.2f} s")
        self.retry_after = retry_after


def _rate_limit(error: BaseException) -> float | None:
    """Seconds to wait when `error` is a rate limit: discord.py raises `RateLimited` past the
    client's max_ratelimit_timeout, and a 429 it does not retry itself (the webhook routes of
    interactions) as an HTTPException whose body holds `retry_after` (Discord's rate-limits doc)."""
    if isinstance(error, discord.RateLimited):
        return float(error.retry_after)
    if isinstance(error, discord.HTTPException) and error.status == 429:
        text = getattr(error, "text", "") or ""
        try:
            return float(json.loads(text).get("retry_after", 1.0))
        except (ValueError, AttributeError):
            return 1.0
    return None


def _too_large(error: BaseException) -> bool:
    """Discord refused an upload as too large: HTTP 413, or JSON error 40005 "Request entity too large"."""
    return isinstance(error, discord.HTTPException) and (error.status == 413 or error.code == 40005)


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
        #: no progress edit before this (clock seconds): Discord asked to slow down
        self._quiet_until = float("-inf")
        #: status messages posted per kind of state (the nonce of a repost differs)
        self._posts: dict[str, int] = {}
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
        await self._show_end(view.job_id, ("notice", False), render.notice(view, self.requester))

    async def progress(self, view: ProgressView) -> None:
        state = ("progress", view.overdue)
        now = self._clock()
        if now < self._quiet_until:
            return  # Discord asked to slow down: a later tick carries a newer percentage
        if state == self._state and now - self._last_edit < self.min_interval_s:
            return  # same state, too soon: the next tick will carry a newer percentage
        try:
            await self._show_job(view.job_id, state, render.progress(view, self._notice, self.requester))
        except _Limited as e:
            self._quiet_until = self._clock() + e.retry_after
            log.info("progress of %s skipped: %s", view.job_id, e)

    async def video(self, view: VideoView) -> None:
        data = await self.fetcher.fetch_if_fits(view.url, self.upload_limit)
        await self._show_end(
            view.job_id, ("video", False), render.video(view, data, filename_for(view.url), self.requester)
        )
        if view.requester:
            await self._ping(view.requester, view.job_id)

    async def failure(self, view: FailureView) -> None:
        await self._show_end(view.job_id, ("failure", False), render.failure(view, self.requester))

    async def text(self, text: str) -> None:
        await self._must_show("text", lambda: self._show_text(text))

    async def _show_text(self, text: str) -> None:
        async with self._lock:
            out = render.text(text)
            self._rebind()
            if self._holds == "empty" and self._usable(self._status):
                if await self._edit(out):
                    self._holds = "text"
                    return
            await self._post(out)

    async def _ping(self, user_id: str, job_id: str | None = None) -> None:
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
                    msg = await self.interaction.followup.send(
                        content=content, allowed_mentions=mentions, wait=True
                    )
                elif self.channel is not None:
                    extra = {"nonce": nonce_for(job_id, "r")} if job_id else {}
                    msg = await self.channel.send(content=content, allowed_mentions=mentions, **extra)
                else:
                    return
                self.posted.append(msg)
        except (discord.HTTPException, discord.RateLimited) as e:
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

    def _rebind(self) -> None:
        """When the token no longer serves the status message, edit the same message through the
        channel (it is the bot's own); without its id or a channel, a new message follows."""
        status = self._status
        if status is None or not status.token_bound or self.token_alive:
            return
        partial = getattr(self.channel, "get_partial_message", None)
        if status.message_id is None or partial is None:
            self._status = None
            return
        self._status = _Status(
            partial(status.message_id).edit, token_bound=False, message_id=status.message_id
        )

    # -- output ------------------------------------------------------------------------------------
    async def _show_end(self, job_id: str, state: tuple[str, bool], out: Rendered) -> None:
        """A state that must be seen (notice, video, failure): retried after a rate limit."""
        await self._must_show(f"{state[0]} of {job_id}", lambda: self._show_job(job_id, state, out))

    async def _must_show(self, what: str, show: Callable[[], Awaitable[None]]) -> None:
        """Run `show`, waiting out a rate limit and trying again (a few times)."""
        for attempt in range(END_ATTEMPTS):
            try:
                await show()
                return
            except _Limited as e:
                if attempt == END_ATTEMPTS - 1:
                    raise discord.RateLimited(e.retry_after) from e
                log.info("%s waits: %s", what, e)
                await asyncio.sleep(e.retry_after)

    async def _show_job(self, job_id: str, state: tuple[str, bool], out: Rendered) -> None:
        async with self._lock:
            self._rebind()
            edited = self._holds != "text" and self._usable(self._status) and await self._edit(out)
            if not edited:
                self._status = await self._post(out, nonce=self._nonce(job_id, state[0]))
            self._holds = "job"
            self._state = state
            self._last_edit = self._clock()

    def _nonce(self, job_id: str, kind: str) -> str:
        count = self._posts.get(kind, 0)
        self._posts[kind] = count + 1
        return nonce_for(job_id, f"{kind[0]}{count or ''}")

    async def _edit(self, out: Rendered) -> bool:
        """Edit the status message; False when it cannot be (its token died, it is gone)."""
        assert self._status is not None
        status = self._status
        try:
            result = await status.edit(**out.edit_kwargs())
        except discord.HTTPException as e:
            if (wait := _rate_limit(e)) is not None:
                raise _Limited(wait) from e
            if _too_large(e) and out.file_bytes is not None:
                log.info("upload refused as too large (%s); showing the link alone", e)
                return await self._edit(out.without_file())
            if not status.token_bound:
                if isinstance(e, discord.NotFound | discord.Forbidden):
                    log.info("status message %s not editable (%s); posting a new one", status.message_id, e)
                    self._status = None
                    return False
                raise
            # the token died early (clock skew, a lost response): the same message by the channel
            log.info("interaction edit failed (%s); continuing through the channel", e)
            self._token_dead = True
            self._rebind()
            return self._status is not None and await self._edit(out)
        except discord.RateLimited as e:
            raise _Limited(e.retry_after) from e
        if status.message_id is None:  # the original response's id: kept for a resumed job
            status.message_id = getattr(result, "id", None)
        return True

    async def _post(self, out: Rendered, *, nonce: str | None = None) -> _Status:
        """A new message: a followup while the token lives, else a reply or a channel message
        (with `nonce`, so a repeat of it returns the first one)."""
        try:
            return await self._post_once(out, nonce)
        except discord.HTTPException as e:
            if (wait := _rate_limit(e)) is not None:
                raise _Limited(wait) from e
            if _too_large(e) and out.file_bytes is not None:
                log.info("upload refused as too large (%s); posting the link alone", e)
                return await self._post_once(out.without_file(), nonce)
            raise
        except discord.RateLimited as e:
            raise _Limited(e.retry_after) from e

    async def _post_once(self, out: Rendered, nonce: str | None) -> _Status:
        msg: Any
        kwargs: dict[str, Any] = out.send_kwargs()
        if self.interaction is not None and self.token_alive and self.interaction.response.is_done():
            # a followup is a webhook message: no nonce there (the token is gone after a restart anyway)
            msg = await self.interaction.followup.send(wait=True, **kwargs)
            status = _Status(msg.edit, token_bound=True, message_id=getattr(msg, "id", None))
        elif self.reply_to is not None and not self.posted:
            if nonce:
                kwargs["nonce"] = nonce
            msg = await self.reply_to.reply(**kwargs)
            status = _Status(msg.edit, token_bound=False, message_id=getattr(msg, "id", None))
        elif self.channel is not None:
            if nonce:
                kwargs["nonce"] = nonce
            msg = await self.channel.send(**kwargs)
            status = _Status(msg.edit, token_bound=False, message_id=getattr(msg, "id", None))
        else:
            raise RuntimeError("no way to reach this conversation")
        self.posted.append(msg)
        return status
