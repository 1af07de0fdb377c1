"""Shared helpers of the lakehouse benchmarks (lake_ingest, lake_pipeline, sentiment, lake_query).

- Workers: `run_worker("bench.lake_pipeline", "step", {...})` runs one function in a fresh interpreter
  (`python -m bench._lake MODULE FUNCTION JSON`), bounded by a timeout, and returns what it returned plus that
  process's own peak RSS (VmHWM), so each measured step pays its own imports and memory and cannot inherit
  another's; inside it, `timed(call)` gives the call's seconds, CPU (its own and its child processes') and the
  peak RSS of the process tree (psutil, sampled every SAMPLE_S).
- Demo traffic as outbox-shaped Arrow rows (what core/outbox.py reads out of PostgreSQL), made with
  core.demo_traffic tenant by tenant, ordered by event time like the live outbox's ids.
- Cache keys: a hash of the code that makes the data (generator, payload builders, transforms) and of the
  parameters, so a change to any of them makes a new cache entry under var/bench-cache/.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench._data import CACHE, DATA, ROOT

# Fixed, like tests/lake/conftest.py: the same figures in the lake on every run, no conversation left open.
TRAFFIC_END = datetime(2026, 11, 20, 18, 0, tzinfo=UTC)
AS_OF = TRAFFIC_END + timedelta(hours=1)
DAYS = 28
RESULT_MARK = "BENCH-LAKE-RESULT "
SAMPLE_S = 0.2
TRAFFIC_SOURCES = ("core/demo_traffic.py", "core/conversations.py", "core/metrics.py")
GENERATOR_SOURCES = (*TRAFFIC_SOURCES, "core/outbox.py")  # what bronze rows are made with


def cache_key(*parts: object, sources: Sequence[str] = GENERATOR_SOURCES) -> str:
    """12 hex digits over the given source files' text and `parts`."""
    digest = hashlib.sha256()
    for source in sources:
        digest.update((ROOT / source).read_bytes() + b"\x00")
    for part in parts:
        digest.update(repr(part).encode() + b"\x00")
    return digest.hexdigest()[:12]


def cached_dir(name: str) -> Path:
    CACHE.mkdir(parents=True, exist_ok=True)
    return CACHE / name


def publish(partial: Path, final: Path) -> None:
    """Move a finished cache entry into place (a half-built one never looks finished), and drop the entries it
    replaces: same name but for the key after the last '-' (made by older code)."""
    if final.exists():
        shutil.rmtree(final) if final.is_dir() else final.unlink()
    partial.rename(final)
    stem = final.name.rsplit("-", 1)[0] + "-"
    for old in final.parent.glob(stem + "*"):
        if old != final and old.name.rsplit("-", 1)[0] + "-" == stem:
            shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)


def link_tree(source: Path, target: Path) -> None:
    """Copy a folder by hard links (Delta never rewrites a file in place, so the copy cannot change the cache);
    falls back to copying when links are not possible."""
    try:
        shutil.copytree(source, target, copy_function=os.link)
    except OSError:
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(source, target)


def tenant_ids(count: int) -> list[str]:
    """Ids shaped like core.tenancy.new_id('t'), fixed so cached data and reruns agree."""
    return [f"t_bench{n:09x}" for n in range(count)]


def utterances():
    from core import demo_traffic

    return demo_traffic.banking77(DATA)


def events_frame(traffic):
    """A Traffic's outbox events as a polars frame: event_id, tenant_id, type, payload (json text), at."""
    import polars as pl

    event_ids, tenants, types, payloads, ats = zip(*traffic.events, strict=True) if traffic.events else ([],) * 5
    return pl.DataFrame(
        {
            "event_id": [str(e) for e in event_ids],
            "tenant_id": list(tenants),
            "type": list(types),
            "payload": list(payloads),
            "at": list(ats),
        },
        schema={
            "event_id": pl.String,
            "tenant_id": pl.String,
            "type": pl.String,
            "payload": pl.String,
            "at": pl.Datetime("us", "UTC"),
        },
    )


def generate_events(tenants: Sequence[str], *, conversations_per_tenant: int, seed: int, days: int = DAYS):
    """Demo traffic (core.demo_traffic, real Banking77 utterances) for `tenants`, one tenant at a time so the
    Python objects of only one tenant are alive at once; every tenant's events in one frame ordered by time (then
    tenant), with outbox ids 1..n in that order, as the live outbox hands them out."""
    import polars as pl

    from core import demo_traffic

    said = utterances()
    frames = []
    for n, tenant in enumerate(tenants):
        traffic = demo_traffic.generate(
            tenant_ids=[tenant],
            conversations_per_tenant=conversations_per_tenant,
            utterances=said,
            days=days,
            end=TRAFFIC_END,
            seed=seed * 10_000 + n,
        )
        frames.append(events_frame(traffic))
        del traffic
    frame = pl.concat(frames).sort(["at", "tenant_id"], maintain_order=True)
    return frame.with_columns(outbox_id=pl.int_range(1, pl.len() + 1, dtype=pl.Int64))


def cached_events(tenants: Sequence[str], *, conversations_per_tenant: int, seed: int, days: int = DAYS):
    """generate_events, cached as parquet under var/bench-cache/ keyed by the generator's code and the parameters
    (generating takes minutes at a million messages; turning events into bronze or silver takes seconds)."""
    import polars as pl

    key = cache_key("events", list(tenants), conversations_per_tenant, seed, days, TRAFFIC_END, sources=TRAFFIC_SOURCES)
    path = cached_dir(f"lake-events-{len(tenants)}x{conversations_per_tenant}-{key}.parquet")
    if path.exists():
        return pl.read_parquet(path)
    frame = generate_events(tenants, conversations_per_tenant=conversations_per_tenant, seed=seed, days=days)
    partial = path.with_name(path.name + ".partial")
    frame.write_parquet(partial)
    publish(partial, path)
    return frame


def outbox_rows(frame):
    """Events (events_frame + outbox_id) in the shape core.outbox reads from PostgreSQL: outbox_id, event_id,
    tenant_id, type, created_at (the event's time, as the writers set it), payload."""
    import polars as pl

    return frame.select(
        "outbox_id", "event_id", "tenant_id", "type", created_at=pl.col("at"), payload=pl.col("payload")
    ).to_arrow()


def _vm_hwm_mb() -> float:
    """This process's own peak RSS. Not getrusage: Linux carries ru_maxrss over an exec from the process that
    forked (vfork) it, so a worker would report at least its parent's peak."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class _Sampler(threading.Thread):
    """Every SAMPLE_S: the RSS of this process plus all its descendants (their peak sum), and each descendant's
    CPU seconds (the last value seen: a child that exits between samples loses at most SAMPLE_S of it)."""

    def __init__(self) -> None:
        super().__init__(daemon=True, name="bench-sampler")
        import psutil

        self.process = psutil.Process()
        self.stopping = threading.Event()
        self.tree_peak = 0
        self.children_peak = 0
        self.children_cpu: dict[int, float] = {}
        self.sample()

    def sample(self) -> None:
        import psutil

        try:
            own = self.process.memory_info().rss
            children = 0
            for child in self.process.children(recursive=True):
                try:
                    children += child.memory_info().rss
                    times = child.cpu_times()
                    self.children_cpu[child.pid] = times.user + times.system
                except psutil.Error:
                    pass
            self.tree_peak = max(self.tree_peak, own + children)
            self.children_peak = max(self.children_peak, children)
        except psutil.Error:
            pass

    def run(self) -> None:
        while not self.stopping.wait(SAMPLE_S):
            self.sample()

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=5)
        self.sample()


def timed(call: Callable[[], object], *, children: bool = False) -> dict:
    """Run `call` once in a worker: its wall seconds, this process's CPU seconds during it (all threads), the
    seconds the worker spent before the call (interpreter start, imports, setup), and with `children` (for calls
    that start processes: psutil's scan of /proc costs a few % of a core) the CPU of its child processes and the
    peak RSS of the whole process tree, sampled. `value` is what the call returned."""
    sampler = _Sampler() if children else None
    before = sampler.children_cpu.copy() if sampler else {}
    if sampler:
        sampler.start()
    cpu = time.process_time()
    started = time.perf_counter()
    try:
        value = call()
    finally:
        seconds = time.perf_counter() - started
        cpu = time.process_time() - cpu
        if sampler:
            sampler.stop()
    return {
        "seconds": seconds,
        "cpu_s": cpu,
        "children_cpu_s": sum(v - before.get(pid, 0.0) for pid, v in sampler.children_cpu.items()) if sampler else 0.0,
        "tree_peak_rss_mb": sampler.tree_peak / 2**20 if sampler else _vm_hwm_mb(),
        "children_peak_rss_mb": sampler.children_peak / 2**20 if sampler else 0.0,
        "setup_s": started - _WORKER_STARTED,
        "value": value,
    }


def run_worker(module: str, function: str, kwargs: dict, *, timeout: float, env: dict | None = None) -> dict:
    """Run module.function(**kwargs) in a fresh interpreter (at most `timeout` s) and return the dict it returned,
    plus `peak_rss_mb` (the worker's own peak RSS, VmHWM) and `wall_s` (the whole process, imports included).
    Workers time what they measure with `timed`."""
    started = time.perf_counter()
    process = subprocess.run(
        [sys.executable, "-m", "bench._lake", module, function, json.dumps(kwargs)],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - started
    lines = [line for line in process.stdout.splitlines() if line.startswith(RESULT_MARK)]
    if process.returncode != 0 or not lines:
        tail = "\n".join(process.stderr.strip().splitlines()[-25:])
        raise RuntimeError(f"worker {module}.{function} exited with {process.returncode}:\n{tail}")
    result = json.loads(lines[-1][len(RESULT_MARK) :])
    result["wall_s"] = wall
    return result


_WORKER_STARTED = time.perf_counter()


def _worker(module: str, function: str, kwargs: str) -> None:
    target = getattr(importlib.import_module(module), function)
    result = dict(target(**json.loads(kwargs)) or {})
    result["peak_rss_mb"] = _vm_hwm_mb()
    sys.stdout.write(RESULT_MARK + json.dumps(result, default=str) + "\n")
    sys.stdout.flush()


def process_tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its live descendants, and the children it already reaped (PostgreSQL's
    postmaster reaps its backends, so their CPU is counted after they exit)."""
    import psutil

    try:
        root = psutil.Process(pid)
        total = sum(root.cpu_times()[:4])  # user, system, children_user, children_system
        for child in root.children(recursive=True):
            try:
                times = child.cpu_times()
                total += times.user + times.system
            except psutil.NoSuchProcess:
                pass
        return total
    except psutil.NoSuchProcess:
        return float("nan")


def fmt_s(seconds: float) -> str:
    return f"{seconds:7.2f} s"


def mb(value: float) -> str:
    return f"{value:6.0f} MB"


def median(values: Iterable[float]) -> float:
    import statistics

    return statistics.median(list(values))


if __name__ == "__main__":
    _worker(*sys.argv[1:4])
