"""The two-step image upload: a signed token request, then a PUT to a presigned URL.

GET /api/rest/oss/getuploadtoken checks the key (appUid = cmimToken = the API key), the app
key, and sign = uppercase hex SHA-1 of "appId|appKey|timestamp|nonce"; it answers `ful` (a
presigned, single-use PUT URL on the sandbox) and `fdl` (where the bytes will be served).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bot.sandbox.config import SandboxConfig
from bot.sandbox.errors import ApiError

REQUIRED = (
    "appUid",
    "appId",
    "appKey",
    "cmimToken",
    "sign",
    "timestamp",
    "nonce",
    "fService",
    "fType",
    "fSuffix",
    "fContentType",
)
FILE_TYPES = frozenset({"picture", "video", "audio"})
_SUFFIX = re.compile(r"^[A-Za-z0-9]{1,8}$")


def sign(app_id: str, app_key: str, timestamp: str, nonce: str) -> str:
    """Uppercase hex SHA-1 of "appId|appKey|timestamp|nonce"."""
    return hashlib.sha1(f"{app_id}|{app_key}|{timestamp}|{nonce}".encode()).hexdigest().upper()


@dataclass(frozen=True)
class Grant:
    """One issued upload token: where the bytes go and what they must be."""

    token: str
    filename: str
    content_type: str
    expires_at: float  # unix seconds


class UploadDesk:
    """Issues upload tokens and stores what is PUT to them."""

    def __init__(self, config: SandboxConfig, directory: Path) -> None:
        self._config = config
        self._dir = directory
        self._grants: dict[str, Grant] = {}
        self._nonces: set[str] = set()

    def grant(self, query: Mapping[str, str], now: float | None = None) -> Grant:
        """Check a token request; raises ApiError (401 bad key, 400 bad request or sign)."""
        now = time.time() if now is None else now
        missing = [k for k in REQUIRED if not query.get(k)]
        key = self._config.api_key
        if not hmac.compare_digest(query.get("appUid", ""), key) or not hmac.compare_digest(
            query.get("cmimToken", ""), key
        ):
            raise ApiError("unauthorized")
        if missing:
            raise ApiError("bad_request", f"missing parameters: {', '.join(missing)}")
        if query["appId"] != self._config.upload_app_id or not hmac.compare_digest(
            query["appKey"], self._config.upload_app_key
        ):
            raise ApiError("bad_request", "unknown appId or appKey")
        expected = sign(query["appId"], query["appKey"], query["timestamp"], query["nonce"])
        if not hmac.compare_digest(query["sign"], expected):
            raise ApiError("bad_request", "sign verification failed")
        try:
            skew = abs(now - float(query["timestamp"]))
        except ValueError:
            raise ApiError("bad_request", "timestamp must be unix seconds") from None
        if skew > self._config.upload_clock_skew_s:
            raise ApiError("bad_request", "timestamp expired")
        if query["nonce"] in self._nonces:
            raise ApiError("bad_request", "nonce already used")
        if query["fType"] not in FILE_TYPES or not _SUFFIX.match(query["fSuffix"]):
            raise ApiError("bad_request", "invalid fType or fSuffix")
        self._nonces.add(query["nonce"])
        token = secrets.token_urlsafe(18)
        name = f"{secrets.token_hex(12)}.{query['fSuffix'].lower()}"
        grant = Grant(token, name, query["fContentType"], now + self._config.upload_token_ttl_s)
        self._grants[token] = grant
        return grant

    def claim(self, token: str, content_type: str | None, now: float | None = None) -> Grant:
        """The grant for a PUT, used up; raises ApiError 403 when unknown, expired or mismatched."""
        now = time.time() if now is None else now
        grant = self._grants.get(token)
        if grant is None or now > grant.expires_at:
            raise ApiError("upload_denied", "upload URL unknown, used or expired")
        if (content_type or "").split(";")[0].strip().lower() != grant.content_type.split(";")[
            0
        ].strip().lower():
            raise ApiError("upload_denied", "Content-Type does not match the signed one")
        del self._grants[token]
        return grant

    def path_for(self, grant: Grant) -> Path:
        return self._dir / grant.filename
