"""The Discord connection: a discord.Client with a CommandTree, run until `stop()`."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

import discord
from discord import app_commands

from adapters.base import Conversation, Core, ReplyTarget
from adapters.discord import sdk
from adapters.discord.buttons import JobActionButton, RerunButton, SameSeedButton
from adapters.discord.fetch import VideoFetcher
from adapters.discord.handlers import Conversations, Handlers
from adapters.discord.options import options
from adapters.discord.tree import LocaleTranslator, build_commands, command_hash
from bot.config import Settings

log = logging.getLogger(__name__)

#: the file (beside the database) that keeps the hash of the globally synced command tree
SYNC_STATE_FILE = "discord-commands.json"


#: longest a single request may wait out a rate limit inside discord.py before it raises
#: `discord.RateLimited` (the library's floor is 30 s; by default it would wait any time, and a
#: progress edit would hold the job up): the conversation then skips or retries
MAX_RATELIMIT_WAIT_S = 30.0


class ImaDiscordClient(discord.Client):
    """discord.Client that registers the commands and the restart-proof buttons at start."""

    def __init__(
        self,
        handlers: Handlers,
        settings: Settings,
        *,
        intents: discord.Intents,
        ready: asyncio.Event | None = None,
        sync_state: Path | None = None,
        **shards: Any,
    ) -> None:
        # user text can reach message content (a model name echoed back): never let it ping
        # @everyone, roles or users; replying to an @-mention still notifies its author
        mentions = discord.AllowedMentions(everyone=False, roles=False, users=False, replied_user=True)
        super().__init__(
            intents=intents, allowed_mentions=mentions, max_ratelimit_timeout=MAX_RATELIMIT_WAIT_S, **shards
        )
        self.handlers = handlers
        #: read by the buttons' callbacks (RerunButton, JobActionButton, SameSeedButton)
        self.button_handler = handlers
        self.settings = settings
        self.ready_event = ready or asyncio.Event()
        #: where the hash of the last globally synced command tree is kept
        self.sync_state = sync_state
        self.tree: app_commands.CommandTree[Any] = app_commands.CommandTree(self)
        for command in build_commands(handlers):
            self.tree.add_command(command)

    async def setup_hook(self) -> None:
        self.add_dynamic_items(RerunButton, JobActionButton, SameSeedButton)
        await self.tree.set_translator(LocaleTranslator())
        await self.sync_commands()

    async def sync_commands(self) -> str:
        """Register the slash commands: with DISCORD_DEV_GUILD, in that guild only (they update at
        once); otherwise globally, and only when they changed since the last sync (the tree's
        hash is kept in `sync_state`). Syncing both ways shows every command twice in the dev
        guild (discord.py#9573). Returns what was done: "guild", "global" or "unchanged"."""
        guild_id = self.settings.discord_dev_guild
        if guild_id is not None:
            guild = discord.Object(id=guild_id)
            self.tree.copy_global_to(guild=guild)
            await self.tree.sync(guild=guild)
            return "guild"
        digest = await command_hash(self.tree)
        key = str(self.application_id or "")
        synced = _read_hashes(self.sync_state)
        if synced.get(key) == digest:
            log.info("Discord: slash commands unchanged since the last sync")
            return "unchanged"
        await self.tree.sync()
        synced[key] = digest
        _write_hashes(self.sync_state, synced)
        log.info("Discord: slash commands synced globally (they can take a while to appear)")
        return "global"

    async def on_ready(self) -> None:
        log.info("Discord: connected as %s", self.user)
        self.ready_event.set()

    async def on_message(self, message: discord.Message) -> None:
        await self.handlers.on_message(message, self.user)


def _read_hashes(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write_hashes(path: Path | None, hashes: dict[str, str]) -> None:
    if path is None:
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(hashes, indent=1, sort_keys=True), encoding="utf-8")
    except OSError as e:  # the next start syncs again: harmless
        log.warning("could not keep the command hash in %s: %s", path, e)


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
    return ShardedImaDiscordClient, {
        "shard_count": count,
        "shard_ids": list(settings.discord_shard_ids) or None,
    }


def intents(message_content: bool) -> discord.Intents:
    """Guilds and messages; message content when the application has that privileged intent."""
    value = discord.Intents.default()
    value.message_content = message_content
    return value


class DiscordAdapter:
    """The Adapter for Discord: slash commands, @-mentions, buttons, resumed jobs."""

    platform = "discord"

    def __init__(
        self,
        settings: Settings,
        core: Core,
        *,
        fetcher: VideoFetcher | None = None,
        sync_state: Path | None = None,
    ) -> None:
        self.settings = settings
        self.core = core
        self.fetcher = fetcher or VideoFetcher(timeout_s=options().pacing.video_fetch_timeout_s)
        self.conversations = Conversations(self.fetcher)
        self.handlers = Handlers(core, settings, self.conversations)
        self._ready = asyncio.Event()  # shared by the client and its replacement, if any
        #: beside the database: the hash of the command tree last synced globally
        self.sync_state = (
            sync_state if sync_state is not None else settings.bot_db_path.parent / SYNC_STATE_FILE
        )
        self._message_content = True
        self.client = self._client(message_content=True)
        self._stopping = False

    def _client(self, *, message_content: bool) -> ImaDiscordClient:
        cls, shards = client_class(self.settings)
        return cls(
            self.handlers,
            self.settings,
            intents=intents(message_content),
            ready=self._ready,
            sync_state=self.sync_state,
            **shards,
        )

    @property
    def connected(self) -> bool:
        """True while the gateway session is up."""
        return self._ready.is_set() and not self.client.is_closed()

    async def start(self) -> None:
        """Connect and serve until `stop()`. Raises when Discord refuses the login or the
        connection fails for good; `start()` may then be called again (with a fresh client)."""
        if self.settings.discord_token is None:
            raise RuntimeError("DISCORD_TOKEN is not set")
        if self._stopping:
            return
        missing = sdk.missing_features()
        if missing:
            log.error(
                "discord.py lacks what the adapter relies on (%s); see adapters/discord/sdk.py",
                ", ".join(missing),
            )
        token = self.settings.discord_token.get_secret_value()
        if self.client.is_closed():  # an earlier attempt failed: a closed client cannot start again
            self.client = self._client(message_content=self._message_content)
        self._ready.clear()
        try:
            try:
                await self.client.start(token)
            except discord.PrivilegedIntentsRequired:
                # that client is done for: close it (its HTTP session, its gateway) first
                await self.client.close()
                if self._stopping:
                    return
                # messages that @-mention the bot carry their content even without the intent
                log.warning(
                    "Discord: the Message Content intent is not enabled for this application; "
                    "continuing without it (enable it in the developer portal, see the README, "
                    "Discord section)"
                )
                self._message_content = False
                self.client = self._client(message_content=False)
                await self.client.start(token)
        except BaseException:
            await self.client.close()  # nothing left open; a retry builds a fresh client
            raise

    async def wait_ready(self) -> None:
        """Return once the gateway session is ready; resumed jobs wait for this."""
        await self._ready.wait()

    async def stop(self) -> None:
        self._stopping = True
        await self.client.close()
        await self.fetcher.aclose()

    def conversation_for(self, target: ReplyTarget) -> Conversation:
        """A conversation for a resumed job: it edits the message named in the target's state,
        or posts a new one in the job's channel."""
        channel = self.client.get_partial_messageable(int(target.chat_id))
        message_id = target.state.get("message_id")
        message = (
            channel.get_partial_message(int(message_id)) if message_id and message_id.isdigit() else None
        )
        return self.conversations.for_channel(
            channel, message, requester=target.user_id, language=target.language
        )
