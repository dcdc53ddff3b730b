"""What the Discord adapter relies on in discord.py beyond its plain documented calls, in one place.

The adapter itself uses no private part of discord.py. It does rely on behaviours that a
release could change without breaking a call's signature; `missing_features()` checks each of
them against the installed library (the adapter logs what is missing at start, and
`tests/test_discord_platform.py` fails on it):

- `Messageable.send(nonce=...)` sends the nonce *with* `enforce_nonce: true` (discord.py 2.x,
  `discord.http.handle_message_parameters`): Discord then returns the message already sent with
  that nonce in the past few minutes instead of posting a second one. A repeated delivery
  after a restart relies on it.
- `Client(max_ratelimit_timeout=...)` makes a request raise `discord.RateLimited` instead of
  sleeping through a long rate limit (a progress edit must not hold a job up).
- `Interaction.filesize_limit` (the upload limit where the interaction happened) and
  `Interaction.expires_at` (the token's 15 minutes).
- `Client.add_dynamic_items` with `ui.DynamicItem` templates: buttons that survive a restart.
- `Command.get_translated_payload`: what a sync sends, hashed to sync only on a change.

`dynamic_items()` reads which buttons a client registered; it is the one read of a private
attribute (`_connection._view_store._dynamic_items`), used by tests only.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

import discord
from discord import app_commands


def missing_features() -> list[str]:
    """The behaviours listed above that the installed discord.py lacks (empty when all are there)."""
    missing: list[str] = []
    try:
        with discord.http.handle_message_parameters(content="probe", nonce="probe") as params:
            payload = params.payload or {}
        if payload.get("nonce") != "probe" or payload.get("enforce_nonce") is not True:
            missing.append("send(nonce=...) with enforce_nonce")
    except Exception:
        missing.append("discord.http.handle_message_parameters(nonce=...)")
    if "max_ratelimit_timeout" not in inspect.getsource(discord.Client.__init__):
        missing.append("Client(max_ratelimit_timeout=...)")
    if not hasattr(discord, "RateLimited"):
        missing.append("discord.RateLimited")
    for owner, name in (
        (discord.Interaction, "filesize_limit"),
        (discord.Interaction, "expires_at"),
        (discord.Client, "add_dynamic_items"),
        (discord.ui, "DynamicItem"),
        (app_commands.Command, "get_translated_payload"),
    ):
        present = hasattr(owner, name) or name in getattr(owner, "__slots__", ())
        if not present:
            missing.append(f"{getattr(owner, '__name__', owner)}.{name}")
    return missing


def dynamic_items(client: discord.Client) -> dict[re.Pattern[str], Any]:
    """The restart-proof button templates `client` registered (for tests)."""
    return dict(client._connection._view_store._dynamic_items)
