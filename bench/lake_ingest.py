"""Outbox → bronze: how fast core.outbox.drain moves a backlog of events from PostgreSQL into Delta bronze/events.

Goal (issue): outbox → bronze >= 100,000 events/s.

Setup, every run (about a minute at the full size; nothing cached, the outbox is consumed by the drain):
  1. a fresh embedded PostgreSQL 18 (core.db.EmbeddedPostgres) in a temp folder, a database migrated with
     core.db.migrate;
  2. BASE: real demo traffic for TENANTS tenants from core.demo_traffic.generate (Banking77 utterances, replies,
     usage, feedback, handoffs, PII) written with core.demo_traffic.write, its events ordered by time first so the
     outbox ids follow time as they do live;
  3. REPLICATED inside PostgreSQL to EVENTS rows with INSERT ... SELECT: COPIES copies of the base events, copy k
     moved k weeks back in time (created_at and the payload's `at`), each row with a new gen_random_uuid() event id,
     inserted in time order (the ids follow time again). The outbox then holds 1M events of 10 tenants over about
     11 weeks; payload texts and conversation ids repeat across copies (the drain does not look at them);
  4. VACUUM ANALYZE, then the database is the template of one copy per run (CREATE DATABASE ... TEMPLATE ...
     STRATEGY FILE_COPY), so every run drains an identical, freshly vacuumed outbox.
Per run, on its copy:
  - anchor: the drain's own SELECT (core.outbox._BATCH, same batch size and id ranges) through ADBC
    fetch_arrow_table, one batch after another, nothing else: the floor of any drain. The same worker also times
    core.outbox.to_bronze on each batch, which the drain has to do on top;
  - drain: core.outbox.drain(url, Lake(fresh temp folder)) with its defaults.
Both run in their own process (bench/_lake.run_worker) for their own peak RSS (VmHWM) and CPU; PostgreSQL's CPU is
the postmaster's process tree (live backends plus the ones it reaped, so also the checkpointer and WAL writer)
sampled before and after. The goal line uses the median drain of the runs. `--phases` adds one more copy drained
by the same steps done one after another, each timed (read, to_bronze, Delta append, mark), to show which dominates.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import tempfile
import time
from pathlib import Path

from bench._data import code_line, machine_line
from bench._lake import DAYS, TRAFFIC_END, median, process_tree_cpu, run_worker, utterances

GOAL_EVENTS_PER_S = 100_000
EVENTS, QUICK_EVENTS = 1_000_000, 100_000
TENANTS = 10
COPIES = 8
EVENTS_PER_CONVERSATION = 5.53  # measured on core.demo_traffic output (55,297 events / 10,000 conversations)
RUNS, QUICK_RUNS = 2, 1
WORKER_TIMEOUT_S = 300
SEED = 11


# ---------------------------------------------------------------------------------------------------------------
# Workers (each runs in its own process through bench._lake.run_worker)


def read_rows(url: str, batch_size: int) -> dict:
    """The anchor: every outbox row through the drain's SELECT into Arrow, batch after batch; then, untimed by
    the anchor, to_bronze on each batch (what the drain adds before writing)."""
    import psycopg
    from adbc_driver_postgresql import dbapi as adbc

    from core.outbox import _BATCH, to_bronze

    with psycopg.connect(url, autocommit=True) as conn:
        horizon = conn.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]
    read_s = convert_s = 0.0
    cpu = time.process_time()
    rows = batches = nbytes = 0
    done = 0
    with adbc.connect(url) as reader:
        while done < horizon and batches < 10_000:
            started = time.perf_counter()
            with reader.cursor() as cursor:
                cursor.execute(_BATCH, (done, horizon, batch_size))
                raw = cursor.fetch_arrow_table()
            read_s += time.perf_counter() - started
            if raw.num_rows == 0:
                break
            started = time.perf_counter()
            to_bronze(raw)
            convert_s += time.perf_counter() - started
            rows, batches, nbytes = rows + raw.num_rows, batches + 1, nbytes + raw.nbytes
            done = raw.column("outbox_id")[-1].as_py()
    return {
        "rows": rows,
        "batches": batches,
        "arrow_mb": nbytes / 2**20,
        "seconds": read_s,
        "to_bronze_s": convert_s,
        "cpu_s": time.process_time() - cpu,  # reading and converting
    }


def drain_outbox(url: str, lake_root: str) -> dict:
    from bench._lake import timed
    from core.lake import BRONZE_EVENTS, Lake
    from core.outbox import drain

    lake = Lake(lake_root)
    measured = timed(lambda: drain(url, lake))
    drained = measured.pop("value")
    delta = lake.table(BRONZE_EVENTS)
    actions = delta.get_add_actions(flatten=True)
    return {
        "events": drained.events,
        "batches": drained.batches,
        "watermark": drained.watermark,
        "seconds": drained.seconds,
        "busy": drained.busy,
        "cpu_s": measured["cpu_s"],
        "call_s": measured["seconds"],
        "bronze_rows": sum(actions.column("num_records").to_pylist()),
        "bronze_files": actions.num_rows,
        "bronze_mb": sum(actions.column("size_bytes").to_pylist()) / 2**20,
        "partitions": len(
            set(
                zip(
                    actions.column("partition.tenant_id").to_pylist(),
                    actions.column("partition.date").to_pylist(),
                    strict=True,
                )
            )
        ),
    }


def drain_phases(url: str, lake_root: str, batch_size: int) -> dict:
    """The drain's work done serially, each phase timed (only with --phases): read a batch (ADBC), to_bronze,
    Lake.append (the Delta commit), the mark (DELETE of the drained rows and the watermark, one transaction)."""
    import psycopg
    from adbc_driver_postgresql import dbapi as adbc

    from core.lake import BRONZE_EVENTS, Lake
    from core.outbox import _BATCH, APP_ID, _mark, to_bronze

    lake = Lake(lake_root)
    phases = dict.fromkeys(("read", "to_bronze", "append", "mark"), 0.0)
    done = rows = 0
    with psycopg.connect(url, autocommit=True) as conn, adbc.connect(url) as reader:
        horizon = conn.execute("SELECT coalesce(max(id), 0) FROM outbox").fetchone()[0]
        for _ in range(10_000):
            if done >= horizon:
                break
            started = time.perf_counter()
            with reader.cursor() as cursor:
                cursor.execute(_BATCH, (done, horizon, batch_size))
                raw = cursor.fetch_arrow_table()
            phases["read"] += time.perf_counter() - started
            if raw.num_rows == 0:
                break
            started = time.perf_counter()
            batch = to_bronze(raw)
            phases["to_bronze"] += time.perf_counter() - started
            upper = batch.column("outbox_id")[-1].as_py()
            started = time.perf_counter()
            lake.append(BRONZE_EVENTS, batch, app_id=APP_ID, version=upper)
            phases["append"] += time.perf_counter() - started
            started = time.perf_counter()
            _mark(conn, upper)
            phases["mark"] += time.perf_counter() - started
            done, rows = upper, rows + batch.num_rows
    return {"rows": rows, "phases": phases}


# ---------------------------------------------------------------------------------------------------------------
# Setup


async def _write_base(url: str, *, conversations_per_tenant: int) -> dict:
    import psycopg
    from psycopg.rows import dict_row

    from core import demo_traffic, tenancy

    async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn, conn.transaction():
        ids = [
            (await tenancy.create_tenant(conn, name=f"Ingest Bank {n:02d}", actor="bench")).id for n in range(TENANTS)
        ]
        started = time.perf_counter()
        traffic = demo_traffic.generate(
            tenant_ids=ids,
            conversations_per_tenant=conversations_per_tenant,
            utterances=utterances(),
            days=DAYS,
            end=TRAFFIC_END,
            seed=SEED,
        )
        traffic.events.sort(key=lambda event: event[4])  # the live outbox hands out ids in time order
        generated = time.perf_counter() - started
        started = time.perf_counter()
        counts = await demo_traffic.write(conn, traffic)
        return {**counts, "generate_s": generated, "write_s": time.perf_counter() - started}


_REPLICATE = """
INSERT INTO outbox (event_id, tenant_id, type, payload, created_at)
SELECT gen_random_uuid(), tenant_id, type,
       CASE WHEN payload ? 'at'
            THEN jsonb_set(payload, '{at}', to_jsonb(to_char(created_at - shift, 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"')))
            ELSE payload END,
       created_at - shift
  FROM base CROSS JOIN LATERAL (SELECT k * interval '7 days' AS shift FROM generate_series(0, %(copies)s - 1) AS k) s
 ORDER BY created_at - shift, tenant_id
 LIMIT %(events)s"""


def prepare(url: str, *, events: int) -> dict:
    """The template database: base traffic written with demo_traffic.write, replicated to `events` outbox rows."""
    import psycopg

    base_events = -(-events // COPIES)
    # 2% more than needed, so COPIES copies suffice; the newest extra rows are cut (LIMIT)
    per_tenant = max(1, math.ceil(base_events * 1.02 / TENANTS / EVENTS_PER_CONVERSATION))
    base = asyncio.run(_write_base(url, conversations_per_tenant=per_tenant))
    copies = max(COPIES, -(-events // base["events"]))
    with psycopg.connect(url, autocommit=True) as conn:
        settings = dict(
            conn.execute(
                "SELECT name, setting || coalesce(unit, '') FROM pg_settings "
                "WHERE name IN ('shared_buffers', 'work_mem', 'max_wal_size', 'synchronous_commit', 'server_version')"
            ).fetchall()
        )
    started = time.perf_counter()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET TimeZone = 'UTC'")
        conn.execute("SET work_mem = '1GB'")
        conn.execute("CREATE TEMP TABLE base AS SELECT tenant_id, type, payload, created_at FROM outbox")
        conn.execute("TRUNCATE outbox")
        conn.execute(_REPLICATE, {"copies": copies, "events": events})
        replicated = time.perf_counter() - started
        started = time.perf_counter()
        conn.execute("VACUUM ANALYZE outbox")
        vacuumed = time.perf_counter() - started
        rows, first, last, oldest, newest, size, table, tenants = conn.execute(
            """SELECT count(*), min(id), max(id), min(created_at), max(created_at),
                      pg_total_relation_size('outbox'), pg_relation_size('outbox'), count(DISTINCT tenant_id)
                 FROM outbox"""
        ).fetchone()
    return {
        "base": base,
        "per_tenant": per_tenant,
        "copies": copies,
        "rows": rows,
        "ids": (first, last),
        "span": (oldest, newest),
        "tenants": tenants,
        "total_mb": size / 2**20,
        "heap_mb": table / 2**20,
        "replicate_s": replicated,
        "vacuum_s": vacuumed,
        "settings": settings,
    }


def _database_url(server: str, name: str) -> str:
    return server.replace("/postgres?", f"/{name}?", 1)


def _postmaster(pgdata: Path) -> int:
    return int((pgdata / "postmaster.pid").read_text().splitlines()[0])


def measured(pgdata: Path, module: str, function: str, kwargs: dict) -> dict:
    """A worker's result plus the CPU PostgreSQL spent while it ran."""
    postmaster = _postmaster(pgdata)
    before = process_tree_cpu(postmaster)
    result = run_worker(module, function, kwargs, timeout=WORKER_TIMEOUT_S)
    time.sleep(0.3)  # let the postmaster reap the worker's backends, so their CPU is counted
    result["pg_cpu_s"] = process_tree_cpu(postmaster) - before
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lake_ingest", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_EVENTS:,} events, {QUICK_RUNS} run")
    parser.add_argument("--events", type=int, default=None)
    parser.add_argument("--runs", type=int, default=None)
    parser.add_argument("--phases", action="store_true", help="also time the drain's phases one after another")
    args = parser.parse_args(argv)
    events = args.events or (QUICK_EVENTS if args.quick else EVENTS)
    runs = max(1, min(5, args.runs or (QUICK_RUNS if args.quick else RUNS)))

    import psycopg

    from core.db import EmbeddedPostgres, migrate
    from core.outbox import DEFAULT_BATCH

    setup = [machine_line(), code_line()]
    started = time.perf_counter()
    results: list[tuple[dict, dict]] = []
    phases = None
    with tempfile.TemporaryDirectory(prefix="parley-bench-ingest-") as tmp:
        pgdata = Path(tmp) / "pgdata"
        server = EmbeddedPostgres(pgdata)
        uri = server.start()
        try:
            with psycopg.connect(uri, autocommit=True) as conn:
                conn.execute('CREATE DATABASE "outbox_template"')
            template = _database_url(uri, "outbox_template")
            asyncio.run(migrate(template))
            prepared = prepare(template, events=events)
            for run in range(runs):
                name = f"outbox_run{run}"
                copy_started = time.perf_counter()
                with psycopg.connect(uri, autocommit=True) as conn:
                    conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "outbox_template" STRATEGY FILE_COPY')
                copied = time.perf_counter() - copy_started
                url = _database_url(uri, name)
                anchor = measured(pgdata, "bench.lake_ingest", "read_rows", {"url": url, "batch_size": DEFAULT_BATCH})
                drained = measured(
                    pgdata,
                    "bench.lake_ingest",
                    "drain_outbox",
                    {"url": url, "lake_root": str(Path(tmp) / f"lake{run}")},
                )
                with psycopg.connect(url, autocommit=True) as conn:
                    drained["left_in_outbox"] = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
                with psycopg.connect(uri, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE "{name}"')
                drained["copy_s"] = copied
                results.append((anchor, drained))
            if args.phases:
                with psycopg.connect(uri, autocommit=True) as conn:
                    conn.execute('CREATE DATABASE "outbox_phases" TEMPLATE "outbox_template" STRATEGY FILE_COPY')
                phases = measured(
                    pgdata,
                    "bench.lake_ingest",
                    "drain_phases",
                    {
                        "url": _database_url(uri, "outbox_phases"),
                        "lake_root": str(Path(tmp) / "lake-phases"),
                        "batch_size": DEFAULT_BATCH,
                    },
                )
        finally:
            server.stop()
    setup.append(f"after the run ({time.perf_counter() - started:.0f} s): {machine_line()}")
    report(prepared, results, setup, batch_size=DEFAULT_BATCH, phases=phases)


def report(
    prepared: dict, results: list[tuple[dict, dict]], setup: list[str], *, batch_size: int, phases: dict | None
) -> None:
    base, settings = prepared["base"], prepared["settings"]
    oldest, newest = prepared["span"]
    print(
        f"lake_ingest: core.outbox.drain, embedded PostgreSQL {settings.get('server_version', '?')} outbox → Delta "
        f"bronze/events in a local folder, batch {batch_size:,}"
    )
    for line in setup:
        print(f"  {line}")
    print(
        f"  outbox: {prepared['rows']:,} events of {prepared['tenants']} tenants, "
        f"{oldest:%Y-%m-%d} .. {newest:%Y-%m-%d}; "
        f"{prepared['total_mb']:.0f} MB with indexes (heap {prepared['heap_mb']:.0f} MB)"
    )
    print(
        f"    base: {base['events']:,} real demo events ({base['conversations']:,} conversations, "
        f"{base['messages']:,} messages; generated in {base['generate_s']:.1f} s, "
        f"demo_traffic.write {base['write_s']:.1f} s), "
        f"replicated {prepared['copies']}x in PostgreSQL with new event ids, copy k moved k weeks back "
        f"({prepared['replicate_s']:.1f} s), VACUUM ANALYZE {prepared['vacuum_s']:.1f} s"
    )
    print(
        f"    PostgreSQL settings (embedded defaults): shared_buffers {settings.get('shared_buffers')}, "
        f"work_mem {settings.get('work_mem')}, max_wal_size {settings.get('max_wal_size')}, "
        f"synchronous_commit {settings.get('synchronous_commit')}"
    )
    rates, anchor_rates = [], []
    for n, (anchor, drained) in enumerate(results, 1):
        rate = drained["events"] / drained["seconds"]
        anchor_rate = anchor["rows"] / anchor["seconds"]
        rates.append(rate)
        anchor_rates.append(anchor_rate)
        ok = drained["events"] == prepared["rows"] == drained["bronze_rows"] and drained["left_in_outbox"] == 0
        print(f"  run {n} (its own copy of the template, made in {drained['copy_s']:.1f} s)")
        print(
            f"    anchor: the drain's SELECT into Arrow via ADBC, {anchor['batches']} batches: {anchor['rows']:,} rows "
            f"({anchor['arrow_mb']:.0f} MB of Arrow) in {anchor['seconds']:.2f} s = {anchor_rate:,.0f} rows/s; "
            f"peak RSS {anchor['peak_rss_mb']:.0f} MB; CPU: reader {anchor['cpu_s']:.1f} s, "
            f"PostgreSQL {anchor['pg_cpu_s']:.1f} s"
        )
        print(
            f"            + to_bronze on the same batches {anchor['to_bronze_s']:.2f} s "
            f"(read + convert, serial: {anchor['seconds'] + anchor['to_bronze_s']:.2f} s)"
        )
        pg_share = drained["pg_cpu_s"] / (drained["pg_cpu_s"] + drained["cpu_s"])
        print(
            f"    drain:  {drained['events']:,} events in {drained['batches']} batches, {drained['seconds']:.2f} s = "
            f"{rate:,.0f} events/s ({drained['seconds'] / anchor['seconds']:.2f}x the anchor's time, "
            f"{rate / anchor_rate:.2f} of its rate); process {drained['wall_s']:.1f} s with imports"
        )
        print(
            f"            peak RSS of the drain process {drained['peak_rss_mb']:.0f} MB; CPU: drain process "
            f"{drained['cpu_s']:.1f} s, PostgreSQL {drained['pg_cpu_s']:.1f} s ({pg_share:.0%} of the CPU spent, "
            f"{(drained['cpu_s'] + drained['pg_cpu_s']) / drained['seconds']:.2f} cores busy on average)"
        )
        print(
            f"            bronze: {drained['bronze_rows']:,} rows in {drained['bronze_files']:,} files over "
            f"{drained['partitions']:,} (tenant, date) partitions, {drained['bronze_mb']:.0f} MB; outbox left "
            f"{drained['left_in_outbox']:,} rows; {'every event landed once' if ok else 'COUNTS DO NOT MATCH'}"
        )
    if phases is not None:
        total = sum(phases["phases"].values())
        print(
            f"  the drain's phases one after another ({phases['rows']:,} rows, no overlap): "
            + ", ".join(f"{name} {s:.2f} s ({s / total:.0%})" for name, s in phases["phases"].items())
            + f"; total {total:.2f} s = {phases['rows'] / total:,.0f} events/s; "
            f"PostgreSQL CPU {phases['pg_cpu_s']:.1f} s"
        )
    rate, anchor_rate = median(rates), median(anchor_rates)
    verdict = "PASS" if rate >= GOAL_EVENTS_PER_S else "FAIL"
    print(
        f"goal: outbox → bronze >= {GOAL_EVENTS_PER_S:,} events/s: {verdict} (median of {len(rates)} drains "
        f"{rate:,.0f} events/s; anchor, the SELECT into Arrow alone, {anchor_rate:,.0f} rows/s; ratio drain/anchor "
        f"{rate / anchor_rate:.2f})"
    )


if __name__ == "__main__":
    main()
