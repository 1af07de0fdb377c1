"""Usage metering: rows and their outbox events written together, read back per tenant by day, model and tier."""

import asyncio
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from core import metrics
from core.db import Database
from core.metrics import UsageRecord
from tests.conftest import bearer, new_tenant

PAID = UsageRecord(
    tier="llm", outcome="ok", provider="acme", model="small", input_tokens=1000, output_tokens=200, cost_usd=0.00027
)
FREE = UsageRecord(tier="kb", outcome="ok", latency_ms=12.5)
CACHED = UsageRecord(tier="cache", outcome="ok", cache_hit=True)
FAILED = UsageRecord(tier="llm", outcome="error", provider="acme", model="large")


def record(platform_db, tenant_id, *records):
    async def write():
        db = await Database.open(platform_db)
        try:
            async with db.transaction() as conn:
                for one in records:
                    await metrics.record_usage(conn, tenant_id=tenant_id, record=one)
        finally:
            await db.close()

    asyncio.run(write())


def usage(client, key, **params):
    return client.get("/v1/usage", params=params, headers=bearer(key))


def test_usage_is_summed_by_model_tier_and_day(client, platform_db):
    tenant_id, key = new_tenant(client, "usage")
    record(platform_db, tenant_id, PAID, PAID, FREE, CACHED, FAILED)
    by_model = usage(client, key, group_by="model").json()
    assert by_model["store"] == "postgresql" and by_model["total_cost_usd"] == pytest.approx(0.00054)
    rows = {row["key"]: row for row in by_model["rows"]}
    assert set(rows) == {"acme/small", "acme/large", "kb", "cache"}
    assert (rows["acme/small"]["calls"], rows["acme/small"]["input_tokens"]) == (2, 2000)
    assert rows["acme/large"]["errors"] == 1 and rows["cache"]["cache_hits"] == 1
    by_tier = {row["key"]: row["calls"] for row in usage(client, key, group_by="tier").json()["rows"]}
    assert by_tier == {"llm": 3, "kb": 1, "cache": 1}
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    assert [row["key"] for row in usage(client, key, group_by="day").json()["rows"]] == [today]


def test_each_usage_row_has_its_outbox_event(client, platform_db):
    tenant_id, _ = new_tenant(client, "usage")
    record(platform_db, tenant_id, PAID)
    with psycopg.connect(platform_db) as conn:
        events = conn.execute(
            "SELECT payload FROM outbox WHERE tenant_id = %s AND type = 'usage.recorded'", (tenant_id,)
        ).fetchall()
    assert len(events) == 1
    assert events[0][0]["model"] == "small" and events[0][0]["cost_usd"] == 0.00027 and events[0][0]["at"]


def test_a_tenant_sees_only_its_own_usage_and_spend(client, platform_db):
    tenant_a, key_a = new_tenant(client, "usage-a")
    tenant_b, key_b = new_tenant(client, "usage-b")
    record(platform_db, tenant_a, PAID, PAID)
    assert usage(client, key_a).json()["total_cost_usd"] == pytest.approx(0.00054)
    assert usage(client, key_b).json()["rows"] == [] and usage(client, key_b).json()["total_cost_usd"] == 0

    async def spent(tenant_id):
        db = await Database.open(platform_db)
        try:
            async with db.connection() as conn:
                return await metrics.spent_this_month(conn, tenant_id=tenant_id)
        finally:
            await db.close()

    assert asyncio.run(spent(tenant_a)) == pytest.approx(0.00054) and asyncio.run(spent(tenant_b)) == 0


def test_a_time_window_selects_and_a_bad_one_is_refused(client, platform_db):
    tenant_id, key = new_tenant(client, "usage")
    record(platform_db, tenant_id, PAID)
    future = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    assert usage(client, key, **{"from": future, "to": future}).status_code == 422  # an empty window
    later = usage(client, key, **{"from": future, "to": (datetime.now(UTC) + timedelta(days=2)).isoformat()})
    assert later.status_code == 200 and later.json()["rows"] == []
    too_long = usage(client, key, **{"from": "2024-01-01T00:00:00Z", "to": "2026-01-01T00:00:00Z"})
    assert too_long.status_code == 422 and too_long.headers["content-type"] == "application/problem+json"
    assert usage(client, key, group_by="week").status_code == 422
    assert usage(client, key, **{"from": "yesterday"}).status_code == 422


def test_only_analytics_roles_read_usage(client):
    tenant_id, owner = new_tenant(client, "usage")
    agent = client.post(
        f"/v1/tenants/{tenant_id}/keys", json={"role": "agent", "name": "a"}, headers=bearer(owner)
    ).json()["key"]
    viewer = client.post(
        f"/v1/tenants/{tenant_id}/keys", json={"role": "viewer", "name": "v"}, headers=bearer(owner)
    ).json()["key"]
    assert usage(client, agent).status_code == 403 and usage(client, viewer).status_code == 200


def test_budgets_are_checked_per_tenant_against_their_own_spend(client, platform_db):
    from core.llm.catalog import Catalog
    from core.llm.policy import TenantPolicy, put_policy
    from core.llm.strategy import decide

    catalog = Catalog.model_validate(
        {
            "providers": {
                "acme": {
                    "protocol": "openai",
                    "base_url": "http://127.0.0.1:9/v1",
                    "models": {
                        "small": {
                            "input_per_mtok": 0.15,
                            "output_per_mtok": 0.6,
                            "context_tokens": 8192,
                            "quality": 0.6,
                        },
                        "large": {"input_per_mtok": 2.5, "output_per_mtok": 10, "context_tokens": 8192, "quality": 0.9},
                    },
                }
            }
        }
    )
    policy = TenantPolicy.model_validate(
        {
            "tiers": ["kb", "acme/large", "acme/small"],
            "strategy": "quality",
            "budget": {"monthly_usd": 0.001, "soft_limit_usd": 0.0005},
        }
    )
    spender, _ = new_tenant(client, "spender")
    saver, _ = new_tenant(client, "saver")
    expensive = UsageRecord(tier="llm", outcome="ok", provider="acme", model="large", cost_usd=0.0006)

    async def decisions():
        db = await Database.open(platform_db)
        try:
            async with db.transaction() as conn:
                for tenant_id in (spender, saver):
                    await put_policy(conn, tenant_id=tenant_id, policy=policy, actor="test")
                await metrics.record_usage(conn, tenant_id=spender, record=expensive)
            async with db.connection() as conn:
                soft = [await decide(conn, tenant_id=t, catalog=catalog) for t in (spender, saver)]
                await metrics.record_usage(conn, tenant_id=spender, record=expensive)
                hard = [await decide(conn, tenant_id=t, catalog=catalog) for t in (spender, saver)]
                return soft, hard
        finally:
            await db.close()

    (spender_soft, saver_soft), (spender_hard, saver_hard) = asyncio.run(decisions())
    assert [str(r) for r in spender_soft.chain] == ["acme/small"] and "soft limit" in spender_soft.reason
    assert [str(r) for r in spender_hard.chain] == [] and "hard limit" in spender_hard.reason
    assert [str(r) for r in saver_soft.chain] == [str(r) for r in saver_hard.chain] == ["acme/large", "acme/small"]
