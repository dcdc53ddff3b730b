"""Reading a task-detail answer into a TaskResult (running, done or failed)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from bot.ima.types import TaskResult

#: resource_status values
_READY = 1
_FAILED = (2, 3)  # failed, deleted
_CLOCK = re.compile(r"^(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")
_SECONDS = re.compile(r"(\d+(?:\.\d+)?)")


def resource_status(media: Mapping[str, Any]) -> int:
    """A media's resource_status; null, "" and anything unreadable count as 0 (processing)."""
    value = media.get("resource_status")
    try:
        return int(str(value).strip()) if value not in (None, "") else 0
    except ValueError:
        return 0


def parse_duration(text: Any) -> float | None:
    """Seconds from a duration_str such as "5s", "5.0", "00:05", "1:02:03" or "5秒"."""
    if text is None or isinstance(text, bool):
        return None
    if isinstance(text, int | float):
        return float(text)
    s = str(text).strip()
    m = _CLOCK.match(s)
    if m:
        hours, minutes, seconds = m.groups()
        return int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)
    m = _SECONDS.search(s)
    if not m:
        return None
    value = float(m.group(1))
    return value / 1000 if s.lower().endswith("ms") else value


def parse_detail(task_id: str, data: Any, *, allow_watermark: bool = False) -> TaskResult:
    """The state of a task from the `data` of a detail answer.

    Done only when every media is at 1, none failed, and a URL is present; while the URL is
    still empty the task counts as running (`allow_watermark` accepts watermark_url instead)."""
    task = _task(data)
    medias = [m for m in task.get("medias") or [] if isinstance(m, Mapping)]
    task_status = str(task.get("status") or "").lower()
    for media in medias:
        if resource_status(media) in _FAILED or str(media.get("status") or "").lower() == "failed":
            return TaskResult(task_id, "failed", error=_reason(media) or _reason(task))
    if task_status == "failed":
        return TaskResult(task_id, "failed", error=_reason(task))
    if not medias or any(resource_status(m) != _READY for m in medias):
        return TaskResult(task_id, "running")
    first = medias[0]
    url = _text(first.get("url"))
    if url is None and allow_watermark:
        url = _text(first.get("watermark_url"))
    if url is None:
        return TaskResult(task_id, "running")
    duration = parse_duration(first.get("duration_str"))
    if duration is None:
        duration = parse_duration(first.get("duration"))
    return TaskResult(task_id, "done", url=url, cover=_text(first.get("cover")), duration_s=duration)


def has_watermark_only(data: Any) -> bool:
    """True when every media is ready but the first offers only a watermark_url so far."""
    task = _task(data)
    medias = [m for m in task.get("medias") or [] if isinstance(m, Mapping)]
    return (
        bool(medias)
        and all(resource_status(m) == _READY for m in medias)
        and _text(medias[0].get("url")) is None
        and _text(medias[0].get("watermark_url")) is not None
    )


def _task(data: Any) -> Mapping[str, Any]:
    if isinstance(data, list):  # some answers wrap the task in a list
        data = data[0] if data else {}
    return data if isinstance(data, Mapping) else {}


def _reason(obj: Mapping[str, Any]) -> str | None:
    for key in ("error_msg", "remark", "fail_reason", "error", "message"):
        text = _text(obj.get(key))
        if text:
            return text
    return None


def _text(value: Any) -> str | None:
    if value is None:
        return None
    s = str(value).strip()
    return s or None
