"""Real output: a small H.264 mp4 showing the prompt, the model and a frame counter, plus a JPEG cover.

Pure, blocking functions: the server runs them in worker threads (a bounded number at a time).
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import av
from PIL import Image, ImageDraw, ImageFont

from bot.sandbox.data import rules

_BACKGROUNDS = ((28, 40, 64), (52, 28, 64), (24, 60, 48), (64, 44, 24))


class RenderAborted(Exception):
    """The sandbox is stopping; the half-written file was removed."""


@dataclass(frozen=True)
class RenderJob:
    """What to draw and where to put it."""

    video_path: Path
    cover_path: Path
    prompt: str
    model_name: str
    duration_s: float
    aspect_ratio: str
    seed: int = 0


def frame_size(aspect_ratio: str) -> tuple[int, int]:
    """Small even frame dimensions for an aspect ratio such as "16:9" (unknown → the default)."""
    spec = rules()["render"]
    sizes: dict[str, list[int]] = spec["sizes"]
    if aspect_ratio in sizes:
        w, h = sizes[aspect_ratio]
        return int(w), int(h)
    try:
        a, b = (float(x) for x in aspect_ratio.split(":"))
        if a <= 0 or b <= 0:
            raise ValueError(aspect_ratio)
    except ValueError:
        w, h = sizes[spec["default_aspect_ratio"]]
        return int(w), int(h)
    long_side = int(spec["long_side"])
    short = max(2, round(long_side * min(a, b) / max(a, b) / 2) * 2)
    return (long_side, short) if a >= b else (short, long_side)


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    # Pillow's bundled font; CJK glyphs may show as boxes, which is fine for a sandbox
    return ImageFont.load_default(size=size)


#: a CJK character, a run of other non-space characters, or spaces: the units lines break between
_TOKENS = re.compile(
    r"[\u2e80-\u9fff\uac00-\ud7af\uff00-\uffef]|[^\s\u2e80-\u9fff\uac00-\ud7af\uff00-\uffef]+|\s+"
)


def _wrap(
    draw: ImageDraw.ImageDraw, text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int
) -> list[str]:
    """Greedy wrap by measured width: between words, between CJK characters, inside a too-long word."""
    lines: list[str] = []
    line = ""
    for token in _TOKENS.findall(" ".join(text.split())):
        if draw.textlength(line + token, font=font) <= width:
            line += token
            continue
        if token.isspace():
            lines.append(line)
            line = ""
            continue
        if line:
            lines.append(line.rstrip())
            line = ""
        for ch in token:  # a word wider than the frame is broken anywhere
            if line and draw.textlength(line + ch, font=font) > width:
                lines.append(line)
                line = ""
            line += ch
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _base_frame(job: RenderJob, size: tuple[int, int]) -> Image.Image:
    w, h = size
    img = Image.new("RGB", size, _BACKGROUNDS[job.seed % len(_BACKGROUNDS)])
    draw = ImageDraw.Draw(img)
    small, body = _font(10), _font(12)
    draw.text((6, 4), job.model_name, font=small, fill=(255, 210, 120))
    draw.text(
        (6, 16), f"{job.aspect_ratio} · {job.duration_s:g}s · IMA sandbox", font=small, fill=(170, 180, 200)
    )
    y = 32
    for line in _wrap(draw, job.prompt, body, w - 12)[: max(1, (h - 60) // 15)]:
        draw.text((6, y), line, font=body, fill=(240, 240, 240))
        y += 15
    return img


def render(job: RenderJob, stop: threading.Event | None = None) -> None:
    """Write the mp4 and its cover. Files appear under their final names only when complete.

    Raises RenderAborted when `stop` is set midway."""
    spec = rules()["render"]
    fps = int(spec["fps"])
    size = frame_size(job.aspect_ratio)
    w, h = size
    frames = max(1, round(job.duration_s * fps))
    base = _base_frame(job, size)
    base.save(job.cover_path.with_suffix(".jpg.part"), "JPEG", quality=80)
    tmp = job.video_path.with_suffix(".mp4.part")
    counter_font = _font(14)
    try:
        with av.open(str(tmp), mode="w", format="mp4", options={"movflags": "+faststart"}) as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height = w, h
            stream.pix_fmt = "yuv420p"
            stream.options = {"preset": "ultrafast", "crf": "30"}
            for i in range(frames):
                if stop is not None and stop.is_set():
                    raise RenderAborted(str(job.video_path))
                img = base.copy()
                draw = ImageDraw.Draw(img)
                # a moving bar and the frame counter make motion visible and frames distinct
                x = int((w - 20) * i / max(1, frames - 1))
                draw.rectangle((x, h - 10, x + 20, h - 4), fill=(255, 120, 80))
                draw.text((w - 90, h - 30), f"{i + 1}/{frames}", font=counter_font, fill=(255, 255, 255))
                frame = av.VideoFrame.from_image(img)  # type: ignore[no-untyped-call]  # PyAV leaves it untyped
                frame.pts = i
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    except BaseException:
        for p in (tmp, job.cover_path.with_suffix(".jpg.part")):
            p.unlink(missing_ok=True)
        raise
    os.replace(job.cover_path.with_suffix(".jpg.part"), job.cover_path)
    os.replace(tmp, job.video_path)
