"""Chat turns over HTTP with the embedded answerer: a 100k-chunk knowledge base over 10 tenants, 50 conversations.

Goal (issue): 50 concurrent conversations on this 2-core machine, P95 <= 50 ms and P99 <= 100 ms per turn, with
throughput reported.

Setup: a temporary data directory; 10 tenants made with `parley tenants create`; 100,000 chunk points (10,000 per
tenant) written straight into the embedded vector engine with EdgeVectorStore.upsert, as the knowledge base writes them
(dense MiniLM vector, BM25 vector, payload; chunk points only, not the per-document title points). No document rows
go to PostgreSQL: a chat turn reads only the index. The store is closed (one process may open it), then `parley serve`
starts; load begins once /readyz answers 200. The index is left as Parley leaves it, never optimized: a tenant-filtered
search is exact over that tenant's 10,000 points. `--optimize` runs the HNSW build before serving instead. The tenant
rate limit is raised (PARLEY_RATE_LIMIT_PER_MINUTE) so that 429s are not what gets measured; the DB pool keeps its
default. `--server-env NAME=VALUE` passes extra environment to the server only (e.g. OMP_NUM_THREADS=1).

Data: ~29k real chunks (banking77 / CLINC150 utterances, StackFAQ threads, DialogSum dialogues); the other ~71k points
are SYNTHETIC: real MiniLM embeddings plus small Gaussian noise, renormalised, repeating their source chunk's text.
Questions are real and held out from the knowledge base: banking77 test, StackFAQ rephrasings, CLINC150 out-of-scope.

Workload, measured from this process (asyncio + httpx, 50 keep-alive connections):
  - think time: 50 conversations (5 per tenant), each POSTs a question, awaits the whole JSON reply, then "reads" for an
    exponentially distributed time (mean 1 s, capped at 5 s). Warm-up 5 s, then 30 s measured (turns started in it).
  - saturation: the same 50 conversations with no think time, 3 s warm-up, 15 s measured: capacity on 2 cores. The
    load generator shares those cores, so this is a floor for the server alone.
Anchor: GET /healthz on the same server with the same 50-client patterns, in the same run.
Also reported: CPU per turn of the server process and of PostgreSQL (postmaster + backends), from /proc.
Takes about 2.5 minutes here, plus about 10 minutes once (busy machine) to embed the corpus into var/bench-cache/.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil

from bench._data import (
    DIM,
    code_line,
    describe,
    kb_chunks,
    kb_embeddings,
    machine_line,
    sample_queries,
    server_env,
    write_knowledge_base,
)
from bench._harness import free_port, percentile, stop

PARLEY = str(Path(sys.executable).with_name("parley"))
TENANTS = 10
CONVERSATIONS_PER_TENANT = 5
CHUNKS = 100_000
QUESTION_SOURCES = ("banking77-test", "stackfaq-rephr", "clinc-oos")
QUESTIONS = 2200  # an even share per source, capped by the source: 734 + 733 + all 200 CLINC150 out-of-scope
THINK_MEAN_S = 1.0
THINK_CAP_S = 5.0
WARM_UP_S, MEASURE_S = 5.0, 30.0
SATURATION_WARM_UP_S, SATURATION_S = 3.0, 15.0
MAX_TURNS = 5000  # per conversation per phase: a bound that timing, not this, should reach
REQUEST_TIMEOUT_S = 30.0
READY_TIMEOUT_S = 120.0
GOAL_P95_MS, GOAL_P99_MS = 50.0, 100.0


@dataclass(frozen=True)
class Outcome:
    started: float
    ms: float
    ok: bool
    server_ms: float | None = None
    confident: bool | None = None
    error: str | None = None


@dataclass
class Phase:
    name: str
    measured: list[Outcome]
    seconds: float
    server_cpu_s: float
    postgres_cpu_s: float | None
    client_cpu_s: float
    completed_in_window: int

    @property
    def ok_ms(self) -> list[float]:
        return [o.ms for o in self.measured if o.ok]

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.measured if not o.ok]

    @property
    def throughput(self) -> float:
        return len(self.ok_ms) / self.seconds

    def p(self, q: float) -> float:
        return percentile(self.ok_ms, q)


Send = Callable[[], Awaitable[Outcome]]


# --- setup ---------------------------------------------------------------------------------------------------------


def create_tenants(env: dict[str, str]) -> list[dict]:
    tenants = []
    for n in range(TENANTS):
        created = subprocess.run(
            [PARLEY, "tenants", "create", f"Bench tenant {n}"],
            env={**os.environ, **env},
            check=True,
            capture_output=True,
            text=True,
            timeout=120,
        )
        tenants.append(json.loads(created.stdout))
    return tenants


def write_index(data_dir: str, tenant_ids: list[str], *, optimize: bool) -> tuple[str, float]:
    from core.settings import load_settings
    from core.vectors import EdgeVectorStore

    chunks = kb_chunks()
    store = EdgeVectorStore.open(load_settings(data_dir=Path(data_dir)).vectors_path, dim=DIM)
    try:
        written = write_knowledge_base(
            store, count=CHUNKS, tenant_ids=tenant_ids, chunks=chunks, vectors=kb_embeddings(chunks)
        )
        optimize_s = 0.0
        if optimize:
            started = time.perf_counter()
            store.optimize()
            optimize_s = time.perf_counter() - started
    finally:
        store.close()
    return describe(written, corpus=len(chunks)), written.seconds + optimize_s


def start_server(env: dict[str, str], port: int, log: Path) -> tuple[subprocess.Popen, float]:
    """`parley serve` on 127.0.0.1:port; returns once /readyz answers 200 (the encoder has loaded), bounded."""
    started = time.perf_counter()
    with open(log, "wb") as stderr:
        process = subprocess.Popen(
            [PARLEY, "serve", "--port", str(port)], env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=stderr
        )
    url = f"http://127.0.0.1:{port}/readyz"
    with httpx.Client(timeout=2.0) as client:
        while time.perf_counter() - started < READY_TIMEOUT_S:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}:\n{log.read_text()[-2000:]}")
            try:
                if client.get(url).status_code == 200:
                    return process, time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    stop(process)
    raise TimeoutError(f"{url} did not answer 200 within {READY_TIMEOUT_S:.0f} s:\n{log.read_text()[-2000:]}")


# --- CPU accounting ------------------------------------------------------------------------------------------------


def _cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def postgres_processes(data_dir: str) -> list[psutil.Process]:
    """The embedded PostgreSQL's postmaster (its command line names the data dir) and its backends."""
    pgdata = str(Path(data_dir).resolve() / "postgres")
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] == "postgres" and pgdata in (process.info["cmdline"] or []):
            try:
                return [process, *process.children(recursive=True)]
            except psutil.Error:
                return []
    return []


class CpuMeter:
    """CPU seconds used by the server, by PostgreSQL and by this process between two snapshots."""

    def __init__(self, server: psutil.Process, data_dir: str) -> None:
        self.server = server
        self.data_dir = data_dir

    def snapshot(self) -> tuple[float, dict[int, float] | None, float]:
        postgres: dict[int, float] | None = {}
        try:
            for process in postgres_processes(self.data_dir):
                postgres[process.pid] = _cpu(process)
        except psutil.Error:
            postgres = None
        if not postgres:
            postgres = None
        return _cpu(self.server), postgres, _cpu(psutil.Process())

    @staticmethod
    def used(before, after) -> tuple[float, float | None, float]:
        server = after[0] - before[0]
        postgres = None
        if before[1] is not None and after[1] is not None:
            postgres = sum(cpu - before[1].get(pid, 0.0) for pid, cpu in after[1].items())
        return server, postgres, after[2] - before[2]


# --- load generation -----------------------------------------------------------------------------------------------


def chat_sender(client: httpx.AsyncClient, base: str, api_key: str, conversation_id: str, questions, rng) -> Send:
    url = f"{base}/v1/conversations/{conversation_id}/messages"
    headers = {"Authorization": f"Bearer {api_key}"}

    async def send() -> Outcome:
        started = time.perf_counter()
        try:
            response = await client.post(url, json={"text": rng.choice(questions).text}, headers=headers)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            return Outcome(started, (time.perf_counter() - started) * 1000, False, error=type(exc).__name__)
        ms = (time.perf_counter() - started) * 1000
        if response.status_code != 200:
            return Outcome(started, ms, False, error=f"HTTP {response.status_code}")
        return Outcome(started, ms, True, body["latency_ms"], not body["reply"]["handoff_offered"])

    return send


def health_sender(client: httpx.AsyncClient, base: str) -> Send:
    async def send() -> Outcome:
        started = time.perf_counter()
        try:
            response = await client.get(f"{base}/healthz")
        except httpx.HTTPError as exc:
            return Outcome(started, (time.perf_counter() - started) * 1000, False, error=type(exc).__name__)
        ms = (time.perf_counter() - started) * 1000
        ok = response.status_code == 200
        return Outcome(started, ms, ok, error=None if ok else f"HTTP {response.status_code}")

    return send


async def conversation(send: Send, *, think: bool, stop_at: float, rng: random.Random, out: list[Outcome]) -> None:
    """One client: send, await the reply, think, repeat until stop_at (or MAX_TURNS)."""
    if think:  # start as if mid-read, so the 50 clients do not fire in lockstep
        await asyncio.sleep(min(rng.expovariate(1 / THINK_MEAN_S), THINK_CAP_S))
    for _ in range(MAX_TURNS):
        if time.perf_counter() >= stop_at:
            return
        out.append(await send())
        if think:
            pause = min(rng.expovariate(1 / THINK_MEAN_S), THINK_CAP_S, max(0.0, stop_at - time.perf_counter()))
            await asyncio.sleep(pause)


async def run_phase(
    name: str, senders: Sequence[Send], meter: CpuMeter, *, think: bool, warm_s: float, measure_s: float, seed: int
) -> Phase:
    out: list[Outcome] = []
    start = time.perf_counter()
    warm_end, stop_at = start + warm_s, start + warm_s + measure_s
    clients = [
        asyncio.ensure_future(conversation(send, think=think, stop_at=stop_at, rng=random.Random(seed + n), out=out))
        for n, send in enumerate(senders)
    ]
    await asyncio.sleep(warm_s)
    before = meter.snapshot()
    done_before = len(out)
    await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
    after = meter.snapshot()
    completed = len(out) - done_before
    await asyncio.wait_for(asyncio.gather(*clients), timeout=REQUEST_TIMEOUT_S + THINK_CAP_S + 5)
    server_s, postgres_s, client_s = CpuMeter.used(before, after)
    measured = [o for o in out if warm_end <= o.started < stop_at]
    return Phase(name, measured, measure_s, server_s, postgres_s, client_s, completed)


# --- report --------------------------------------------------------------------------------------------------------


def latency_line(phase: Phase) -> str:
    errors = phase.errors
    kinds = sorted({o.error for o in errors})
    return (
        f"  {phase.name:<34} {len(phase.ok_ms):6d} ok  {phase.throughput:7.1f}/s  p50 {phase.p(50):7.2f} ms  "
        f"p95 {phase.p(95):7.2f}  p99 {phase.p(99):7.2f}  max {max(phase.ok_ms):7.1f}  errors {len(errors)}"
        + (f" ({', '.join(kinds)})" if kinds else "")
    )


def cpu_line(phase: Phase) -> str:
    per = 1000 / max(1, phase.completed_in_window)
    postgres = f"{phase.postgres_cpu_s * per:.2f} ms" if phase.postgres_cpu_s is not None else "n/a"
    busy = (phase.server_cpu_s + (phase.postgres_cpu_s or 0) + phase.client_cpu_s) / phase.seconds
    return (
        f"  {'':<34} CPU per request: server {phase.server_cpu_s * per:.2f} ms, PostgreSQL {postgres}, "
        f"load generator {phase.client_cpu_s * per:.2f} ms; together {busy:.2f} of 2 cores"
    )


def chat_extras(phase: Phase) -> str:
    server = [o.server_ms for o in phase.measured if o.ok and o.server_ms is not None]
    confident = sum(1 for o in phase.measured if o.ok and o.confident)
    return (
        f"  {'':<34} server-side latency_ms p50 {percentile(server, 50):.2f}  p95 {percentile(server, 95):.2f}  "
        f"p99 {percentile(server, 99):.2f};  answered from the KB {confident / max(1, len(server)):.0%}, "
        f"handoff offered otherwise"
    )


async def load(base: str, tenants: list[dict], meter: CpuMeter, questions) -> list[Phase]:
    limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
    async with httpx.AsyncClient(limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
        chats: list[Send] = []
        for tenant in tenants:
            for n in range(CONVERSATIONS_PER_TENANT):
                response = await client.post(
                    f"{base}/v1/conversations", headers={"Authorization": f"Bearer {tenant['api_key']}"}
                )
                response.raise_for_status()
                rng = random.Random(f"{tenant['id']}-{n}")
                chats.append(chat_sender(client, base, tenant["api_key"], response.json()["id"], questions, rng))
        health = [health_sender(client, base) for _ in chats]
        think = {"think": True, "warm_s": WARM_UP_S, "measure_s": MEASURE_S}
        busy = {"think": False, "warm_s": SATURATION_WARM_UP_S, "measure_s": SATURATION_S}
        return [
            await run_phase("anchor: GET /healthz, think time", health, meter, seed=1, **think),
            await run_phase("chat turn, think time", chats, meter, seed=2, **think),
            await run_phase("chat turn, saturation", chats, meter, seed=3, **busy),
            await run_phase("anchor: GET /healthz, saturation", health, meter, seed=4, **busy),
        ]


def report(phases: list[Phase], *, setup: list[str]) -> None:
    health_think, chat_think, chat_busy, health_busy = phases
    conversations = TENANTS * CONVERSATIONS_PER_TENANT
    print(
        f"chat turns over HTTP (POST /v1/conversations/{{id}}/messages, JSON reply, embedded KB answerer), "
        f"{conversations} conversations ({CONVERSATIONS_PER_TENANT} per tenant x {TENANTS} tenants)"
    )
    for line in setup:
        print(f"  {line}")
    print(
        f"think time: exponential, mean {THINK_MEAN_S:.0f} s (capped {THINK_CAP_S:.0f} s); warm-up {WARM_UP_S:.0f} s, "
        f"measured {MEASURE_S:.0f} s"
    )
    for phase in (health_think, chat_think):
        print(latency_line(phase))
        print(cpu_line(phase))
    print(chat_extras(chat_think))
    verdict = "PASS" if chat_think.p(95) <= GOAL_P95_MS and chat_think.p(99) <= GOAL_P99_MS else "MISS"
    print(
        f"  ratio chat/anchor p50 {chat_think.p(50) / health_think.p(50):.1f}x  p95 "
        f"{chat_think.p(95) / health_think.p(95):.1f}x  p99 {chat_think.p(99) / health_think.p(99):.1f}x"
    )
    print(
        f"  goal p95 <= {GOAL_P95_MS:.0f} ms and p99 <= {GOAL_P99_MS:.0f} ms: {verdict} "
        f"(p95 {chat_think.p(95):.1f} ms, p99 {chat_think.p(99):.1f} ms, {chat_think.throughput:.1f} turns/s)"
    )
    print(
        f"saturation: the same {conversations} clients with no think time; warm-up {SATURATION_WARM_UP_S:.0f} s, "
        f"measured {SATURATION_S:.0f} s; the load generator shares the 2 cores"
    )
    print(latency_line(chat_busy))
    print(cpu_line(chat_busy))
    print(chat_extras(chat_busy))
    print(latency_line(health_busy))
    print(cpu_line(health_busy))
    print(
        f"  throughput ratio chat/anchor {chat_busy.throughput / health_busy.throughput:.3f} "
        f"({chat_busy.throughput:.1f} vs {health_busy.throughput:.1f} requests/s)"
    )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.chat_load", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--optimize", action="store_true", help="build the HNSW index before serving (Parley never does)"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="extra environment for the server only, e.g. OMP_NUM_THREADS=1 (repeatable)",
    )
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.server_env)
    questions = sample_queries(QUESTIONS, sources=QUESTION_SOURCES, seed=5)
    setup = [machine_line(), code_line()]
    with tempfile.TemporaryDirectory(prefix="parley-bench-") as data_dir:
        env = server_env(data_dir, log_level="warning", rate_limit_per_minute=10_000_000)
        started = time.perf_counter()
        tenants = create_tenants(env)
        tenants_s = time.perf_counter() - started
        data, index_s = write_index(data_dir, [t["id"] for t in tenants], optimize=args.optimize)
        mix = ", ".join(f"{sum(q.source == source for q in questions)} {source}" for source in QUESTION_SOURCES)
        index_state = "HNSW (optimize() before serving)" if args.optimize else "never optimized, as Parley serves it"
        setup.append(f"knowledge base: {data}")
        setup.append(
            f"index: {index_state}; written in {index_s:.1f} s; {TENANTS} tenants created in {tenants_s:.1f} s; "
            f"questions: {len(questions)} real, held out from the KB ({mix})"
        )
        port = free_port()
        process, ready_s = start_server({**env, **extra_env}, port, Path(data_dir) / "server.log")
        try:
            extra = f", extra environment {' '.join(args.server_env)}" if extra_env else ""
            setup.append(f"server: `parley serve`, one uvicorn worker{extra}, /readyz 200 after {ready_s:.1f} s")
            meter = CpuMeter(psutil.Process(process.pid), data_dir)
            # The corpus stays referenced (cached): a full collection over it would pause this load generator, and
            # the pause would be measured as server latency.
            gc.collect()
            gc.freeze()
            phases = asyncio.run(load(f"http://127.0.0.1:{port}", tenants, meter, questions))
        finally:
            stop(process)
    setup.append(f"after the run: {machine_line()}")
    report(phases, setup=setup)


if __name__ == "__main__":
    main()
