"""Silver: conversations and messages, rebuilt per tenant from bronze (pipelines/transforms/silver.py)."""

from datetime import UTC, datetime, timedelta

import dagster as dg
import polars as pl
import pyarrow.dataset as pds

from core.lake import (
    BRONZE_EVENTS,
    SILVER_CONVERSATIONS,
    SILVER_INTENT_EXAMPLES,
    SILVER_MESSAGES,
    SILVER_TENANTS,
    SILVER_USAGE,
    Lake,
)
from pipelines.incremental import changed_tenants, tenant_chunks
from pipelines.keys import BRONZE, CONVERSATIONS, INTENT_EXAMPLES, MESSAGES, TENANTS, USAGE
from pipelines.resources import LakeResource, PostgresResource
from pipelines.transforms.silver import OPEN_MINUTES, build_silver

BRONZE_COLUMNS = ["event_id", "outbox_id", "tenant_id", "type", "occurred_at", "payload"]


def stale_open_tenants(lake: Lake, *, as_of: datetime) -> set[str]:
    """Tenants with conversations still marked open whose last event is older than the open window: they are
    decided now (resolved or abandoned) even if no new event arrives."""
    dataset = lake.dataset(SILVER_CONVERSATIONS)
    if dataset is None:
        return set()
    cutoff = as_of - timedelta(minutes=OPEN_MINUTES)
    expression = (pds.field("outcome") == "open") & (pds.field("last_event_at") < cutoff)
    return set(dataset.to_table(columns=["tenant_id"], filter=expression).column("tenant_id").to_pylist())


def rebuild_silver(lake: Lake, *, as_of: datetime) -> dict:
    """Rebuild the silver rows of every tenant with new bronze events (or stale open conversations)."""
    tenants, versions = changed_tenants(
        lake, targets=[SILVER_CONVERSATIONS, SILVER_MESSAGES, SILVER_INTENT_EXAMPLES], sources=[BRONZE_EVENTS]
    )
    tenants |= stale_open_tenants(lake, as_of=as_of)
    stats = {
        "tenants": len(tenants),
        "conversations": 0,
        "messages": 0,
        "usage": 0,
        "intent_examples": 0,
        "duplicates": 0,
        "redactions": {},
    }
    chunks = list(tenant_chunks(lake, BRONZE_EVENTS, tenants))
    for index, chunk in enumerate(chunks):
        events = pl.from_arrow(lake.read(BRONZE_EVENTS, tenant_ids=chunk, columns=BRONZE_COLUMNS))
        built = build_silver(events, as_of=as_of)
        last = index == len(chunks) - 1
        written = (
            (SILVER_CONVERSATIONS, built.conversations),
            (SILVER_MESSAGES, built.messages),
            (SILVER_USAGE, built.usage),
            (SILVER_INTENT_EXAMPLES, built.intent_examples),
        )
        for table, frame in written:
            lake.replace_tenants(table, frame.to_arrow(), tenant_ids=chunk, sources=versions if last else None)
        stats["conversations"] += built.conversations.height
        stats["messages"] += built.messages.height
        stats["usage"] += built.usage.height
        stats["intent_examples"] += built.intent_examples.height
        stats["duplicates"] += built.duplicates
        for kind, count in built.redactions.items():
            stats["redactions"][kind] = stats["redactions"].get(kind, 0) + count
    stats["tenant_ids"] = sorted(tenants)
    return stats


def _silver_spec(key: dg.AssetKey, description: str) -> dg.AssetSpec:
    return dg.AssetSpec(key, deps=[BRONZE], group_name="silver", kinds={"delta", "polars"}, description=description)


@dg.multi_asset(
    specs=[
        _silver_spec(
            CONVERSATIONS, "One row per conversation: channel, times, counts, outcome, feedback, tokens, cost."
        ),
        _silver_spec(MESSAGES, "One row per message, ordered within its conversation, PII redacted (and counted)."),
        _silver_spec(USAGE, "One row per metered call: tier, provider/model, tokens, cost, latency, outcome, routing."),
        _silver_spec(INTENT_EXAMPLES, "One row per labelled intent example a tenant added (the training data)."),
    ],
)
def silver(lake: LakeResource):
    stats = rebuild_silver(lake.lake(), as_of=datetime.now(UTC))
    shared = {
        "tenants_rebuilt": stats["tenants"],
        "tenant_ids": dg.MetadataValue.json(stats["tenant_ids"]),
        "duplicate_events": stats["duplicates"],
    }
    yield dg.MaterializeResult(asset_key=CONVERSATIONS, metadata={**shared, "rows": stats["conversations"]})
    yield dg.MaterializeResult(
        asset_key=MESSAGES,
        metadata={**shared, "rows": stats["messages"], "pii_redacted": dg.MetadataValue.json(stats["redactions"])},
    )
    yield dg.MaterializeResult(asset_key=USAGE, metadata={**shared, "rows": stats["usage"]})
    yield dg.MaterializeResult(asset_key=INTENT_EXAMPLES, metadata={**shared, "rows": stats["intent_examples"]})


@dg.asset(
    key=TENANTS,
    group_name="silver",
    kinds={"delta", "postgres"},
    description="The platform's tenants (id, name, status, created), snapshotted from PostgreSQL each run.",
)
def tenants_snapshot(lake: LakeResource, postgres: PostgresResource) -> dg.MaterializeResult:
    with postgres.connect() as conn:
        rows = conn.execute(
            """SELECT id AS tenant_id, name, status, coalesce((settings ->> 'demo')::boolean, false) AS demo,
                      created_at, updated_at FROM tenants ORDER BY id"""
        ).fetchall()
    frame = pl.DataFrame(
        rows,
        schema={
            "tenant_id": pl.String,
            "name": pl.String,
            "status": pl.String,
            "demo": pl.Boolean,
            "created_at": pl.Datetime("us", "UTC"),
            "updated_at": pl.Datetime("us", "UTC"),
        },
        orient="row",
    )
    lake.lake().overwrite(SILVER_TENANTS, frame.to_arrow())
    return dg.MaterializeResult(metadata={"rows": frame.height})
