import asyncio

import pytest

from core.llm.base import ProviderError
from core.llm.resilience import BreakerState, CircuitBreaker, with_retries


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_consecutive_failures_open_the_breaker_and_it_refuses_until_the_period_ends():
    clock = Clock()
    breaker = CircuitBreaker(failures=3, open_s=30, clock=clock)
    for _ in range(2):
        breaker.record_failure()
    assert breaker.allow() and breaker.state is BreakerState.CLOSED
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()
    clock.now = 29.9
    assert not breaker.allow()


def test_half_open_lets_one_probe_through_and_its_outcome_decides():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, open_s=10, clock=clock)
    breaker.record_failure()
    clock.now = 10
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow() and not breaker.allow()  # one probe only
    breaker.record_failure()
    assert breaker.state is BreakerState.OPEN and not breaker.allow()  # a failed probe: another full period
    clock.now = 20
    assert breaker.allow()
    breaker.record_success()
    assert breaker.state is BreakerState.CLOSED and breaker.allow() and breaker.allow()


def test_a_high_error_rate_opens_it_without_a_streak():
    breaker = CircuitBreaker(failures=100, error_rate=0.5, window=10, clock=Clock())
    for n in range(1, 11):  # 7 failures in 10, never 3 in a row, the last one a failure
        breaker.record_failure() if n % 3 else breaker.record_success()
    assert breaker.state is BreakerState.OPEN


def failing(*errors, then="ok"):
    calls = []

    async def call():
        calls.append(1)
        if len(calls) <= len(errors):
            raise errors[len(calls) - 1]
        return then

    return call, calls


def error(retryable=True, retry_after_s=None):
    return ProviderError("x", provider="p", retryable=retryable, retry_after_s=retry_after_s)


def test_retryable_failures_are_retried_and_others_are_not():
    call, calls = failing(error())
    assert asyncio.run(with_retries(call, attempts=2, base_delay_s=0.001)) == "ok" and len(calls) == 2
    call, calls = failing(error(retryable=False))
    with pytest.raises(ProviderError):
        asyncio.run(with_retries(call, attempts=3, base_delay_s=0.001))
    assert len(calls) == 1


def test_a_retry_after_longer_than_worth_waiting_goes_straight_to_the_fallback():
    call, calls = failing(error(retry_after_s=60))
    with pytest.raises(ProviderError):
        asyncio.run(with_retries(call, attempts=3, max_delay_s=2))
    assert len(calls) == 1
