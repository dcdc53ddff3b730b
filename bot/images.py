"""Check user images before anything is spent on them: real image bytes, size-capped, not too
many pixels (read from the header, before anything is decoded). A picture link is fetched by the
bot (bot.links: public addresses only, size-capped) and checked the same way, so IMA only ever
sees the upload service's URLs."""

from __future__ import annotations

import asyncio
import io
import re
import warnings
from dataclasses import dataclass, replace
from urllib.parse import unquote, urlsplit

from PIL import Image, UnidentifiedImageError

from bot import links
from bot.chat import ImageInput, Incoming

MAX_IMAGES = 4
#: pixels a picture may have (8000 x 5000), read from its header before anything is decoded: a
#: small file can claim a huge canvas (a decompression bomb). Pillow itself only warns below
#: 179 megapixels, and a 12000 x 12000 header passed.
MAX_PIXELS = 40_000_000
# Pillow warns from 89 megapixels on; such pictures are refused here in words (MAX_PIXELS is
# lower), so the warning would only print a traceback-like line into the console chat
warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
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
    """Verified bytes with their MIME type (also for a picture fetched from a link: url None).
    A url is only ever one the IMA upload service gave back (a job restored from the store)."""

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
    """Picture links in the text become images of the request (fetched and checked by
    `check_images`) and leave the text, so they are not sent as part of the prompt."""
    found: list[str] = []
    pieces: list[str] = []
    pos = 0
    for m in _LINK.finditer(incoming.text):
        link = m[0].rstrip(_TRAILING)
        if _PICTURE.search(link):
            found.append(link)
            pieces += [incoming.text[pos : m.start()], " "]
            pos = m.start() + len(link)
    if not found:
        return incoming
    text = " ".join(("".join(pieces) + incoming.text[pos:]).split())
    linked = tuple(ImageInput(url=u, filename=u.rsplit("/", 1)[-1][:80]) for u in found)
    return replace(incoming, text=text, images=incoming.images + linked)


def human_size(n: int) -> str:
    return f"{n / 1024 / 1024:.1f} MB" if n >= 1024 * 1024 else f"{max(1, n // 1024)} KB"


def _inspect(data: bytes, name: str) -> str:
    """The picture's MIME type, or ImageRejected. Pillow's open reads the header only: the pixel
    count is known (and refused) before anything is decoded; verify checks the structure."""
    limit = MAX_PIXELS // 1_000_000
    try:
        with Image.open(io.BytesIO(data)) as im:
            fmt = im.format
            width, height = im.size
            if width * height > MAX_PIXELS:
                raise ImageRejected("too_many_pixels", name=name, limit=limit)
            im.verify()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own guard (above 89 / 179 megapixels) spoke first
        raise ImageRejected("too_many_pixels", name=name, limit=limit) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise ImageRejected("not_image", name=name) from None
    content_type = _FORMATS.get(fmt or "")
    if content_type is None:
        raise ImageRejected("not_image", name=name)
    return content_type


def _link_name(url: str) -> str:
    """How to call a linked picture in a message: its file name, else its host."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "image"
    return (unquote(parts.path.rsplit("/", 1)[-1]) or parts.hostname or "image")[:80]


async def _fetch(url: str, max_bytes: int, rules: links.LinkRules | None) -> bytes:
    try:
        return await links.fetch_picture(url, max_bytes, rules=rules)
    except links.LinkRefused as e:
        values = {"name": _link_name(url), "limit": human_size(max_bytes), **e.values}
        raise ImageRejected(e.kind, **values) from None


async def check_images(
    images: tuple[ImageInput, ...], max_bytes: int, *, rules: links.LinkRules | None = None
) -> list[CheckedImage]:
    """Validate every image or raise ImageRejected for the first bad one. A picture given as a
    link is fetched here (under `rules`, by default bot.links.RULES) and checked as bytes."""
    if len(images) > MAX_IMAGES:
        raise ImageRejected("too_many", limit=MAX_IMAGES)
    out: list[CheckedImage] = []
    for img in images:
        data, name = img.data, img.filename
        if data is None:
            if not img.url:
                raise ImageRejected("bad_url")
            data, name = await _fetch(img.url, max_bytes, rules), _link_name(img.url)
        if len(data) > max_bytes:
            raise ImageRejected("too_large", size=human_size(len(data)), limit=human_size(max_bytes))
        content_type = await asyncio.to_thread(_inspect, data, name)
        out.append(CheckedImage(data, content_type))
    return out
