"""Typed IMA errors. Each has a stable `kind`; words for users come from locales/ (key `error.<kind>`)."""

from __future__ import annotations


class ImaError(Exception):
    """Base of every IMA failure. `kind` is stable and is what the core translates."""

    kind: str = "unknown"
    #: False when retrying the same request cannot help (bad key, no credits, policy).
    retryable: bool = True

    def __init__(self, detail: str = "", *, code: int | str | None = None, http_status: int | None = None) -> None:
        super().__init__(detail or self.kind)
        self.detail = detail
        self.code = code
        self.http_status = http_status

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, code={self.code!r}, detail={self.detail!r})"


class Unauthorized(ImaError):
    kind = "unauthorized"
    retryable = False


class InsufficientPoints(ImaError):
    kind = "insufficient_points"
    retryable = False


class CreditMismatch(ImaError):
    kind = "credit_mismatch"


class NoRuleMatch(ImaError):
    kind = "no_rule_match"


class AttributeMismatch(ImaError):
    kind = "attribute_mismatch"


class InvalidProduct(AttributeMismatch):
    """"Invalid product attribute": the attribute id is unknown to the service (prices changed
    under us). Recovered like 6010, by pricing again from a fresh product list."""

    kind = "invalid_product"


class BadParameter(ImaError):
    kind = "bad_parameter"


class RateLimited(ImaError):
    kind = "rate_limited"


class ServerError(ImaError):
    """IMA's own failure envelope with a 5xx code. On create it means "not created": only a
    gateway's 5xx without the envelope leaves that open (CreateUncertain)."""

    kind = "server_error"


class ModelUnavailable(ImaError):
    kind = "model_unavailable"


class ContentPolicy(ImaError):
    kind = "content_policy"
    retryable = False


class Timeout(ImaError):
    """The request (or the whole generation) took too long."""

    kind = "timeout"


class CreateUncertain(ImaError):
    """The create request left this machine and no IMA answer came back (a timeout, a reset, a
    gateway's 5xx without IMA's envelope, an unreadable body): the task may exist and may be
    charged. Never re-sent blindly: not by a retry, a button or a restart."""

    kind = "create_uncertain"
    retryable = False


class NetworkError(ImaError):
    kind = "network"


class TaskFailed(ImaError):
    """The task ran and the service reported failure (resource_status 2/3 or status failed)."""

    kind = "task_failed"


class ImageUploadFailed(ImaError):
    kind = "image_upload"


class ProtocolError(ImaError):
    """The service answered something we cannot read (malformed JSON, missing fields)."""

    kind = "unknown"
