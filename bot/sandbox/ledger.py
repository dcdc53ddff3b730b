"""The ledger: one entry per task created (and charged), for tests to prove nothing was charged twice."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any


def key_fingerprint(api_key: str) -> str:
    """A short, stable, one-way name for an API key (the key itself is never stored)."""
    return "sha256:" + hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class LedgerEntry:
    """One created task as the service billed it."""

    task_id: str
    key_fingerprint: str
    task_type: str
    model_id: str
    model_name: str
    model_version: str
    attribute_id: int
    credit: int
    prompt: str
    created_at: float  # unix seconds
    parameters: dict[str, Any] = field(default_factory=dict)  # inner parameters as sent
    images: tuple[str, ...] = ()
