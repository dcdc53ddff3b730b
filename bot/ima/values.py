"""Comparing parameter values the way the service does: case- and type-insensitively."""

from __future__ import annotations

import functools
import re
from typing import Any

# "5", "5.0", "5s", "-1": numbers, optionally with a seconds suffix
_NUMBER = re.compile(r"^(-?\d+(?:\.\d+)?)\s*s?$", re.IGNORECASE)


def norm(value: Any) -> str:
    """A canonical text for a parameter value, so "720p" = "720P", 5 = "5" = "5s", true = "true"."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return _number(float(value))
    return _norm_text(str(value))


@functools.lru_cache(maxsize=4096)
def _norm_text(value: str) -> str:
    # the same few spellings ("720p", "5s", "16:9") are compared thousands of times a minute
    text = value.strip()
    low = text.lower()
    if low in ("true", "false"):
        return low
    m = _NUMBER.match(low)
    if m:
        return _number(float(m.group(1)))
    return text.upper()


def same(a: Any, b: Any) -> bool:
    """True when two parameter values mean the same thing."""
    return norm(a) == norm(b)


def _number(f: float) -> str:
    return str(int(f)) if f.is_integer() else repr(f)
