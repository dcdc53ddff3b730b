"""Reading the `{code, message, data}` envelope and turning failures into typed errors.

The service reports a failure by HTTP status, by a `code` in the body (often with HTTP 200),
or only in the message text; all three are read alike.
"""

from __future__ import annotations

import json
from typing import Any

from bot.ima.errors import (
    AttributeMismatch,
    BadParameter,
    ContentPolicy,
    CreditMismatch,
    ImaError,
    InsufficientPoints,
    InvalidProduct,
    ModelUnavailable,
    NoRuleMatch,
    ProtocolError,
    RateLimited,
    ServerError,
    Unauthorized,
)

SUCCESS_CODES: frozenset[int] = frozenset({0, 200})

#: body or HTTP codes with a meaning of their own
_BY_CODE: dict[int, type[ImaError]] = {
    401: Unauthorized,
    403: Unauthorized,
    4008: InsufficientPoints,
    6006: CreditMismatch,
    6009: NoRuleMatch,
    6010: AttributeMismatch,
    400: BadParameter,
    400017: BadParameter,
    422: BadParameter,
    429: RateLimited,
    503: ModelUnavailable,
}

#: message fragments (lower case) that name the failure even when the code does not
_BY_MESSAGE: tuple[tuple[str, type[ImaError]], ...] = (
    # first: the service answers a bad attribute_id with this and then "Insufficient points"
    ("invalid product attribute", InvalidProduct),
    ("no exact rule match", NoRuleMatch),
    ("attribute id does not match", AttributeMismatch),
    ("content policy", ContentPolicy),
    ("sensitive", ContentPolicy),
    ("moderation", ContentPolicy),
    ("insufficient points", InsufficientPoints),
    ("rate limit", RateLimited),
    ("too many requests", RateLimited),
    ("model not available", ModelUnavailable),
    ("model unavailable", ModelUnavailable),
    ("unauthorized", Unauthorized),
    ("invalid api key", Unauthorized),
)


def as_code(value: Any) -> int | None:
    """A body code as an int ("6009" → 6009); None when absent or not a number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        return int(str(value).strip())
    except ValueError:
        return None


def classify(http_status: int, code: Any, message: str) -> type[ImaError]:
    """The error class for a failed answer.

    Message text first (6009/6010/content policy are sometimes only there), then the body code,
    then the HTTP status."""
    low = message.lower()
    for fragment, cls in _BY_MESSAGE:
        if fragment in low:
            return cls
    body_code = as_code(code)
    for c in (body_code, http_status):
        if c is None or c in SUCCESS_CODES:
            continue
        if c in _BY_CODE:
            return _BY_CODE[c]
    for c in (body_code, http_status):
        if c is not None and 500 <= c <= 599:
            return ServerError
        if c is not None and 400 <= c <= 499:
            return BadParameter
    return ImaError


def decode(status: int, content: bytes) -> Any:
    """The `data` of a successful envelope; raises the typed error of a failed one.

    Raises ProtocolError when a 2xx answer is not a readable envelope."""
    try:
        body = json.loads(content) if content else None
    except ValueError:
        body = None
    if not isinstance(body, dict):
        if 200 <= status <= 299:
            raise ProtocolError(
                "the service answered something that is not a JSON envelope", http_status=status
            )
        raise _error(status, None, "")
    code = body.get("code")
    message = str(body.get("message") or body.get("msg") or "")
    if 200 <= status <= 299 and (as_code(code) in SUCCESS_CODES or (code is None and "data" in body)):
        return body.get("data")
    raise _error(status, code, message)


def _error(status: int, code: Any, message: str) -> ImaError:
    cls = classify(status, code, message)
    shown = as_code(code) if as_code(code) is not None else code
    detail = message or f"HTTP {status}"
    return cls(detail, code=shown if shown is not None else status, http_status=status)
