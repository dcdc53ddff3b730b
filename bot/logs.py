"""Logging for the process (`python -m bot`): quiet libraries, no secrets, daily files.

- Third-party loggers (aiosqlite writes every SQL statement with its values at DEBUG, prompts
  included; httpx/httpcore, websockets, discord.py and lark-oapi log payloads) are held at
  WARNING even when BOT_LOG_LEVEL is DEBUG, unless BOT_LOG_LEVEL_LIBS says otherwise:
  ``INFO`` for all of them, ``aiosqlite=DEBUG,httpx=INFO`` for some, or both.
  The hold is a filter on the bot's own handlers too, so a library that sets its own logger's
  level later (lark-oapi does, when its client is built) still cannot get past it.
- Every line is redacted after it is formatted, traceback and stack included: the configured
  secrets and those registered with bot.ima.redact never reach a stream or a file.
- BOT_LOG_DIR: also ``bot.log`` in that folder, a new file at midnight, seven days kept.
"""

from __future__ import annotations

import logging
import logging.handlers
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TextIO

from bot.config import Settings
from bot.ima import redact

#: loggers of the libraries the bot uses (each name covers its children: "discord.gateway")
LIBRARIES = (
    "aiosqlite",
    "asyncpg",
    "httpcore",
    "httpx",
    "hpack",
    "websockets",
    "discord",
    "lark_oapi",
    "Lark",
    "aiohttp",
    "urllib3",
    "requests",
)
FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
LOG_FILE = "bot.log"
KEEP_DAYS = 7
#: secrets shorter than this are not masked (they would mask ordinary words)
_MIN_SECRET = 6


def _level(name: str) -> int:
    level = logging.getLevelNamesMapping().get(name.strip().upper())
    if level is None:
        raise ValueError(f"unknown log level {name!r} (use DEBUG, INFO, WARNING, ERROR or CRITICAL)")
    return level


def library_levels(spec: str) -> dict[str, int]:
    """BOT_LOG_LEVEL_LIBS read: every library at WARNING, then ``LEVEL`` for all of them and
    ``name=LEVEL`` for one (names need not be in LIBRARIES: ``asyncio=DEBUG`` works too)."""
    levels = dict.fromkeys(LIBRARIES, logging.WARNING)
    for item in (i.strip() for i in spec.split(",")):
        if "=" in item:
            name, level = item.split("=", 1)
            levels[name.strip()] = _level(level)
        elif item:
            levels.update(dict.fromkeys(LIBRARIES, _level(item)))
    return levels


class HoldLibraries(logging.Filter):
    """Drops a library's record below the level set for that library (its children included)."""

    def __init__(self, levels: dict[str, int]) -> None:
        super().__init__()
        self.levels = levels

    def filter(self, record: logging.LogRecord) -> bool:
        name = record.name
        while True:
            level = self.levels.get(name)
            if level is not None:
                return record.levelno >= level
            if "." not in name:
                return True
            name = name.rsplit(".", 1)[0]


class RedactingFormatter(logging.Formatter):
    """A formatter whose whole output — message, arguments, traceback, stack — is redacted."""

    def __init__(self, secrets: Callable[[], Iterable[str]], fmt: str = FORMAT) -> None:
        super().__init__(fmt)
        self._secrets = secrets

    def format(self, record: logging.LogRecord) -> str:
        return redact.redact(super().format(record), [s for s in self._secrets() if len(s) >= _MIN_SECRET])


def configured_secrets(settings: Settings) -> list[str]:
    values = (
        settings.ima_api_key,
        settings.feishu_app_secret,
        settings.discord_token,
        settings.ima_upload_app_key,
    )
    return [s.get_secret_value() for s in values if s is not None]


def daily_file(log_dir: Path) -> logging.handlers.TimedRotatingFileHandler:
    """``bot.log`` in `log_dir`: a new file every midnight, the last seven kept."""
    log_dir.mkdir(parents=True, exist_ok=True)
    return logging.handlers.TimedRotatingFileHandler(
        log_dir / LOG_FILE,
        when="midnight",
        backupCount=KEEP_DAYS,
        encoding="utf-8",
        delay=True,
    )


def _ours(handler: logging.Handler) -> bool:
    return isinstance(handler.formatter, RedactingFormatter)


def adopt(name: str) -> None:
    """Take over a library logger that brought its own handler (lark-oapi prints to stdout
    with one): its records go through the bot's handlers only, held and redacted like the rest.
    Call after the library is imported."""
    logger = logging.getLogger(name)
    for handler in list(logger.handlers):
        if not _ours(handler):
            logger.removeHandler(handler)
    logger.propagate = True


def setup(
    settings: Settings, *, stream: TextIO | None = None, terminal_level: int | None = None
) -> list[logging.Handler]:
    """Configure the root logger from `settings`; returns the handlers installed.

    `terminal_level` raises the stream's threshold alone (the console chat keeps routine lines
    out of the conversation while a log file still gets them)."""
    level = _level(settings.bot_log_level)
    libraries = library_levels(settings.bot_log_level_libs)
    configured = configured_secrets(settings)
    formatter = RedactingFormatter(lambda: [*configured, *redact.registered()])
    hold = HoldLibraries(libraries)

    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr if stream is None else stream)]
    if terminal_level is not None:
        handlers[0].setLevel(terminal_level)
    if settings.bot_log_dir is not None:
        handlers.append(daily_file(settings.bot_log_dir))
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(hold)
    root = logging.getLogger()
    for previous in list(root.handlers):  # only these handlers write: nothing unredacted
        root.removeHandler(previous)
        if _ours(previous):
            previous.close()
    for handler in handlers:
        root.addHandler(handler)
    root.setLevel(level)
    for name, lib_level in libraries.items():
        logging.getLogger(name).setLevel(lib_level)
        if logging.getLogger(name).handlers:
            adopt(name)
    return handlers
