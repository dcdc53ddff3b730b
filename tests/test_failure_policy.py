"""One table says what the bot does about each kind of failure."""

from __future__ import annotations

import re
from pathlib import Path

from bot.ima import errors
from bot.ima.errors import (
    POLICY,
    CreateUncertain,
    ImaError,
    Refused,
    TaskFailed,
    Transient,
    Uncertain,
    policy,
)

ROOT = Path(__file__).resolve().parent.parent


def _error_classes() -> list[type[ImaError]]:
    return [c for c in vars(errors).values() if isinstance(c, type) and issubclass(c, ImaError)]


def test_every_error_kind_and_every_ending_of_a_job_has_a_policy() -> None:
    kinds = {c.kind for c in _error_classes()}
    endings = set(
        re.findall(r'JobFailed\("(\w+)"', (ROOT / "bot" / "orchestrator.py").read_text(encoding="utf-8"))
    )
    assert sorted((kinds | endings) - set(POLICY)) == []


def test_every_concrete_error_is_in_exactly_one_group_or_is_a_failed_task() -> None:
    groups = (Refused, Transient, Uncertain)
    for cls in _error_classes():
        if cls in (ImaError, *groups) or cls is TaskFailed:
            continue
        assert sum(issubclass(cls, g) for g in groups) == 1, cls


def test_every_error_class_says_what_it_means() -> None:
    assert [c.__name__ for c in _error_classes() if not (c.__doc__ or "").strip()] == []


def test_a_create_that_may_have_gone_through_is_never_retried_nor_offered_again() -> None:
    p = policy(CreateUncertain.kind)
    assert not p.retry and not p.button and not p.alternatives and not CreateUncertain().retryable


def test_refusals_of_the_key_or_the_account_offer_no_retry_button() -> None:
    assert not policy("unauthorized").button and not policy("insufficient_points").button


def test_only_the_services_own_500_lowers_a_parameter() -> None:
    assert [k for k, p in POLICY.items() if p.degrade] == ["server_error"]
