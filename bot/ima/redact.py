"""Keeping the API key out of log lines.

The upload service takes the key as a query parameter, and httpx logs every request URL at
INFO level; a filter on the "httpx" logger masks any registered secret in those records.
"""

from __future__ import annotations

import logging
import threading

MASK = "***"


class _SecretFilter(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._secrets: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        with self._lock:
            self._secrets[secret] = self._secrets.get(secret, 0) + 1

    def remove(self, secret: str) -> None:
        with self._lock:
            left = self._secrets.get(secret, 0) - 1
            if left > 0:
                self._secrets[secret] = left
            else:
                self._secrets.pop(secret, None)

    def secrets(self) -> list[str]:
        with self._lock:
            return list(self._secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        secrets = self.secrets()
        if not secrets:
            return True
        message = record.getMessage()
        masked = redact(message, secrets)
        if masked != message:
            record.msg, record.args = masked, ()
        return True


_FILTER = _SecretFilter()
#: loggers whose records may carry a request URL
_LOGGERS = ("httpx",)
for _name in _LOGGERS:
    logging.getLogger(_name).addFilter(_FILTER)


def redact(text: str, secrets: list[str]) -> str:
    """`text` with every non-empty secret replaced by a mask."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, MASK)
    return text


def register(secret: str) -> None:
    """Mask `secret` in httpx log records until `unregister` is called as often."""
    if secret:
        _FILTER.add(secret)


def registered() -> list[str]:
    """The secrets registered now (bot.logs masks them in every formatted line)."""
    return _FILTER.secrets()


def unregister(secret: str) -> None:
    """Undo one `register`."""
    if secret:
        _FILTER.remove(secret)
