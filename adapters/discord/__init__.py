"""Discord adapter: slash commands, @-mentions, embeds edited in place, buttons."""

from __future__ import annotations

from adapters.discord.adapter import DiscordAdapter

__all__ = ["DiscordAdapter"]
