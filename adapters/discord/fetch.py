"""Fetch a finished video to attach it, but only when it fits the upload limit.

The size is checked first (HEAD / Content-Length) and the download is capped, so an oversized
file is never held in memory: the message then carries the link alone.
"""

from __future__ import annotations

import logging
from pathlib import PurePosixPath
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

_VIDEO_SUFFIXES = (".mp4", ".mov", ".webm")


def filename_for(url: str) -> str:
    """A file name for the attachment, keeping the URL's video suffix."""
    suffix = PurePosixPath(urlsplit(url).path).suffix.lower()
    return f"video{suffix if suffix in _VIDEO_SUFFIXES else '.mp4'}"


class VideoFetcher:
    """Downloads videos up to a byte limit with one shared httpx client."""

    def __init__(self, *, timeout_s: float = 60.0, client: httpx.AsyncClient | None = None) -> None:
        self._client = client or httpx.AsyncClient(timeout=timeout_s, follow_redirects=True)

    async def aclose(self) -> None:
        await self._client.aclose()

    async def fetch_if_fits(self, url: str, limit: int) -> bytes | None:
        """The file's bytes when it is at most `limit` bytes, else None (also on any error)."""
        if not url.startswith(("https://", "http://")):
            return None
        try:
            head = await self._client.head(url)
            length = head.headers.get("content-length")
            if head.is_success and length is not None and length.isdigit() and int(length) > limit:
                return None
            chunks: list[bytes] = []
            size = 0
            async with self._client.stream("GET", url) as response:
                if not response.is_success:
                    return None
                async for chunk in response.aiter_bytes():
                    size += len(chunk)
                    if size > limit:  # no or wrong Content-Length: stop as soon as it is too big
                        return None
                    chunks.append(chunk)
            return b"".join(chunks) or None
        except httpx.HTTPError as e:
            log.info("not attaching %s: %s", url, e)
            return None
