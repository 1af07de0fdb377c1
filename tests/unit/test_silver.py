"""Bronze → silver on hand-made events: out of order, duplicated, late and incomplete, with known answers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import polars as pl

from pipelines.transforms.silver import build_silver

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
AS_OF = T0 + timedelta(days=1)


def events(*rows: tuple) -> pl.DataFrame:
    """rows: (outbox_id, tenant, type, seconds after T0, payload); the event id repeats the outbox id unless given."""
    records = []
    for row in rows:
        outbox_id, tenant, kind, seconds, payload = row[:5]
        event_id = row[5] if len(row) > 5 else f"e{outbox_id}"
        at = T0 + timedelta(seconds=seconds)
        records.append(
            {
                "event_id": event_id,
                "outbox_id": outbox_id,
                "tenant_id": tenant,
                "type": kind,
                "occurred_at": at,
                "payload": json.dumps(payload | {"at": at.isoformat()}),
            }
        )
    return pl.DataFrame(records, schema_overrides={"occurred_at": pl.Datetime("us", "UTC")})


def message(conversation: str, message_id: str, role: str, text: str, **extra) -> dict:
    return {
        "conversation_id": conversation,
        "message_id": message_id,
        "role": role,
        "text": text,
        "sources": [],
    } | extra


def test_out_of_order_and_duplicated_events_give_one_ordered_conversation():
    built = build_silver(
        events(
            # The reply's event was drained first, the conversation's start last, and the question twice.
            (1, "t1", "message.created", 5, message("c1", "m2", "assistant", "Within 14 days.", tier="kb")),
            (2, "t1", "message.created", 1, message("c1", "m1", "user", "How long do refunds take?")),
            (3, "t1", "message.created", 1, message("c1", "m1", "user", "How long do refunds take?"), "e2"),
            (4, "t1", "feedback.given", 9, {"conversation_id": "c1", "message_id": "m2", "rating": "up"}),
            (5, "t1", "conversation.started", 0, {"conversation_id": "c1", "channel": "widget"}),
        ),
        as_of=AS_OF,
    )
    assert built.duplicates == 1
    messages = built.messages
    assert messages["message_id"].to_list() == ["m1", "m2"] and messages["seq"].to_list() == [1, 2]
    assert messages["answered"].to_list() == [True, None] and messages["feedback"].to_list() == [None, "up"]
    (conversation,) = built.conversations.iter_rows(named=True)
    assert conversation["started_at"] == T0 and conversation["ended_at"] == T0 + timedelta(seconds=5)
    assert conversation["channel"] == "widget" and conversation["outcome"] == "resolved"
    assert conversation["messages"] == 2 and conversation["first_question"] == "How long do refunds take?"


def test_outcomes_follow_the_last_word():
    built = build_silver(
        events(
            # c1: no confident answer, a person is asked for; c2: the customer left unanswered;
            # c3: answered but the answer was rated down; c4: still going when the pipeline ran.
            (1, "t1", "message.created", 0, message("c1", "a1", "user", "Where is my card?")),
            (
                2,
                "t1",
                "message.created",
                1,
                message("c1", "a2", "assistant", "Shall I get a person?", handoff_reason="no confident answer"),
            ),
            (3, "t1", "handoff.requested", 1, {"conversation_id": "c1", "reason": "no confident answer"}),
            (4, "t1", "message.created", 0, message("c2", "b1", "user", "Hello?")),
            (5, "t1", "message.created", 0, message("c3", "c1m", "user", "Fees?")),
            (6, "t1", "message.created", 1, message("c3", "c2m", "assistant", "None.")),
            (7, "t1", "feedback.given", 2, {"conversation_id": "c3", "message_id": "c2m", "rating": "down"}),
            (8, "t1", "message.created", 86400 - 60, message("c4", "d1", "user", "Still there?")),
        ),
        as_of=AS_OF,
    )
    outcome = dict(built.conversations.select("conversation_id", "outcome").iter_rows())
    assert outcome == {"c1": "handoff", "c2": "abandoned", "c3": "abandoned", "c4": "open"}
    unanswered = dict(built.conversations.select("conversation_id", "unanswered").iter_rows())
    assert unanswered == {"c1": 1, "c2": 1, "c3": 0, "c4": 1}


def test_usage_lands_on_its_message_and_a_broken_turn_still_costs_its_conversation():
    usage = {
        "tier": "llm",
        "provider": "acme",
        "model": "small",
        "input_tokens": 100,
        "output_tokens": 10,
        "cost_usd": 0.002,
        "cache_hit": False,
        "outcome": "ok",
        "routed_by": "policy",
    }
    built = build_silver(
        events(
            (1, "t1", "message.created", 0, message("c1", "m1", "user", "Hi")),
            (2, "t1", "message.created", 1, message("c1", "m2", "assistant", "Hello [1]", tier="llm")),
            (3, "t1", "usage.recorded", 1, usage | {"conversation_id": "c1", "message_id": "m2"}),
            (4, "t1", "usage.recorded", 2, usage | {"conversation_id": "c1", "message_id": None, "outcome": "error"}),
        ),
        as_of=AS_OF,
    )
    assert built.messages.filter(pl.col("message_id") == "m2")["cost_usd"].item() == 0.002
    assert built.conversations["cost_usd"].item() == 0.004 and built.conversations["input_tokens"].item() == 200


def test_two_tenants_with_the_same_ids_stay_apart():
    built = build_silver(
        events(
            (1, "t1", "message.created", 0, message("c1", "m1", "user", "from tenant one")),
            (2, "t2", "message.created", 0, message("c1", "m1", "user", "from tenant two")),
        ),
        as_of=AS_OF,
    )
    assert sorted(built.messages.select("tenant_id", "text").iter_rows()) == [
        ("t1", "from tenant one"),
        ("t2", "from tenant two"),
    ]
    assert built.conversations.height == 2


def test_thanks_and_asking_for_a_person_are_not_unanswered_questions():
    built = build_silver(
        events(
            (1, "t1", "message.created", 0, message("c1", "m1", "user", "How do refunds work?")),
            (2, "t1", "message.created", 1, message("c1", "m2", "assistant", "Like this.")),
            (3, "t1", "message.created", 2, message("c1", "m3", "user", "Thanks a lot!")),
            (4, "t1", "message.created", 3, message("c1", "m4", "user", "can I talk to a person?")),
            (5, "t1", "message.created", 4, message("c1", "m5", "user", "and is there a fee?")),
        ),
        as_of=AS_OF,
    )
    assert built.messages.filter(pl.col("role") == "user")["answered"].to_list() == [True, None, None, False]
    assert built.conversations["unanswered"].item() == 1
