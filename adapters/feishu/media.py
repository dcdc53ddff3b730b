"""Fetching a finished video (size-capped) and reading its duration, for a Feishu media message."""

from __future__ import annotations

import asyncio
import io
from dataclasses import dataclass

import av
import httpx

#: Feishu's limit for an uploaded file
MAX_VIDEO_BYTES = 30 * 1024 * 1024
#: Feishu's limit for a message image
MAX_IMAGE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True)
class Fetched:
    """What a capped download got: the bytes, or why there are none."""

    data: bytes | None
    too_large: bool = False
    error: str | None = None


async def fetch_capped(url: str, limit: int, *, timeout_s: float = 120.0) -> Fetched:
    """Download `url`, giving up as soon as it is known to exceed `limit` bytes (stops reading)."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s, follow_redirects=True) as http:
            async with http.stream("GET", url) as resp:
                if resp.status_code != 200:
                    return Fetched(None, error=f"http {resp.status_code}")
                declared = resp.headers.get("content-length")
                if declared and declared.isdigit() and int(declared) > limit:
                    return Fetched(None, too_large=True)
                buf = bytearray()
                async for chunk in resp.aiter_bytes():
                    buf += chunk
                    if len(buf) > limit:
                        return Fetched(None, too_large=True)
    except httpx.HTTPError as e:
        return Fetched(None, error=type(e).__name__)
    if not buf:
        return Fetched(None, error="empty")
    return Fetched(bytes(buf))


def _probe_duration_ms(data: bytes) -> int | None:
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if container.duration is not None:
                return int(container.duration * 1000 / av.time_base)
    except (av.error.FFmpegError, ValueError):  # not a readable mp4: Feishu will say so
        return None
    return None


async def duration_ms(data: bytes, known_s: float | None) -> int | None:
    """The video's duration in milliseconds: the known one, else read from the file (off the loop)."""
    if known_s is not None and known_s > 0:
        return round(known_s * 1000)
    return await asyncio.to_thread(_probe_duration_ms, data)
