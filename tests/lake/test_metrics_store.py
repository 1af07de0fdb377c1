"""The metrics store the dashboards read: gold's daily facts exported to PostgreSQL by the lakehouse job, per tenant,
replaced (never added to) when a day is exported again, and the hourly usage roll-up refreshed."""

from __future__ import annotations

import psycopg
import pytest
from psycopg.rows import dict_row

from core.lake import GOLD_INTENT_DAILY, GOLD_TENANT_DAILY
from pipelines.defs.metrics.assets import export_changed, export_gold


def store_rows(url, table, tenant_id):
    order = "day, intent" if table == "intent_daily" else "day"
    with psycopg.connect(url, row_factory=dict_row) as conn:
        return conn.execute(f"SELECT * FROM {table} WHERE tenant_id = %s ORDER BY {order}", (tenant_id,)).fetchall()


def gold_rows(lakehouse, table, tenant_id):
    rows = lakehouse.lake.read(table, tenant_ids=[tenant_id]).to_pylist()
    return sorted(rows, key=lambda r: (r["date"], r.get("intent") or ""))


@pytest.mark.parametrize("which", [0, 1])
def test_each_tenants_daily_facts_in_the_store_are_its_gold_rows(lakehouse, which):
    tenant_id = lakehouse.tenants[which]
    other = lakehouse.tenants[1 - which]
    gold = gold_rows(lakehouse, GOLD_TENANT_DAILY, tenant_id)
    stored = store_rows(lakehouse.db_url, "tenant_daily", tenant_id)
    assert len(stored) == len(gold) > 20
    for mine, theirs in zip(stored, gold, strict=True):
        assert mine["day"] == theirs["date"] and mine["tenant_id"] == tenant_id
        for column in ("conversations", "resolved", "handoff", "messages", "unanswered", "feedback_up"):
            assert mine[column] == theirs[column], column
        assert mine["cost_usd"] == pytest.approx(theirs["cost_usd"])
    intents = store_rows(lakehouse.db_url, "intent_daily", tenant_id)
    assert len(intents) == len(gold_rows(lakehouse, GOLD_INTENT_DAILY, tenant_id))
    with psycopg.connect(lakehouse.db_url) as conn:
        (total,) = conn.execute("SELECT count(*) FROM tenant_daily").fetchone()
    assert total == len(gold) + len(gold_rows(lakehouse, GOLD_TENANT_DAILY, other)), "no row of one in the other"


def test_exporting_a_day_again_replaces_it_and_nothing_changed_exports_nothing(lakehouse):
    tenant_id = lakehouse.tenants[0]
    before = store_rows(lakehouse.db_url, "tenant_daily", tenant_id)
    day = before[5]["day"]
    with psycopg.connect(lakehouse.db_url) as conn:
        conn.execute(
            "UPDATE tenant_daily SET conversations = conversations + 1000 WHERE tenant_id = %s AND day = %s",
            (tenant_id, day),
        )
        conn.execute(
            "INSERT INTO intent_daily (tenant_id, day, intent) VALUES (%s, %s, 'stale_intent')", (tenant_id, day)
        )
    for _ in range(2):
        written = export_gold(lakehouse.lake, lakehouse.db_url, days=[day])
        assert written["keys"] == 2, "the day of each tenant"
    after = store_rows(lakehouse.db_url, "tenant_daily", tenant_id)
    assert [(r["day"], r["conversations"]) for r in after] == [(r["day"], r["conversations"]) for r in before]
    assert "stale_intent" not in {r["intent"] for r in store_rows(lakehouse.db_url, "intent_daily", tenant_id)}
    assert export_changed(lakehouse.lake, lakehouse.db_url)["tenants"] == 0, "the store holds gold's version"


def test_the_store_says_its_mode_and_rolls_usage_up_by_the_hour(lakehouse):
    with psycopg.connect(lakehouse.db_url, row_factory=dict_row) as conn:
        mode = conn.execute("SELECT count(*) AS n FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        assert mode["n"] == 0, "the embedded server has no TimescaleDB: the plain PostgreSQL branch"
        for tenant_id in lakehouse.tenants:
            hourly = conn.execute(
                "SELECT sum(calls) AS calls, sum(cost_usd) AS cost FROM usage_hourly WHERE tenant_id = %s", (tenant_id,)
            ).fetchone()
            raw = conn.execute(
                "SELECT count(*) AS calls, sum(cost_usd)::float8 AS cost FROM usage WHERE tenant_id = %s", (tenant_id,)
            ).fetchone()
            assert hourly["calls"] == raw["calls"] > 0
            assert hourly["cost"] == pytest.approx(raw["cost"])


def test_the_unanswered_questions_in_the_store_are_each_tenants_from_silver(lakehouse):
    import polars as pl

    from core.lake import SILVER_MESSAGES

    for which in (0, 1):
        tenant_id = lakehouse.tenants[which]
        messages = pl.from_arrow(lakehouse.lake.read(SILVER_MESSAGES, tenant_ids=[tenant_id]))
        missed = messages.filter((pl.col("role") == "user") & (pl.col("answered") == False))  # noqa: E712
        stored = store_rows(lakehouse.db_url, "unanswered_daily", tenant_id)
        assert missed.height > 0 and stored, "demo traffic has questions without a confident answer"
        # Every unanswered question is counted once, under its day (at most 50 questions a day are kept).
        per_day = missed.group_by("date").len()
        kept = {}
        for row in stored:
            kept[row["day"]] = kept.get(row["day"], 0) + row["asked"]
            assert row["question"] == row["question"].lower().strip() and row["example"]
        for day, count in per_day.iter_rows():
            assert kept.get(day) == count or count > 50, (day, count, kept.get(day))
        # Both tenants ask Banking77's questions, so texts may coincide: each example must be one of its own tenant's.
        assert {row["example"] for row in stored} <= set(missed["text"].to_list())
    with psycopg.connect(lakehouse.db_url) as conn:
        (total,) = conn.execute("SELECT count(*) FROM unanswered_daily").fetchone()
    assert total == sum(len(store_rows(lakehouse.db_url, "unanswered_daily", t)) for t in lakehouse.tenants)
