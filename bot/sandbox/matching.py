"""Credit-rule matching as the service does it.

A rule matches when ALL its attributes equal the request's values, compared case- and
type-insensitively ("720p" = "720P", 5 = "5", true = "true"). aspect_ratio never takes part.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: never part of a price
IGNORED = frozenset({"aspect_ratio"})
_NUMBER = re.compile(r"^-?\d+(?:\.\d+)?$")


def canon(value: Any) -> str:
    """A canonical text for a value: numbers without trailing .0, booleans lower case, text upper."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    text = str(value).strip()
    if text.lower() in ("true", "false"):
        return text.lower()
    if _NUMBER.match(text):
        return canon(float(text))
    return text.upper()


def equal(a: Any, b: Any) -> bool:
    """True when two parameter values mean the same."""
    return canon(a) == canon(b)


def matches(rule: Mapping[str, Any], params: Mapping[str, Any]) -> bool:
    """Whether every attribute of `rule` equals the value of the same key in `params`."""
    have = {str(k).lower(): v for k, v in params.items()}
    for key, want in (rule.get("attributes") or {}).items():
        if str(key).lower() in IGNORED:
            continue
        got = have.get(str(key).lower())
        if got is None or not equal(got, want):
            return False
    return True


def matching_rules(rules: list[dict[str, Any]], params: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every rule that matches `params`, in the version's order."""
    return [r for r in rules if matches(r, params)]
