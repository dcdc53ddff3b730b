"""The local IMA sandbox: an IMA-compatible HTTP server on loopback that renders real mp4 files.

    async with Sandbox(SandboxConfig(port=0, time_scale=0.01)) as sb:
        sb.base_url, sb.ledger, sb.balance, sb.force_create_error(status=500), ...

Conventions where the real service's behaviour is not published (all data in rules.toml):
- Sora 2 Pro moderation: HTTP 200, code 400, message "content policy violation: ...".
- attribute_id 0, missing or not a rule of the version: HTTP 200, code 400, "Invalid product attribute".
- Business errors are HTTP 200 with the code in the body; a bad key is a real HTTP 401, and
  injected or forced 429 / 500 are real HTTP statuses.
- Forced outcomes form one FIFO queue consumed by create requests (see faults.py).
- A failed task is not refunded: the ledger is the record of what was charged.
"""

from __future__ import annotations

from bot.sandbox.config import SandboxConfig
from bot.sandbox.ledger import LedgerEntry
from bot.sandbox.server import Sandbox

__all__ = ["LedgerEntry", "Sandbox", "SandboxConfig"]
