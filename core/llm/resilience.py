"""Keeping answers coming while vendors fail: a circuit breaker per provider and model, and bounded retries.

The breaker is what lets a request skip a dead vendor at once instead of waiting out its timeout on every request:
after `failures` consecutive failures, or when more than `error_rate` of the last `window` calls failed, it opens and
refuses calls for `open_s`; then it lets exactly one probe through (half-open) and closes again only if that succeeds.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable
from enum import StrEnum
from typing import TypeVar

from core.llm.base import ProviderError

T = TypeVar("T")


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreaker:
    def __init__(
        self,
        *,
        failures: int = 5,
        error_rate: float = 0.5,
        window: int = 20,
        open_s: float = 30.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._failures_to_open = failures
        self._error_rate = error_rate
        self._outcomes: deque[bool] = deque(maxlen=window)
        self._open_s = open_s
        self._clock = clock
        self._consecutive = 0
        self._opened_at: float | None = None
        self._probing = False

    @property
    def state(self) -> BreakerState:
        if self._opened_at is None:
            return BreakerState.CLOSED
        if self._probing or self._clock() - self._opened_at >= self._open_s:
            return BreakerState.HALF_OPEN
        return BreakerState.OPEN

    def allow(self) -> bool:
        """May a call go to this provider now? In half-open state only one caller gets True: the probe."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._probing:
            self._probing = True
            return True
        return False

    def record_success(self) -> None:
        self._outcomes.append(True)
        self._consecutive = 0
        self._opened_at = None
        self._probing = False

    def abandon(self) -> None:
        """The call let through was cancelled before it had an outcome: let the next caller probe instead."""
        self._probing = False

    def record_failure(self) -> None:
        self._outcomes.append(False)
        self._consecutive += 1
        if self._probing or self._should_open():
            self._opened_at = self._clock()  # a failed probe opens it for another full period
            self._outcomes.clear()
        self._probing = False

    def _should_open(self) -> bool:
        if self._consecutive >= self._failures_to_open:
            return True
        full = len(self._outcomes) == self._outcomes.maxlen
        return full and self._outcomes.count(False) / len(self._outcomes) > self._error_rate


async def with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    attempts: int = 2,
    base_delay_s: float = 0.2,
    max_delay_s: float = 2.0,
    retry_timeouts: bool = True,
    rng: random.Random | None = None,
) -> T:
    """Run `call`, again after a jittered backoff when it fails retryably; honour the vendor's Retry-After, but never
    wait longer than `max_delay_s`: past that, falling back to another provider is the better answer. With
    `retry_timeouts` off, a timed-out call is not repeated (when another provider can answer, the customer has
    waited long enough)."""
    rng = rng or random.Random()  # noqa: S311 - jitter, not security
    for attempt in range(1, attempts + 1):
        try:
            return await call()
        except ProviderError as exc:
            if not exc.retryable or attempt == attempts or (exc.timed_out and not retry_timeouts):
                raise
            backoff = base_delay_s * 2 ** (attempt - 1) * (0.5 + rng.random())  # "equal jitter"
            delay = exc.retry_after_s if exc.retry_after_s is not None else backoff
            if delay > max_delay_s:
                raise
            await asyncio.sleep(delay)
    raise AssertionError("unreachable: the loop returns or raises")
