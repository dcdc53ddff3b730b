"""The Discord connection: a discord.Client with a CommandTree, run until `stop()`."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from discord import app_commands

from adapters.base import Conversation, Core, ReplyTarget
from adapters.discord.buttons import JobActionButton, RerunButton, SameSeedButton
from adapters.discord.fetch import VideoFetcher
from adapters.discord.handlers import Conversations, Handlers
from adapters.discord.options import options
from adapters.discord.tree import LocaleTranslator, build_commands
from bot.config import Settings

log = logging.getLogger(__name__)


class ImaDiscordClient(discord.Client):
    """discord.Client that registers the commands and the restart-proof buttons at start."""

    def __init__(
        self, handlers: Handlers, settings: Settings, *, intents: discord.Intents, ready: asyncio.Event | None = None,
        **shards: Any,
    ) -> None:
        # user text can reach message content (a model name echoed back): never let it ping
        # @everyone, roles or users; replying to an @-mention still notifies its author
        mentions = discord.AllowedMentions(everyone=False, roles=False, users=False, replied_user=True)
        super().__init__(intents=intents, allowed_mentions=mentions, **shards)
        self.handlers = handlers
        #: read by the buttons' callbacks (RerunButton, JobActionButton, SameSeedButton)
        self.button_handler = handlers
        self.settings = settings
        self.ready_event = ready or asyncio.Event()
        self.tree: app_commands.CommandTree[Any] = app_commands.CommandTree(self)
        for command in build_commands(handlers):
            self.tree.add_command(command)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(RerunButton, JobActionButton, SameSeedButton)
        await self.tree.set_translator(LocaleTranslator())
        guild_id = self.settings.discord_dev_guild
        if guild_id is not None:
            # guild commands update at once; global ones can take a while to appear
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
        await self.tree.sync()

    async def on_ready(self) -> None:
        log.info("Discord: connected as %s", self.user)
        self.ready_event.set()

    async def on_message(self, message: discord.Message) -> None:
        await self.handlers.on_message(message, self.user)


class ShardedImaDiscordClient(ImaDiscordClient, discord.AutoShardedClient):
    """The same client over several gateway shards (DISCORD_SHARD_COUNT / DISCORD_SHARD_IDS)."""


def client_class(settings: Settings) -> tuple[type[ImaDiscordClient], dict[str, Any]]:
    """One connection by default; with DISCORD_SHARD_COUNT an AutoShardedClient running all
    of them ("auto": Discord's recommended count) or, with DISCORD_SHARD_IDS, those of them
    (several processes, each with its own ids, together run them all)."""
    count = settings.discord_shard_count
    if count is None:
        return ImaDiscordClient, {}
    if count == "auto":
        return ShardedImaDiscordClient, {}
    return ShardedImaDiscordClient, {"shard_count": count, "shard_ids": list(settings.discord_shard_ids) or None}


def intents(message_content: bool) -> discord.Intents:
    """Guilds and messages; message content when the application has that privileged intent."""
    value = discord.Intents.default()
    value.message_content = message_content
    return value


class DiscordAdapter:
    """The Adapter for Discord: slash commands, @-mentions, buttons, resumed jobs."""

    platform = "discord"

    def __init__(self, settings: Settings, core: Core, *, fetcher: VideoFetcher | None = None) -> None:
        self.settings = settings
        self.core = core
        self.fetcher = fetcher or VideoFetcher(timeout_s=options().pacing.video_fetch_timeout_s)
        self.conversations = Conversations(self.fetcher)
        self.handlers = Handlers(core, settings, self.conversations)
        self._ready = asyncio.Event()  # shared by the client and its replacement, if any
        self.client = self._client(message_content=True)
        self._stopping = False

    def _client(self, *, message_content: bool) -> ImaDiscordClient:
        cls, shards = client_class(self.settings)
        return cls(self.handlers, self.settings, intents=intents(message_content), ready=self._ready, **shards)

    async def start(self) -> None:
        """Connect and serve until `stop()`."""
        if self.settings.discord_token is None:
            raise RuntimeError("DISCORD_TOKEN is not set")
        token = self.settings.discord_token.get_secret_value()
        try:
            try:
                await self.client.start(token)
            except discord.PrivilegedIntentsRequired:
                if self._stopping:
                    return
                # messages that @-mention the bot carry their content even without the intent
                log.warning("Discord: the Message Content intent is not enabled for this application; "
                            "continuing without it (enable it in the developer portal, see the README, Discord section)")
                self.client = self._client(message_content=False)
                await self.client.start(token)
        finally:
            await self.fetcher.aclose()

    async def wait_ready(self) -> None:
        """Return once the gateway session is ready; resumed jobs wait for this."""
        await self._ready.wait()

    async def stop(self) -> None:
        self._stopping = True
        await self.client.close()

    def conversation_for(self, target: ReplyTarget) -> Conversation:
        """A conversation for a resumed job: it edits the message named in the target's state,
        or posts a new one in the job's channel."""
        channel = self.client.get_partial_messageable(int(target.chat_id))
        message_id = target.state.get("message_id")
        message = channel.get_partial_message(int(message_id)) if message_id and message_id.isdigit() else None
        return self.conversations.for_channel(channel, message, requester=target.user_id, language=target.language)

