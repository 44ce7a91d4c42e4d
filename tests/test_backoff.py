"""The one back-off formula (jobs/backoff.py) every retry in the pipeline uses."""

from __future__ import annotations

import pytest

from jobs.backoff import Backoff, backoff_delay


def test_doubles_from_base_and_stops_at_cap() -> None:
    top = [backoff_delay(n, 0.5, 6.0, rand=lambda: 1.0) for n in range(1, 7)]
    assert top == [0.5, 1.0, 2.0, 4.0, 6.0, 6.0]


def test_full_jitter_spans_zero_to_ceiling_and_half_jitter_the_upper_half() -> None:
    assert backoff_delay(3, 1.0, 60.0, rand=lambda: 0.0) == 0.0
    assert backoff_delay(3, 1.0, 60.0, jitter="half", rand=lambda: 0.0) == pytest.approx(2.0)
    assert backoff_delay(3, 1.0, 60.0, jitter="half", rand=lambda: 1.0) == pytest.approx(4.0)


def test_a_huge_failure_count_is_the_cap_not_an_overflow() -> None:
    assert backoff_delay(10_000, 5.0, 3600.0, rand=lambda: 1.0) == 3600.0


def test_outage_backoff_grows_while_failing_and_starts_over_after_a_success() -> None:
    backoff = Backoff(base_s=0.2, cap_s=2.0)
    assert not backoff.failing
    delays = [backoff.next_delay() for _ in range(8)]
    assert backoff.failing
    assert 0.1 <= delays[0] <= 0.2
    assert all(1.0 <= d <= 2.0 for d in delays[4:])
    backoff.reset()
    assert not backoff.failing
    assert backoff.next_delay() <= 0.2
