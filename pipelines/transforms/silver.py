"""Bronze events → silver conversations and messages: typed, de-duplicated, ordered, PII-redacted.

A pure function of a tenant's bronze events, so late and out-of-order events need no special path: a message that
arrives after its conversation was summarised, feedback that comes days later, a conversation whose `started` event
lands after its first message — the tenant's silver rows are rebuilt from all its events, ordered by the time each
event happened (then by outbox id), and every event id counts once.

Outcomes: `handoff` (a person was asked for, by the customer or because the bot had no confident answer),
`resolved` (the bot had the last word, confidently, and that answer was not rated down), `open` (still active:
last activity within OPEN_MINUTES of `as_of`), `abandoned` (the customer left without a good answer).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import polars as pl

from core.pii import KINDS, redact_frame

OPEN_MINUTES = 30
TS = pl.Datetime("us", "UTC")

_MESSAGE_PAYLOAD = pl.Struct(
    {
        "conversation_id": pl.String,
        "message_id": pl.String,
        "role": pl.String,
        "text": pl.String,
        "sources": pl.List(pl.String),
        "tier": pl.String,
        "model": pl.String,
        "latency_ms": pl.Float64,
        "channel": pl.String,
        "intent": pl.String,
        "intent_confidence": pl.Float64,
        "handoff_reason": pl.String,
    }
)
_EXAMPLE_PAYLOAD = pl.Struct({"example_id": pl.Int64, "text": pl.String, "intent": pl.String, "added_by": pl.String})
_STARTED_PAYLOAD = pl.Struct({"conversation_id": pl.String, "channel": pl.String})
_HANDOFF_PAYLOAD = pl.Struct({"conversation_id": pl.String, "reason": pl.String})
_FEEDBACK_PAYLOAD = pl.Struct(
    {"conversation_id": pl.String, "message_id": pl.String, "rating": pl.String, "comment": pl.String}
)

MESSAGES_SCHEMA = pl.Schema(
    {
        "tenant_id": pl.String,
        "message_id": pl.String,
        "conversation_id": pl.String,
        "channel": pl.String,
        "seq": pl.Int32,
        "role": pl.String,
        "created_at": TS,
        "date": pl.Date,
        "text": pl.String,
        "chars": pl.Int32,
        **{f"pii_{kind}": pl.Int16 for kind in KINDS},
        "sources": pl.List(pl.String),
        "tier": pl.String,
        "model": pl.String,
        "latency_ms": pl.Float64,
        "intent": pl.String,
        "intent_confidence": pl.Float64,
        "confident": pl.Boolean,  # assistant messages: answered without offering a person
        # customer questions: the next message is a confident answer; null for what asks nothing ("thanks!") and
        # for asking for a person (a handoff, not a question the bot missed)
        "answered": pl.Boolean,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "cost_usd": pl.Float64,
        "cache_hit": pl.Boolean,
        "usage_outcome": pl.String,
        "routed_by": pl.String,
        "feedback": pl.String,
        "feedback_comment": pl.String,
        "feedback_at": TS,
        "event_id": pl.String,
    }
)

USAGE_SCHEMA = pl.Schema(
    {
        "tenant_id": pl.String,
        "event_id": pl.String,
        "at": TS,
        "date": pl.Date,
        "conversation_id": pl.String,
        "message_id": pl.String,  # the answer it paid for; null for a summary or a turn that broke off
        "tier": pl.String,  # cache, kb, local, llm, or summary
        "provider": pl.String,
        "model": pl.String,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "cost_usd": pl.Float64,
        "latency_ms": pl.Float64,
        "cache_hit": pl.Boolean,
        "outcome": pl.String,
        "intent": pl.String,
        "routed_by": pl.String,
    }
)

# A usage.recorded payload holds the row's columns but its keys and time, which the event carries itself.
_USAGE_PAYLOAD = pl.Struct({k: v for k, v in USAGE_SCHEMA.items() if k not in ("tenant_id", "event_id", "at", "date")})

INTENT_EXAMPLES_SCHEMA = pl.Schema(
    {
        "tenant_id": pl.String,
        "example_id": pl.Int64,
        "text": pl.String,  # PII redacted, like every silver text
        "intent": pl.String,
        "added_by": pl.String,
        "added_at": TS,
    }
)

CONVERSATIONS_SCHEMA = pl.Schema(
    {
        "tenant_id": pl.String,
        "conversation_id": pl.String,
        "channel": pl.String,
        "started_at": TS,
        "ended_at": TS,
        "date": pl.Date,
        "messages": pl.Int32,
        "user_messages": pl.Int32,
        "assistant_messages": pl.Int32,
        "unanswered": pl.Int32,  # customer messages without a confident answer
        "first_question": pl.String,
        "handoff": pl.Boolean,
        "handoff_reason": pl.String,
        "handoff_at": TS,
        "outcome": pl.String,
        "feedback_up": pl.Int32,
        "feedback_down": pl.Int32,
        "input_tokens": pl.Int64,
        "output_tokens": pl.Int64,
        "cost_usd": pl.Float64,
        "latency_ms_mean": pl.Float64,
        "latency_ms_max": pl.Float64,
        "tiers": pl.List(pl.String),
        "last_event_at": TS,
    }
)


# What a customer says that is not a question the bot could have answered.
NOT_A_QUESTION = (
    r"(?i)^\W*(?:(?:thanks?|thank you|thx|ty|cheers|ok(?:ay)?|great|cool|perfect|got it|bye|goodbye|no|yes|nope|"
    r"that'?s all|all good|so much|very much|a lot)\b\W*)+$"
    r"|(?i)\b(?:talk|speak|chat)\s+(?:to|with)\s+(?:a\s+|an\s+|some)?(?:person|human|agent|one|body|operator)\b"
)
_COUNTS = ("messages", "user_messages", "assistant_messages", "unanswered", "feedback_up", "feedback_down")


@dataclass(frozen=True)
class Silver:
    conversations: pl.DataFrame
    messages: pl.DataFrame
    usage: pl.DataFrame
    intent_examples: pl.DataFrame
    duplicates: int  # bronze rows whose event id was seen before
    redactions: dict[str, int]


def _decoded(events: pl.DataFrame, kind: str, dtype: pl.Struct) -> pl.DataFrame:
    return events.filter(pl.col("type") == kind).with_columns(p=pl.col("payload").str.json_decode(dtype)).unnest("p")


def _first_per(frame: pl.DataFrame, keys: list[str], order: list[str], *, last: bool = False) -> pl.DataFrame:
    ordered = frame.sort(order, descending=last)
    return ordered.unique(subset=keys, keep="first", maintain_order=True)


def build_silver(events: pl.DataFrame, *, as_of: datetime) -> Silver:
    """Silver rows of every tenant in `events` (bronze rows: event_id, outbox_id, tenant_id, type, occurred_at,
    payload, ...)."""
    unique = events.unique(subset=["event_id"], keep="first").sort("outbox_id")
    duplicates = events.height - unique.height
    order = ["occurred_at", "outbox_id"]

    decoded = {
        kind: _decoded(unique, kind, payload)
        for kind, payload in (
            ("message.created", _MESSAGE_PAYLOAD),
            ("feedback.given", _FEEDBACK_PAYLOAD),
            ("usage.recorded", _USAGE_PAYLOAD),
            ("conversation.started", _STARTED_PAYLOAD),
            ("handoff.requested", _HANDOFF_PAYLOAD),
        )
    }
    messages = _first_per(decoded["message.created"], ["tenant_id", "message_id"], order)
    messages = messages.filter(pl.col("message_id").is_not_null() & pl.col("conversation_id").is_not_null())
    feedback = _first_per(
        decoded["feedback.given"].filter(pl.col("message_id").is_not_null()),
        ["tenant_id", "message_id"],
        order,
        last=True,  # rating again replaces the rating
    ).select(
        "tenant_id",
        "message_id",
        feedback=pl.col("rating"),
        feedback_comment=pl.col("comment"),
        feedback_at=pl.col("occurred_at"),
    )
    usage = decoded["usage.recorded"]
    usage_per_message = _first_per(usage.filter(pl.col("message_id").is_not_null()), ["tenant_id", "message_id"], order)

    messages = (
        messages.rename({"occurred_at": "created_at"})
        .join(feedback, on=["tenant_id", "message_id"], how="left")
        .join(
            usage_per_message.select(
                "tenant_id",
                "message_id",
                "input_tokens",
                "output_tokens",
                "cost_usd",
                "cache_hit",
                usage_outcome=pl.col("outcome"),
                routed_by=pl.col("routed_by"),
            ),
            on=["tenant_id", "message_id"],
            how="left",
        )
        .sort(["tenant_id", "conversation_id", "created_at", "outbox_id"])
    )
    messages = redact_frame(messages, "text")
    comments = redact_frame(messages.select(text=pl.col("feedback_comment")), "text")
    examples = redact_frame(
        _first_per(_decoded(unique, "intent_example.added", _EXAMPLE_PAYLOAD), ["tenant_id", "example_id"], order)
        .filter(pl.col("example_id").is_not_null() & pl.col("text").is_not_null() & pl.col("intent").is_not_null())
        .rename({"occurred_at": "added_at"})
        .sort("tenant_id", "example_id"),
        "text",
    )
    redactions = {
        kind: sum(int(frame[f"pii_{kind}"].sum()) for frame in (messages, comments, examples)) for kind in KINDS
    }
    conversation = ["tenant_id", "conversation_id"]
    messages = messages.with_columns(
        feedback_comment=comments["text"],
        seq=pl.int_range(1, pl.len() + 1).over(conversation).cast(pl.Int32),
        date=pl.col("created_at").dt.date(),
        chars=pl.col("text").str.len_chars().cast(pl.Int32),
        confident=pl.when(pl.col("role") == "assistant").then(pl.col("handoff_reason").is_null()),
        sources=pl.col("sources").fill_null([]),
    ).with_columns(
        answered=pl.when((pl.col("role") == "user") & ~pl.col("text").str.contains(NOT_A_QUESTION)).then(
            (pl.col("role").shift(-1).over(conversation) == "assistant")
            & pl.col("confident").shift(-1).over(conversation).fill_null(False)
        )
    )

    started = _first_per(decoded["conversation.started"], conversation, order).select(
        *conversation, started_channel=pl.col("channel"), started_event_at=pl.col("occurred_at")
    )
    handoffs = _first_per(decoded["handoff.requested"], conversation, order).select(
        *conversation, handoff_reason=pl.col("reason"), handoff_at=pl.col("occurred_at")
    )
    # Usage without a message (a turn that broke off before any text, a summary) still cost the conversation.
    orphan_usage = (
        usage.filter(pl.col("message_id").is_null() & pl.col("conversation_id").is_not_null())
        .group_by(conversation)
        .agg(
            orphan_input=pl.col("input_tokens").sum(),
            orphan_output=pl.col("output_tokens").sum(),
            orphan_cost=pl.col("cost_usd").sum(),
        )
    )
    # Every event type names its conversation: the latest of them says whether the conversation is still going.
    last_event = (
        pl.concat([frame.select(*conversation, "occurred_at") for frame in decoded.values()])
        .group_by(conversation)
        .agg(last_event_at=pl.col("occurred_at").max())
    )

    per_conversation = messages.group_by(conversation).agg(
        message_channel=pl.col("channel").drop_nulls().first(),
        first_message_at=pl.col("created_at").min(),
        ended_at=pl.col("created_at").max(),
        messages=pl.len().cast(pl.Int32),
        user_messages=(pl.col("role") == "user").sum().cast(pl.Int32),
        assistant_messages=(pl.col("role") == "assistant").sum().cast(pl.Int32),
        unanswered=(pl.col("answered") == False).sum().cast(pl.Int32),  # noqa: E712 (polars expression)
        first_question=pl.col("text").filter(pl.col("role") == "user").first(),
        last_role=pl.col("role").last(),
        last_answer_ok=(
            pl.col("confident").last().fill_null(False) & (pl.col("feedback").last().fill_null("") != "down")
        ),
        feedback_up=(pl.col("feedback") == "up").sum().cast(pl.Int32),
        feedback_down=(pl.col("feedback") == "down").sum().cast(pl.Int32),
        input_tokens=pl.col("input_tokens").sum(),
        output_tokens=pl.col("output_tokens").sum(),
        cost_usd=pl.col("cost_usd").sum(),
        latency_ms_mean=pl.col("latency_ms").mean(),
        latency_ms_max=pl.col("latency_ms").max(),
        tiers=pl.col("tier").drop_nulls().unique().sort(),
    )
    keys = pl.concat([per_conversation.select(conversation), started.select(conversation)]).unique()
    open_after = as_of - timedelta(minutes=OPEN_MINUTES)
    conversations = (
        keys.join(per_conversation, on=conversation, how="left")
        .join(started, on=conversation, how="left")
        .join(handoffs, on=conversation, how="left")
        .join(orphan_usage, on=conversation, how="left")
        .join(last_event, on=conversation, how="left")
        .with_columns(
            channel=pl.coalesce("started_channel", "message_channel"),
            started_at=pl.min_horizontal("started_event_at", "first_message_at"),
            ended_at=pl.coalesce("ended_at", "started_event_at"),
            handoff=pl.col("handoff_at").is_not_null(),
            input_tokens=pl.col("input_tokens").fill_null(0) + pl.col("orphan_input").fill_null(0),
            output_tokens=pl.col("output_tokens").fill_null(0) + pl.col("orphan_output").fill_null(0),
            cost_usd=pl.col("cost_usd").fill_null(0.0) + pl.col("orphan_cost").fill_null(0.0),
            **{name: pl.col(name).fill_null(0) for name in _COUNTS},
            tiers=pl.col("tiers").fill_null([]),
        )
        .with_columns(
            date=pl.col("started_at").dt.date(),
            outcome=pl.when(pl.col("handoff"))
            .then(pl.lit("handoff"))
            .when((pl.col("last_role") == "assistant") & pl.col("last_answer_ok").fill_null(False))
            .then(pl.lit("resolved"))
            .when(pl.col("last_event_at") >= open_after)
            .then(pl.lit("open"))
            .otherwise(pl.lit("abandoned")),
        )
        .sort(["tenant_id", "started_at", "conversation_id"])
    )
    return Silver(
        conversations=_conform(conversations, CONVERSATIONS_SCHEMA),
        messages=_conform(messages, MESSAGES_SCHEMA),
        usage=_conform(
            usage.rename({"occurred_at": "at"}).with_columns(date=pl.col("at").dt.date()).sort("tenant_id", "at"),
            USAGE_SCHEMA,
        ),
        intent_examples=_conform(examples, INTENT_EXAMPLES_SCHEMA),
        duplicates=duplicates,
        redactions=redactions,
    )


def _conform(frame: pl.DataFrame, schema: pl.Schema) -> pl.DataFrame:
    """Exactly the schema's columns, in its order and types (an empty input gives an empty, typed frame)."""
    missing = [pl.lit(None, dtype=dtype).alias(name) for name, dtype in schema.items() if name not in frame.columns]
    return frame.with_columns(missing).select([pl.col(name).cast(dtype) for name, dtype in schema.items()])
