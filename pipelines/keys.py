"""Asset keys of the lake tables: a table `layer/name` is the asset ["layer", "name"]."""

from __future__ import annotations

import dagster as dg

from core.lake import (
    BRONZE_EVENTS,
    CONVERSATION_SUMMARIES,
    CONVERSATION_TOPICS,
    GOLD_INTENT_DAILY,
    GOLD_TENANT_DAILY,
    MESSAGE_SENTIMENT,
    SILVER_CONVERSATIONS,
    SILVER_INTENT_EXAMPLES,
    SILVER_MESSAGES,
    SILVER_TENANTS,
    SILVER_USAGE,
    TableSpec,
)


def key(table: TableSpec) -> dg.AssetKey:
    return dg.AssetKey(table.name.split("/"))


BRONZE = key(BRONZE_EVENTS)
TENANTS = key(SILVER_TENANTS)
CONVERSATIONS = key(SILVER_CONVERSATIONS)
MESSAGES = key(SILVER_MESSAGES)
USAGE = key(SILVER_USAGE)
INTENT_EXAMPLES = key(SILVER_INTENT_EXAMPLES)
# The dashboards' store in PostgreSQL (core/metrics.py), not a lake table.
METRICS_STORE = dg.AssetKey(["metrics", "daily"])
ROUTING_POLICY = dg.AssetKey(["routing", "policy"])
# Models: one registered model per tenant (MLflow), not lake tables.
INTENT_MODEL = dg.AssetKey(["models", "intent"])
INTENT_CHAMPION = dg.AssetKey(["models", "intent_champion"])
SENTIMENT = key(MESSAGE_SENTIMENT)
SUMMARIES = key(CONVERSATION_SUMMARIES)
TOPICS = key(CONVERSATION_TOPICS)
TENANT_DAILY = key(GOLD_TENANT_DAILY)
INTENT_DAILY = key(GOLD_INTENT_DAILY)
