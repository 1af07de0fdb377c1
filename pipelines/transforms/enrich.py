"""Enrichments of silver, per tenant: sentiment of customer messages, conversation summaries, conversation topics.

Sentiment and summaries are incremental within a tenant (a message is scored once per scorer; a conversation is
summarised again only when it changed), topics are re-clustered over the tenant's whole history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
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


# (tenant_id, [(conversation_id, turns, outcome)]) -> {conversation_id: (summary, method)}
Abstractive = Callable[[str, list[tuple[str, list[Turn], str]]], dict[str, tuple[str, str]]]


def summarize_conversations(
    conversations: pl.DataFrame,
    messages: pl.DataFrame,
    existing: pl.DataFrame | None,
    *,
    abstractive: Abstractive | None = None,
) -> tuple[pl.DataFrame, int]:
    """The tenants' complete set of summaries and how many were written now: unchanged conversations keep theirs,
    changed and new ones are summarised. With `abstractive` (the LLM summarizer), the changed ones and those that
    still have only an extractive summary are offered to it, newest first; what it does not take is extractive."""
    current = fingerprints(conversations)
    kept = (
        existing.join(current.select(*KEY, "fingerprint"), on=[*KEY, "fingerprint"], how="semi")
        if existing is not None and existing.height
        else empty(SUMMARY_SCHEMA)
    )
    changed = current.join(kept, on=KEY, how="anti").select(KEY)
    offered = (
        pl.concat([changed, kept.filter(pl.col("method") == "extractive").select(KEY)]) if abstractive else changed
    )
    turns = turns_by_conversation(messages.join(offered, on=KEY, how="semi"))
    outcomes = {(t, c): o for t, c, o in current.select(*KEY, "outcome").iter_rows()}

    by_model: dict[tuple[str, str], tuple[str, str]] = {}
    if abstractive is not None:
        newest_first = current.join(offered, on=KEY, how="semi").sort("ended_at", descending=True)
        for (tenant_id,), part in newest_first.group_by("tenant_id", maintain_order=True):
            asked = [(c, turns.get((tenant_id, c), []), outcomes[(tenant_id, c)]) for c in part["conversation_id"]]
            for conversation_id, result in abstractive(tenant_id, asked).items():
                by_model[(tenant_id, conversation_id)] = result

    rewrite = pl.concat([changed, pl.DataFrame(list(by_model), schema=KEY, orient="row")]).unique()
    rows = current.join(rewrite, on=KEY, how="semi")
    written = [
        by_model.get(key) or (summarize(turns.get(key, []), outcome=outcomes[key]), "extractive")
        for key in rows.select(KEY).iter_rows()
    ]
    fresh = rows.select(*KEY, "date", "outcome", "fingerprint").with_columns(
        summary=pl.Series([text for text, _ in written], dtype=pl.String),
        method=pl.Series([method for _, method in written], dtype=pl.String),
        summarized_at=pl.lit(datetime.now(UTC)).cast(TS),
    )
    unchanged = kept.join(rewrite, on=KEY, how="anti").select(SUMMARY_SCHEMA.names())
    return pl.concat([unchanged, fresh.select(SUMMARY_SCHEMA.names())]).cast(SUMMARY_SCHEMA), fresh.height


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
