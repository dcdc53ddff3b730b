"""The tenant access token, fetched with httpx on the bot's loop.

lark-oapi fetches its token with a blocking `requests` call on a cache miss; that would stall the
event loop, so the adapter fetches it itself and hands it to every call (`enable_set_token`).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import httpx

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"
BOT_INFO_PATH = "/open-apis/bot/v3/info"
#: renew this long before Feishu's expiry, so a token never dies mid-request
REFRESH_MARGIN_S = 300.0


class FeishuAuthError(Exception):
    """Feishu refused the app's credentials (or did not answer)."""

    kind = "feishu_auth"


@dataclass
class _Cached:
    token: str
    expires_at: float  # monotonic seconds


class TenantToken:
    """Caches the tenant token until shortly before it expires; one fetch at a time."""

    def __init__(self, domain: str, app_id: str, app_secret: str, *, timeout_s: float = 10.0) -> None:
        self.domain = domain.rstrip("/")
        self._app_id = app_id
        self._app_secret = app_secret
        self._timeout_s = timeout_s
        self._cached: _Cached | None = None
        self._lock = asyncio.Lock()

    async def get(self) -> str:
        """A valid tenant token, from the cache when it has one."""
        cached = self._cached
        if cached and cached.expires_at > time.monotonic():
            return cached.token
        async with self._lock:
            cached = self._cached
            if cached and cached.expires_at > time.monotonic():
                return cached.token
            self._cached = await self._fetch()
            return self._cached.token

    def invalidate(self) -> None:
        """Forget the token (Feishu said it is invalid)."""
        self._cached = None

    async def _fetch(self) -> _Cached:
        body = {"app_id": self._app_id, "app_secret": self._app_secret}
        try:
            async with httpx.AsyncClient(timeout=self._timeout_s) as http:
                resp = await http.post(self.domain + TOKEN_PATH, json=body)
            data = resp.json()
        except (httpx.HTTPError, ValueError) as e:
            raise FeishuAuthError(f"tenant token request failed: {type(e).__name__}") from e
        if data.get("code") != 0 or not data.get("tenant_access_token"):
            raise FeishuAuthError(f"tenant token refused: code={data.get('code')} msg={data.get('msg')}")
        ttl = float(data.get("expire", 7200))
        return _Cached(data["tenant_access_token"], time.monotonic() + max(ttl - REFRESH_MARGIN_S, ttl / 2))

    async def bot_open_id(self) -> str | None:
        """The bot's own open_id (to tell an @bot from an @someone else); None when unknown."""
        try:
            token = await self.get()
            async with httpx.AsyncClient(timeout=self._timeout_s) as http:
                resp = await http.get(
                    self.domain + BOT_INFO_PATH, headers={"Authorization": f"Bearer {token}"}
                )
            data = resp.json()
        except (httpx.HTTPError, ValueError, FeishuAuthError):
            return None
        bot = data.get("bot") or {}
        open_id = bot.get("open_id")
        return str(open_id) if open_id else None
