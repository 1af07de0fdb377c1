"""The lakehouse job end to end: what lands in silver, enrichments and gold, per tenant, and what its checks stop."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import polars as pl
import psycopg
import pytest
from psycopg.types.json import Jsonb

from core.lake import (
    BRONZE_EVENTS,
    GOLD_TENANT_DAILY,
    MESSAGE_SENTIMENT,
    SILVER_CONVERSATIONS,
    SILVER_MESSAGES,
    TABLES,
    Lake,
)
from tests.lake.conftest import TRAFFIC_END, new_platform_database, run_lakehouse, write_traffic


def frame(lake: Lake, table, **kwargs) -> pl.DataFrame:
    return pl.from_arrow(lake.read(table, **kwargs))


def platform_rows(url: str, sql: str) -> list[tuple]:
    with psycopg.connect(url) as conn:
        return conn.execute(sql).fetchall()


def test_silver_holds_every_conversation_and_message_of_each_tenant_and_nothing_of_the_other(lakehouse):
    lake, url = lakehouse.lake, lakehouse.db_url
    conversations = frame(lake, SILVER_CONVERSATIONS)
    messages = frame(lake, SILVER_MESSAGES)
    for tenant in lakehouse.tenants:
        expected = {row[0] for row in platform_rows(url, f"SELECT id FROM conversations WHERE tenant_id = '{tenant}'")}
        assert set(conversations.filter(pl.col("tenant_id") == tenant)["conversation_id"]) == expected
        expected = {row[0] for row in platform_rows(url, f"SELECT id FROM messages WHERE tenant_id = '{tenant}'")}
        assert set(messages.filter(pl.col("tenant_id") == tenant)["message_id"]) == expected
    # Every id in any table belongs to the tenant its row says.
    owner = dict(platform_rows(url, "SELECT id, tenant_id FROM conversations"))
    for table in TABLES:
        data = frame(lake, table)
        if "conversation_id" in data.columns:
            pairs = data.select("conversation_id", "tenant_id").drop_nulls().unique().iter_rows()
            assert all(owner.get(c) == t for c, t in pairs), table.name


def test_silver_messages_are_ordered_redacted_and_carry_usage_and_feedback(lakehouse):
    messages = frame(lakehouse.lake, SILVER_MESSAGES)
    with_pii = messages.filter(pl.sum_horizontal("pii_email", "pii_phone", "pii_card", "pii_iban") > 0)
    assert with_pii.height > 0, "the demo traffic has customers typing contact details"
    assert not messages["text"].str.contains(r"@example\.com|4111 1111 1111 1111").any()
    assert with_pii["text"].str.contains(r"\[(EMAIL|PHONE|CARD)\]").all()
    ordered = messages.sort("tenant_id", "conversation_id", "seq").with_columns(
        prev=pl.col("created_at").shift(1).over("tenant_id", "conversation_id")
    )
    assert ordered.filter(pl.col("prev") > pl.col("created_at")).height == 0
    paid = platform_rows(lakehouse.db_url, "SELECT message_id, cost_usd::float8 FROM usage WHERE cost_usd > 0")
    silver_cost = dict(messages.filter(pl.col("cost_usd") > 0).select("message_id", "cost_usd").iter_rows())
    assert silver_cost == pytest.approx(dict(paid))
    rated = dict(platform_rows(lakehouse.db_url, "SELECT message_id, rating FROM message_feedback"))
    assert dict(messages.filter(pl.col("feedback").is_not_null()).select("message_id", "feedback").iter_rows()) == rated


def test_gold_daily_facts_add_up_to_silver(lakehouse):
    lake = lakehouse.lake
    daily = frame(lake, GOLD_TENANT_DAILY)
    conversations = frame(lake, SILVER_CONVERSATIONS)
    for tenant in lakehouse.tenants:
        mine = daily.filter(pl.col("tenant_id") == tenant)
        theirs = conversations.filter(pl.col("tenant_id") == tenant)
        assert mine["conversations"].sum() == theirs.height
        for outcome in ("resolved", "handoff", "abandoned"):
            assert mine[outcome].sum() == theirs.filter(pl.col("outcome") == outcome).height
        assert mine["cost_usd"].sum() == pytest.approx(theirs["cost_usd"].sum())
        billed = platform_rows(
            lakehouse.db_url, f"SELECT sum(cost_usd)::float8 FROM usage WHERE tenant_id = '{tenant}'"
        )
        assert mine["cost_usd"].sum() == pytest.approx(billed[0][0]), "the lake's cost is what the usage rows say"
    assert daily.select(pl.struct("tenant_id", "date").is_unique().all()).item()
    scored = frame(lake, MESSAGE_SENTIMENT)
    customer = frame(lake, SILVER_MESSAGES).filter(pl.col("role") == "user")
    assert scored.height == customer.height and set(scored["label"]) <= {"negative", "neutral", "positive"}
    assert (
        daily.select(pl.sum_horizontal("sentiment_negative", "sentiment_neutral", "sentiment_positive").sum()).item()
        == scored.height
    )


@pytest.fixture
def own_lakehouse(pg_server, tmp_path):
    url = new_platform_database(pg_server, f"pipe_{uuid.uuid4().hex[:8]}")
    tenants = asyncio.run(write_traffic(url, ["Pipe A", "Pipe B"], conversations=40, seed=11))
    return url, tenants, tmp_path / "lake"


def materialized(result) -> set[str]:
    return {"/".join(event.asset_key.path) for event in result.get_asset_materialization_events()}


def failed_checks(result) -> set[str]:
    return {
        event.event_specific_data.check_name
        for event in result.all_events
        if event.event_type_value == "ASSET_CHECK_EVALUATION" and not event.event_specific_data.passed
    }


def test_a_late_message_rebuilds_only_its_tenant_and_updates_its_conversation(own_lakehouse):
    url, (first, second), root = own_lakehouse
    assert run_lakehouse(root, url).success
    lake = Lake(str(root))
    conversation_id, messages_before = (
        frame(lake, SILVER_CONVERSATIONS, tenant_ids=[first])
        .filter(pl.col("outcome") == "resolved")
        .select("conversation_id", "messages")
        .row(0)
    )
    # Arrives now, but happened an hour after the traffic: a late customer message the bot never answered.
    late = TRAFFIC_END + timedelta(hours=1)
    with psycopg.connect(url) as conn:
        conn.execute(
            """INSERT INTO outbox (event_id, tenant_id, type, payload, created_at)
               VALUES (%s, %s, 'message.created', %s, %s)""",
            (
                uuid.uuid4(),
                first,
                Jsonb(
                    {
                        "conversation_id": conversation_id,
                        "message_id": "m_late",
                        "role": "user",
                        "text": "one more thing, my email is late.customer@example.org",
                        "sources": [],
                        "at": late.isoformat(),
                    }
                ),
                late,  # a writer of a backdated event sets the outbox row's time to the event's
            ),
        )
    result = run_lakehouse(root, url)
    assert result.success
    silver_meta = result.asset_materializations_for_node("silver")[0].metadata
    assert silver_meta["tenants_rebuilt"].value == 1 and silver_meta["tenant_ids"].value == [first]
    row = frame(lake, SILVER_CONVERSATIONS, tenant_ids=[first]).filter(pl.col("conversation_id") == conversation_id)
    assert row["messages"].item() == messages_before + 1
    assert row["outcome"].item() == "abandoned", "the customer's last word got no answer"
    assert row["ended_at"].item() == late
    late_row = frame(lake, SILVER_MESSAGES, tenant_ids=[first]).filter(pl.col("message_id") == "m_late")
    assert late_row["text"].item() == "one more thing, my email is [EMAIL]" and late_row["pii_email"].item() == 1
    assert frame(lake, SILVER_MESSAGES, tenant_ids=[second]).filter(pl.col("message_id") == "m_late").height == 0


def test_an_unknown_event_type_fails_the_bronze_check_and_silver_does_not_run(own_lakehouse):
    url, (first, _), root = own_lakehouse
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO outbox (event_id, tenant_id, type, payload) VALUES (%s, %s, 'mystery.event', '{}')",
            (uuid.uuid4(), first),
        )
    result = run_lakehouse(root, url, raise_on_error=False)
    assert not result.success
    assert failed_checks(result) == {"bronze_events_valid"}
    assert "bronze/events" in materialized(result) and "silver/messages" not in materialized(result)
    assert not Lake(str(root)).exists(SILVER_MESSAGES)


def test_a_message_event_without_its_id_fails_the_reconciliation_and_gold_does_not_run(own_lakehouse):
    url, (first, _), root = own_lakehouse
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO outbox (event_id, tenant_id, type, payload) VALUES (%s, %s, 'message.created', %s)",
            (uuid.uuid4(), first, Jsonb({"conversation_id": "c_broken", "role": "user", "text": "hello"})),
        )
    result = run_lakehouse(root, url, raise_on_error=False)
    assert not result.success
    # The event's message and its conversation never became rows: both reconciliations say so.
    assert failed_checks(result) == {"silver_messages_valid", "silver_conversations_valid"}
    assert "silver/messages" in materialized(result)
    assert "gold/tenant_daily" not in materialized(result) and not Lake(str(root)).exists(GOLD_TENANT_DAILY)
    assert Lake(str(root)).exists(BRONZE_EVENTS)
