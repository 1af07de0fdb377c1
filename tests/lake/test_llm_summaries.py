"""Summaries by the router's paid tier for the tenant whose policy allows it, metered and within its budget; the
other tenant's stay extractive and free. The vendor is a real HTTP server on 127.0.0.1 speaking the OpenAI protocol."""

from __future__ import annotations

import asyncio
import uuid

import polars as pl
import psycopg
import pytest
from psycopg.rows import dict_row

from core.lake import CONVERSATION_SUMMARIES, SILVER_CONVERSATIONS, Lake
from core.llm.policy import TenantPolicy, put_policy
from tests.fakes.vendors import Answer, Fail, serve_vendor
from tests.lake.conftest import new_platform_database, run_lakehouse, write_traffic

PROVIDERS = """
providers:
  acme:
    protocol: openai
    base_url: {base_url}
    timeout_s: 2
    models:
      small: {{input_per_mtok: 0.15, output_per_mtok: 0.6, context_tokens: 128000, quality: 0.8}}
"""
SUMMARY = Answer(
    text="The customer asked about a card; the assistant explained the steps.", input_tokens=300, output_tokens=20
)
COST = (300 * 0.15 + 20 * 0.6) / 1_000_000


async def set_policy(url: str, tenant_id: str, **policy) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True, row_factory=dict_row) as conn:
        await put_policy(conn, tenant_id=tenant_id, policy=TenantPolicy(**policy), actor="test")


@pytest.fixture
def vendor():
    with serve_vendor() as fake:
        yield fake


@pytest.fixture
def platform(pg_server, tmp_path, vendor):
    url = new_platform_database(pg_server, f"summ_{uuid.uuid4().hex[:8]}")
    allowed, other = asyncio.run(write_traffic(url, ["Summ A", "Summ B"], conversations=8, seed=5))
    providers = tmp_path / "providers.yaml"
    providers.write_text(PROVIDERS.format(base_url=vendor.base_url))
    tiers = ["cache", "kb", "acme/small"]
    asyncio.run(set_policy(url, allowed, tiers=tiers, llm_summaries=True))
    asyncio.run(set_policy(url, other, tiers=tiers))
    return url, allowed, other, providers, tmp_path / "lake"


def summaries(root) -> pl.DataFrame:
    return pl.from_arrow(Lake(str(root)).read(CONVERSATION_SUMMARIES))


def summary_usage(url: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(
            "SELECT tenant_id, conversation_id, cost_usd::float8 FROM usage WHERE tier = 'summary' ORDER BY id"
        ).fetchall()


def test_the_allowing_tenant_gets_model_summaries_metered_and_the_other_extractive(platform, vendor):
    url, allowed, other, providers, root = platform
    vendor.then(*[SUMMARY] * 8)
    assert run_lakehouse(root, url, providers_file=providers).success
    rows = summaries(root)
    mine, theirs = rows.filter(pl.col("tenant_id") == allowed), rows.filter(pl.col("tenant_id") == other)
    assert mine.height == theirs.height == 8
    assert set(mine["method"]) == {"acme/small"} and set(mine["summary"]) == {SUMMARY.text}
    assert set(theirs["method"]) == {"extractive"} and all(s.startswith("Customer:") for s in theirs["summary"])
    assert len(vendor.requests) == 8
    transcript = vendor.requests[0]["body"]["messages"]
    assert transcript[0]["role"] == "system" and "Customer: " in transcript[1]["content"]
    assert sorted(c for _, c, _ in summary_usage(url)) == sorted(mine["conversation_id"])
    assert {t for t, _, _ in summary_usage(url)} == {allowed}
    assert sum(cost for _, _, cost in summary_usage(url)) == pytest.approx(8 * COST)

    # Nothing changed: a second run calls no model and keeps every summary.
    assert run_lakehouse(root, url, providers_file=providers).success
    assert len(vendor.requests) == 8 and summaries(root).sort("conversation_id").equals(rows.sort("conversation_id"))


def test_a_failing_vendor_leaves_extractive_summaries_that_a_later_run_upgrades(platform, vendor):
    url, allowed, _, providers, root = platform
    vendor.then(*[Fail(500)] * 40)
    assert run_lakehouse(root, url, providers_file=providers).success
    mine = summaries(root).filter(pl.col("tenant_id") == allowed)
    assert set(mine["method"]) == {"extractive"} and summary_usage(url) == []
    vendor.script.clear()
    vendor.then(*[SUMMARY] * 8)
    assert run_lakehouse(root, url, providers_file=providers).success
    assert set(summaries(root).filter(pl.col("tenant_id") == allowed)["method"]) == {"acme/small"}


def test_the_hard_limit_stops_model_summaries(platform, vendor):
    url, allowed, _, providers, root = platform
    budget = {"monthly_usd": 10, "soft_limit_usd": 2 * COST, "hard_limit_usd": 2 * COST}  # room for two summaries
    asyncio.run(set_policy(url, allowed, tiers=["cache", "kb", "acme/small"], llm_summaries=True, budget=budget))
    # The demo traffic's own model answers were in other months or cost more than this: start the month empty.
    with psycopg.connect(url) as conn:
        conn.execute("DELETE FROM usage_monthly")
    vendor.then(*[SUMMARY] * 8)
    assert run_lakehouse(root, url, providers_file=providers).success
    methods = summaries(root).filter(pl.col("tenant_id") == allowed)["method"].to_list()
    assert methods.count("acme/small") == 2 and methods.count("extractive") == 6
    assert len(summary_usage(url)) == 2
    conversations = Lake(str(root)).read(SILVER_CONVERSATIONS, tenant_ids=[allowed])
    assert conversations.num_rows == 8
