"""Text (+ number of images) -> Request: what a chat message asks the bot to make.

The phrase tables live in bot/catalog/aliases.toml; see bot.understand.parser for the rules.
"""

from __future__ import annotations

from bot.understand.parser import model_for_task, parse
from bot.understand.request import CLI_KEYS, Request

__all__ = ["CLI_KEYS", "Request", "model_for_task", "parse"]
