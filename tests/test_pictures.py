"""Pictures: the pixel count is read from the header and refused before anything is decoded (a
small file can claim a huge canvas); the console's /image checks a file's size with stat before
reading it."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path
from typing import Any, cast

import pytest
from PIL import Image

from adapters.base import ImageInput, Incoming
from adapters.console import ConsoleAdapter
from bot.chat import Core
from bot.core import BotCore
from bot.i18n import t
from bot.images import MAX_PIXELS, ImageRejected, check_images
from bot.sandbox import Sandbox
from tests.conftest import RecordingConversation

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
#: Pillow warns from 89 megapixels on (bot.images silences it; pytest records warnings anew)
pytestmark = pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims width x height: signature, IHDR, a tiny IDAT, IEND (a few dozen bytes)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", ihdr)
        + _chunk(b"IDAT", zlib.compress(b"\0" * 64))
        + _chunk(b"IEND", b"")
    )


def jpeg_claiming(width: int, height: int) -> bytes:
    """A real small JPEG whose frame header (SOF0) is rewritten to claim width x height."""
    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (1, 2, 3)).save(buf, "JPEG")
    data = bytearray(buf.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def real_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (10, 120, 200)).save(buf, "PNG")
    return buf.getvalue()


# -- the pixel count, from the header ---------------------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        png_header(12000, 12000),  # 144 MP: Pillow itself only warns
        png_header(40_001, 1000),
        png_header(20000, 20000),  # 400 MP: Pillow's own guard speaks first
        png_header(1, 2**31 - 1),
        jpeg_claiming(12000, 12000),
        jpeg_claiming(65000, 65000),
    ],
    ids=[
        "png-12000x12000",
        "png-40M+1000",
        "png-20000x20000",
        "png-1xhuge",
        "jpeg-12000x12000",
        "jpeg-65000x65000",
    ],
)
async def test_a_picture_claiming_too_many_pixels_is_refused_in_words(data: bytes) -> None:
    assert len(data) < 2000  # a few bytes on the wire, a bomb once decoded
    with pytest.raises(ImageRejected) as e:
        await check_images((ImageInput(data=data, filename="bomb.png"),), 10 * MB)
    assert e.value.kind == "too_many_pixels"
    assert e.value.values == {"name": "bomb.png", "limit": MAX_PIXELS // 1_000_000}
    for language in ("en", "zh", "zh-Hant"):
        text = t("image.too_many_pixels", language, **e.value.values)
        assert "bomb.png" in text and "40" in text


def test_the_header_is_all_that_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    # decoding would call load(); refusing a 12000 x 12000 header must not
    from bot import images

    def no_decoding(self: Image.Image) -> Any:
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    with pytest.raises(ImageRejected) as e:
        images._inspect(png_header(12000, 12000), "bomb.png")
    assert e.value.kind == "too_many_pixels"


async def test_a_picture_at_the_limit_passes_the_pixel_check() -> None:
    # 8000 x 5000 = the limit: not refused for its pixels (this tiny file fails the structure check)
    with pytest.raises(ImageRejected) as e:
        await check_images((ImageInput(data=png_header(8000, 5000)[:33], filename="x.png"),), 10 * MB)
    assert e.value.kind == "not_image"
    [ok] = await check_images((ImageInput(data=real_png(), filename="ok.png"),), 10 * MB)
    assert ok.content_type == "image/png"


async def test_an_attached_bomb_is_refused_and_nothing_is_spent(core: BotCore, sandbox: Sandbox) -> None:
    conv = RecordingConversation()
    image = ImageInput(data=png_header(12000, 12000), filename="huge.png")
    job = await core.handle(
        Incoming(
            platform="console", chat_id="chat", user_id="u1", text="animate this picture", images=(image,)
        ),
        conv,
    )
    assert job is None and sandbox.ledger == []
    assert conv.texts() == [t("image.too_many_pixels", "en", name="huge.png", limit=40)]


async def test_a_picture_that_may_still_get_its_text_waits_for_a_yes(core: BotCore, sandbox: Sandbox) -> None:
    # held for its text when the bot stopped: the text may come after the restart as its own request
    conv = RecordingConversation()
    picture = ImageInput(data=real_png(), filename="cat.png")
    held = Incoming(
        platform="console", chat_id="chat", user_id="u1", text="", images=(picture,), ask_first=True
    )
    asked = await core.handle(held, conv)
    assert asked is not None and await asked.wait() == "awaiting_confirm"
    assert sandbox.ledger == []
    started = await core.handle(Incoming("console", "chat", "u1", "yes"), RecordingConversation())
    assert started is not None and await started.wait() == "delivered"
    assert [task.task_type for task in sandbox.ledger] == ["image_to_video"]


# -- the console's /image: stat before reading ------------------------------------------------------
class _Core:
    def t(self, key: str, language: str | None, **values: object) -> str:
        return t(key, language, **values)


def _adapter(max_bytes: int = 10 * MB) -> tuple[ConsoleAdapter, io.StringIO]:
    err = io.StringIO()
    adapter = ConsoleAdapter(
        cast(Core, _Core()),  # the console asks it only for translations before a message is sent
        stdin=io.StringIO(),
        stdout=io.StringIO(),
        stderr=err,
        max_image_bytes=max_bytes,
    )
    return adapter, err


def sparse(path: Path, size: int) -> Path:
    with path.open("wb") as f:
        f.truncate(size)
    return path


def test_an_oversized_file_is_refused_without_reading_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    big = sparse(tmp_path / "huge.png", 300 * MB)
    opened: list[str] = []
    real_open = Path.open

    def watching_open(self: Path, *args: Any, **kwargs: Any) -> Any:
        opened.append(self.name)
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", watching_open)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail("read whole"))
    adapter, err = _adapter()
    adapter._attach(str(big))
    assert adapter._pending == [] and opened == []
    assert err.getvalue().strip() == t(
        "console.image_too_large", "en", name="huge.png", size="300.0 MB", limit="10.0 MB"
    )


def test_a_file_within_the_limit_is_attached(tmp_path: Path) -> None:
    picture = tmp_path / "cat.png"
    picture.write_bytes(real_png())
    adapter, err = _adapter()
    adapter._attach(str(picture))
    [attached] = adapter._pending
    assert attached.data == real_png() and attached.filename == "cat.png"
    assert "cat.png" in err.getvalue()


def test_a_file_at_the_limit_is_attached_and_one_byte_more_is_not(tmp_path: Path) -> None:
    exact = sparse(tmp_path / "exact.png", 4096)
    adapter, _ = _adapter(max_bytes=4096)
    adapter._attach(str(exact))
    assert len(adapter._pending) == 1
    sparse(exact, 4097)
    adapter._attach(str(exact))
    assert len(adapter._pending) == 1


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_file_is_said(tmp_path: Path) -> None:
    secret = tmp_path / "locked.png"
    secret.write_bytes(real_png())
    secret.chmod(0)
    adapter, err = _adapter()
    adapter._attach(str(secret))
    assert adapter._pending == [] and err.getvalue().strip() == t(
        "console.image_unreadable", "en", path=str(secret)
    )


def test_the_console_refuses_a_300_mb_file_in_words(tmp_path: Path) -> None:
    big = sparse(tmp_path / "huge.png", 300 * MB)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("IMA_", "FEISHU_", "DISCORD_", "BOT_"))}
    env.update(
        IMA_SANDBOX_TIME_SCALE="0.01",
        BOT_DB_PATH=str(tmp_path / "bot.sqlite3"),
        LANG="C.UTF-8",
        PYTHONIOENCODING="utf-8",
        PYTHONPATH=str(ROOT),
    )
    done = subprocess.run(
        [sys.executable, "-m", "bot", "console"],
        input=f"/image {big}\n",
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "huge.png is 300.0 MB, larger than 10.0 MB" in done.stderr
