"""What Parley's LLM router adds on top of the upstream, streaming, side by side with LiteLLM's Router.

Goal (issue): router overhead at 200 concurrent streams against a local OpenAI-protocol upstream <= 0.5x LiteLLM's
(LiteLLM publishes 8 ms P95 at 1k RPS on 4 instances).

Upstream: bench/_upstream.py in its own process on 127.0.0.1 (raw ASGI on uvicorn): 20 content chunks per answer plus
role, finish and usage chunks and [DONE], each its own write, with NO inter-token delay. A delay would only add the same
idle time to every client: at 200 concurrent streams on 2 cores the run is CPU-bound either way (a 1 ms/token delay
would allow 10,000 streams/s, far beyond what the CPU serves), so a delay hides nothing and measures nothing; without
it every millisecond in the figures is work done by a client, a router or the upstream.

Clients, all in this process, same upstream, same request (one user message, max_tokens 64, stream with
stream_options.include_usage), each run in turn (order reversed every round, ROUNDS rounds, pooled):
  anchor:  aiohttp straight to the upstream, each SSE line json.loads-ed, each body read to its end so connections are
           reused: the cheapest correct client here, so the most conservative anchor (a cheaper anchor adds the same
           amount to both routers' overheads and pulls their ratio towards 1).
  httpx:   a reference, not the anchor: httpx 0.28 as Parley's provider first used it (same limits, each stream
           closed at [DONE], so httpx drops the connection). An httpx client that reads to the end and reuses
           connections is not usable at 200 concurrent streams: httpcore 1.0.9's pool bookkeeping is quadratic in
           pooled connections, 15-120 streams/s at 7-50 ms CPU each. This is why the provider moved to httpx2.
  Parley:  core.llm.router.Router.stream with a one-route chain over core.llm.openai.OpenAIProvider (httpx2, the rest
           of each body read after [DONE] so the connection is pooled).
  LiteLLM: litellm.Router.acompletion(stream=True) with an `openai/` model whose api_base is the upstream
           (LiteLLM's own defaults otherwise: its aiohttp transport, retries and cooldowns; no callbacks; cost map
           local, offline mode, logging at ERROR). Skipped, with a line saying so, when litellm is not installed.
Per stream: time to first token (first non-empty content delta) and time to the last chunk (the iterator ends). The
upstream counts requests and connections, so the printout shows each client's upstream requests and new connections
per stream: a client that leaves the body unread after [DONE] opens a new connection for every stream (against a real
vendor, a TLS handshake per stream).
Load: 200 workers in a closed loop (each starts a stream when its last one ends); warm-up WARM_UP_S, or until 200
streams have finished (at most WARM_UP_MAX_S) so that a slow client is measured in its steady state too; then the
streams started in MEASURE_S are kept. Also one stream at a time as an unqueued reference. Every client runs on
uvloop (what uvicorn serves Parley on); gc.freeze() after imports, so the objects LiteLLM's import leaves on the heap
are not rescanned during the other clients' runs.

Overhead = client figure - anchor figure (P50/P95/P99 of each, same run). Also CPU per stream of this process
(time.process_time, all threads), throughput and the upstream's CPU per stream. On 2 cores at 200 concurrent streams a
closed loop's latency is queueing: P95 ~ 200 / throughput, so a P95 difference is the CPU cost multiplied by the queue
length, and it moves with whatever else the machine runs (other jobs share these 2 cores). The goal line therefore
uses CPU per stream added over the anchor, which is the router's own cost per stream whatever the queue; the P95
ratio the issue names, at 200 concurrent and one at a time, is printed beside it with its own verdict.
Takes about 100 s (importing litellm alone takes about 5 s).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import math
import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from bench._data import code_line, machine_line
from bench._harness import percentile
from bench._upstream import TEXT, Upstream, running

CONCURRENCY = 200
ROUNDS = 2
WARM_UP_S, WARM_UP_MAX_S, MEASURE_S = 1.5, 10.0, 5.0
MAX_PER_WORKER = 2000  # a bound that the time limit, not this, should reach
SEQUENTIAL, SEQUENTIAL_WARM_UP, SEQUENTIAL_MAX_S = 150, 20, 8.0
STREAM_TIMEOUT_S = 30.0
GOAL_RATIO = 0.5
LITELLM_PUBLISHED_P95_MS = 8.0

MODEL = "bench-model"
PROMPT = "How long do refunds take to reach my card?"
MAX_TOKENS, TEMPERATURE = 64, 0.2
EXPECTED = "".join(TEXT)

StreamOnce = Callable[[], Awaitable[tuple[float, float]]]  # -> (seconds to first token, seconds to last chunk)


@dataclass(frozen=True)
class Sample:
    started: float
    ttft: float
    total: float
    error: str | None = None


@dataclass
class Figures:
    samples: list[Sample]
    cpu_s: float = 0.0
    upstream_cpu_s: float = 0.0
    completed: int = 0  # streams finished inside the measured windows
    seconds: float = 0.0
    streams: int = 0  # every stream run, warm-up included, and what the upstream saw for them
    upstream_requests: int = 0
    upstream_connections: int = 0
    warm_up_s: float = 0.0

    def ok(self, field: str) -> list[float]:
        return [getattr(s, field) * 1000 for s in self.samples if s.error is None]

    def p(self, field: str, q: float) -> float:
        values = self.ok(field)
        return percentile(values, q) if values else math.nan

    @property
    def errors(self) -> list[Sample]:
        return [s for s in self.samples if s.error is not None]

    @property
    def cpu_ms(self) -> float:
        return self.cpu_s * 1000 / max(1, self.completed)

    @property
    def upstream_cpu_ms(self) -> float:
        return self.upstream_cpu_s * 1000 / max(1, self.completed)

    @property
    def throughput(self) -> float:
        return self.completed / self.seconds if self.seconds else math.nan

    def add(self, other: Figures) -> None:
        self.samples += other.samples
        self.cpu_s += other.cpu_s
        self.upstream_cpu_s += other.upstream_cpu_s
        self.completed += other.completed
        self.seconds += other.seconds
        self.streams += other.streams
        self.upstream_requests += other.upstream_requests
        self.upstream_connections += other.upstream_connections
        self.warm_up_s += other.warm_up_s

    def count_upstream(self, streams: int, before: dict[str, int], after: dict[str, int]) -> Figures:
        self.streams = streams
        self.upstream_requests = after["requests"] - before["requests"]
        self.upstream_connections = after["connections"] - before["connections"] - 1  # the /stats call's own
        return self


# --- the three clients ---------------------------------------------------------------------------------------------


PAYLOAD = {
    "model": MODEL,
    "messages": [{"role": "user", "content": PROMPT}],
    "max_tokens": MAX_TOKENS,
    "temperature": TEMPERATURE,
    "stream": True,
    "stream_options": {"include_usage": True},
}


class Reader:
    """The minimum any client does with an SSE line: json.loads the `data:` payload, keep the content, note usage."""

    def __init__(self) -> None:
        self.started = time.perf_counter()
        self.first: float | None = None
        self.parts: list[str] = []
        self.usage = None
        self.done = False

    def line(self, line: str) -> None:
        if not line.startswith("data:"):
            return
        data = line[5:].strip()
        if data == "[DONE]":
            self.done = True
            return
        chunk = json.loads(data)
        for choice in chunk.get("choices") or ():
            text = (choice.get("delta") or {}).get("content")
            if text:
                self.first = self.first or time.perf_counter()
                self.parts.append(text)
        self.usage = chunk.get("usage") or self.usage

    def result(self) -> tuple[float, float]:
        end = time.perf_counter()
        check("".join(self.parts), self.usage is not None and self.done, self.first)
        return self.first - self.started, end - self.started


def aiohttp_client(upstream: Upstream) -> tuple[StreamOnce, Callable[[], Awaitable[None]]]:
    """The anchor: aiohttp (LiteLLM's transport too), reading each body to its end so connections are reused."""
    import aiohttp

    session: list[aiohttp.ClientSession] = []  # made on first use, inside the running loop
    url = f"{upstream.ok_url}/chat/completions"

    async def once() -> tuple[float, float]:
        if not session:
            session.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)))
        reader = Reader()
        async with session[0].post(url, json=PAYLOAD) as response:
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}")
            async for raw in response.content:
                reader.line(raw.decode().rstrip("\r\n"))
        return reader.result()

    async def close() -> None:
        if session:
            await session[0].close()

    return once, close


def httpx_client(upstream: Upstream) -> tuple[StreamOnce, Callable[[], Awaitable[None]]]:
    """A reference: httpx 0.28 with the provider's limits, closing each stream at [DONE] as Parley's provider first
    did (which makes httpx drop the connection: see the module docstring)."""
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    client = httpx.AsyncClient(base_url=upstream.ok_url, limits=limits, timeout=STREAM_TIMEOUT_S)

    async def once() -> tuple[float, float]:
        reader = Reader()
        async with client.stream("POST", "/chat/completions", json=PAYLOAD) as response:
            if response.status_code != 200:
                raise RuntimeError(f"HTTP {response.status_code}")
            async for line in response.aiter_lines():
                reader.line(line)
                if reader.done:
                    break
        return reader.result()

    return once, client.aclose


def parley_client(upstream: Upstream) -> tuple[StreamOnce, Callable[[], Awaitable[None]]]:
    from core.llm.base import ChatMessage
    from core.llm.catalog import Catalog, build_providers
    from core.llm.router import Route, Router

    catalog = Catalog.model_validate(
        {
            "providers": {
                "upstream": {
                    "protocol": "openai",
                    "base_url": upstream.ok_url,
                    "timeout_s": STREAM_TIMEOUT_S,
                    "models": {MODEL: {"input_per_mtok": 0.15, "output_per_mtok": 0.6, "context_tokens": 128000}},
                }
            }
        }
    )
    providers = build_providers(catalog, environ={})
    router = Router(providers=providers, catalog=catalog)
    chain = [Route("upstream", MODEL)]
    messages = [ChatMessage("user", PROMPT)]

    async def once() -> tuple[float, float]:
        started = time.perf_counter()
        first, parts = None, []
        stream = router.stream(chain=chain, messages=messages, max_tokens=MAX_TOKENS, temperature=TEMPERATURE)
        async for delta in stream.deltas:
            if delta.text:
                first = first or time.perf_counter()
                parts.append(delta.text)
        end = time.perf_counter()
        check("".join(parts), stream.usage is not None and stream.route is not None, first)
        return first - started, end - started

    async def close() -> None:
        for provider in providers.values():
            await provider.aclose()

    return once, close


def import_litellm():
    """litellm, kept off the network and quiet; None when it is not installed (the `bench` extra)."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")  # never download the cost map
    os.environ.setdefault("LITELLM_LOCAL_ANTHROPIC_BETA_HEADERS", "True")
    os.environ.setdefault("LITELLM_LOCAL_BLOG_POSTS", "True")
    os.environ.setdefault("LITELLM_OFFLINE_MODE", "true")  # nothing it fetches on its own
    os.environ.setdefault("LITELLM_LOG", "ERROR")
    try:
        import litellm
    except ImportError:
        return None
    litellm.suppress_debug_info = True
    litellm.set_verbose = False
    litellm.telemetry = False
    for name in ("LiteLLM", "LiteLLM Router", "LiteLLM Proxy", "litellm"):
        logging.getLogger(name).setLevel(logging.ERROR)
    return litellm


def litellm_client(litellm, upstream: Upstream) -> tuple[StreamOnce, Callable[[], Awaitable[None]]]:
    router = litellm.Router(
        model_list=[
            {
                "model_name": "bench",
                "litellm_params": {"model": f"openai/{MODEL}", "api_base": upstream.ok_url, "api_key": "bench-key"},
            }
        ]
    )
    messages = [{"role": "user", "content": PROMPT}]

    async def once() -> tuple[float, float]:
        started = time.perf_counter()
        first, parts, usage = None, [], None
        response = await router.acompletion(
            model="bench",
            messages=messages,
            max_tokens=MAX_TOKENS,
            temperature=TEMPERATURE,
            stream=True,
            stream_options={"include_usage": True},
        )
        async for chunk in response:
            if chunk.choices and chunk.choices[0].delta.content:
                first = first or time.perf_counter()
                parts.append(chunk.choices[0].delta.content)
            usage = getattr(chunk, "usage", None) or usage
        end = time.perf_counter()
        check("".join(parts), usage is not None, first)
        return first - started, end - started

    async def close() -> None:
        return None

    return once, close


def check(text: str, finished: bool, first: float | None) -> None:
    if text != EXPECTED or not finished or first is None:
        raise RuntimeError(f"wrong stream: {text[:40]!r}, usage/route {'set' if finished else 'missing'}")


# --- load ----------------------------------------------------------------------------------------------------------


async def timed(once: StreamOnce) -> Sample:
    started = time.perf_counter()
    try:
        async with asyncio.timeout(STREAM_TIMEOUT_S):
            ttft, total = await once()
    except Exception as exc:  # counted and shown, never hidden
        return Sample(started, math.nan, time.perf_counter() - started, f"{type(exc).__name__}: {exc}"[:120])
    return Sample(started, ttft, total)


async def closed_loop(once: StreamOnce, upstream: Upstream) -> Figures:
    """CONCURRENCY workers, each streaming back to back. Warm-up lasts WARM_UP_S, or longer (up to WARM_UP_MAX_S)
    until CONCURRENCY streams have finished, so that a slow client is in its steady state too; then the streams
    started in the next MEASURE_S are kept."""
    out: list[Sample] = []
    stats = upstream.stats()
    start = time.perf_counter()
    stop_at = [start + WARM_UP_MAX_S + MEASURE_S]  # moved forward once the warm-up ends

    async def worker() -> None:
        for _ in range(MAX_PER_WORKER):
            if time.perf_counter() >= stop_at[0]:
                return
            out.append(await timed(once))

    workers = [asyncio.ensure_future(worker()) for _ in range(CONCURRENCY)]
    await asyncio.sleep(WARM_UP_S)
    while len(out) < CONCURRENCY and time.perf_counter() - start < WARM_UP_MAX_S:
        await asyncio.sleep(0.05)
    warm_end = time.perf_counter()
    stop_at[0] = warm_end + MEASURE_S
    cpu_before, upstream_before, done_before = time.process_time(), upstream.cpu_s(), len(out)
    await asyncio.sleep(MEASURE_S)
    cpu_after, upstream_after, done_after = time.process_time(), upstream.cpu_s(), len(out)
    await asyncio.wait_for(asyncio.gather(*workers), timeout=STREAM_TIMEOUT_S + 5)
    measured = [s for s in out if warm_end <= s.started < stop_at[0]]
    figures = Figures(
        measured, cpu_after - cpu_before, upstream_after - upstream_before, done_after - done_before, MEASURE_S
    )
    figures.warm_up_s = warm_end - start
    return figures.count_upstream(len(out), stats, upstream.stats())


async def one_at_a_time(once: StreamOnce, upstream: Upstream) -> Figures:
    for _ in range(SEQUENTIAL_WARM_UP):
        await timed(once)
    samples: list[Sample] = []
    stats = upstream.stats()
    started = time.perf_counter()
    cpu_before, upstream_before = time.process_time(), upstream.cpu_s()
    for _ in range(SEQUENTIAL):
        if time.perf_counter() - started > SEQUENTIAL_MAX_S:
            break
        samples.append(await timed(once))
    seconds = time.perf_counter() - started
    figures = Figures(
        samples, time.process_time() - cpu_before, upstream.cpu_s() - upstream_before, len(samples), seconds
    )
    return figures.count_upstream(len(samples), stats, upstream.stats())


async def measure(clients: dict[str, StreamOnce], upstream: Upstream) -> tuple[dict, dict]:
    loaded = {name: Figures([]) for name in clients}
    single = {name: Figures([]) for name in clients}
    names = list(clients)
    for name in names:
        single[name] = await one_at_a_time(clients[name], upstream)
    for round_ in range(ROUNDS):
        for name in names if round_ % 2 == 0 else reversed(names):
            loaded[name].add(await closed_loop(clients[name], upstream))
    return loaded, single


# --- report --------------------------------------------------------------------------------------------------------


def latency_line(name: str, figures: Figures) -> str:
    parts = []
    for field, label in (("ttft", "first token"), ("total", "last chunk")):
        p50, p95, p99 = (figures.p(field, q) for q in (50, 95, 99))
        parts.append(f"{label} p50 {p50:7.2f} p95 {p95:7.2f} p99 {p99:7.2f} ms")
    errors = figures.errors
    kinds = sorted({s.error for s in errors})[:2]
    return (
        f"  {name:<8} {len(figures.ok('total')):5d} ok {figures.throughput:5.0f}/s  "
        + " | ".join(parts)
        + (f"  errors {len(errors)} ({'; '.join(kinds)})" if errors else "")
    )


def overhead_line(name: str, figures: Figures, anchor: Figures) -> str:
    parts = []
    for field, label in (("ttft", "first token"), ("total", "last chunk")):
        added = [figures.p(field, q) - anchor.p(field, q) for q in (50, 95, 99)]
        parts.append(f"{label} {added[0]:+8.2f} {added[1]:+8.2f} {added[2]:+8.2f}")
    return f"  {name:<8} added p50 / p95 / p99 ms:  " + " | ".join(parts)


def cost_line(name: str, figures: Figures, anchor: Figures, *, rounds: int) -> str:
    added = f" ({figures.cpu_ms - anchor.cpu_ms:+7.3f})" if figures is not anchor else " " * 10
    warm = f", warm-up {figures.warm_up_s / rounds:4.1f} s" if figures.warm_up_s else ""
    return (
        f"  {name:<8} CPU per stream {figures.cpu_ms:7.3f} ms{added}  "
        f"throughput {figures.throughput / anchor.throughput:5.2f}x"
        f"  upstream per stream: {figures.upstream_requests / max(1, figures.streams):.2f} requests, "
        f"{figures.upstream_connections / max(1, figures.streams):.2f} new connections, "
        f"{figures.upstream_cpu_ms:.3f} ms CPU{warm}"
    )


def ratio(parley: float, litellm: float) -> float:
    return parley / litellm if litellm > 0 else math.inf


def section(title: str, figures: dict[str, Figures], *, rounds: int) -> None:
    print(title)
    for name, f in figures.items():
        print(latency_line(name, f))
    for name in [n for n in figures if n != "anchor"]:
        print(overhead_line(name, figures[name], figures["anchor"]))
    print("  CPU per stream: this process, all threads (added over the anchor); throughput relative to the anchor")
    for name, f in figures.items():
        print(cost_line(name, f, figures["anchor"], rounds=rounds))


def report(loaded: dict[str, Figures], single: dict[str, Figures], setup: list[str]) -> None:
    print(
        f"LLM router overhead, streaming ({len(TEXT)} content chunks per answer, no inter-token delay, local "
        f"OpenAI-protocol upstream); anchor: aiohttp straight to the upstream; httpx: httpx 0.28 as Parley "
        f"first used it, for reference"
    )
    for line in setup:
        print(f"  {line}")
    section(
        f"one stream at a time, no queueing ({SEQUENTIAL} per client after {SEQUENTIAL_WARM_UP} warm-up)",
        single,
        rounds=1,
    )
    section(
        f"{CONCURRENCY} concurrent streams, closed loop ({ROUNDS} rounds x {MEASURE_S:.0f} s measured per client, "
        f"after a warm-up of >= {WARM_UP_S} s and >= {CONCURRENCY} streams)",
        loaded,
        rounds=ROUNDS,
    )
    if "LiteLLM" not in loaded:
        print(
            "LiteLLM not installed: run `make bench` (it installs the `bench` extra) for the side-by-side column; "
            "no goal verdict without it"
        )
        return
    anchor, parley, litellm = loaded["anchor"], loaded["Parley"], loaded["LiteLLM"]
    cpu_ratio = ratio(parley.cpu_ms - anchor.cpu_ms, litellm.cpu_ms - anchor.cpu_ms)
    p95 = {
        field: ratio(parley.p(field, 95) - anchor.p(field, 95), litellm.p(field, 95) - anchor.p(field, 95))
        for field in ("ttft", "total")
    }
    single_p95 = ratio(
        single["Parley"].p("total", 95) - single["anchor"].p("total", 95),
        single["LiteLLM"].p("total", 95) - single["anchor"].p("total", 95),
    )
    print(
        f"ratio Parley / LiteLLM overhead: p95 at {CONCURRENCY} concurrent {p95['ttft']:.3f} (first token), "
        f"{p95['total']:.3f} (last chunk); p95 one at a time {single_p95:.3f} (last chunk); CPU per stream "
        f"{cpu_ratio:.3f}.  LiteLLM publishes {LITELLM_PUBLISHED_P95_MS:.0f} ms p95 at 1k RPS on 4 instances; "
        f"measured here: +{litellm.p('total', 95) - anchor.p('total', 95):.0f} ms p95 at {CONCURRENCY} concurrent, "
        f"+{single['LiteLLM'].p('total', 95) - single['anchor'].p('total', 95):.1f} ms one at a time"
    )
    latency_verdict = "PASS" if p95["total"] <= GOAL_RATIO else "FAIL"
    print(
        f"  as the issue words it, p95 latency added at {CONCURRENCY} concurrent (mostly queueing on 2 cores, so not "
        f"the goal line): {latency_verdict} ({p95['total']:.3f} <= {GOAL_RATIO})"
    )
    verdict = "PASS" if cpu_ratio <= GOAL_RATIO else "FAIL"
    print(
        f"goal: Parley's overhead <= {GOAL_RATIO}x LiteLLM's at {CONCURRENCY} concurrent streams, as CPU per stream "
        f"added over the anchor: {verdict} ({parley.cpu_ms - anchor.cpu_ms:.3f} ms vs "
        f"{litellm.cpu_ms - anchor.cpu_ms:.3f} ms = {cpu_ratio:.3f}x)"
    )


def main() -> None:
    litellm = import_litellm()
    if litellm is None:
        print(
            "router_overhead: litellm is not installed: run `make bench` (installs the `bench` extra); "
            "the LiteLLM column is skipped"
        )
    import uvloop

    setup = [machine_line(), code_line()]
    with running() as upstream:

        async def run() -> tuple[dict, dict]:
            made = {
                "anchor": aiohttp_client(upstream),
                "httpx": httpx_client(upstream),
                "Parley": parley_client(upstream),
            }
            if litellm is not None:
                made["LiteLLM"] = litellm_client(litellm, upstream)
            gc.collect()
            gc.freeze()
            try:
                return await measure({name: once for name, (once, _) in made.items()}, upstream)
            finally:
                for _, close in made.values():
                    await close()

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            loaded, single = runner.run(run())
    setup.append(f"after the run: {machine_line()}")
    report(loaded, single, setup)


if __name__ == "__main__":
    main()
