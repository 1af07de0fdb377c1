"""A vendor outage through Parley's router: how fast the fallback answers once the primary's circuit breaker is open.

Goal (issue): with the primary returning 500s or hanging, P95 time to a fallback answer once the breaker is open
<= 20 ms.

Setup: bench/_upstream.py in its own process on 127.0.0.1 serves both vendors: the primary is its /fail (500 with an
OpenAI error body on every call) or /hang (reads the request, never answers) prefix, the fallback its healthy one (20
content chunks, no delay). A real providers catalog (Catalog.model_validate, build_providers): primary with timeout_s
2 so that a hang costs 2 s per attempt, fallback with timeout_s 30; chain [primary, fallback]; Router with its default
breaker (core.llm.resilience.CircuitBreaker: opens after 5 consecutive failures, or more than half of the last 20
calls; stays open 30 s) and its default 2 attempts per route for `complete` (a stream is never retried).
For each outage (500, hang) and each call (`complete`, `stream`), with a fresh Router:
  1. requests one at a time until the primary's breaker is open (at most OPEN_MAX_REQUESTS / OPEN_MAX_S): how many
     requests and how long the outage cost before the breaker opened. Each still gets the fallback's answer.
  2. OPEN_REQUESTS requests one at a time with the breaker open (bounded by OPEN_PHASE_MAX_S, well inside the 30 s it
     stays open): time to the fallback's answer, for `stream` the time to its first token (and to its last chunk).
Anchor: the same requests with a one-route chain [fallback], same run.
Then the breaker disabled (new_breaker gives a CircuitBreaker that never opens), NO_BREAKER_REQUESTS concurrent
requests per outage and call: what every request would pay without it.
Latencies are one request at a time, so they are not queueing; the goal's P95 is the worst of the four
(outage x call) P95s with the breaker open. Takes about 40 s, most of it the hang cases waiting out timeouts.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bench._data import code_line, machine_line
from bench._harness import percentile
from bench._upstream import TEXT, Upstream, running
from core.llm.base import ChatMessage
from core.llm.catalog import Catalog, build_providers
from core.llm.resilience import BreakerState, CircuitBreaker
from core.llm.router import Route, Router

PRIMARY, FALLBACK = Route("primary", "big"), Route("fallback", "small")
PRIMARY_TIMEOUT_S = 2.0
OPEN_MAX_REQUESTS, OPEN_MAX_S = 20, 40.0
WARM_UP, OPEN_REQUESTS, OPEN_PHASE_MAX_S = 20, 500, 20.0
NO_BREAKER_REQUESTS = 10
REQUEST_BOUND_S = 15.0  # no single request may take longer: 2 attempts x 2 s + backoff is about 4.3 s
GOAL_P95_MS = 20.0
MESSAGES = [ChatMessage("user", "How long do refunds take to reach my card?")]
EXPECTED = "".join(TEXT)


def catalog(primary_url: str, fallback_url: str) -> Catalog:
    model = {"input_per_mtok": 2.5, "output_per_mtok": 10, "context_tokens": 128000}
    return Catalog.model_validate(
        {
            "providers": {
                "primary": {
                    "protocol": "openai",
                    "base_url": primary_url,
                    "timeout_s": PRIMARY_TIMEOUT_S,
                    "models": {"big": model},
                },
                "fallback": {
                    "protocol": "openai",
                    "base_url": fallback_url,
                    "timeout_s": 30,
                    "models": {"small": model},
                },
            }
        }
    )


@dataclass(frozen=True)
class Answer:
    first_s: float  # to the whole answer (complete) or to the first token (stream)
    last_s: float
    route: Route | None
    skipped: tuple[str, ...]


Call = Callable[[Router, list[Route]], Awaitable[Answer]]


async def complete(router: Router, chain: list[Route]) -> Answer:
    started = time.perf_counter()
    async with asyncio.timeout(REQUEST_BOUND_S):
        routed = await router.complete(chain=chain, messages=MESSAGES, max_tokens=64)
    elapsed = time.perf_counter() - started
    if routed.text != EXPECTED:
        raise RuntimeError(f"wrong answer {routed.text[:40]!r}")
    return Answer(elapsed, elapsed, routed.route, routed.skipped)


async def stream(router: Router, chain: list[Route]) -> Answer:
    started = time.perf_counter()
    first, parts = None, []
    async with asyncio.timeout(REQUEST_BOUND_S):
        routed = router.stream(chain=chain, messages=MESSAGES, max_tokens=64)
        async for delta in routed.deltas:
            if delta.text:
                first = first or time.perf_counter()
                parts.append(delta.text)
    end = time.perf_counter()
    if "".join(parts) != EXPECTED or first is None:
        raise RuntimeError(f"wrong answer {''.join(parts)[:40]!r}")
    return Answer(first - started, end - started, routed.route, tuple(routed.skipped))


CALLS: dict[str, Call] = {"complete": complete, "stream": stream}


@dataclass
class Run:
    answers: list[Answer] = field(default_factory=list)
    seconds: float = 0.0

    def ms(self, which: str = "first_s") -> list[float]:
        return [getattr(a, which) * 1000 for a in self.answers]

    def p(self, q: float, which: str = "first_s") -> float:
        values = self.ms(which)
        return percentile(values, q) if values else math.nan

    def by_fallback(self) -> int:
        return sum(a.route == FALLBACK for a in self.answers)


async def sequential(router: Router, call: Call, chain: list[Route], count: int, max_s: float) -> Run:
    run = Run()
    started = time.perf_counter()
    for _ in range(count):
        if time.perf_counter() - started > max_s:
            break
        run.answers.append(await call(router, chain))
    run.seconds = time.perf_counter() - started
    return run


async def until_open(router: Router, call: Call) -> Run:
    run = Run()
    started = time.perf_counter()
    while router.breaker(PRIMARY).state is not BreakerState.OPEN:
        if len(run.answers) >= OPEN_MAX_REQUESTS or time.perf_counter() - started > OPEN_MAX_S:
            break
        run.answers.append(await call(router, [PRIMARY, FALLBACK]))
    run.seconds = time.perf_counter() - started
    return run


async def concurrently(router: Router, call: Call, count: int) -> Run:
    started = time.perf_counter()
    answers = await asyncio.gather(*(call(router, [PRIMARY, FALLBACK]) for _ in range(count)))
    return Run(list(answers), time.perf_counter() - started)


@dataclass
class Outage:
    name: str
    opening: dict[str, Run] = field(default_factory=dict)
    opened: dict[str, bool] = field(default_factory=dict)
    open_: dict[str, Run] = field(default_factory=dict)
    still_open: dict[str, bool] = field(default_factory=dict)
    skipped_open: dict[str, int] = field(default_factory=dict)  # breaker-open answers that say "circuit open"
    no_breaker: dict[str, Run] = field(default_factory=dict)


def never_opens() -> CircuitBreaker:
    return CircuitBreaker(failures=10**9, error_rate=1.0)  # a failure share above 100% never happens


async def measure(upstream: Upstream) -> tuple[dict[str, Run], list[Outage]]:
    anchors: dict[str, Run] = {}
    outages = []
    for name, primary_url in (("primary answers 500", upstream.fail_url), ("primary hangs", upstream.hang_url)):
        cat = catalog(primary_url, upstream.ok_url)
        providers = build_providers(cat, environ={})
        try:
            if not anchors:
                router = Router(providers=providers, catalog=cat)
                for call_name, call in CALLS.items():
                    await sequential(router, call, [FALLBACK], WARM_UP, OPEN_PHASE_MAX_S)
                    anchors[call_name] = await sequential(router, call, [FALLBACK], OPEN_REQUESTS, OPEN_PHASE_MAX_S)
            outage = Outage(name)
            for call_name, call in CALLS.items():
                router = Router(providers=providers, catalog=cat)
                outage.opening[call_name] = await until_open(router, call)
                outage.opened[call_name] = router.breaker(PRIMARY).state is BreakerState.OPEN
                run = await sequential(router, call, [PRIMARY, FALLBACK], OPEN_REQUESTS, OPEN_PHASE_MAX_S)
                outage.open_[call_name] = run
                outage.still_open[call_name] = router.breaker(PRIMARY).state is BreakerState.OPEN
                outage.skipped_open[call_name] = sum(
                    any("circuit open" in reason for reason in a.skipped) for a in run.answers
                )
            for call_name, call in CALLS.items():
                router = Router(providers=providers, catalog=cat, new_breaker=never_opens)
                outage.no_breaker[call_name] = await concurrently(router, call, NO_BREAKER_REQUESTS)
            outages.append(outage)
        finally:
            for provider in providers.values():
                await provider.aclose()
    return anchors, outages


def pcts(run: Run, which: str = "first_s") -> str:
    return f"p50 {run.p(50, which):7.2f} p95 {run.p(95, which):7.2f} p99 {run.p(99, which):7.2f} ms"


def label(call_name: str) -> str:
    return "complete, to the answer" if call_name == "complete" else "stream, to first token"


def report(anchors: dict[str, Run], outages: list[Outage], setup: list[str]) -> None:
    print(
        f"outage: chain [primary, fallback] through core.llm.router.Router, real providers catalog (primary timeout_s "
        f"{PRIMARY_TIMEOUT_S:.0f}), default breaker (5 consecutive failures or >50% of the last 20; open 30 s), "
        f"local OpenAI-protocol upstreams, one request at a time"
    )
    for line in setup:
        print(f"  {line}")
    print(f"anchor: one-route chain [fallback], healthy, {OPEN_REQUESTS} requests each")
    for call_name, run in anchors.items():
        extra = f" | last chunk {pcts(run, 'last_s')}" if call_name == "stream" else ""
        print(f"  {label(call_name):<24} {len(run.answers):4d} answers  {pcts(run)}{extra}")
    worst = 0.0
    for outage in outages:
        print(outage.name)
        for call_name, run in outage.opening.items():
            each = ", ".join(f"{ms / 1000:.2f}" for ms in run.ms("last_s"))
            state = "open" if outage.opened[call_name] else "STILL CLOSED (bound reached)"
            print(
                f"  before the breaker opened, {call_name:<8}: {len(run.answers)} requests in {run.seconds:5.2f} s "
                f"(each {each} s; {run.by_fallback()}/{len(run.answers)} answered by the fallback); breaker {state}"
            )
        for call_name, run in outage.open_.items():
            anchor = anchors[call_name]
            worst = max(worst, run.p(95))
            extra = f" | last chunk {pcts(run, 'last_s')}" if call_name == "stream" else ""
            print(
                f"  breaker open, {label(call_name):<24} {len(run.answers):4d} answers  {pcts(run)}"
                f"  (p95 {run.p(95) - anchor.p(95):+.2f} ms over the anchor){extra}"
            )
            print(
                f"  {'':<38} {run.by_fallback()}/{len(run.answers)} answered by the fallback, "
                f"{outage.skipped_open[call_name]} skipped the primary as 'circuit open'; breaker still open after: "
                f"{'yes' if outage.still_open[call_name] else 'NO'}"
            )
        for call_name, run in outage.no_breaker.items():
            print(
                f"  breaker disabled, {label(call_name):<24} {len(run.answers):2d} concurrent requests: "
                f"p50 {run.p(50):8.1f} ms  max {max(run.ms()):8.1f} ms  "
                f"({run.p(50) / anchors[call_name].p(50):.0f}x the anchor's p50; "
                f"{run.by_fallback()}/{len(run.answers)} answered by the fallback)"
            )
    ok = all(all(o.opened.values()) and all(o.still_open.values()) for o in outages)
    verdict = "PASS" if worst <= GOAL_P95_MS and ok else "FAIL"
    print(
        f"goal: p95 time to a fallback answer once the breaker is open <= {GOAL_P95_MS:.0f} ms: {verdict} "
        f"(worst p95 of the four {worst:.2f} ms, anchor p95 complete {anchors['complete'].p(95):.2f} ms / "
        f"stream first token {anchors['stream'].p(95):.2f} ms; ratio worst/anchor "
        f"{worst / max(anchors['complete'].p(95), anchors['stream'].p(95)):.2f}x)"
    )


def main() -> None:
    import uvloop

    setup = [machine_line(), code_line()]
    started = time.perf_counter()
    with running() as upstream, asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        anchors, outages = runner.run(measure(upstream))
    setup.append(f"after the run ({time.perf_counter() - started:.0f} s): {machine_line()}")
    report(anchors, outages, setup)


if __name__ == "__main__":
    main()
