"""A task's life in the sandbox and the task-detail answer it gives at each moment."""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass, field
from typing import Any

from bot.sandbox.validate import CreateRequest

RENDER_FAILED = "Generation failed: the video could not be rendered"


@dataclass
class Task:
    """One created task. `ready_at` is on the monotonic clock (inf = never finishes)."""

    id: str
    request: CreateRequest
    created_at: float  # unix seconds
    ready_at: float
    duration_s: float
    aspect_ratio: str
    fail_message: str | None = None
    render: asyncio.Task[None] | None = None
    polls: int = field(default=0)

    @property
    def never_finishes(self) -> bool:
        return math.isinf(self.ready_at)

    def state(self, now: float) -> str:
        """ "running", "done" or "failed" at monotonic time `now`."""
        if now < self.ready_at:
            return "running"
        if self.fail_message is not None:
            return "failed"
        if self.render is None or not self.render.done():
            return "running"  # the timer is up but the file is not there yet
        if self.render.cancelled() or self.render.exception() is not None:
            return "failed"
        return "done"

    def detail(self, now: float, base_url: str) -> dict[str, Any]:
        """The `data` of a task-detail answer (counts as one poll)."""
        self.polls += 1
        state = self.state(now)
        req = self.request
        if state == "running":
            # the real service alternates: null/"pending", then 0/"processing"
            pending = self.polls % 2 == 1
            media: dict[str, Any] = {
                "resource_status": None if pending else 0,
                "status": "pending" if pending else "processing",
                "url": "",
                "cover": "",
                "duration_str": "",
                "format": "mp4",
            }
            status = media["status"]
        elif state == "failed":
            reason = self.fail_message or RENDER_FAILED
            media = {
                "resource_status": 2,
                "status": "failed",
                "url": "",
                "cover": "",
                "duration_str": "",
                "format": "mp4",
                "error_msg": reason,
            }
            status = "failed"
        else:
            media = {
                "resource_status": 1,
                "status": "success",
                "url": f"{base_url}/media/{self.id}.mp4",
                "cover": f"{base_url}/media/{self.id}.jpg",
                "duration_str": f"{self.duration_s:g}s",
                "format": "mp4",
            }
            status = "success"
        return {
            "id": self.id,
            "task_type": req.task_type,
            "model_id": req.leaf.model_id,
            "model_name": req.leaf.name,
            "model_version": req.leaf.version,
            "status": status,
            "created_at": int(self.created_at),
            "medias": [dict(media) for _ in range(req.n)],
        }
