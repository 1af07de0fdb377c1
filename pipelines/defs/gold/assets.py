"""Gold: tenant_daily and intent_daily, rebuilt per tenant from silver and its enrichments."""

import dagster as dg
import polars as pl

from core.lake import (
    CONVERSATION_TOPICS,
    GOLD_INTENT_DAILY,
    GOLD_TENANT_DAILY,
    MESSAGE_SENTIMENT,
    SILVER_CONVERSATIONS,
    SILVER_MESSAGES,
    SILVER_USAGE,
    Lake,
)
from pipelines.incremental import changed_tenants, tenant_chunks
from pipelines.keys import CONVERSATIONS, INTENT_DAILY, MESSAGES, SENTIMENT, TENANT_DAILY, TOPICS, USAGE
from pipelines.resources import LakeResource
from pipelines.transforms.gold import intent_daily, tenant_daily

SOURCES = [SILVER_CONVERSATIONS, SILVER_MESSAGES, SILVER_USAGE, MESSAGE_SENTIMENT, CONVERSATION_TOPICS]
MESSAGE_COLUMNS = [
    "tenant_id",
    "message_id",
    "conversation_id",
    "seq",
    "date",
    "role",
    "tier",
    "intent",
    "answered",
    "feedback",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "latency_ms",
    "pii_email",
    "pii_iban",
    "pii_card",
    "pii_phone",
]


def _frame(lake: Lake, table, tenants, columns=None) -> pl.DataFrame | None:
    data = lake.read(table, tenant_ids=tenants, columns=columns)
    return None if data is None else pl.from_arrow(data)


def rebuild_gold(lake: Lake) -> dict:
    tenants, versions = changed_tenants(lake, targets=[GOLD_TENANT_DAILY, GOLD_INTENT_DAILY], sources=SOURCES)
    chunks = list(tenant_chunks(lake, SILVER_MESSAGES, tenants))
    rows = {"tenant_daily": 0, "intent_daily": 0}
    for index, chunk in enumerate(chunks):
        conversations = _frame(lake, SILVER_CONVERSATIONS, chunk)
        messages = _frame(lake, SILVER_MESSAGES, chunk, MESSAGE_COLUMNS)
        if conversations is None or messages is None:
            continue
        usage = _frame(lake, SILVER_USAGE, chunk, ["tenant_id", "date", "input_tokens", "output_tokens", "cost_usd"])
        sentiment = _frame(lake, MESSAGE_SENTIMENT, chunk, ["tenant_id", "message_id", "label", "score"])
        topics = _frame(lake, CONVERSATION_TOPICS, chunk, ["tenant_id", "conversation_id", "topic"])
        daily = tenant_daily(conversations, messages, usage, sentiment)
        by_intent = intent_daily(conversations, messages, topics=topics, sentiment=sentiment)
        last = index == len(chunks) - 1
        lake.replace_tenants(GOLD_TENANT_DAILY, daily.to_arrow(), tenant_ids=chunk, sources=versions if last else None)
        lake.replace_tenants(
            GOLD_INTENT_DAILY, by_intent.to_arrow(), tenant_ids=chunk, sources=versions if last else None
        )
        rows["tenant_daily"] += daily.height
        rows["intent_daily"] += by_intent.height
    return {"tenants_rebuilt": len(tenants), "tenant_ids": sorted(tenants), **rows}


@dg.multi_asset(
    specs=[
        dg.AssetSpec(
            TENANT_DAILY,
            deps=[CONVERSATIONS, MESSAGES, USAGE, SENTIMENT],
            group_name="gold",
            kinds={"delta", "polars"},
            description="Per tenant and day: volume, outcomes, deflection, feedback, sentiment, tokens, cost, latency.",
        ),
        dg.AssetSpec(
            INTENT_DAILY,
            deps=[CONVERSATIONS, MESSAGES, SENTIMENT, TOPICS],
            group_name="gold",
            kinds={"delta", "polars"},
            description="Per tenant, day and intent (the model's, else the topic): volume, outcomes, feedback, cost.",
        ),
    ]
)
def gold(lake: LakeResource):
    stats = rebuild_gold(lake.lake())
    shared = {"tenants_rebuilt": stats["tenants_rebuilt"], "tenant_ids": dg.MetadataValue.json(stats["tenant_ids"])}
    yield dg.MaterializeResult(asset_key=TENANT_DAILY, metadata={**shared, "rows": stats["tenant_daily"]})
    yield dg.MaterializeResult(asset_key=INTENT_DAILY, metadata={**shared, "rows": stats["intent_daily"]})
