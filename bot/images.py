"""Check user images before anything is spent on them: real image bytes, size-capped, or a
public https URL that is not a way into a private network."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import re
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from PIL import Image, UnidentifiedImageError

from adapters.base import ImageInput, Incoming

MAX_IMAGES = 4
_FORMATS = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
_SUFFIX = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}


class ImageRejected(Exception):
    """An image the core will not use; `kind` names the locale message image.<kind>."""

    def __init__(self, kind: str, **values: object) -> None:
        super().__init__(kind)
        self.kind = kind
        self.values = values


@dataclass(frozen=True)
class CheckedImage:
    """Either verified bytes with their MIME type, or a public https URL."""

    data: bytes | None
    content_type: str
    url: str | None = None

    @property
    def suffix(self) -> str:
        return _SUFFIX.get(self.content_type, "jpg")


#: a link in the text ("把这张图动起来 https://…/cat.jpg"): found in one linear pass (links do not
#: overlap), then kept when it names a picture. A lazy search for the suffix re-read the rest of
#: the text from every "x://" and took seconds on "a://" repeated.
_LINK = re.compile(r"(?<![a-zA-Z0-9+.-])[a-zA-Z][a-zA-Z0-9+.-]{0,31}://[^\s<>\"'，。、]+")
_PICTURE = re.compile(r"\.(?:jpe?g|png|webp)(?:\?[^\s<>\"'，。、]*)?$", re.IGNORECASE)
_TRAILING = ",;!?)"


def with_linked_images(incoming: Incoming) -> Incoming:
    """Picture links in the text become images of the request (checked like uploads: only
    public https links pass) and leave the text, so they are not sent as part of the prompt."""
    links: list[str] = []
    pieces: list[str] = []
    pos = 0
    for m in _LINK.finditer(incoming.text):
        link = m[0].rstrip(_TRAILING)
        if _PICTURE.search(link):
            links.append(link)
            pieces += [incoming.text[pos:m.start()], " "]
            pos = m.start() + len(link)
    if not links:
        return incoming
    text = " ".join(("".join(pieces) + incoming.text[pos:]).split())
    linked = tuple(ImageInput(url=u, filename=u.rsplit("/", 1)[-1][:80]) for u in links)
    return replace(incoming, text=text, images=incoming.images + linked)


def human_size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{max(1, n // 1024)} KB"


def _sniff(data: bytes) -> str | None:
    # Pillow reads the header and verifies the structure without decoding all pixels
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            im.verify()
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        return None
    return _FORMATS.get(fmt or "")


def public_https_url(url: str) -> bool:
    """True for an https URL naming a public host (no credentials, no loopback or private IPs)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return False
    host = (parts.hostname or "").lower()
    if parts.scheme != "https" or not host or parts.username or parts.password:
        return False
    if host == "localhost" or host.endswith((".localhost", ".local", ".internal")):
        return False
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return "." in host  # a DNS name; the service fetches it, not us
    return ip.is_global


async def check_images(images: tuple[ImageInput, ...], max_bytes: int) -> list[CheckedImage]:
    """Validate every image or raise ImageRejected for the first bad one."""
    if len(images) > MAX_IMAGES:
        raise ImageRejected("too_many", limit=MAX_IMAGES)
    out: list[CheckedImage] = []
    for img in images:
        if img.data is None:
            if img.url and public_https_url(img.url):
                out.append(CheckedImage(None, img.content_type or "image/jpeg", img.url))
                continue
            raise ImageRejected("bad_url")
        if len(img.data) > max_bytes:
            raise ImageRejected("too_large", size=human_size(len(img.data)), limit=human_size(max_bytes))
        content_type = await asyncio.to_thread(_sniff, img.data)
        if content_type is None:
            raise ImageRejected("not_image", name=img.filename)
        out.append(CheckedImage(img.data, content_type))
    return out
