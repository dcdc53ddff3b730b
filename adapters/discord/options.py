"""The Discord adapter's data tables (options.toml), loaded once."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path

_FILE = Path(__file__).resolve().parent / "options.toml"


@dataclass(frozen=True)
class Pacing:
    progress_min_interval_s: float
    token_margin_s: float
    autocomplete_timeout_s: float
    default_upload_limit: int
    video_fetch_timeout_s: float
    jobs_limit: int


@dataclass(frozen=True)
class Options:
    resolutions: tuple[str, ...]
    aspect_ratios: tuple[str, ...]
    modes: dict[str, str]  # mode name -> task type
    shot_types: tuple[str, ...]
    switches: dict[str, bool]  # "on" / "off" -> True / False
    images_imply: dict[int, str]  # number of images -> task type
    pacing: Pacing
    #: guild messages without an @-mention longer than this are not read (an answer is short)
    unmentioned_max_chars: int

    def implied_task(self, mode: str | None, images: int) -> str:
        """The task type a /video invocation implies: the mode when images are given, else by count."""
        if images and mode in self.modes:
            return self.modes[str(mode)]
        return self.images_imply.get(min(images, max(self.images_imply)), "text_to_video")


@cache
def options() -> Options:
    """The parsed options.toml."""
    data = tomllib.loads(_FILE.read_text(encoding="utf-8"))
    return Options(
        resolutions=tuple(data["resolutions"]),
        aspect_ratios=tuple(data["aspect_ratios"]),
        modes=dict(data["modes"]),
        shot_types=tuple(data["shot_types"]),
        switches={str(k): bool(v) for k, v in data["switches"].items()},
        images_imply={int(k): v for k, v in data["images_imply"].items()},
        pacing=Pacing(**data["pacing"]),
        unmentioned_max_chars=int(data["unmentioned_max_chars"]),
    )
