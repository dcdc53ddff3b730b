"""SandboxConfig: every knob of the local IMA sandbox."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# the sandbox checks upload signatures with the key the bot uses by default, so a separately
# started sandbox (IMA_BASE_URL=…) accepts the bot's image uploads with no extra setting
from bot.ima.upload import DEFAULT_UPLOAD_APP_KEY

DEFAULT_PORT = 8765
DEFAULT_API_KEY = "ima_sandbox_key"
__all__ = ["DEFAULT_API_KEY", "DEFAULT_PORT", "DEFAULT_UPLOAD_APP_KEY", "SandboxConfig"]


@dataclass(frozen=True)
class SandboxConfig:
    """How a Sandbox serves and behaves.

    `time_scale` multiplies every generation time (0.01 turns ~90 s into ~1 s). The rates are
    probabilities in [0, 1], drawn from RNGs seeded with `seed`, so a run repeats exactly.
    `media_dir` None means a temporary directory removed on stop."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    api_key: str = DEFAULT_API_KEY
    balance: int = 10000
    time_scale: float = 1.0
    fail_rate: float = 0.0
    error_rate_429: float = 0.0
    error_rate_500: float = 0.0
    latency_ms: int = 0
    #: share of creates that go through (task created and charged) but are answered 502 with
    #: an HTML page, as a gateway in front of the service would
    create_502_rate: float = 0.0
    #: share of creates answered `slow_create_ms` late, after the task is created and charged
    slow_create_rate: float = 0.0
    slow_create_ms: int = 0
    seed: int = 0
    media_dir: Path | None = None
    upload_app_key: str = DEFAULT_UPLOAD_APP_KEY
    upload_app_id: str = "webAgent"
    max_upload_bytes: int = 20 * 1024 * 1024
    #: how long an upload token (and its presigned PUT URL) stays valid
    upload_token_ttl_s: float = 900.0
    #: how far an upload-token timestamp may be from the sandbox clock
    upload_clock_skew_s: float = 600.0
    #: when set, every created task is appended here as one JSON line (see ledger.py)
    ledger_file: Path | None = None

    def __post_init__(self) -> None:
        for name in ("fail_rate", "error_rate_429", "error_rate_500", "create_502_rate", "slow_create_rate"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {value}")
        if self.error_rate_429 + self.error_rate_500 > 1.0:
            raise ValueError("error_rate_429 + error_rate_500 must not exceed 1")
        if self.create_502_rate + self.slow_create_rate > 1.0:
            raise ValueError("create_502_rate + slow_create_rate must not exceed 1")
        if self.time_scale < 0:
            raise ValueError("time_scale must not be negative")
        if self.latency_ms < 0 or self.balance < 0 or self.slow_create_ms < 0:
            raise ValueError("latency_ms, slow_create_ms and balance must not be negative")
