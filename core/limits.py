"""Per-tenant request rate limits: a token bucket (GCRA) per tenant, in this process's memory.

Each process enforces the limit on its own share of traffic; with N serving processes behind a balancer a tenant gets up
to N times its limit. A shared store (PostgreSQL or Redis) would make it exact at the price of a round trip per request.
"""

from __future__ import annotations

import time
from collections.abc import Callable


class RateLimiter:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._theoretical_arrival: dict[str, float] = {}

    def hit(self, key: str, *, per_minute: int) -> float | None:
        """Count one request; None if allowed, else the seconds to wait before the next one would be."""
        now = self._clock()
        interval = 60.0 / per_minute
        burst = 60.0 - interval  # a full minute's allowance may arrive at once, then it refills steadily
        tat = max(self._theoretical_arrival.get(key, now), now)
        if tat - now > burst:
            return tat - now - burst
        self._theoretical_arrival[key] = tat + interval
        return None
