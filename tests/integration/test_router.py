"""The fallback chain against two fake vendors on 127.0.0.1: one OpenAI-protocol primary, one Anthropic fallback."""

import asyncio
import time
from contextlib import ExitStack

import pytest

from core.llm.base import ChatMessage, ProviderError
from core.llm.catalog import Catalog, build_providers
from core.llm.resilience import BreakerState, CircuitBreaker
from core.llm.router import NoRouteAvailable, Route, Router
from tests.fakes.vendors import Answer, BreakMidStream, Fail, Hang, serve_vendor

MESSAGES = [ChatMessage("user", "How long do refunds take?")]
PRIMARY, FALLBACK = Route("primary", "big"), Route("fallback", "small")
CHAIN = [PRIMARY, FALLBACK]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


@pytest.fixture
def vendors():
    with ExitStack() as stack:
        primary = stack.enter_context(serve_vendor())
        fallback = stack.enter_context(serve_vendor(anthropic=True))
        catalog = Catalog.model_validate(
            {
                "providers": {
                    "primary": {
                        "protocol": "openai",
                        "base_url": primary.base_url,
                        "timeout_s": 0.5,
                        "models": {"big": {"input_per_mtok": 2.5, "output_per_mtok": 10, "context_tokens": 128000}},
                    },
                    "fallback": {
                        "protocol": "anthropic",
                        "base_url": fallback.base_url,
                        "models": {"small": {"input_per_mtok": 0.8, "output_per_mtok": 4, "context_tokens": 200000}},
                    },
                }
            }
        )
        clock = Clock()

        def router():
            return Router(
                providers=build_providers(catalog, environ={}),
                catalog=catalog,
                new_breaker=lambda: CircuitBreaker(failures=2, open_s=30, clock=clock),
            )

        yield primary, fallback, router, clock


def run_with(router_factory, work):
    async def main():
        router = router_factory()
        try:
            return await work(router)
        finally:
            for provider in router._providers.values():
                await provider.aclose()

    return asyncio.run(main())


def test_the_first_healthy_route_answers_and_its_cost_is_priced(vendors):
    primary, fallback, router, _ = vendors
    routed = run_with(router, lambda r: r.complete(chain=CHAIN, messages=MESSAGES))
    assert routed.route == PRIMARY and routed.text == Answer().text and routed.skipped == ()
    assert routed.cost_usd == pytest.approx((12 * 2.5 + 9 * 10) / 1e6)
    assert len(primary.requests) == 1 and fallback.requests == []


def test_a_failing_primary_is_retried_then_the_fallback_answers(vendors):
    primary, _fallback, router, _ = vendors
    primary.then(Fail(500), Fail(503))
    routed = run_with(router, lambda r: r.complete(chain=CHAIN, messages=MESSAGES))
    assert routed.route == FALLBACK and routed.cost_usd == pytest.approx((12 * 0.8 + 9 * 4) / 1e6)
    assert len(primary.requests) == 2 and "503" in routed.skipped[0]


def test_an_outage_opens_the_breaker_and_later_requests_go_straight_to_the_fallback(vendors):
    primary, _fallback, router, _ = vendors
    primary.then(*[Hang(5)] * 10)

    async def work(r):
        for _ in range(2):  # one timed-out attempt each (a fallback follows: no second wait), then the fallback
            started = time.perf_counter()
            assert (await r.complete(chain=CHAIN, messages=MESSAGES)).route == FALLBACK
            assert time.perf_counter() - started < 0.9, "the timed-out primary was waited out twice"
        assert r.breaker_states()[str(PRIMARY)] is BreakerState.OPEN
        timings = []
        for _ in range(5):
            started = time.perf_counter()
            routed = await r.complete(chain=CHAIN, messages=MESSAGES)
            timings.append(time.perf_counter() - started)
            assert routed.route == FALLBACK and routed.skipped == ("primary/big: circuit open",)
        return timings

    timings = run_with(router, work)
    assert len(primary.requests) == 2, "the dead vendor was called again while its circuit was open"
    assert max(timings) < 0.25, timings  # no waiting out the dead vendor's 0.5 s timeout


def test_half_open_probes_once_and_a_recovered_vendor_takes_traffic_back(vendors):
    primary, _fallback, router, clock = vendors
    primary.then(Fail(500), Fail(500))

    async def work(r):
        assert (await r.complete(chain=CHAIN, messages=MESSAGES)).route == FALLBACK
        assert (await r.complete(chain=CHAIN, messages=MESSAGES)).route == FALLBACK  # skipped: open
        clock.now = 31
        assert r.breaker_states()[str(PRIMARY)] is BreakerState.HALF_OPEN
        probe = await r.complete(chain=CHAIN, messages=MESSAGES)
        return probe, r.breaker_states()[str(PRIMARY)]

    probe, state = run_with(router, work)
    assert probe.route == PRIMARY and state is BreakerState.CLOSED and len(primary.requests) == 3


def test_a_stream_falls_back_before_its_first_token_but_never_after(vendors):
    primary, fallback, router, _ = vendors
    primary.then(Fail(500))

    async def before_first_token(r):
        stream = r.stream(chain=CHAIN, messages=MESSAGES)
        text = "".join([d.text async for d in stream.deltas])
        return text, stream

    text, stream = run_with(router, before_first_token)
    assert text == Answer().text and stream.route == FALLBACK and stream.usage.output_tokens == 9
    assert stream.cost_usd > 0 and "500" in stream.skipped[0]

    fallback.requests.clear()
    primary.then(BreakMidStream())

    async def after_first_token(r):
        seen = []
        with pytest.raises(ProviderError):
            async for delta in r.stream(chain=CHAIN, messages=MESSAGES).deltas:
                seen.append(delta.text)
        return seen

    assert run_with(router, after_first_token) == ["Refunds ", "reach "]
    assert fallback.requests == [], "a half-sent answer was continued by another model"


def test_when_every_route_fails_the_caller_is_told_why(vendors):
    primary, fallback, router, _ = vendors
    primary.then(Fail(401, "bad key"))
    fallback.then(Fail(400, "bad request"))
    with pytest.raises(NoRouteAvailable) as failed:
        run_with(router, lambda r: r.complete(chain=[*CHAIN, Route("nowhere", "x")], messages=MESSAGES))
    assert [reason.split(":")[0] for reason in failed.value.skipped] == ["primary/big", "fallback/small", "nowhere/x"]
    assert "no such provider configured" in failed.value.skipped[2]
