"""Silver (and its enrichments) → gold: per tenant and day, and per tenant, day and intent.

Days are UTC. Conversations count on the day they started (their outcome is the one they have now), messages and
feedback on the day of their message, tokens and cost on the day of their metered call (silver/usage: answers,
summaries and turns that broke off alike, so the day's cost is what the vendors billed). Deflection is the share of
closed conversations (resolved, handed off or abandoned; open ones are not decided yet) that the bot resolved without
a person. Sentiment counts the customers' messages by the scorer's label; a day whose messages were not scored yet
has nulls, not zeros. Feedback counts on its message's day, and outcomes are as of the latest rebuild: a day's row
can change after the day (feature_store/ reads it as known at the end of the day).

An intent is the intent model's label of the conversation's first question when a model gave one (the
custom-models pipeline), otherwise its topic (conversation_topics), otherwise "unknown".
"""

from __future__ import annotations

import polars as pl

from core.pii import KINDS

UNKNOWN_INTENT = "unknown"

TENANT_DAILY_SCHEMA = pl.Schema(
    {
        "tenant_id": pl.String,
        "date": pl.Date,
        "conversations": pl.Int32,
        "resolved": pl.Int32,
        "handoff": pl.Int32,
        "abandoned": pl.Int32,
        "open": pl.Int32,
        "deflection_rate": pl.Float64,
        "messages": pl.Int32,
        "user_messages": pl.Int32,
        "assistant_messages": pl.Int32,
        "unanswered": pl.Int32,
        "answered_by_cache": pl.Int32,
        "answered_by_kb": pl.Int32,
        "answered_by_local": pl.Int32,
        "answered_by_llm": pl.Int32,
        "feedback_up": pl.Int32,
        "feedback_down": pl.Int32,
        "satisfaction": pl.Float64,
        "sentiment_negative": pl.Int32,
        "sentiment_neutral": pl.Int32,
        "sentiment_positive": pl.Int32,
        "sentiment_mean": pl.Float64,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "cost_usd": pl.Float64,
        "cost_per_conversation_usd": pl.Float64,
        "latency_ms_p50": pl.Float64,
        "latency_ms_p95": pl.Float64,
        "pii_redactions": pl.Int32,
    }
)

INTENT_DAILY_SCHEMA = pl.Schema(
    {
        "tenant_id": pl.String,
        "date": pl.Date,
        "intent": pl.String,
        "conversations": pl.Int32,
        "resolved": pl.Int32,
        "handoff": pl.Int32,
        "abandoned": pl.Int32,
        "deflection_rate": pl.Float64,
        "messages": pl.Int32,
        "unanswered": pl.Int32,
        "feedback_up": pl.Int32,
        "feedback_down": pl.Int32,
        "negative_share": pl.Float64,
        "cost_usd": pl.Float64,
    }
)


def _conform(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    return frame.select([pl.col(name).cast(dtype) for name, dtype in schema.items()])


def _outcomes() -> dict[str, pl.Expr]:
    return {
        "conversations": pl.len(),
        "resolved": (pl.col("outcome") == "resolved").sum(),
        "handoff": (pl.col("outcome") == "handoff").sum(),
        "abandoned": (pl.col("outcome") == "abandoned").sum(),
    }


def _deflection() -> pl.Expr:
    closed = pl.col("resolved") + pl.col("handoff") + pl.col("abandoned")
    return pl.when(closed > 0).then(pl.col("resolved") / closed)


def tenant_daily(
    conversations: pl.DataFrame,
    messages: pl.DataFrame,
    usage: pl.DataFrame,
    sentiment: pl.DataFrame | None = None,
) -> pl.DataFrame:
    day = ["tenant_id", "date"]
    by_conversation = conversations.group_by(day).agg(**_outcomes(), open=(pl.col("outcome") == "open").sum())
    assistant = pl.col("role") == "assistant"
    by_message = messages.group_by(day).agg(
        messages=pl.len(),
        user_messages=(pl.col("role") == "user").sum(),
        assistant_messages=assistant.sum(),
        unanswered=(pl.col("answered") == False).sum(),  # noqa: E712 (polars expression)
        **{f"answered_by_{tier}": (assistant & (pl.col("tier") == tier)).sum() for tier in ("cache", "kb", "local")},
        answered_by_llm=(assistant & (pl.col("tier") == "llm")).sum(),
        feedback_up=(pl.col("feedback") == "up").sum(),
        feedback_down=(pl.col("feedback") == "down").sum(),
        latency_ms_p50=pl.col("latency_ms").filter(assistant).quantile(0.5, interpolation="linear"),
        latency_ms_p95=pl.col("latency_ms").filter(assistant).quantile(0.95, interpolation="linear"),
        pii_redactions=pl.sum_horizontal([pl.col(f"pii_{kind}") for kind in KINDS]).sum(),
    )
    if sentiment is not None and sentiment.height:
        scored = messages.select("tenant_id", "message_id", "date").join(
            sentiment.select("tenant_id", "message_id", "label", "score"), on=["tenant_id", "message_id"]
        )
        by_sentiment = scored.group_by(day).agg(
            **{f"sentiment_{label}": (pl.col("label") == label).sum() for label in ("negative", "neutral", "positive")},
            sentiment_mean=pl.col("score").mean(),
        )
    else:
        by_sentiment = pl.DataFrame(
            schema={"tenant_id": pl.String, "date": pl.Date}
            | {f"sentiment_{label}": pl.Int32 for label in ("negative", "neutral", "positive")}
            | {"sentiment_mean": pl.Float64}
        )
    by_usage = usage.group_by(day).agg(
        input_tokens=pl.col("input_tokens").sum(),
        output_tokens=pl.col("output_tokens").sum(),
        cost_usd=pl.col("cost_usd").sum(),
    )
    days = pl.concat([by_conversation.select(day), by_message.select(day), by_usage.select(day)]).unique()
    counts = [name for name, dtype in TENANT_DAILY_SCHEMA.items() if dtype in (pl.Int32, pl.Int64)]
    daily = (
        days.join(by_conversation, on=day, how="left")
        .join(by_message, on=day, how="left")
        .join(by_usage, on=day, how="left")
        .join(by_sentiment, on=day, how="left")
        .with_columns(
            [pl.col(name).fill_null(0) for name in counts if not name.startswith("sentiment_")]
            + [pl.col("cost_usd").fill_null(0.0)]
        )
        .with_columns(
            deflection_rate=_deflection(),
            satisfaction=pl.when(pl.col("feedback_up") + pl.col("feedback_down") > 0).then(
                pl.col("feedback_up") / (pl.col("feedback_up") + pl.col("feedback_down"))
            ),
            cost_per_conversation_usd=pl.when(pl.col("conversations") > 0).then(
                pl.col("cost_usd") / pl.col("conversations")
            ),
        )
        .sort(day)
    )
    return _conform(daily, TENANT_DAILY_SCHEMA)


def conversation_intents(
    conversations: pl.DataFrame, messages: pl.DataFrame, topics: pl.DataFrame | None = None
) -> pl.DataFrame:
    """tenant_id, conversation_id, intent: the model's label of the first question, else the topic, else unknown."""
    key = ["tenant_id", "conversation_id"]
    first_questions = (
        messages.filter(pl.col("role") == "user")
        .sort("seq")
        .group_by(key, maintain_order=True)
        .agg(model_intent=pl.col("intent").first())
    )
    labelled = conversations.select(key).join(first_questions, on=key, how="left")
    if topics is not None and topics.height:
        labelled = labelled.join(topics.select(*key, "topic"), on=key, how="left")
    else:
        labelled = labelled.with_columns(topic=pl.lit(None, dtype=pl.String))
    return labelled.select(*key, intent=pl.coalesce("model_intent", "topic", pl.lit(UNKNOWN_INTENT)))


def intent_daily(
    conversations: pl.DataFrame,
    messages: pl.DataFrame,
    *,
    topics: pl.DataFrame | None = None,
    sentiment: pl.DataFrame | None = None,
) -> pl.DataFrame:
    key = ["tenant_id", "conversation_id"]
    intents = conversation_intents(conversations, messages, topics)
    negative = (
        sentiment.select("tenant_id", "message_id", negative=pl.col("label") == "negative")
        if sentiment is not None and sentiment.height
        else pl.DataFrame(schema={"tenant_id": pl.String, "message_id": pl.String, "negative": pl.Boolean})
    )
    per_conversation = (
        messages.join(negative, on=["tenant_id", "message_id"], how="left")
        .group_by(key)
        .agg(
            negative_messages=pl.col("negative").sum(),
            scored_messages=pl.col("negative").is_not_null().sum(),
        )
    )
    frame = conversations.join(intents, on=key, how="left").join(per_conversation, on=key, how="left")
    daily = (
        frame.group_by(["tenant_id", "date", "intent"])
        .agg(
            **_outcomes(),
            messages=pl.col("messages").sum(),
            unanswered=pl.col("unanswered").sum(),
            feedback_up=pl.col("feedback_up").sum(),
            feedback_down=pl.col("feedback_down").sum(),
            negative=pl.col("negative_messages").sum(),
            scored=pl.col("scored_messages").sum(),
            cost_usd=pl.col("cost_usd").sum(),
        )
        .with_columns(
            deflection_rate=_deflection(),
            negative_share=pl.when(pl.col("scored") > 0).then(pl.col("negative") / pl.col("scored")),
        )
        .sort(["tenant_id", "date", "intent"])
    )
    return _conform(daily, INTENT_DAILY_SCHEMA)


UNANSWERED_PER_DAY = 50  # the most asked unanswered questions kept per tenant and day


def unanswered_questions(messages: pl.DataFrame, *, per_day: int = UNANSWERED_PER_DAY) -> pl.DataFrame:
    """tenant_id, day, question, example, asked: the customer questions without a confident answer, counted per
    tenant, day and question as normalised (lower case, single spaces, no trailing punctuation), the `per_day` most
    asked of each day. `messages` needs tenant_id, date, seq, role, text, answered (silver's, PII redacted)."""
    question = (
        pl.col("text").str.to_lowercase().str.replace_all(r"\s+", " ").str.strip_chars().str.strip_chars_end("?!.,;: ")
    )
    return (
        messages.filter((pl.col("role") == "user") & (pl.col("answered") == False))  # noqa: E712 (polars)
        .with_columns(question=question)
        .filter(pl.col("question").str.len_chars() > 0)
        .group_by("tenant_id", "date", "question")
        .agg(example=pl.col("text").sort_by("seq").first(), asked=pl.len().cast(pl.Int32))
        .sort(["tenant_id", "date", "asked", "question"], descending=[False, False, True, False])
        .group_by("tenant_id", "date", maintain_order=True)
        .head(per_day)
        .rename({"date": "day"})
        .select("tenant_id", "day", "question", "example", "asked")
    )
