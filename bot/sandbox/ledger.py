"""The ledger: one entry per task created (and charged), for tests to prove nothing was charged twice.

With `SandboxConfig.ledger_file` set, each entry is also appended to that file as one JSON line,
so a process outside the sandbox (benchmarks/chaos.py) can count what was paid, and for what.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
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
    #: the failure the sandbox injected into this task (fail rate or forced), if any
    injected_failure: str | None = None
    #: how its create was answered: "ok", "slow" (late) or "502" (a gateway's HTML page)
    answer: str = "ok"
    #: when its render finishes (unix seconds): benchmarks measure how late the bot learns of it
    ready_at: float | None = None

    def json_line(self) -> str:
        """The entry as one JSON line: the task, the key that paid, the points, and what was
        asked for (every field that makes two creates the same request, the prompt included)."""
        return json.dumps(
            {
                "task_id": self.task_id,
                "key_fingerprint": self.key_fingerprint,
                "points": self.credit,
                "task_type": self.task_type,
                "model_id": self.model_id,
                "model_version": self.model_version,
                "attribute_id": self.attribute_id,
                "prompt": self.prompt,
                "parameters": self.parameters,
                "images": list(self.images),
                "created_at": self.created_at,
                "injected_failure": self.injected_failure,
                "answer": self.answer,
                "ready_at": self.ready_at,
            },
            ensure_ascii=False,
        )


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The entries of a JSON-lines file such as the ledger (none when it does not exist yet)."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


class LedgerFile:
    """Appends entries to a JSON-lines file, each line in one write: a reader never waits for
    the sandbox to stop, and sees whole lines whenever it looks."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def append(self, entry: LedgerEntry) -> None:
        os.write(self._fd, (entry.json_line() + "\n").encode("utf-8"))

    def close(self) -> None:
        os.close(self._fd)
