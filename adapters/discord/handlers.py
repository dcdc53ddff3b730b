"""What each slash command, button and message does, as plain async methods.

They take a discord.Interaction (or Message) and talk to the core; registration with the
command tree lives in `tree.py`, so tests call these directly with stand-in interactions.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import discord
from discord import app_commands

from adapters.base import Core, ImageInput, Incoming, ModelChoice
from adapters.discord import attachments
from adapters.discord.conversation import DiscordConversation, Sendable
from adapters.discord.fetch import VideoFetcher
from adapters.discord.options import Options, options
from bot.config import Settings
from bot.i18n import DEFAULT_LANGUAGE, detect_language, normalize_language
from bot.ima.types import TASK_TYPES
from bot.text import clip

log = logging.getLogger(__name__)

PLATFORM = "discord"
#: Discord's limits: 25 autocomplete choices, 100 characters per choice name, 1024 per embed field
_MAX_CHOICES = 25
_MAX_CHOICE_NAME = 100
_MAX_FIELD = 1024
_PROMPT_PREVIEW = 80
#: a press whose button does not name its requester is theirs when the job is among their last
OWNER_LOOKUP = 100


def roles_of(user: object) -> tuple[str, ...]:
    """A guild member's role ids and names (for DISCORD_ALLOWED_ROLES); none in direct messages."""
    roles = getattr(user, "roles", None) or ()
    return tuple(v for r in roles for v in (str(getattr(r, "id", "")), str(getattr(r, "name", ""))) if v)


def language_of(locale: object) -> str:
    """ "zh" for a Chinese Discord locale, else "en"."""
    value = getattr(locale, "value", locale)
    return normalize_language(str(value)) if value else "en"


@dataclass(frozen=True)
class VideoOptions:
    """The options of one /video invocation."""

    prompt: str
    model: str | None = None
    duration: int | None = None
    resolution: str | None = None
    aspect_ratio: str | None = None
    image: discord.Attachment | None = None
    image2: discord.Attachment | None = None
    mode: str | None = None
    #: creative controls; the switches (sound, prompt_extend) as choice values "on" / "off"
    sound: str | None = None
    negative_prompt: str | None = None
    seed: int | None = None
    shot_type: str | None = None
    prompt_extend: str | None = None

    @property
    def attachments(self) -> list[discord.Attachment]:
        return [a for a in (self.image, self.image2) if a is not None]

    def overrides(self, table: Options) -> dict[str, object]:
        """Structured options for Incoming.overrides (they win over what the prompt says)."""
        given: dict[str, object | None] = {
            "model_id": self.model or None,
            "duration": self.duration or None,
            "resolution": self.resolution or None,
            "aspect_ratio": self.aspect_ratio or None,
            "task_type": table.modes.get(self.mode or "") if self.attachments else None,
            "sound": table.switches.get(self.sound or ""),
            "negative_prompt": (self.negative_prompt or "").strip() or None,
            "seed": self.seed if self.seed is not None and self.seed >= 0 else None,
            "shot_type": self.shot_type if self.shot_type in table.shot_types else None,
            "prompt_extend": table.switches.get(self.prompt_extend or ""),
        }
        return {k: v for k, v in given.items() if v is not None}


class Conversations:
    """Builds DiscordConversations with shared pacing, clocks and video fetcher."""

    def __init__(
        self,
        fetcher: VideoFetcher,
        table: Options | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], datetime.datetime] = discord.utils.utcnow,
    ) -> None:
        self.fetcher = fetcher
        self.pacing = (table or options()).pacing
        self.clock = clock
        self.now = now

    def _make(self, **kw: Any) -> DiscordConversation:
        return DiscordConversation(
            fetcher=self.fetcher,
            min_interval_s=self.pacing.progress_min_interval_s,
            token_margin_s=self.pacing.token_margin_s,
            clock=self.clock,
            now=self.now,
            **kw,
        )

    def for_interaction(
        self, interaction: discord.Interaction[Any], language: str | None = None
    ) -> DiscordConversation:
        """The job (or answer) of a slash command or a button press, by whoever used it."""
        limit = getattr(interaction, "filesize_limit", None) or self.pacing.default_upload_limit
        channel: Any = interaction.channel
        return self._make(
            channel=channel,
            interaction=interaction,
            upload_limit=limit,
            requester=str(interaction.user.id),
            language=language or language_of(interaction.locale),
        )

    def for_message(self, message: discord.Message, language: str | None = None) -> DiscordConversation:
        limit = message.guild.filesize_limit if message.guild else self.pacing.default_upload_limit
        return self._make(
            channel=message.channel,
            reply_to=message,
            upload_limit=limit,
            requester=str(message.author.id),
            language=language or DEFAULT_LANGUAGE,
        )

    def for_channel(
        self,
        channel: Sendable,
        message: discord.PartialMessage | None = None,
        *,
        requester: str | None = None,
        language: str | None = None,
    ) -> DiscordConversation:
        """A resumed job's conversation: it edits `message`, or posts in the channel."""
        return self._make(
            channel=channel,
            message=message,
            upload_limit=self.pacing.default_upload_limit,
            requester=requester,
            language=language or DEFAULT_LANGUAGE,
        )


class Handlers:
    """The adapter's behaviour, one method per command, button and event."""

    def __init__(
        self, core: Core, settings: Settings, conversations: Conversations, table: Options | None = None
    ) -> None:
        self.core = core
        self.settings = settings
        self.conversations = conversations
        self.table = table or options()

    # -- helpers -----------------------------------------------------------------------------------
    def allowed(self, guild_id: int | None) -> bool:
        """The guild allowlist; empty means every guild (and direct messages)."""
        allow = self.settings.discord_allowed_guilds
        return not allow or (guild_id is not None and guild_id in allow)

    async def _refuse(self, interaction: discord.Interaction[Any], lang: str) -> bool:
        if self.allowed(interaction.guild_id):
            return False
        await interaction.response.send_message(self.core.t("discord.not_allowed", lang), ephemeral=True)
        return True

    async def _finish_silent(self, interaction: discord.Interaction[Any], conv: DiscordConversation) -> None:
        # nothing started and nothing said (a duplicate): don't leave "thinking…" forever
        if conv.silent:
            try:
                await interaction.delete_original_response()
            except discord.HTTPException:
                log.debug("could not delete the deferred response")

    # -- /video ------------------------------------------------------------------------------------
    async def video(self, interaction: discord.Interaction[Any], opts: VideoOptions) -> None:
        """Check attachments (before downloading), defer, then hand the request to the core."""
        lang = language_of(interaction.locale)
        if await self._refuse(interaction, lang):
            return
        files = opts.attachments
        rejection = attachments.check(files, self.settings.bot_max_image_bytes)
        if rejection is not None:
            await interaction.response.send_message(
                self.core.t(rejection.key, lang, **rejection.values), ephemeral=True
            )
            return
        await interaction.response.defer(thinking=True)
        conv = self.conversations.for_interaction(interaction, detect_language(opts.prompt, lang))
        images = await self._download(files, conv, lang)
        if images is None:
            return
        incoming = Incoming(
            platform=PLATFORM,
            chat_id=str(interaction.channel_id),
            user_id=str(interaction.user.id),
            text=opts.prompt,
            images=images,
            event_id=f"interaction:{interaction.id}",
            language=lang,
            overrides=opts.overrides(self.table),
            roles=roles_of(interaction.user),
            video_command=True,
        )
        try:
            job = await self.core.handle(incoming, conv)
        except Exception:  # a bug must end in a message, not an endless "thinking…"
            log.exception("handling /video failed")
            await conv.text(self.core.t("error.unknown", lang))
            return
        if job is None:
            await self._finish_silent(interaction, conv)

    # -- autocomplete ------------------------------------------------------------------------------
    def _task_of(self, namespace: Any) -> str:
        task = getattr(namespace, "task", None)
        if task in TASK_TYPES:
            return str(task)
        images = sum(1 for name in ("image", "image2") if getattr(namespace, name, None))
        return self.table.implied_task(getattr(namespace, "mode", None), images)

    def _choice_name(self, c: ModelChoice, lang: str) -> str:
        credits = (
            str(c.credits_min)
            if c.credits_min == c.credits_max
            else self.core.t("discord.credits_range", lang, min=c.credits_min, max=c.credits_max)
        )
        name = self.core.t("discord.choice_model", lang, model=c.name, credits=credits, est_max=c.est_max_s)
        return clip(name, _MAX_CHOICE_NAME)

    async def model_autocomplete(
        self, interaction: discord.Interaction[Any], current: str
    ) -> list[app_commands.Choice[str]]:
        """Models for the task type the other options imply, with credits, filtered by what was typed."""
        lang = language_of(interaction.locale)
        task = self._task_of(interaction.namespace)
        try:
            async with asyncio.timeout(
                self.table.pacing.autocomplete_timeout_s
            ):  # 3.11's wait_for can lose a cancel
                choices = await self.core.model_choices(task, lang)
        except TimeoutError:
            return []
        needle = current.strip().lower()
        hits = [c for c in choices if not needle or needle in c.name.lower() or needle in c.model_id.lower()]
        ids = [c.model_id for c in choices]
        # model ids shared by several versions (Pixverse) are ambiguous: send the name instead
        return [
            app_commands.Choice(
                name=self._choice_name(c, lang), value=c.model_id if ids.count(c.model_id) == 1 else c.name
            )
            for c in hits[:_MAX_CHOICES]
        ]

    # -- /models -----------------------------------------------------------------------------------
    async def models(self, interaction: discord.Interaction[Any]) -> None:
        """Models per task type with credits and typical time."""
        lang = language_of(interaction.locale)
        if await self._refuse(interaction, lang):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        per_task = await asyncio.gather(*(self.core.model_choices(task, lang) for task in TASK_TYPES))
        embed = discord.Embed(
            title=self.core.t("discord.models.title", lang), colour=discord.Colour.blurple()
        )
        for task, choices in zip(TASK_TYPES, per_task, strict=True):
            if not choices:
                continue
            lines = [self._model_line(c, lang) for c in choices]
            embed.add_field(
                name=self.core.t(f"task.{task}", lang),
                value=clip("\n".join(lines), _MAX_FIELD),
                inline=False,
            )
        if not embed.fields:
            embed.description = self.core.t("discord.models.none", lang)
        else:
            embed.set_footer(text=self.core.t("discord.models.footer", lang))
        await interaction.edit_original_response(embed=embed)

    def _model_line(self, c: ModelChoice, lang: str) -> str:
        credits = (
            str(c.credits_min)
            if c.credits_min == c.credits_max
            else self.core.t("discord.credits_range", lang, min=c.credits_min, max=c.credits_max)
        )
        return self.core.t(
            "discord.models.line",
            lang,
            model=c.name,
            credits=credits,
            est_min=c.est_min_s,
            est_max=c.est_max_s,
        )

    # -- /prefer -----------------------------------------------------------------------------------
    async def prefer_model(
        self, interaction: discord.Interaction[Any], model: str, task: str | None = None
    ) -> None:
        """Save a preferred model for a task type (text-to-video unless told)."""
        lang = language_of(interaction.locale)
        if await self._refuse(interaction, lang):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        answer = await self.core.set_preference(
            PLATFORM, str(interaction.user.id), task if task in TASK_TYPES else "text_to_video", model, lang
        )
        await interaction.edit_original_response(content=answer)

    async def prefer_clear(self, interaction: discord.Interaction[Any], task: str | None = None) -> None:
        """Forget preferred models (one task type, or all)."""
        lang = language_of(interaction.locale)
        if await self._refuse(interaction, lang):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        answer = await self.core.clear_preference(
            PLATFORM, str(interaction.user.id), task if task in TASK_TYPES else None, lang
        )
        await interaction.edit_original_response(content=answer)

    # -- /jobs -------------------------------------------------------------------------------------
    async def jobs(self, interaction: discord.Interaction[Any]) -> None:
        """The user's running and recent jobs."""
        lang = language_of(interaction.locale)
        if await self._refuse(interaction, lang):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        jobs = await self.core.recent_jobs(PLATFORM, str(interaction.user.id), self.table.pacing.jobs_limit)
        embed = discord.Embed(title=self.core.t("discord.jobs.title", lang), colour=discord.Colour.blurple())
        if not jobs:
            embed.description = self.core.t("discord.jobs.none", lang)
        lines = []
        for j in jobs:
            line = self.core.t(
                "discord.jobs.line",
                lang,
                status=self.core.t(f"discord.jobs.status.{j.status}", lang),
                model=j.model_name or "—",
                when=discord.utils.format_dt(
                    datetime.datetime.fromtimestamp(j.created_at, datetime.UTC), "R"
                ),
                credits=self.core.t("discord.jobs.credits", lang, credits=j.credits)
                if j.credits is not None
                else "",
                prompt=clip(j.prompt, _PROMPT_PREVIEW),
            )
            if j.url:
                line += self.core.t("discord.jobs.link", lang, url=j.url)
            lines.append(line)
        if lines:
            embed.description = clip("\n\n".join(lines), 4096)
        await interaction.edit_original_response(embed=embed)

    # -- /help -------------------------------------------------------------------------------------
    async def help(self, interaction: discord.Interaction[Any]) -> None:
        lang = language_of(interaction.locale)
        embed = discord.Embed(
            title=self.core.t("discord.help.title", lang),
            description=self.core.t("discord.help.body", lang),
            colour=discord.Colour.blurple(),
        )
        await interaction.response.send_message(embed=embed, ephemeral=True)

    # -- buttons: Retry / Again / Same seed / Try <model>, Confirm / No thanks, ❌ Cancel -------------
    async def rerun(
        self,
        interaction: discord.Interaction[Any],
        job_id: str,
        model_id: str | None,
        requester: str | None = None,
        *,
        same_seed: bool = False,
    ) -> None:
        """A press on Retry, Again, Same seed or a suggested model: the core runs the job again
        (once between them), answering in a new message."""

        async def act(conv: DiscordConversation, user_id: str) -> object:
            return await self.core.rerun(
                job_id,
                user_id=user_id,
                model_id=model_id,
                conversation=conv,
                same_seed=same_seed,
                roles=roles_of(interaction.user),
            )

        await self._press(interaction, job_id, requester, act)

    async def job_action(
        self, interaction: discord.Interaction[Any], action: str, job_id: str, requester: str | None = None
    ) -> None:
        """Confirm or No thanks on a job waiting for an OK, or ❌ Cancel on a running one."""

        async def act(conv: DiscordConversation, user_id: str) -> object:
            if action == "confirm":
                return await self.core.confirm(
                    job_id, user_id=user_id, conversation=conv, roles=roles_of(interaction.user)
                )
            if action == "decline":
                await self.core.decline(job_id, user_id=user_id, conversation=conv)
            elif action == "cancel":
                await self.core.cancel(job_id, platform=PLATFORM, user_id=user_id, conversation=conv)
            return None

        await self._press(interaction, job_id, requester, act)

    async def _press(
        self,
        interaction: discord.Interaction[Any],
        job_id: str,
        requester: str | None,
        act: Callable[[DiscordConversation, str], Awaitable[object]],
    ) -> None:
        """One button press: the core acts (once) and answers in words through a conversation.

        Someone else's press is answered privately ("not your job") and leaves the buttons for
        their owner. A press by the requester, or one that started a job, removes the message's
        buttons: each works once, and the core answers any later press "already done"."""
        lang = language_of(interaction.locale)
        if await self._refuse(interaction, lang):
            return
        user_id = str(interaction.user.id)
        if requester is None:
            # a button from before requesters were kept (or whose id had no room for one): the
            # presser's own recent jobs tell; Discord fixes a response's visibility at the defer
            someone_else = not await self._owns(user_id, job_id)
        else:
            someone_else = requester != user_id
        await interaction.response.defer(thinking=True, **({"ephemeral": True} if someone_else else {}))
        conv = self.conversations.for_interaction(interaction, lang)
        try:
            job = await act(conv, user_id)
        except Exception:  # a bug must end in a message, not an endless "thinking…"
            log.exception("handling a button press failed")
            await conv.text(self.core.t("error.unknown", lang))
            return
        if job is not None or (requester is not None and not someone_else):
            await self._drop_buttons(interaction)
        if job is None:
            await self._finish_silent(interaction, conv)

    async def _owns(self, user_id: str, job_id: str) -> bool:
        """Whether `job_id` is among the person's recent jobs (asked quickly: the press must be
        answered within 3 s; when the core is slow, the press is taken as theirs)."""
        try:
            async with asyncio.timeout(self.table.pacing.autocomplete_timeout_s):
                jobs = await self.core.recent_jobs(PLATFORM, user_id, OWNER_LOOKUP)
        except TimeoutError:
            return True
        return any(j.job_id == job_id for j in jobs)

    async def _drop_buttons(self, interaction: discord.Interaction[Any]) -> None:
        """Remove every button from the message that was pressed (its text and video stay)."""
        message = getattr(interaction, "message", None)
        if message is None:
            return
        try:
            await message.edit(view=None)
        except discord.HTTPException as e:
            log.info("could not remove the buttons of message %s: %s", getattr(message, "id", "?"), e)

    # -- /cancel -----------------------------------------------------------------------------------
    async def cancel(self, interaction: discord.Interaction[Any]) -> None:
        """Cancel the person's latest queued or running job; the core says what it cost."""
        lang = language_of(interaction.locale)
        if await self._refuse(interaction, lang):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        conv = self.conversations.for_interaction(interaction, lang)
        await self.core.cancel(
            None, platform=PLATFORM, user_id=str(interaction.user.id), conversation=conv, language=lang
        )
        await self._finish_silent(interaction, conv)

    async def usage(self, interaction: discord.Interaction[Any]) -> None:
        """What the person spent today and this month (admins: per channel and person), privately."""
        lang = language_of(interaction.locale)
        if await self._refuse(interaction, lang):
            return
        await interaction.response.defer(ephemeral=True, thinking=True)
        text = await self.core.usage(PLATFORM, str(interaction.user.id), str(interaction.channel_id), lang)
        await interaction.edit_original_response(content=clip(text, 2000))

    async def _download(
        self, files: Sequence[discord.Attachment], conv: DiscordConversation, lang: str
    ) -> tuple[ImageInput, ...] | None:
        """The checked attachments' bytes, or None after telling the user the download failed."""
        try:
            return await attachments.download(files)
        except discord.HTTPException:
            await conv.text(self.core.t("error.image_upload", lang))
            return None

    # -- messages: @-mentions, direct messages, answers to the bot's questions -------------------
    def addressed(self, message: discord.Message, me: discord.abc.User) -> bool:
        """A direct message, or a guild message with <@bot> / <@!bot> in its text. A reply to the
        bot carries the bot in `message.mentions` when it pings (the default): that alone is no
        mention."""
        return message.guild is None or re.search(rf"<@!?{me.id}>", message.content or "") is not None

    def replies_to(self, message: discord.Message, me: discord.abc.User) -> bool:
        """A reply to one of the bot's messages: it pings the bot (the bot in `mentions`, the
        default for a reply) or quotes a message of the bot's."""
        if any(user.id == me.id for user in message.mentions):
            return True
        resolved = message.reference.resolved if message.reference is not None else None
        author = getattr(resolved, "author", None)  # a deleted message has none
        return author is not None and author.id == me.id

    async def on_message(self, message: discord.Message, me: discord.abc.User | None) -> None:
        """A message addressed to the bot is understood like a Feishu text (with its images).
        Other short guild messages go to the core unmentioned, text only: it answers nothing but
        a yes / no to a question it asked that person."""
        if me is None or message.author.bot or message.author.id == me.id:
            return
        if not self.addressed(message, me):
            await self._unmentioned(message, answers_bot=self.replies_to(message, me))
            return
        text = re.sub(rf"<@!?{me.id}>", " ", message.content or "").strip()
        hint = language_of(message.guild.preferred_locale) if message.guild else None
        lang = detect_language(text, hint)
        conv = self.conversations.for_message(message, lang)
        if not self.allowed(message.guild.id if message.guild else None):
            await conv.text(self.core.t("discord.not_allowed", lang))
            return
        files: Sequence[discord.Attachment] = message.attachments
        rejection = attachments.check(files, self.settings.bot_max_image_bytes)
        if rejection is not None:
            await conv.text(self.core.t(rejection.key, lang, **rejection.values))
            return
        images = await self._download(files, conv, lang)
        if images is None:
            return
        incoming = Incoming(
            platform=PLATFORM,
            chat_id=str(message.channel.id),
            user_id=str(message.author.id),
            text=text,
            images=images,
            event_id=f"message:{message.id}",
            reply_to=str(message.id),
            language=hint,
            roles=roles_of(message.author),
        )
        await self.core.handle(incoming, conv)

    async def _unmentioned(self, message: discord.Message, *, answers_bot: bool) -> None:
        """Guild talk not addressed to the bot: only something as short as an answer is read, its
        attachments never; outside the allowlist nothing is said. `answers_bot`: it replies to
        one of the bot's messages (only then may a yes spend)."""
        text = (message.content or "").strip()
        if not text or len(text) > self.table.unmentioned_max_chars or message.guild is None:
            return
        if not self.allowed(message.guild.id):
            return
        hint = language_of(message.guild.preferred_locale)
        incoming = Incoming(
            platform=PLATFORM,
            chat_id=str(message.channel.id),
            user_id=str(message.author.id),
            text=text,
            event_id=f"message:{message.id}",
            reply_to=str(message.id),
            language=hint,
            mentioned=False,
            answers_bot=answers_bot,
        )
        await self.core.handle(incoming, self.conversations.for_message(message, detect_language(text, hint)))
