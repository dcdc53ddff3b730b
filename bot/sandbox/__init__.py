"""The local IMA sandbox: an IMA-compatible HTTP server on loopback that renders real mp4 files.

    async with Sandbox(SandboxConfig(port=0, time_scale=0.01)) as sb:
        sb.base_url, sb.ledger, sb.balance, sb.force_create_error(status=500), ...
"""

from __future__ import annotations

from bot.sandbox.config import SandboxConfig
from bot.sandbox.ledger import LedgerEntry
from bot.sandbox.server import Sandbox

__all__ = ["LedgerEntry", "Sandbox", "SandboxConfig"]
