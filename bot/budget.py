"""Who may spend, and how much: daily credit budgets per person and per chat, admins.

Credits are reserved in the database before a create call (one transaction checks and
reserves, so a burst cannot overspend), settled when the video is delivered and released when
the work fails or never reached the service (failed work costs the user nothing). A day is the
operator's day: midnight in BOT_TIMEZONE.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from bot.config import Settings
from bot.store import Job, Store

#: runtime changes an admin makes from chat override these settings (store.overrides)
USER_LIMIT = "bot_user_daily_credits"
CHAT_LIMIT = "bot_chat_daily_credits"
ALLOWED_USERS = "feishu_allowed_users"  # a JSON list
ALLOWED_ROLES = "discord_allowed_roles"  # a JSON list
#: how long an admin's changes are cached (several processes may share one database)
OVERRIDES_TTL_S = 5.0


@dataclass(frozen=True)
class Refusal:
    """Why a job may not spend: which budget, what is left of it, and when it resets."""

    scope: str  # "user" | "chat"
    left: int
    limit: int
    resets: str  # local time of the next reset, e.g. "00:00 (UTC)"


class Budgets:
    """Daily budgets and admins, over the store."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store = store
        self.settings = settings
        self.zone = ZoneInfo(settings.bot_timezone)
        self._changed: tuple[float, dict[str, str]] | None = None  # (read at, overrides)

    async def _overrides(self) -> dict[str, str]:
        """An admin's changes, read at most every OVERRIDES_TTL_S (every message asks; another
        process's change shows within that time, this process's own at once)."""
        now = time.monotonic()
        if self._changed is None or now - self._changed[0] > OVERRIDES_TTL_S:
            self._changed = (now, await self.store.overrides())
        return self._changed[1]

    async def set_override(self, key: str, value: str) -> None:
        """Keep an admin's change (it wins over the settings) and use it from now on."""
        await self.store.set_override(key, value)
        self._changed = None

    def is_admin(self, platform: str, user_id: str) -> bool:
        """Admins (BOT_ADMINS, "platform:user_id") are never limited."""
        return f"{platform}:{user_id}" in self.settings.bot_admins

    async def allowlists(self) -> tuple[list[str], list[str]]:
        """(Feishu users, Discord roles) who may spend; empty = everyone. An admin's change wins."""
        changed = await self._overrides()
        users = (
            json.loads(changed[ALLOWED_USERS])
            if ALLOWED_USERS in changed
            else self.settings.feishu_allowed_users
        )
        roles = (
            json.loads(changed[ALLOWED_ROLES])
            if ALLOWED_ROLES in changed
            else self.settings.discord_allowed_roles
        )
        return list(users), list(roles)

    async def may_spend(self, platform: str, user_id: str, roles: tuple[str, ...] = ()) -> bool:
        """Admins always; on Discord people with an allowed role (id or name) when roles are
        set; on Feishu the allowed users when users are set; everyone elsewhere."""
        if self.is_admin(platform, user_id):
            return True
        users, allowed_roles = await self.allowlists()
        if platform == "discord" and allowed_roles:
            wanted = {r.lower() for r in allowed_roles}
            return any(r.lower() in wanted for r in roles)
        if platform == "feishu" and users:
            return user_id in users
        return True

    async def limits(self) -> tuple[int | None, int | None]:
        """(per-person, per-chat) daily credits; None = no limit. An admin's change wins."""
        changed = await self._overrides()
        user = _limit(changed.get(USER_LIMIT), self.settings.bot_user_daily_credits)
        chat = _limit(changed.get(CHAT_LIMIT), self.settings.bot_chat_daily_credits)
        return user, chat

    def day_start(self, now: dt.datetime | None = None) -> float:
        """Unix time of the last local midnight."""
        local = (now or dt.datetime.now(dt.UTC)).astimezone(self.zone)
        return local.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()

    def month_start(self, now: dt.datetime | None = None) -> float:
        local = (now or dt.datetime.now(dt.UTC)).astimezone(self.zone)
        return local.replace(day=1, hour=0, minute=0, second=0, microsecond=0).timestamp()

    def resets_at(self) -> str:
        """When today's budget starts again, in the operator's timezone."""
        return f"00:00 ({self.settings.bot_timezone})"

    async def may_refuse(self, job: Job) -> bool:
        """Whether a budget could refuse this job (not an admin's, and a daily limit is set)."""
        if self.is_admin(job.platform, job.user_id):
            return False
        return any(limit is not None for limit in await self.limits())

    async def reserve(self, job: Job, credits: int) -> Refusal | None:
        """Reserve `credits` for `job` (idempotent per job); a Refusal when a budget would be
        exceeded, in which case nothing is reserved and nothing may be sent to the service."""
        if self.is_admin(job.platform, job.user_id):
            await self.store.reserve_spend(job, credits, self.day_start(), None, None)
            return None
        user_limit, chat_limit = await self.limits()
        over = await self.store.reserve_spend(job, credits, self.day_start(), user_limit, chat_limit)
        if over is None:
            return None
        scope, left = over
        limit = user_limit if scope == "user" else chat_limit
        return Refusal(scope, left, limit or 0, self.resets_at())

    async def settle(self, job: Job) -> None:
        """The video was delivered: its credits are spent."""
        await self.store.set_spend_state(job.id, "spent", job.credits)

    async def release(self, job: Job) -> None:
        """The work failed or never reached the service: its credits are given back."""
        await self.store.set_spend_state(job.id, "released")


def _limit(changed: str | None, configured: int | None) -> int | None:
    if changed is None:
        return configured
    return None if changed in ("", "off", "none") else int(changed)
