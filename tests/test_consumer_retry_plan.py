"""What each class of failed call leads to (consumers/retry.py's table), as pure decisions.

The end-to-end behaviour (retries with back-off, dead letters, quota waits) runs against a real
Space in tests/test_consumer_failures.py; here every branch, including the broken-Space one that a
live test cannot provoke on demand, is checked with exact numbers.
"""

from __future__ import annotations

import pytest

from consumers.errors import ErrorKind, QuotaWait, SpaceError
from consumers.retry import plan_failure
from jobs.model import Status
from jobs.settings import load_settings

SETTINGS = load_settings(
    {"max_attempts": 3, "retry_base_seconds": 2.0, "retry_cap_seconds": 300.0}, environ={}
)
NOW = 1_000_000.0


def test_transient_failures_back_off_and_count() -> None:
    plan = plan_failure(SpaceError(ErrorKind.TRANSIENT, "no_gpu", "No GPU"), 1, SETTINGS, now=NOW)
    assert (plan.action, plan.status, plan.count_failure, plan.error_code) == (
        "retry",
        Status.RETRYING,
        True,
        "no_gpu",
    )
    # The second failure: full jitter in [0, 2 * 2^1) seconds.
    assert NOW * 1000 <= plan.due_ms < (NOW + 4.0) * 1000


def test_the_last_allowed_transient_failure_dead_letters_with_its_error() -> None:
    plan = plan_failure(SpaceError(ErrorKind.TRANSIENT, "http_503", "Service Unavailable"), 2, SETTINGS)
    assert (plan.action, plan.error_code, plan.count_failure) == ("dead_letter", "http_503", True)
    assert "3 failed calls" in plan.error_message
    assert "Service Unavailable" in plan.error_message


def test_permanent_failures_fail_at_once() -> None:
    plan = plan_failure(SpaceError(ErrorKind.PERMANENT, "space_rejected", "bad width"), 0, SETTINGS)
    assert (plan.action, plan.error_code, plan.error_message) == ("fail", "space_rejected", "bad width")


@pytest.mark.parametrize(("retry_after", "wait_s"), [(90.0, 90.0), (None, 300.0)])
def test_quota_errors_wait_for_the_quota_without_counting(retry_after: float | None, wait_s: float) -> None:
    error = SpaceError(ErrorKind.QUOTA, "quota_exceeded", "quota", retry_after_s=retry_after)
    plan = plan_failure(error, 2, SETTINGS, now=NOW)
    assert (plan.action, plan.status, plan.count_failure) == ("retry", Status.WAITING_FOR_QUOTA, False)
    assert plan.due_ms == int((NOW + wait_s) * 1000)


def test_every_token_cooling_resumes_when_the_pool_says() -> None:
    plan = plan_failure(QuotaWait(int((NOW + 42) * 1000)), 2, SETTINGS, now=NOW)
    assert (plan.action, plan.status, plan.count_failure) == ("retry", Status.WAITING_FOR_QUOTA, False)
    assert plan.due_ms == int((NOW + 42) * 1000)


def test_a_broken_space_requeues_after_the_circuit_breaker_without_counting() -> None:
    error = SpaceError(ErrorKind.BROKEN, "space_unavailable", "Space is paused")
    plan = plan_failure(error, 2, SETTINGS, paused_until=NOW + 60, now=NOW)
    assert (plan.action, plan.status, plan.count_failure, plan.phase) == (
        "retry",
        Status.RETRYING,
        False,
        "space_unavailable",
    )
    assert plan.due_ms == int((NOW + 60) * 1000)
    soon = plan_failure(error, 2, SETTINGS, now=NOW)
    assert soon.due_ms == int((NOW + 2.0) * 1000)
