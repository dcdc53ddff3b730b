"""Image upload: local bytes → a public URL the service can fetch.

Two steps on the upload host: GET an upload token (signed with the public web-agent app key),
then PUT the bytes to the presigned `ful`; the public URL is `fdl`.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from typing import Protocol

import httpx
from pydantic import SecretStr

from bot.ima.envelope import decode
from bot.ima.errors import ImaError, ImageUploadFailed, NetworkError, RateLimited, Unauthorized

log = logging.getLogger(__name__)

DEFAULT_UPLOAD_BASE_URL = "https://imapi.liveme.com"
DEFAULT_UPLOAD_APP_ID = "webAgent"
#: the web-agent app key published in the IMA skills' upload code (not a secret: it is public)
DEFAULT_UPLOAD_APP_KEY = "32jdskjdk320eew"
TOKEN_PATH = "/api/rest/oss/getuploadtoken"

_SUFFIXES = {"jpeg": "jpg", "pjpeg": "jpg", "svg+xml": "svg", "x-icon": "ico", "quicktime": "mov"}
_FILE_TYPES = {"image": "picture", "video": "video", "audio": "audio"}
#: failures that say something about the connection or the key, not about the image
_PASS_THROUGH = (Unauthorized, RateLimited, NetworkError)


class ImageUploader(Protocol):
    """Anything that turns image bytes into a public URL."""

    async def upload(self, data: bytes, content_type: str) -> str:
        """Upload `data` and return its public URL."""
        ...


def sign(app_id: str, app_key: str, timestamp: str, nonce: str) -> str:
    """Uppercase hex SHA-1 of "appId|appKey|timestamp|nonce"."""
    raw = f"{app_id}|{app_key}|{timestamp}|{nonce}"
    return hashlib.sha1(raw.encode("utf-8")).hexdigest().upper()


def new_nonce() -> str:
    """21 random hex characters."""
    return secrets.token_hex(11)[:21]


def suffix_for(content_type: str) -> str:
    """The file suffix the upload service expects for a MIME type ("image/jpeg" → "jpg")."""
    subtype = content_type.split(";")[0].strip().lower().partition("/")[2] or "jpg"
    return _SUFFIXES.get(subtype, subtype)


def file_type_for(content_type: str) -> str:
    """fType for a MIME type: picture, video or audio."""
    return _FILE_TYPES.get(content_type.split("/")[0].strip().lower(), "picture")


class ImaUploadService:
    """The IMA upload host, on a shared httpx client."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        base_url: str,
        api_key: SecretStr,
        app_id: str = DEFAULT_UPLOAD_APP_ID,
        app_key: SecretStr | str = DEFAULT_UPLOAD_APP_KEY,
        timeout_s: float = 30.0,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key
        self._app_id = app_id
        self._app_key = app_key if isinstance(app_key, SecretStr) else SecretStr(app_key)
        self._timeout = timeout_s

    def __repr__(self) -> str:
        return f"ImaUploadService(base_url={self._base_url!r})"

    def token_params(
        self, content_type: str, *, timestamp: str | None = None, nonce: str | None = None
    ) -> dict[str, str]:
        """The query of the upload-token request."""
        key = self._api_key.get_secret_value()
        app_key = self._app_key.get_secret_value()
        ts = timestamp or str(int(time.time()))
        nc = nonce or new_nonce()
        return {
            "appUid": key,
            "appId": self._app_id,
            "appKey": app_key,
            "cmimToken": key,
            "sign": sign(self._app_id, app_key, ts, nc),
            "timestamp": ts,
            "nonce": nc,
            "fService": "privite",  # sic: the service's spelling
            "fType": file_type_for(content_type),
            "fSuffix": suffix_for(content_type),
            "fContentType": content_type,
        }

    async def upload(self, data: bytes, content_type: str) -> str:
        """Upload `data` and return its public (fdl) URL.

        Raises ImageUploadFailed, or Unauthorized / RateLimited / NetworkError when the cause
        is the key or the connection rather than the image."""
        try:
            ful, fdl = await self._token(content_type)
            await self._put(ful, data, content_type)
        except _PASS_THROUGH:
            raise
        except ImaError as e:
            raise ImageUploadFailed(e.detail, code=e.code, http_status=e.http_status) from None
        log.info("image uploaded (%d bytes, %s)", len(data), content_type)
        return fdl

    async def _token(self, content_type: str) -> tuple[str, str]:
        try:
            resp = await self._http.get(
                f"{self._base_url}{TOKEN_PATH}", params=self.token_params(content_type), timeout=self._timeout
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            # `from None`: the chained httpx error would carry the URL, and the key is in it
            raise NetworkError("could not reach the upload service") from None
        except httpx.HTTPError as e:
            raise ImageUploadFailed(f"upload token request failed ({type(e).__name__})") from None
        data = decode(resp.status_code, resp.content)
        if not isinstance(data, dict) or not data.get("ful") or not data.get("fdl"):
            raise ImageUploadFailed("upload token answer without ful/fdl")
        return str(data["ful"]), str(data["fdl"])

    async def _put(self, ful: str, data: bytes, content_type: str) -> None:
        try:
            resp = await self._http.put(
                ful, content=data, headers={"Content-Type": content_type}, timeout=max(self._timeout, 60.0)
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout):
            raise NetworkError("could not reach the upload storage") from None
        except httpx.HTTPError as e:
            raise ImageUploadFailed(f"upload failed ({type(e).__name__})") from None
        if not 200 <= resp.status_code <= 299:
            raise ImageUploadFailed(
                f"upload storage answered HTTP {resp.status_code}", http_status=resp.status_code
            )
