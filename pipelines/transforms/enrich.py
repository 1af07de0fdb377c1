"""Enrichments of silver, per tenant: sentiment of customer messages, conversation summaries, conversation topics.

Sentiment and summaries are incremental within a tenant (a message is scored once per scorer; a conversation is
summarised again only when it changed), topics are re-clustered over the tenant's whole history.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import polars as pl

from models.sentiment import SentimentScorer
from models.summarize import Turn
from models.summarize.extractive import summarize
from models.topics.keywords import assign

TS = pl.Datetime("us", "UTC")
KEY = ["tenant_id", "conversation_id"]

SENTIMENT_SCHEMA = pl.Schema(
    {
        "tenant_id": pl.String,
        "message_id": pl.String,
        "conversation_id": pl.String,
        "created_at": TS,
        "date": pl.Date,
        "label": pl.String,
        "score": pl.Float32,
        "scorer": pl.String,
        "scored_at": TS,
    }
)
SUMMARY_SCHEMA = pl.Schema(
    {
        "tenant_id": pl.String,
        "conversation_id": pl.String,
        "date": pl.Date,
        "outcome": pl.String,
        "summary": pl.String,
        "method": pl.String,  # extractive, or provider/model for an LLM summary
        "fingerprint": pl.String,  # what the conversation looked like when summarised
        "summarized_at": TS,
    }
)
TOPIC_SCHEMA = pl.Schema(
    {
        "tenant_id": pl.String,
        "conversation_id": pl.String,
        "date": pl.Date,
        "topic_id": pl.Int32,
        "topic": pl.String,
    }
)


def empty(schema: pl.Schema) -> pl.DataFrame:
    return pl.DataFrame(schema=schema)


def score_messages(
    messages: pl.DataFrame, existing: pl.DataFrame | None, scorer: SentimentScorer
) -> tuple[pl.DataFrame, int]:
    """Every customer message of `messages` with a score by `scorer`: kept from `existing` where it has one, scored
    now otherwise. Returns the tenant's complete set and how many were scored now."""
    customer = messages.filter(pl.col("role") == "user").select(
        "tenant_id", "message_id", "conversation_id", "created_at", "date", "text"
    )
    kept = (
        existing.filter(pl.col("scorer") == scorer.name).join(
            customer.select("tenant_id", "message_id"), on=["tenant_id", "message_id"], how="semi"
        )
        if existing is not None and existing.height
        else empty(SENTIMENT_SCHEMA)
    )
    todo = customer.join(kept.select("tenant_id", "message_id"), on=["tenant_id", "message_id"], how="anti")
    scores = scorer.score(todo["text"].to_list())
    scored = todo.drop("text").with_columns(
        label=pl.Series(scores.labels, dtype=pl.String),
        score=pl.Series(scores.scores, dtype=pl.Float32),
        scorer=pl.lit(scorer.name),
        scored_at=pl.lit(datetime.now(UTC)).cast(TS),
    )
    return pl.concat([kept.select(SENTIMENT_SCHEMA.names()), scored.select(SENTIMENT_SCHEMA.names())]).cast(
        SENTIMENT_SCHEMA
    ), todo.height


def fingerprints(conversations: pl.DataFrame) -> pl.DataFrame:
    parts = pl.concat_str(
        [
            pl.col("messages").cast(pl.String),
            pl.col("ended_at").cast(pl.String),
            pl.col("outcome"),
            pl.col("feedback_down").cast(pl.String),
        ],
        separator="|",
        ignore_nulls=True,
    )
    return conversations.with_columns(
        fingerprint=parts.map_elements(lambda s: hashlib.blake2b(s.encode(), digest_size=8).hexdigest(), pl.String)
    )


def turns_by_conversation(messages: pl.DataFrame) -> dict[tuple[str, str], list[Turn]]:
    grouped = messages.sort("seq").group_by(KEY, maintain_order=True).agg("role", "text", "confident")
    return {
        (row["tenant_id"], row["conversation_id"]): [
            Turn(role, text or "") for role, text in zip(row["role"], row["text"], strict=True)
        ]
        for row in grouped.iter_rows(named=True)
    }


def summarize_conversations(
    conversations: pl.DataFrame, messages: pl.DataFrame, existing: pl.DataFrame | None
) -> tuple[pl.DataFrame, int]:
    """The tenant's complete set of summaries: unchanged conversations keep theirs, the rest are summarised now."""
    current = fingerprints(conversations)
    kept = (
        existing.join(current.select(*KEY, "fingerprint"), on=[*KEY, "fingerprint"], how="semi")
        if existing is not None and existing.height
        else empty(SUMMARY_SCHEMA)
    )
    todo = current.join(kept.select(KEY), on=KEY, how="anti")
    turns = turns_by_conversation(messages.join(todo.select(KEY), on=KEY, how="semi"))
    summaries = [
        summarize(turns.get((row["tenant_id"], row["conversation_id"]), []), outcome=row["outcome"])
        for row in todo.select(*KEY, "outcome").iter_rows(named=True)
    ]
    fresh = todo.select(*KEY, "date", "outcome", "fingerprint").with_columns(
        summary=pl.Series(summaries, dtype=pl.String),
        method=pl.lit("extractive"),
        summarized_at=pl.lit(datetime.now(UTC)).cast(TS),
    )
    merged = pl.concat([kept.select(SUMMARY_SCHEMA.names()), fresh.select(SUMMARY_SCHEMA.names())]).cast(SUMMARY_SCHEMA)
    return merged, todo.height


def topics_of(conversations: pl.DataFrame) -> pl.DataFrame:
    frames = []
    for _, part in conversations.group_by("tenant_id"):
        topics = assign(part["first_question"].to_list())
        frames.append(
            part.select(*KEY, "date").with_columns(
                topic_id=pl.Series(topics.ids, dtype=pl.Int32), topic=pl.Series(topics.labels, dtype=pl.String)
            )
        )
    return pl.concat(frames).cast(TOPIC_SCHEMA) if frames else empty(TOPIC_SCHEMA)
