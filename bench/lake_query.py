"""An analyst's query through DuckDB over the lake: daily KPIs per tenant over 10M silver messages.

Goal (issue): a DuckDB analyst query (daily KPIs over 10M messages) <= 1 s.

Data: a silver/messages Delta table of ROWS rows, made once and cached in var/bench-cache/lake-query-<key>/:
  1. SOURCE: real demo traffic (core.demo_traffic, 10 tenants, 28 days) turned into bronze rows
     (core.outbox.to_bronze) and into silver messages by the pipeline's own transform (build_silver);
  2. REPLICATED with polars, vectorised: copy k of the source rows goes to clone k % CLONES of its tenant (50
     tenants in all) and moves (k // CLONES) x 28 days back, with new message, conversation and event ids (same
     shape as the real ones); so 50 tenants of about 200k messages each over about 10 months;
  3. written as silver writes it: sorted by tenant, conversation and time, through Lake.append (partitioned by
     tenant), one write per group of 10 tenants (silver rewrites tenants in chunks of up to 3M rows).
The query, per tenant and day: messages, customer messages, unanswered (customer messages without a confident
answer, gold's definition), thumbs up, thumbs down, cost, p95 assistant latency.
Measured, in one process, warm (one untimed run first), RUNS runs each, median and max:
  - the analysts' way: core.lake_sql's connection (what `parley lake sql` runs), in the operator's scope, locked
    down, querying the `silver_messages` view;
  - anchor: the same SQL with a plain DuckDB connection reading the table's parquet files itself (read_parquet over
    the Delta table's current files, tenant_id from the partition paths);
  - beside them: the Delta table registered as an Arrow dataset (how the engine read the lake before), and the same
    aggregation in polars (scan_parquet over the same files, lazy, streaming engine).
The four results are compared (same groups, counts and sums).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from bench._data import code_line, machine_line
from bench._lake import AS_OF, GENERATOR_SOURCES, cache_key, cached_dir, publish, run_worker

GOAL_S = 1.0
ROWS, QUICK_ROWS = 10_000_000, 1_000_000
SOURCE_TENANTS = 10
SOURCE_CONVERSATIONS_PER_TENANT = 8_000  # about 216k messages
CLONES = 5  # 10 source tenants x 5 = 50 tenants
PERIOD_DAYS = 28
RUNS = 5
SEED = 3
BUILD_TIMEOUT_S = 1200
QUERY_TIMEOUT_S = 600
SOURCES = (*GENERATOR_SOURCES, "pipelines/transforms/silver.py", "core/pii.py", "core/lake.py")

SQL = """
SELECT tenant_id, date,
       count(*) AS messages,
       count(*) FILTER (WHERE role = 'user') AS customer_messages,
       count(*) FILTER (WHERE answered = false) AS unanswered,
       count(*) FILTER (WHERE feedback = 'up') AS thumbs_up,
       count(*) FILTER (WHERE feedback = 'down') AS thumbs_down,
       sum(cost_usd) AS cost_usd,
       quantile_cont(latency_ms, 0.95) FILTER (WHERE role = 'assistant') AS latency_ms_p95
  FROM {source}
 GROUP BY tenant_id, date
 ORDER BY tenant_id, date
"""


# ---------------------------------------------------------------------------------------------------------------
# Workers


def build_messages(root: str, rows: int) -> dict:
    """The cached silver/messages table of `rows` rows under `root` (see the module's docstring)."""
    from datetime import timedelta

    import polars as pl

    from bench._lake import cached_events, outbox_rows, tenant_ids
    from core.lake import SILVER_MESSAGES, Lake
    from core.outbox import to_bronze
    from pipelines.defs.silver.assets import BRONZE_COLUMNS
    from pipelines.transforms.silver import build_silver

    started = time.perf_counter()
    sources = tenant_ids(SOURCE_TENANTS)
    events = cached_events(sources, conversations_per_tenant=SOURCE_CONVERSATIONS_PER_TENANT, seed=SEED)
    bronze = pl.from_arrow(to_bronze(outbox_rows(events))).select(BRONZE_COLUMNS)
    source = build_silver(bronze, as_of=AS_OF).messages
    del events, bronze
    made_source = time.perf_counter() - started

    started = time.perf_counter()
    copies = -(-rows // source.height)
    targets = tenant_ids(SOURCE_TENANTS * CLONES)
    target_of = {
        (clone, n): targets[clone * SOURCE_TENANTS + n] for clone in range(CLONES) for n in range(SOURCE_TENANTS)
    }
    lake = Lake(root)
    written = 0
    for clone in range(CLONES):
        parts = []
        for copy in range(clone, copies, CLONES):
            take = min(source.height, rows - copy * source.height)
            if take <= 0:
                break
            shift = timedelta(days=PERIOD_DAYS * (copy // CLONES))
            prefix = f"{copy:03x}"
            mapping = {sources[n]: target_of[(clone, n)] for n in range(SOURCE_TENANTS)}
            parts.append(
                source.head(take).with_columns(
                    tenant_id=pl.col("tenant_id").replace_strict(mapping),
                    message_id=pl.lit("m_" + prefix) + pl.col("message_id").str.slice(5),
                    conversation_id=pl.lit("c_" + prefix) + pl.col("conversation_id").str.slice(5),
                    event_id=pl.lit(prefix) + pl.col("event_id").str.slice(3),
                    created_at=pl.col("created_at") - shift,
                    feedback_at=pl.col("feedback_at") - shift,
                )
            )
        if not parts:
            continue
        frame = (
            pl.concat(parts)
            .with_columns(date=pl.col("created_at").dt.date())
            .sort(["tenant_id", "conversation_id", "created_at"])
        )
        lake.append(SILVER_MESSAGES, frame.to_arrow())
        written += frame.height
    delta = lake.table(SILVER_MESSAGES)
    actions = delta.get_add_actions(flatten=True)
    return {
        "rows": written,
        "source_rows": source.height,
        "source_tenants": SOURCE_TENANTS,
        "tenants": len(set(actions.column("partition.tenant_id").to_pylist())),
        "copies": copies,
        "files": actions.num_rows,
        "mb": sum(actions.column("size_bytes").to_pylist()) / 2**20,
        "make_source_s": made_source,
        "replicate_write_s": time.perf_counter() - started,
    }


def _summary(frame) -> dict:
    import polars as pl

    return {
        "groups": frame.height,
        "messages": int(frame["messages"].sum()),
        "customer": int(frame["customer_messages"].sum()),
        "unanswered": int(frame["unanswered"].sum()),
        "up": int(frame["thumbs_up"].sum()),
        "down": int(frame["thumbs_down"].sum()),
        "cost": round(float(frame["cost_usd"].sum()), 4),
        "p95_mean": round(float(frame.select(pl.col("latency_ms_p95").mean()).item() or 0.0), 3),
    }


def query(root: str, runs: int) -> dict:
    """Each engine warm: one untimed run, then `runs` timed runs."""
    import duckdb
    import polars as pl

    from core.lake import SILVER_MESSAGES, Lake

    lake = Lake(root)
    delta = lake.table(SILVER_MESSAGES)
    files = delta.file_uris()
    con = duckdb.connect()
    threads = con.execute("SELECT current_setting('threads')").fetchone()[0]

    from core.lake_sql import connect

    analysts = connect(lake=lake, all_tenants=True)
    engine = analysts.__enter__()  # `parley lake sql`'s connection, the operator's scope, locked down

    def engine_way():
        return pl.from_arrow(engine.query(SQL.format(source="silver_messages")))

    def dataset_way():
        con.register("messages", lake.dataset(SILVER_MESSAGES))  # the Delta table as an Arrow dataset
        return con.execute(SQL.format(source="messages")).pl()

    listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
    parquet_sql = SQL.format(source=f"read_parquet([{listing}], hive_partitioning = true)")

    def parquet_way():
        return con.execute(parquet_sql).pl()

    def polars_way():
        assistant = pl.col("role") == "assistant"
        return (
            pl.scan_parquet(files, hive_partitioning=True)
            .group_by("tenant_id", "date")
            .agg(
                messages=pl.len(),
                customer_messages=(pl.col("role") == "user").sum(),
                unanswered=(pl.col("answered") == False).sum(),  # noqa: E712 (polars expression)
                thumbs_up=(pl.col("feedback") == "up").sum(),
                thumbs_down=(pl.col("feedback") == "down").sum(),
                cost_usd=pl.col("cost_usd").sum(),
                latency_ms_p95=pl.col("latency_ms").filter(assistant).quantile(0.95, interpolation="linear"),
            )
            .sort("tenant_id", "date")
            .collect(engine="streaming")
        )

    results = {}
    ways = (("engine", engine_way), ("read_parquet", parquet_way), ("dataset", dataset_way), ("polars", polars_way))
    for name, run in ways:
        started = time.perf_counter()
        frame = run()
        first = time.perf_counter() - started
        seconds, cpu = [], []
        for _ in range(runs):
            used = time.process_time()
            started = time.perf_counter()
            frame = run()
            seconds.append(time.perf_counter() - started)
            cpu.append(time.process_time() - used)
        results[name] = {"first_s": first, "seconds": seconds, "cpu_s": cpu, "summary": _summary(frame)}
    analysts.__exit__(None, None, None)
    return {
        "engines": results,
        "files": len(files),
        "threads": threads,
        "duckdb": duckdb.__version__,
        "polars": pl.__version__,
    }


# ---------------------------------------------------------------------------------------------------------------


def messages_cache(rows: int) -> tuple[Path, dict]:
    key = cache_key("lake-query", rows, SOURCE_TENANTS, SOURCE_CONVERSATIONS_PER_TENANT, CLONES, SEED, sources=SOURCES)
    folder = cached_dir(f"lake-query-{rows}-{key}")
    meta = folder / "meta.json"
    if meta.exists():
        return folder, json.loads(meta.read_text())
    print(f"  making silver/messages of {rows:,} rows (once; cached in {folder.name}) ...", flush=True)
    started = time.perf_counter()
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        import shutil

        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    made = run_worker(
        "bench.lake_query", "build_messages", {"root": str(partial), "rows": rows}, timeout=BUILD_TIMEOUT_S
    )
    (partial / "meta.json").write_text(json.dumps(made))
    publish(partial, folder)
    print(f"  ... {time.perf_counter() - started:.0f} s", flush=True)
    return folder, made


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lake_query", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_ROWS:,} messages")
    parser.add_argument("--rows", type=int, default=None)
    args = parser.parse_args(argv)
    rows = args.rows or (QUICK_ROWS if args.quick else ROWS)
    setup = [machine_line(), code_line()]
    started = time.perf_counter()
    folder, made = messages_cache(rows)
    measured = run_worker("bench.lake_query", "query", {"root": str(folder), "runs": RUNS}, timeout=QUERY_TIMEOUT_S)
    setup.append(f"after the run ({time.perf_counter() - started:.0f} s): {machine_line()}")
    report(made, measured, setup)


def _stats(values: list[float]) -> tuple[float, float]:
    import statistics

    return statistics.median(values), max(values)


def report(made: dict, measured: dict, setup: list[str]) -> None:
    engines = measured["engines"]
    print(
        f"lake_query: daily KPIs per tenant over silver/messages ({made['rows']:,} rows) through DuckDB "
        f"{measured['duckdb']} ({measured['threads']} threads), warm, {len(engines['engine']['seconds'])} runs each"
    )
    for line in setup:
        print(f"  {line}")
    print(
        f"  table: {made['rows']:,} messages of {made['tenants']} tenants in {measured['files']} files, "
        f"{made['mb']:.0f} MB: {made['source_rows']:,} real silver messages of {made['source_tenants']} tenants "
        f"(demo traffic through build_silver) replicated {made['copies']}x with new ids, 5 clones per tenant, "
        f"copies moved back {PERIOD_DAYS}-day periods"
    )
    labels = {
        "engine": "core.lake_sql (parley lake sql, operator scope)",
        "read_parquet": "anchor: DuckDB read_parquet over the table's files",
        "dataset": "Lake.dataset registered as an Arrow dataset",
        "polars": "polars scan_parquet over the same files",
    }
    for name, result in engines.items():
        middle, worst = _stats(result["seconds"])
        cpu, _ = _stats(result["cpu_s"])
        print(
            f"  {labels[name]:<52} median {middle * 1000:7.0f} ms  max {worst * 1000:7.0f} ms  "
            f"CPU per run {cpu * 1000:6.0f} ms ({cpu / middle:.2f} cores)  "
            f"(first, untimed {result['first_s'] * 1000:.0f} ms)"
        )
    summaries = {name: result["summary"] for name, result in engines.items()}
    same = all(s == summaries["engine"] for s in summaries.values())
    reference = summaries["engine"]
    print(
        f"  result: {reference['groups']:,} (tenant, day) rows, {reference['messages']:,} messages, "
        f"{reference['customer']:,} from customers, {reference['unanswered']:,} unanswered, "
        f"{reference['up']:,} up / {reference['down']:,} down, ${reference['cost']:,.2f}; the four ways "
        + ("agree" if same else f"DISAGREE: {json.dumps(summaries)}")
    )
    middle, worst = _stats(engines["engine"]["seconds"])
    anchor, _ = _stats(engines["read_parquet"]["seconds"])
    verdict = "PASS" if middle <= GOAL_S and same else "FAIL"
    if middle <= GOAL_S < worst:
        verdict += " on the median, though the slowest run took longer"
    print(
        f"goal: daily KPIs over {made['rows'] / 1e6:.0f}M messages <= {GOAL_S:.0f} s through the analysts' engine: "
        f"{verdict} (median {middle:.2f} s, max {worst:.2f} s of {len(engines['engine']['seconds'])} warm runs; "
        f"anchor, DuckDB read_parquet on the same files, median {anchor:.2f} s; ratio {middle / anchor:.2f}x)"
    )


if __name__ == "__main__":
    main()
