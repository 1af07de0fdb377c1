"""The fallback chain: try each (provider, model) route in order, skip the ones whose breaker is open, retry a route
only for retryable failures and never after the first streamed token, and say which route answered and what it cost.

Which chain a request gets (the tenant's policy, budget, strategy) is decided before this; the router only makes the
chosen chain survive vendor failures. When every route fails it raises NoRouteAvailable, and the caller answers from
the free knowledge-base tier, so a customer always gets a reply.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

from core.llm.base import ChatMessage, ChatParams, Completion, Delta, Provider, ProviderError, Usage
from core.llm.catalog import Catalog
from core.llm.resilience import BreakerState, CircuitBreaker, with_retries

ATTEMPTS_PER_ROUTE = 2
LATENCY_WEIGHT = 0.2  # of the newest answer in a route's moving average: recent enough to notice a slow vendor


@dataclass(frozen=True)
class Route:
    provider: str
    model: str

    def __str__(self) -> str:
        return f"{self.provider}/{self.model}"


@dataclass(frozen=True)
class Routed:
    text: str
    route: Route
    usage: Usage
    cost_usd: float
    latency_ms: float
    skipped: tuple[str, ...] = ()  # why earlier routes did not answer, in order


@dataclass
class RoutedStream:
    """Deltas of the answering route: `route` is set at its first token, `usage` and `cost_usd` when it finishes."""

    deltas: AsyncIterator[Delta]
    skipped: list[str] = field(default_factory=list)
    route: Route | None = None
    usage: Usage | None = None
    cost_usd: float = 0.0


class NoRouteAvailable(Exception):
    def __init__(self, skipped: Sequence[str]) -> None:
        super().__init__("no model route answered: " + "; ".join(skipped))
        self.skipped = tuple(skipped)


class Router:
    def __init__(
        self,
        *,
        providers: dict[str, Provider],
        catalog: Catalog,
        new_breaker: Callable[[], CircuitBreaker] = CircuitBreaker,
        attempts: int = ATTEMPTS_PER_ROUTE,
    ) -> None:
        self._providers = providers
        self._catalog = catalog
        self._new_breaker = new_breaker
        self._breakers: dict[Route, CircuitBreaker] = {}
        self._latency_ms: dict[Route, float] = {}
        self._attempts = attempts

    def breaker(self, route: Route) -> CircuitBreaker:
        if route not in self._breakers:
            self._breakers[route] = self._new_breaker()
        return self._breakers[route]

    def breaker_states(self) -> dict[str, BreakerState]:
        """For /readyz and metrics: every route that has been called, with its breaker's state."""
        return {str(route): breaker.state for route, breaker in self._breakers.items()}

    def latency_ms(self) -> dict[Route, float]:
        """Each route's moving average time to answer (to the first token when streamed), for the `latency` strategy."""
        return dict(self._latency_ms)

    def _measured(self, route: Route, started: float) -> float:
        elapsed = round((time.perf_counter() - started) * 1000, 2)
        previous = self._latency_ms.get(route)
        self._latency_ms[route] = elapsed if previous is None else previous + LATENCY_WEIGHT * (elapsed - previous)
        return elapsed

    def _params(self, route: Route, *, max_tokens: int, temperature: float) -> ChatParams:
        spec = self._catalog.providers.get(route.provider)  # None: a built-in provider (the local model)
        timeout_s = spec.timeout_s if spec else ChatParams.timeout_s
        return ChatParams(model=route.model, max_tokens=max_tokens, temperature=temperature, timeout_s=timeout_s)

    def _cost(self, route: Route, usage: Usage) -> float:
        model = self._catalog.model(route.provider, route.model)
        return model.cost(input_tokens=usage.input_tokens, output_tokens=usage.output_tokens) if model else 0.0

    def _usable(self, route: Route, skipped: list[str]) -> bool:
        if route.provider not in self._providers:
            skipped.append(f"{route}: no such provider configured")
            return False
        if not self.breaker(route).allow():
            skipped.append(f"{route}: circuit open")
            return False
        return True

    async def _attempt(self, route: Route, messages: Sequence[ChatMessage], params: ChatParams) -> Completion:
        """One call, its outcome told to the route's breaker: every failed attempt is evidence, not every request."""
        breaker = self.breaker(route)
        if breaker.state is BreakerState.OPEN:  # this request's previous attempt opened it: stop calling
            raise ProviderError("circuit opened", provider=route.provider, retryable=False)
        try:
            completion = await self._providers[route.provider].chat(messages, params)
        except ProviderError as exc:
            breaker.record_failure()
            if exc.retryable and breaker.state is BreakerState.OPEN:  # no backoff before an attempt that cannot run
                raise ProviderError(
                    f"{exc}; circuit opened", provider=exc.provider, retryable=False, status=exc.status
                ) from None
            raise
        except BaseException:
            breaker.abandon()
            raise
        breaker.record_success()
        return completion

    async def complete(
        self,
        *,
        chain: Sequence[Route],
        messages: Sequence[ChatMessage],
        max_tokens: int = 512,
        temperature: float = 0.2,
    ) -> Routed:
        skipped: list[str] = []
        for position, route in enumerate(chain):
            if not self._usable(route, skipped):
                continue
            params = self._params(route, max_tokens=max_tokens, temperature=temperature)
            attempt = partial(self._attempt, route, messages, params)
            started = time.perf_counter()
            last = position == len(chain) - 1
            try:
                completion = await with_retries(attempt, attempts=self._attempts, retry_timeouts=last)
            except ProviderError as exc:
                skipped.append(f"{route}: {exc}")
                continue
            return Routed(
                text=completion.text,
                route=route,
                usage=completion.usage,
                cost_usd=self._cost(route, completion.usage),
                latency_ms=self._measured(route, started),
                skipped=tuple(skipped),
            )
        raise NoRouteAvailable(skipped)

    def stream(
        self,
        *,
        chain: Sequence[Route],
        messages: Sequence[ChatMessage],
        max_tokens: int = 512,
        temperature: float = 0.2,
    ) -> RoutedStream:
        """Like `complete`, but a route that fails before its first token is not retried: the customer is waiting,
        and the next route is quicker than a backoff. A failure after the first token ends the stream."""
        result = RoutedStream(deltas=None)  # type: ignore[arg-type]  # set just below

        async def deltas() -> AsyncIterator[Delta]:
            for route in chain:
                if not self._usable(route, result.skipped):
                    continue
                provider, breaker = self._providers[route.provider], self.breaker(route)
                params = self._params(route, max_tokens=max_tokens, temperature=temperature)
                sent_any = False
                started = time.perf_counter()
                try:
                    async for delta in provider.stream(messages, params):
                        if delta.text and not sent_any:
                            self._measured(route, started)
                            result.route, sent_any = route, True
                        if delta.usage is not None:
                            result.usage, result.cost_usd = delta.usage, self._cost(route, delta.usage)
                        yield delta
                except ProviderError as exc:
                    breaker.record_failure()
                    if sent_any:  # the customer has seen part of this answer: no other route can take over
                        raise
                    result.skipped.append(f"{route}: {exc}")
                    continue
                except BaseException:
                    breaker.abandon()
                    raise
                breaker.record_success()
                result.route = route
                return
            raise NoRouteAvailable(result.skipped)

        result.deltas = deltas()
        return result
