"""Settings from the environment and an optional .env file. Secrets are SecretStr: never printed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

SANDBOX_KEY = "ima_sandbox_key"
#: a list setting written "a,b,c" in the environment (or as a JSON list)
CsvList = Annotated[list[str], NoDecode]


class Settings(BaseSettings):
    """Every knob the bot has. Names match the environment variables (case-insensitive)."""

    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    # IMA
    ima_api_key: SecretStr | None = None
    ima_base_url: str = "https://api.imastudio.com"
    ima_im_base_url: str = "https://imapi.liveme.com"
    ima_upload_app_id: str = "webAgent"
    ima_upload_app_key: SecretStr | None = None
    ima_language: Literal["en", "zh"] = "en"
    ima_sandbox_time_scale: float = Field(default=1.0, gt=0)
    ima_product_ttl_s: float = 600.0
    ima_request_timeout_s: float = 30.0
    #: the create call waits longer: a create that times out may be charged and is never re-sent
    ima_create_timeout_s: float = Field(default=60.0, gt=0)
    ima_poll_interval_s: float = 8.0
    ima_job_timeout_s: float = 2400.0  # 40 minutes, as the published client
    ima_max_retries: int = 3

    # the bot
    bot_db_path: Path = Path("data/bot.sqlite3")
    #: sqlite:///path (one process) or postgresql://… (several processes); unset: BOT_DB_PATH
    bot_db_url: str | None = None
    #: how long a process owns a job without renewing (PostgreSQL: a dead process's jobs move on after this)
    bot_lease_s: float = Field(default=30.0, gt=0)
    bot_max_image_bytes: int = 10 * 1024 * 1024
    bot_max_concurrent_jobs: int = 50
    bot_max_jobs_per_user: int = Field(default=3, ge=1)
    bot_confirm_above_credits: int = Field(default=100, ge=0)  # 0: never ask
    bot_user_daily_credits: int | None = Field(default=None, ge=0)  # unset: no limit
    bot_chat_daily_credits: int | None = Field(default=None, ge=0)
    bot_timezone: str = "UTC"
    bot_admins: CsvList = Field(default_factory=list)  # "platform:user_id"
    bot_log_level: str = "INFO"
    #: third-party loggers (aiosqlite, httpx, discord, Lark, …): a level, and/or name=LEVEL pairs
    bot_log_level_libs: str = "WARNING"
    bot_log_dir: Path | None = None  # daily files there (bot.log), kept 7 days

    # Feishu / Lark
    feishu_app_id: str | None = None
    feishu_app_secret: SecretStr | None = None
    feishu_domain: Literal["feishu", "lark"] = "feishu"
    feishu_allowed_chats: CsvList = Field(default_factory=list)
    feishu_allowed_users: CsvList = Field(default_factory=list)  # open_ids; empty: everyone

    # Discord
    discord_token: SecretStr | None = None
    discord_dev_guild: int | None = None
    discord_allowed_guilds: Annotated[list[int], NoDecode] = Field(default_factory=list)
    discord_allowed_roles: CsvList = Field(default_factory=list)  # role ids or names; empty: everyone
    #: sharding: unset = one connection; a count (or "auto") = an AutoShardedClient, running
    #: DISCORD_SHARD_IDS of them when set (each process its own ids), else all of them
    discord_shard_count: int | Literal["auto"] | None = None
    discord_shard_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)

    @field_validator(
        "feishu_allowed_chats",
        "discord_allowed_guilds",
        "bot_admins",
        "feishu_allowed_users",
        "discord_allowed_roles",
        "discord_shard_ids",
        mode="before",
    )
    @classmethod
    def _split_csv(cls, v: object) -> object:
        # allow "a,b,c" in the environment as well as JSON lists
        if isinstance(v, str) and not v.strip().startswith("["):
            return [x.strip() for x in v.split(",") if x.strip()]
        if isinstance(v, str):
            import json

            return json.loads(v)
        return v

    @field_validator("bot_timezone")
    @classmethod
    def _known_zone(cls, v: str) -> str:
        from zoneinfo import ZoneInfo

        try:
            ZoneInfo(v)  # an unknown zone fails at start-up, in words, not on the first budget check
        except (KeyError, ValueError) as e:
            raise ValueError(f"unknown time zone {v!r} (use an IANA name such as Asia/Shanghai)") from e
        return v

    @field_validator("bot_db_url")
    @classmethod
    def _known_database(cls, v: str | None) -> str | None:
        if v is not None and not v.strip():
            return None
        if v is not None and not v.startswith(("sqlite://", "postgresql://", "postgres://")):
            raise ValueError(
                f"BOT_DB_URL must start with sqlite:/// or postgresql:// (got {v.split(':')[0]!r})"
            )
        return v

    @model_validator(mode="after")
    def _shards_fit(self) -> Settings:
        count, ids = self.discord_shard_count, self.discord_shard_ids
        if isinstance(count, int) and count < 1:
            raise ValueError("DISCORD_SHARD_COUNT must be 1 or more (or auto)")
        if ids and not isinstance(count, int):
            raise ValueError("DISCORD_SHARD_IDS needs DISCORD_SHARD_COUNT (the number of shards in all)")
        if isinstance(count, int) and (wrong := [i for i in ids if not 0 <= i < count]):
            raise ValueError(f"DISCORD_SHARD_IDS {wrong} are not below DISCORD_SHARD_COUNT {count}")
        return self

    @field_validator(
        "bot_user_daily_credits",
        "bot_chat_daily_credits",
        "discord_shard_count",
        "bot_log_dir",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, v: object) -> object:
        return None if isinstance(v, str) and not v.strip() else v

    @model_validator(mode="after")
    def _uploads_follow_a_local_api(self) -> Settings:
        # a sandbox started separately serves uploads too: IMA_BASE_URL=http://127.0.0.1:8765
        # alone must not send users' images to the real upload host
        if "ima_im_base_url" not in self.model_fields_set:
            host = urlsplit(self.ima_base_url).hostname or ""
            if host in ("127.0.0.1", "localhost", "::1"):
                self.ima_im_base_url = self.ima_base_url
        return self

    @property
    def db_url(self) -> str:
        """The database to open: BOT_DB_URL, else the SQLite file at BOT_DB_PATH."""
        return self.bot_db_url or f"sqlite:///{self.bot_db_path}"

    @property
    def uses_sandbox(self) -> bool:
        """No key configured: run against the built-in sandbox."""
        return self.ima_api_key is None

    @property
    def feishu_enabled(self) -> bool:
        return bool(self.feishu_app_id and self.feishu_app_secret)

    @property
    def discord_enabled(self) -> bool:
        return self.discord_token is not None

    @property
    def time_scale(self) -> float:
        """Scales the bot's estimates and cadence along with the sandbox's generation times."""
        return self.ima_sandbox_time_scale
