"""Great Expectations checks on each layer, as blocking Dagster asset checks: when one fails, the assets downstream
of its table do not run, so bad data stops where it was found.

Each check validates what the latest materialization wrote: bronze the outbox ids it drained, the layers above the
tenants they rebuilt. Row counts are reconciled from bronze to silver: every message event becomes one message, every
conversation named by an event becomes one conversation.
"""

from collections.abc import Mapping

import dagster as dg
import polars as pl
import pyarrow.dataset as pds

from core.lake import (
    BRONZE_EVENTS,
    GOLD_TENANT_DAILY,
    MESSAGE_SENTIMENT,
    SILVER_CONVERSATIONS,
    SILVER_INTENT_EXAMPLES,
    SILVER_MESSAGES,
    SILVER_USAGE,
)
from models.sentiment import LABELS
from pipelines.keys import BRONZE, CONVERSATIONS, INTENT_EXAMPLES, MESSAGES, SENTIMENT, TENANT_DAILY, USAGE
from pipelines.quality import Validation, validate
from pipelines.resources import LakeResource

EVENT_TYPES = [
    "conversation.started",
    "message.created",
    "handoff.requested",
    "feedback.given",
    "usage.recorded",
    "intent_example.added",
]
OUTCOMES = ["resolved", "handoff", "abandoned", "open"]


def _latest(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> Mapping[str, object]:
    event = context.instance.get_latest_materialization_event(key)
    if event is None or event.asset_materialization is None:
        return {}
    return {name: value.value for name, value in event.asset_materialization.metadata.items()}


def _result(validation: Validation) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=validation.passed,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={"rows": validation.rows, "failures": dg.MetadataValue.json(validation.failures)},
    )


def _tenants(context: dg.AssetCheckExecutionContext, key: dg.AssetKey) -> list[str]:
    return list(_latest(context, key).get("tenant_ids") or [])


def _read(lake, table, tenants: list[str], columns: list[str]) -> pl.DataFrame:
    data = lake.read(table, tenant_ids=tenants, columns=columns) if tenants else None
    return pl.from_arrow(data) if data is not None else pl.DataFrame(schema=dict.fromkeys(columns, pl.String))


@dg.asset_check(asset=BRONZE, blocking=True, description="Drained events: tenant, type and time set, ids unique.")
def bronze_events_valid(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    drained = _latest(context, BRONZE)
    start, end = int(drained.get("from_outbox_id", 0)), int(drained.get("to_outbox_id", 0))
    dataset = lake.lake().dataset(BRONZE_EVENTS)
    columns = ["event_id", "outbox_id", "tenant_id", "type", "occurred_at"]
    if dataset is None or end <= start:
        frame = pl.DataFrame(schema=dict.fromkeys(columns, pl.String))
    else:
        span = (pds.field("outbox_id") > start) & (pds.field("outbox_id") <= end)
        frame = pl.from_arrow(dataset.to_table(columns=columns, filter=span))
    return _result(
        validate(
            frame,
            lambda E: [
                E.ExpectColumnValuesToNotBeNull(column="tenant_id"),
                E.ExpectColumnValuesToNotBeNull(column="occurred_at"),
                E.ExpectColumnValuesToBeUnique(column="event_id"),
                E.ExpectColumnValuesToBeUnique(column="outbox_id"),
                E.ExpectColumnValuesToBeInSet(column="type", value_set=EVENT_TYPES),
            ],
            name="bronze_events",
        )
    )


def _bronze_expected(lake, tenants: list[str]) -> tuple[int, int, int]:
    """(messages, conversations, usage rows) bronze says silver must have for these tenants."""
    events = _read(lake, BRONZE_EVENTS, tenants, ["tenant_id", "type", "event_id", "payload"]).unique("event_id")
    if events.height == 0:
        return 0, 0, 0
    ids = events.with_columns(
        message_id=pl.col("payload").str.json_path_match("$.message_id"),
        conversation_id=pl.col("payload").str.json_path_match("$.conversation_id"),
    )
    message_events = ids.filter(pl.col("type") == "message.created")
    # An event missing its ids should still have become a row: counted apart, so losing it shows.
    messages = message_events.filter(pl.col("message_id").is_not_null()).select("tenant_id", "message_id").unique()
    broken = message_events.filter(pl.col("message_id").is_null() | pl.col("conversation_id").is_null()).height
    conversations = ids.filter(pl.col("conversation_id").is_not_null()).select("tenant_id", "conversation_id").unique()
    usage = events.filter(pl.col("type") == "usage.recorded").height
    return messages.height + broken, conversations.height, usage


@dg.asset_check(
    asset=CONVERSATIONS,
    blocking=True,
    description="Conversations: tenant set, ids unique, ended after started, a known outcome, one per bronze id.",
)
def silver_conversations_valid(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    tenants, store = _tenants(context, CONVERSATIONS), lake.lake()
    frame = _read(
        store, SILVER_CONVERSATIONS, tenants, ["tenant_id", "conversation_id", "started_at", "ended_at", "outcome"]
    )
    _, expected, _ = _bronze_expected(store, tenants)
    return _result(
        validate(
            frame,
            lambda E: [
                E.ExpectColumnValuesToNotBeNull(column="tenant_id"),
                E.ExpectCompoundColumnsToBeUnique(column_list=["tenant_id", "conversation_id"]),
                E.ExpectColumnPairValuesAToBeGreaterThanB(column_A="ended_at", column_B="started_at", or_equal=True),
                E.ExpectColumnValuesToBeInSet(column="outcome", value_set=OUTCOMES),
                E.ExpectTableRowCountToEqual(value=expected),
            ],
            name="silver_conversations",
        )
    )


@dg.asset_check(
    asset=MESSAGES,
    blocking=True,
    description="Messages: tenant set, ids unique, in time order within each conversation, one per bronze event.",
)
def silver_messages_valid(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    tenants, store = _tenants(context, MESSAGES), lake.lake()
    frame = _read(store, SILVER_MESSAGES, tenants, ["tenant_id", "message_id", "conversation_id", "seq", "created_at"])
    if frame.height:
        frame = frame.sort(["tenant_id", "conversation_id", "seq"]).with_columns(
            in_order=(
                pl.col("created_at") >= pl.col("created_at").shift(1).over(["tenant_id", "conversation_id"])
            ).fill_null(True)
        )
    else:
        frame = frame.with_columns(in_order=pl.lit(True))
    expected, _, _ = _bronze_expected(store, tenants)
    return _result(
        validate(
            frame,
            lambda E: [
                E.ExpectColumnValuesToNotBeNull(column="tenant_id"),
                E.ExpectColumnValuesToNotBeNull(column="conversation_id"),
                E.ExpectCompoundColumnsToBeUnique(column_list=["tenant_id", "message_id"]),
                E.ExpectColumnValuesToBeInSet(column="in_order", value_set=[True]),
                E.ExpectTableRowCountToEqual(value=expected),
            ],
            name="silver_messages",
        )
    )


@dg.asset_check(
    asset=INTENT_EXAMPLES,
    blocking=True,
    description="Labelled examples: one row per example event in bronze, with a tenant, a text and an intent.",
)
def silver_intent_examples_valid(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    tenants, store = _tenants(context, INTENT_EXAMPLES), lake.lake()
    frame = _read(store, SILVER_INTENT_EXAMPLES, tenants, ["tenant_id", "example_id", "text", "intent"])
    events = _read(store, BRONZE_EVENTS, tenants, ["tenant_id", "type", "event_id", "payload"]).unique("event_id")
    expected = (
        events.filter(pl.col("type") == "intent_example.added")
        .select("tenant_id", example_id=pl.col("payload").str.json_path_match("$.example_id"))
        .unique()
        .height
    )
    return _result(
        validate(
            frame,
            lambda E: [
                E.ExpectColumnValuesToNotBeNull(column="tenant_id"),
                E.ExpectColumnValuesToNotBeNull(column="text"),
                E.ExpectColumnValuesToNotBeNull(column="intent"),
                E.ExpectColumnValuesToBeUnique(column="example_id"),
                E.ExpectTableRowCountToEqual(value=expected),
            ],
            name="silver_intent_examples",
        )
    )


@dg.asset_check(
    asset=USAGE, blocking=True, description="Usage: one row per metered call in bronze, with a tier and a cost >= 0."
)
def silver_usage_valid(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    tenants, store = _tenants(context, USAGE), lake.lake()
    frame = _read(store, SILVER_USAGE, tenants, ["tenant_id", "event_id", "tier", "cost_usd", "input_tokens"])
    _, _, expected = _bronze_expected(store, tenants)
    return _result(
        validate(
            frame,
            lambda E: [
                E.ExpectColumnValuesToNotBeNull(column="tenant_id"),
                E.ExpectColumnValuesToNotBeNull(column="tier"),
                E.ExpectColumnValuesToBeUnique(column="event_id"),
                E.ExpectColumnValuesToBeBetween(column="cost_usd", min_value=0),
                E.ExpectColumnValuesToBeBetween(column="input_tokens", min_value=0),
                E.ExpectTableRowCountToEqual(value=expected),
            ],
            name="silver_usage",
        )
    )


@dg.asset_check(asset=SENTIMENT, blocking=True, description="Sentiment: a known label, a score in [-1, 1], once each.")
def message_sentiment_valid(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    frame = _read(
        lake.lake(), MESSAGE_SENTIMENT, _tenants(context, SENTIMENT), ["tenant_id", "message_id", "label", "score"]
    )
    return _result(
        validate(
            frame,
            lambda E: [
                E.ExpectColumnValuesToNotBeNull(column="tenant_id"),
                E.ExpectCompoundColumnsToBeUnique(column_list=["tenant_id", "message_id"]),
                E.ExpectColumnValuesToBeInSet(column="label", value_set=list(LABELS)),
                E.ExpectColumnValuesToBeBetween(column="score", min_value=-1, max_value=1),
            ],
            name="message_sentiment",
        )
    )


@dg.asset_check(
    asset=TENANT_DAILY, blocking=True, description="Daily facts: one row per tenant and day, rates in [0, 1]."
)
def tenant_daily_valid(context: dg.AssetCheckExecutionContext, lake: LakeResource) -> dg.AssetCheckResult:
    frame = _read(
        lake.lake(),
        GOLD_TENANT_DAILY,
        _tenants(context, TENANT_DAILY),
        ["tenant_id", "date", "conversations", "deflection_rate", "satisfaction"],
    )
    return _result(
        validate(
            frame,
            lambda E: [
                E.ExpectColumnValuesToNotBeNull(column="tenant_id"),
                E.ExpectCompoundColumnsToBeUnique(column_list=["tenant_id", "date"]),
                E.ExpectColumnValuesToBeBetween(column="deflection_rate", min_value=0, max_value=1),
                E.ExpectColumnValuesToBeBetween(column="satisfaction", min_value=0, max_value=1),
                E.ExpectColumnValuesToBeBetween(column="conversations", min_value=0),
            ],
            name="tenant_daily",
        )
    )


CHECKS = [
    bronze_events_valid,
    silver_conversations_valid,
    silver_messages_valid,
    silver_usage_valid,
    silver_intent_examples_valid,
    message_sentiment_valid,
    tenant_daily_valid,
]
