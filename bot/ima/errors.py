"""Typed IMA errors. Each has a stable `kind`; words for users come from locales/ (key `error.<kind>`).

Three groups say what a failure means for money and for what to do next:
- `Refused`: the service answered "no" to this request; nothing was created or charged.
- `Transient`: worth waiting out and asking again (busy, a network blip, the service's own
  500); on create, IMA's envelope still means nothing was created.
- `Uncertain`: the create may have gone through; never sent again blindly.
`TaskFailed` stands apart: a task was created, ran, and failed.

What the bot does about each kind is one table, `POLICY`: retry automatically, lower a
parameter, offer a retry button, suggest other models.
"""

from __future__ import annotations

from dataclasses import dataclass


class ImaError(Exception):
    """Base of every IMA failure. `kind` is stable and is what the core translates."""

    kind: str = "unknown"

    @property
    def retryable(self) -> bool:
        """Whether the create is tried again automatically (POLICY[kind].retry)."""
        return policy(self.kind).retry

    def __init__(
        self, detail: str = "", *, code: int | str | None = None, http_status: int | None = None
    ) -> None:
        super().__init__(detail or self.kind)
        self.detail = detail
        self.code = code
        self.http_status = http_status

    def __repr__(self) -> str:
        return f"{type(self).__name__}(kind={self.kind!r}, code={self.code!r}, detail={self.detail!r})"


class Refused(ImaError):
    """The service refused this request: nothing was created, nothing charged."""


class Transient(ImaError):
    """A passing condition: waiting and asking again can succeed."""


class Uncertain(ImaError):
    """The outcome is unknown: the request may have had its effect (and its cost)."""


class Unauthorized(Refused):
    """401: the API key is missing, wrong or revoked. Only the operator can fix it."""

    kind = "unauthorized"


class InsufficientPoints(Refused):
    """4008: the account has too few points for this task."""

    kind = "insufficient_points"


class CreditMismatch(Refused):
    """6006: the credit we sent is not the rule's price (prices changed): price it again."""

    kind = "credit_mismatch"


class NoRuleMatch(Refused):
    """6009: no credit rule matches the parameters: complete them from the nearest rule."""

    kind = "no_rule_match"


class AttributeMismatch(Refused):
    """6010: the attribute id is not the rule the service computes: choose the rule again."""

    kind = "attribute_mismatch"


class InvalidProduct(AttributeMismatch):
    """ "Invalid product attribute": the attribute id is unknown to the service (prices changed
    under us). Recovered like 6010, by pricing again from a fresh product list."""

    kind = "invalid_product"


class BadParameter(Refused):
    """400 / 400017: a parameter the model does not take (e.g. Pixverse without `model`)."""

    kind = "bad_parameter"


class ContentPolicy(Refused):
    """The model's content policy refused the prompt (Sora and people)."""

    kind = "content_policy"


class RateLimited(Transient):
    """429: too many requests; wait and ask again."""

    kind = "rate_limited"


class ServerError(Transient):
    """IMA's own failure envelope with a 5xx code. On create it means "not created": only a
    gateway's 5xx without the envelope leaves that open (CreateUncertain)."""

    kind = "server_error"


class ModelUnavailable(Transient):
    """The model is down for now; another model, or later, may work."""

    kind = "model_unavailable"


class Timeout(Transient):
    """The request (or the whole generation) took too long."""

    kind = "timeout"


class NetworkError(Transient):
    """The connection failed before an answer (refused, reset, DNS)."""

    kind = "network"


class ProtocolError(Transient):
    """The service answered something we cannot read (malformed JSON, missing fields)."""

    kind = "unknown"


class CreateUncertain(Uncertain):
    """The create request left this machine and no IMA answer came back (a timeout, a reset, a
    gateway's 5xx without IMA's envelope, an unreadable body): the task may exist and may be
    charged. Never re-sent blindly: not by a retry, a button or a restart."""

    kind = "create_uncertain"


class TaskFailed(ImaError):
    """The task ran and the service reported failure (resource_status 2/3 or status failed)."""

    kind = "task_failed"


class ImageUploadFailed(Transient):
    """The picture could not be uploaded to the service's storage."""

    kind = "image_upload"


@dataclass(frozen=True)
class Policy:
    """What to do when a job fails with one kind of error.

    retry: try the create again automatically (after recovering, see Orchestrator._recover);
    degrade: a second failure at the same settings may lower resolution, then duration;
    button: offer the user a Retry button (and "好的" retries);
    alternatives: suggest two other models;
    charged: the task may have been made and charged, so its credits stay counted in the budgets."""

    retry: bool
    degrade: bool = False
    button: bool = True
    alternatives: bool = True
    charged: bool = False


#: kind -> policy. A kind not listed gets DEFAULT_POLICY.
POLICY: dict[str, Policy] = {
    "unauthorized": Policy(retry=False, button=False),
    "insufficient_points": Policy(retry=False, button=False),
    "content_policy": Policy(retry=False, button=False),
    "credit_mismatch": Policy(retry=True),
    "no_rule_match": Policy(retry=True),
    "attribute_mismatch": Policy(retry=True),
    "invalid_product": Policy(retry=True),
    "bad_parameter": Policy(retry=True, button=False),
    "rate_limited": Policy(retry=True),
    "server_error": Policy(retry=True, degrade=True),
    "model_unavailable": Policy(retry=True),
    "timeout": Policy(retry=True),
    # the bot stopped waiting for a task that exists: it may still finish and be charged, so its
    # credits stay counted, and the same model is not offered again (that could pay twice)
    "render_timeout": Policy(retry=False, button=False, charged=True),
    "network": Policy(retry=True),
    "unknown": Policy(retry=True),
    "image_upload": Policy(retry=True, button=False),
    "task_failed": Policy(retry=False),
    "status_failed": Policy(retry=False),
    # either a button or another model could pay a second time for a video that may still come
    "create_uncertain": Policy(retry=False, button=False, alternatives=False, charged=True),
    # the bot's own endings: a model that cannot do the task, pictures lost before a restart
    "unsupported_task": Policy(retry=False, button=False),
    "interrupted": Policy(retry=False, button=False),
    # a budget says no: nothing another model or a retry would change today
    "over_budget": Policy(retry=False, button=False, alternatives=False),
    # a recovery would cost more than the notice said: a retry plans again at today's price
    "price_rose": Policy(retry=False),
}
DEFAULT_POLICY = Policy(retry=True)


def policy(kind: str) -> Policy:
    """The policy for a failure kind (DEFAULT_POLICY when the kind is not listed)."""
    return POLICY.get(kind, DEFAULT_POLICY)
