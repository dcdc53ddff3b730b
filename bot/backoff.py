"""How long to wait before trying again: one doubling rule for every retry loop."""

from __future__ import annotations

#: past this many doublings any real ceiling is reached; more would overflow a float (2.0**1024)
_MAX_DOUBLINGS = 64


def backoff(attempt: int, first_s: float, cap_s: float) -> float:
    """The wait before retry `attempt` (0: the first retry): `first_s`, doubled with each
    attempt, at most `cap_s` seconds."""
    return min(cap_s, first_s * 2.0 ** min(attempt, _MAX_DOUBLINGS))
