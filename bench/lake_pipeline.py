"""Bronze → silver → gold over 1M messages: each step of the lakehouse job timed in its own process, with its peak RSS.

Goal (issue): 1M messages bronze → silver → gold in <= 60 s on 2 cores. The issue lists sentiment on its own (it has
its own goal, bench/sentiment.py), so the goal line is silver + gold; the enrichments (sentiment, topics,
summaries), which gold reads, are timed and printed beside it, with the total including them.

Data: a bronze/events Delta table of real demo traffic, about MESSAGES messages of TENANTS tenants over 28 days,
made once with core.demo_traffic.generate (tenant by tenant) and core.outbox.to_bronze, skipping PostgreSQL: the
rows are ordered by event time and numbered like outbox ids, then appended in the drain's batches of 200,000 with
the drain's app transaction, so the table's files and partitions (tenant, date) look like a drained backlog.
Payloads are json.dumps text (a drained payload is PostgreSQL's jsonb text: same fields, other key order).
Cached, keyed by the code that makes each: the generated events in var/bench-cache/lake-events-*.parquet (about 2
minutes to generate at the full size on an idle machine, 5 on a busy one), the bronze table made from them (about
45 s) in var/bench-cache/lake-pipeline-<key>/; every run hard-links the table into a fresh temp lake.

Steps, in the job's order, each in a fresh interpreter (bench/_lake.run_worker), on the plain functions the Dagster
assets call: rebuild_silver(as_of fixed), run_sentiment(VaderScorer()), run_topics, run_summaries, rebuild_gold.
Each step's time is the function call alone; its process's import time and peak RSS (getrusage; for sentiment the
largest VADER worker too) are printed beside it.
Anchor: the unavoidable floor of silver, in its own process: a plain read of the bronze columns silver reads
(Lake.read → polars) plus polars' JSON decode of every payload with silver's own struct types (one per event type).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from bench._data import code_line, machine_line
from bench._lake import AS_OF, cache_key, cached_dir, link_tree, publish, run_worker, tenant_ids

GOAL_S = 60.0
MESSAGES, QUICK_MESSAGES = 1_000_000, 100_000
TENANTS = 10
MESSAGES_PER_CONVERSATION = 2.696  # measured on core.demo_traffic output (26,958 messages / 10,000 conversations)
BATCH = 200_000  # core.outbox.DEFAULT_BATCH: bronze lands in the drain's batches
SEED = 5
BUILD_TIMEOUT_S = 1500
STEP_TIMEOUT_S = 600
STEPS = ("silver", "sentiment", "topics", "summaries", "gold")
ENRICHMENTS = ("sentiment", "topics", "summaries")


# ---------------------------------------------------------------------------------------------------------------
# Workers


def build_bronze(root: str, messages: int) -> dict:
    """Demo traffic of about `messages` messages as bronze/events under `root` (written like the drain writes)."""
    import polars as pl

    from bench._lake import cached_events, outbox_rows
    from core.lake import BRONZE_EVENTS, Lake
    from core.outbox import APP_ID, to_bronze

    started = time.perf_counter()
    per_tenant = max(1, round(messages / TENANTS / MESSAGES_PER_CONVERSATION))
    frame = cached_events(tenant_ids(TENANTS), conversations_per_tenant=per_tenant, seed=SEED)
    generated = time.perf_counter() - started
    lake = Lake(root)
    started = time.perf_counter()
    for offset in range(0, frame.height, BATCH):
        batch = to_bronze(outbox_rows(frame.slice(offset, BATCH)))
        lake.append(BRONZE_EVENTS, batch, app_id=APP_ID, version=batch.column("outbox_id")[-1].as_py())
    counts = dict(frame.group_by("type").len().iter_rows())
    return {
        "events": frame.height,
        "conversations_per_tenant": per_tenant,
        "tenants": TENANTS,
        "span": [str(frame["at"].min()), str(frame["at"].max())],
        "payload_mb": frame["payload"].str.len_bytes().sum() / 2**20,
        "generate_s": generated,
        "write_s": time.perf_counter() - started,
        "rows_per_type": {k: int(v) for k, v in counts.items()},
        "polars": pl.__version__,
    }


def read_and_decode(root: str) -> dict:
    """The anchor: the bronze columns silver reads, into polars, and every payload JSON-decoded with silver's types."""
    import polars as pl

    from core.lake import BRONZE_EVENTS, Lake
    from pipelines.defs.silver.assets import BRONZE_COLUMNS
    from pipelines.transforms import silver

    types = {
        "message.created": silver._MESSAGE_PAYLOAD,
        "conversation.started": silver._STARTED_PAYLOAD,
        "handoff.requested": silver._HANDOFF_PAYLOAD,
        "feedback.given": silver._FEEDBACK_PAYLOAD,
        "usage.recorded": silver._USAGE_PAYLOAD,
    }
    from bench._lake import timed

    lake = Lake(root)
    read = timed(lambda: pl.from_arrow(lake.read(BRONZE_EVENTS, columns=BRONZE_COLUMNS)))
    events = read.pop("value")

    def decode() -> int:
        decoded = 0
        for kind, dtype in types.items():
            part = events.filter(pl.col("type") == kind).select(pl.col("payload").str.json_decode(dtype))
            decoded += part.height
        return decoded

    decoded = timed(decode)
    return {
        "rows": events.height,
        "decoded": decoded["value"],
        "read_s": read["seconds"],
        "decode_s": decoded["seconds"],
        "seconds": read["seconds"] + decoded["seconds"],
        "cpu_s": read["cpu_s"] + decoded["cpu_s"],
    }


def step(root: str, name: str) -> dict:
    """One step of the lakehouse job on the lake at `root`."""
    from core.lake import Lake

    lake = Lake(root)
    if name == "silver":
        from pipelines.defs.silver.assets import rebuild_silver

        call = lambda: rebuild_silver(lake, as_of=AS_OF)  # noqa: E731
    elif name == "sentiment":
        from models.sentiment.vader import VaderScorer
        from pipelines.defs.enrich.assets import run_sentiment

        scorer = VaderScorer()
        call = lambda: run_sentiment(lake, scorer)  # noqa: E731
    elif name == "topics":
        from pipelines.defs.enrich.assets import run_topics

        call = lambda: run_topics(lake)  # noqa: E731
    elif name == "summaries":
        from pipelines.defs.enrich.assets import run_summaries

        call = lambda: run_summaries(lake)  # noqa: E731
    elif name == "gold":
        from pipelines.defs.gold.assets import rebuild_gold

        call = lambda: rebuild_gold(lake)  # noqa: E731
    else:
        raise ValueError(name)
    from bench._lake import timed

    result = timed(call, children=name == "sentiment")  # only VaderScorer starts processes
    stats = {k: v for k, v in result.pop("value").items() if k != "tenant_ids"}
    return {**result, "stats": json.loads(json.dumps(stats, default=str))}


# ---------------------------------------------------------------------------------------------------------------


def bronze_cache(messages: int) -> tuple[Path, dict, float | None]:
    """The cached bronze lake for `messages` (made now if missing): its folder, what it holds, seconds to make it."""
    key = cache_key("lake-pipeline", messages, TENANTS, SEED, BATCH)
    folder = cached_dir(f"lake-pipeline-{messages}-{key}")
    meta = folder / "meta.json"
    if meta.exists():
        return folder, json.loads(meta.read_text()), None
    print(f"  making bronze for {messages:,} messages (once; cached in {folder.name}) ...", flush=True)
    started = time.perf_counter()
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        import shutil

        shutil.rmtree(partial)
    partial.mkdir(parents=True)
    made = run_worker(
        "bench.lake_pipeline", "build_bronze", {"root": str(partial), "messages": messages}, timeout=BUILD_TIMEOUT_S
    )
    (partial / "meta.json").write_text(json.dumps(made))
    publish(partial, folder)
    seconds = time.perf_counter() - started
    print(f"  ... {seconds:.0f} s (generate {made['generate_s']:.0f} s, write {made['write_s']:.0f} s)", flush=True)
    return folder, made, seconds


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.lake_pipeline", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_MESSAGES:,} messages")
    parser.add_argument("--messages", type=int, default=None)
    args = parser.parse_args(argv)
    messages = args.messages or (QUICK_MESSAGES if args.quick else MESSAGES)

    setup = [machine_line(), code_line()]
    started = time.perf_counter()
    cache, made, _ = bronze_cache(messages)
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="parley-bench-pipeline-") as tmp:
        root = Path(tmp) / "lake"
        (root / "bronze").mkdir(parents=True)
        link_tree(cache / "bronze" / "events", root / "bronze" / "events")
        anchor = run_worker("bench.lake_pipeline", "read_and_decode", {"root": str(root)}, timeout=STEP_TIMEOUT_S)
        for name in STEPS:
            results[name] = run_worker(
                "bench.lake_pipeline", "step", {"root": str(root), "name": name}, timeout=STEP_TIMEOUT_S
            )
        tables = _table_sizes(root)
    setup.append(f"after the run ({time.perf_counter() - started:.0f} s): {machine_line()}")
    report(made, anchor, results, tables, setup)


def _table_sizes(root: Path) -> dict[str, tuple[int, int, float]]:
    from core.lake import TABLES, Lake

    lake = Lake(root)
    sizes = {}
    for table in TABLES:
        delta = lake.table(table)
        if delta is None:
            continue
        actions = delta.get_add_actions(flatten=True)
        rows = sum(n or 0 for n in actions.column("num_records").to_pylist())
        sizes[table.name] = (rows, actions.num_rows, sum(actions.column("size_bytes").to_pylist()) / 2**20)
    return sizes


def report(made: dict, anchor: dict, results: dict[str, dict], tables: dict, setup: list[str]) -> None:
    silver = results["silver"]["stats"]
    print(
        f"lake_pipeline: bronze → silver → enrichments → gold, each step's plain function in its own process, "
        f"{silver['messages']:,} messages"
    )
    for line in setup:
        print(f"  {line}")
    by_type = ", ".join(f"{k} {v:,}" for k, v in sorted(made["rows_per_type"].items()))
    print(
        f"  bronze: {made['events']:,} events of {made['tenants']} tenants ({by_type}), {made['span'][0][:10]} .. "
        f"{made['span'][1][:10]}, {made['payload_mb']:.0f} MB of payload JSON; "
        f"{tables['bronze/events'][1]:,} files, {tables['bronze/events'][2]:.0f} MB"
    )
    print(
        f"  anchor: Lake.read of silver's bronze columns {anchor['read_s']:.2f} s + JSON decode of every payload "
        f"{anchor['decode_s']:.2f} s = {anchor['seconds']:.2f} s (CPU {anchor['cpu_s']:.1f} s, "
        f"peak RSS {anchor['peak_rss_mb']:.0f} MB)"
    )
    table_of = {
        "silver": ("silver/messages", "silver/conversations"),
        "sentiment": ("enriched/message_sentiment",),
        "topics": ("enriched/conversation_topics",),
        "summaries": ("enriched/conversation_summaries",),
        "gold": ("gold/tenant_daily", "gold/intent_daily"),
    }
    for name, result in results.items():
        rss = f"peak RSS {result['peak_rss_mb']:5.0f} MB"
        if result["children_peak_rss_mb"] > 1:
            rss += f" (with its child processes {result['tree_peak_rss_mb']:.0f} MB)"
        cpu = result["cpu_s"] + result["children_cpu_s"]
        wrote = "; ".join(f"{t} {tables[t][0]:,} rows / {tables[t][1]} files" for t in table_of[name] if t in tables)
        print(
            f"  {name:<10} {result['seconds']:6.2f} s  ({result['seconds'] / anchor['seconds']:5.2f}x the anchor)  "
            f"{rss}  CPU {cpu:5.1f} s ({cpu / result['seconds']:.2f} cores)  "
            f"start+imports {result['setup_s']:.1f} s  → {wrote}"
        )
    core = results["silver"]["seconds"] + results["gold"]["seconds"]
    enrich = sum(results[name]["seconds"] for name in ENRICHMENTS)
    with_processes = sum(r["wall_s"] for r in results.values())
    print(
        f"  bronze → silver → gold without the enrichments {core:.2f} s ({core / anchor['seconds']:.2f}x the anchor); "
        f"enrichments {enrich:.2f} s; with them {core + enrich:.2f} s "
        f"({with_processes:.1f} s counting each step's interpreter start and imports)"
    )
    per_million = core * 1_000_000 / silver["messages"]
    verdict = "PASS" if per_million <= GOAL_S else "FAIL"
    scale = "" if silver["messages"] >= 990_000 else f"; scaled to 1M messages {per_million:.1f} s"
    print(
        f"goal: 1M messages bronze → silver → gold <= {GOAL_S:.0f} s on 2 cores "
        f"(silver + gold; enrichments beside it): "
        f"{verdict} ({core:.2f} s for {silver['messages']:,} messages{scale}; with sentiment, topics and summaries "
        f"{core + enrich:.2f} s; anchor, read + JSON decode of bronze, {anchor['seconds']:.2f} s; ratio "
        f"{core / anchor['seconds']:.2f}x)"
    )


if __name__ == "__main__":
    main()
