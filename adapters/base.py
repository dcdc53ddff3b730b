"""The neutral types and protocols, owned by the core (bot.chat), re-exported for adapters."""

from __future__ import annotations

from bot.chat import (
    Adapter,
    Alternative,
    Conversation,
    Core,
    FailureView,
    Handler,
    ImageInput,
    Incoming,
    JobHandle,
    JobSummary,
    ModelChoice,
    NoticeView,
    ProgressView,
    ReplyTarget,
    VideoView,
)

__all__ = [
    "Adapter",
    "Alternative",
    "Conversation",
    "Core",
    "FailureView",
    "Handler",
    "ImageInput",
    "Incoming",
    "JobHandle",
    "JobSummary",
    "ModelChoice",
    "NoticeView",
    "ProgressView",
    "ReplyTarget",
    "VideoView",
]
