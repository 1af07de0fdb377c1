"""Enrichment assets: message_sentiment, conversation_summaries, conversation_topics (transforms/enrich.py)."""

import dagster as dg
import polars as pl

from core.lake import (
    CONVERSATION_SUMMARIES,
    CONVERSATION_TOPICS,
    MESSAGE_SENTIMENT,
    SILVER_CONVERSATIONS,
    SILVER_MESSAGES,
    Lake,
    TableSpec,
)
from models.sentiment import SentimentScorer
from pipelines.incremental import changed_tenants, tenant_chunks
from pipelines.keys import CONVERSATIONS, MESSAGES, SENTIMENT, SUMMARIES, TOPICS
from pipelines.resources import LakeResource
from pipelines.transforms.enrich import score_messages, summarize_conversations, topics_of


def _frame(lake: Lake, table: TableSpec, tenants: list[str], columns: list[str] | None = None) -> pl.DataFrame | None:
    data = lake.read(table, tenant_ids=tenants, columns=columns)
    return None if data is None else pl.from_arrow(data)


def default_scorer() -> SentimentScorer:
    from models.sentiment.vader import VaderScorer

    return VaderScorer()


def run_sentiment(lake: Lake, scorer: SentimentScorer) -> dict:
    tenants, versions = changed_tenants(lake, targets=[MESSAGE_SENTIMENT], sources=[SILVER_MESSAGES])
    chunks = list(tenant_chunks(lake, SILVER_MESSAGES, tenants))
    scored = rows = 0
    columns = ["tenant_id", "message_id", "conversation_id", "created_at", "date", "role", "text"]
    for index, chunk in enumerate(chunks):
        messages = _frame(lake, SILVER_MESSAGES, chunk, columns)
        frame, now = score_messages(messages, _frame(lake, MESSAGE_SENTIMENT, chunk), scorer)
        lake.replace_tenants(
            MESSAGE_SENTIMENT,
            frame.to_arrow(),
            tenant_ids=chunk,
            sources=versions if index == len(chunks) - 1 else None,
        )
        scored, rows = scored + now, rows + frame.height
    return {
        "tenants_rebuilt": len(tenants),
        "tenant_ids": dg.MetadataValue.json(sorted(tenants)),
        "scored_now": scored,
        "rows": rows,
        "scorer": scorer.name,
    }


def run_summaries(lake: Lake) -> dict:
    sources = [SILVER_CONVERSATIONS, SILVER_MESSAGES]
    tenants, versions = changed_tenants(lake, targets=[CONVERSATION_SUMMARIES], sources=sources)
    chunks = list(tenant_chunks(lake, SILVER_MESSAGES, tenants))
    summarised = rows = 0
    for index, chunk in enumerate(chunks):
        frame, now = summarize_conversations(
            _frame(lake, SILVER_CONVERSATIONS, chunk),
            _frame(lake, SILVER_MESSAGES, chunk, ["tenant_id", "conversation_id", "seq", "role", "text", "confident"]),
            _frame(lake, CONVERSATION_SUMMARIES, chunk),
        )
        last = index == len(chunks) - 1
        lake.replace_tenants(
            CONVERSATION_SUMMARIES, frame.to_arrow(), tenant_ids=chunk, sources=versions if last else None
        )
        summarised, rows = summarised + now, rows + frame.height
    return {"tenants_rebuilt": len(tenants), "summarized_now": summarised, "rows": rows}


def run_topics(lake: Lake) -> dict:
    tenants, versions = changed_tenants(lake, targets=[CONVERSATION_TOPICS], sources=[SILVER_CONVERSATIONS])
    chunks = list(tenant_chunks(lake, SILVER_CONVERSATIONS, tenants))
    rows = 0
    for index, chunk in enumerate(chunks):
        conversations = _frame(
            lake, SILVER_CONVERSATIONS, chunk, ["tenant_id", "conversation_id", "date", "first_question"]
        )
        frame = topics_of(conversations)
        last = index == len(chunks) - 1
        lake.replace_tenants(
            CONVERSATION_TOPICS, frame.to_arrow(), tenant_ids=chunk, sources=versions if last else None
        )
        rows += frame.height
    return {"tenants_rebuilt": len(tenants), "rows": rows}


@dg.asset(
    key=SENTIMENT,
    deps=[MESSAGES],
    group_name="enrichment",
    kinds={"delta", "python"},
    description="Label (negative, neutral, positive) and score in [-1, 1] of every customer message.",
)
def message_sentiment(lake: LakeResource) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=run_sentiment(lake.lake(), default_scorer()))


@dg.asset(
    key=SUMMARIES,
    deps=[CONVERSATIONS, MESSAGES],
    group_name="enrichment",
    kinds={"delta", "python"},
    description="One summary per conversation: the customer's problem and the outcome.",
)
def conversation_summaries(lake: LakeResource) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=run_summaries(lake.lake()))


@dg.asset(
    key=TOPICS,
    deps=[CONVERSATIONS],
    group_name="enrichment",
    kinds={"delta", "scikitlearn"},
    description="A topic per conversation, clustered per tenant from the customers' first questions.",
)
def conversation_topics(lake: LakeResource) -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata=run_topics(lake.lake()))
