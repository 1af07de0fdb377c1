"""Conversations, messages, feedback, and the outbox events that report each of them to the lakehouse.

Every function that records something also writes its outbox event on the same connection: run it inside a transaction
and the row and its event commit together, so the pipelines see each accepted message exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Sequence
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core.schemas import Channel, Conversation, Feedback, Message, Rating, Source
from core.tenancy import new_id

_CONVERSATION_COLUMNS = "id, channel, handoff_requested, metadata, created_at, updated_at"
_MESSAGE_COLUMNS = (
    "id, conversation_id, role, text, sources, tier, model, latency_ms, intent, intent_confidence, created_at"
)


async def emit(conn: AsyncConnection, *, tenant_id: str, type: str, payload: dict[str, Any]) -> str:
    """Append an event to the outbox; returns its id (the lake's idempotency key)."""
    event_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO outbox (event_id, tenant_id, type, payload) VALUES (%s, %s, %s, %s)",
        (event_id, tenant_id, type, Jsonb(payload)),
    )
    return str(event_id)


# The event payloads, built in one place for the serving tier and the demo generator (core/demo_traffic.py) alike.
def started_event(*, conversation_id: str, channel: str, at: str) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "channel": channel, "at": at}


def message_event(
    *,
    conversation_id: str,
    message_id: str,
    role: str,
    text: str,
    sources: Sequence[str],
    tier: str | None,
    model: str | None,
    latency_ms: float | None,
    handoff_reason: str | None,
    intent: str | None = None,
    intent_confidence: float | None = None,
) -> dict[str, Any]:
    """message.created without `channel` and `at`, which the statement that inserts the message adds."""
    return {
        "intent": intent,
        "intent_confidence": intent_confidence,
        "conversation_id": conversation_id,
        "message_id": message_id,
        "role": role,
        "text": text,
        "sources": list(sources),
        "tier": tier,
        "model": model,
        "latency_ms": latency_ms,
        "handoff_reason": handoff_reason,
    }


def handoff_event(*, conversation_id: str, reason: str, at: str) -> dict[str, Any]:
    return {"conversation_id": conversation_id, "reason": reason, "at": at}


def feedback_event(
    *, conversation_id: str, message_id: str, rating: str, comment: str | None, at: str
) -> dict[str, Any]:
    return {
        "conversation_id": conversation_id,
        "message_id": message_id,
        "rating": rating,
        "comment": comment,
        "at": at,
    }


def visitor_token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_visitor_token() -> tuple[str, bytes]:
    token = secrets.token_urlsafe(24)
    return token, visitor_token_hash(token)


async def create_conversation(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    channel: Channel,
    metadata: dict[str, Any] | None = None,
    visitor_token_hash: bytes | None = None,
) -> Conversation:
    cursor = await conn.execute(
        f"""INSERT INTO conversations (id, tenant_id, channel, metadata, visitor_token_hash)
            VALUES (%s, %s, %s, %s, %s) RETURNING {_CONVERSATION_COLUMNS}""",
        (new_id("c"), tenant_id, channel, Jsonb(metadata or {}), visitor_token_hash),
    )
    conversation = Conversation(**await cursor.fetchone())
    await emit(
        conn,
        tenant_id=tenant_id,
        type="conversation.started",
        payload=started_event(conversation_id=conversation.id, channel=channel, at=conversation.created_at.isoformat()),
    )
    return conversation


async def get_conversation(
    conn: AsyncConnection, *, tenant_id: str, conversation_id: str, visitor_token: str | None = None
) -> Conversation | None:
    """The tenant's conversation; with a visitor token, only if that token owns it."""
    cursor = await conn.execute(
        f"SELECT {_CONVERSATION_COLUMNS}, visitor_token_hash FROM conversations WHERE tenant_id = %s AND id = %s",
        (tenant_id, conversation_id),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    stored = row.pop("visitor_token_hash")
    if visitor_token is not None and (
        stored is None or not hmac.compare_digest(bytes(stored), visitor_token_hash(visitor_token))
    ):
        return None
    return Conversation(**row)


# One statement, so one round trip and atomic without a transaction block: it finds the conversation (only the
# tenant's, and only the visitor's when a token hash is given), touches it, inserts the message, and writes the
# outbox events. A CTE reads the conversation as it was before this statement, so a handoff is reported only once.
_ADD_MESSAGE = f"""
WITH conversation AS (
    SELECT id, channel, handoff_requested FROM conversations
     WHERE tenant_id = %(tenant_id)s AND id = %(conversation_id)s
       AND (%(visitor_hash)s::bytea IS NULL OR visitor_token_hash = %(visitor_hash)s::bytea)
       FOR UPDATE
), touched AS (
    UPDATE conversations c
       SET updated_at = now(), handoff_requested = c.handoff_requested OR %(handoff)s
      FROM conversation WHERE c.id = conversation.id
), message AS (
    INSERT INTO messages (id, tenant_id, conversation_id, role, text, sources, tier, model, latency_ms, intent,
                          intent_confidence)
    SELECT %(message_id)s, %(tenant_id)s, conversation.id, %(role)s, %(text)s, %(sources)s, %(tier)s, %(model)s,
           %(latency_ms)s, %(intent)s, %(intent_confidence)s
      FROM conversation
    RETURNING {_MESSAGE_COLUMNS}
), events AS (
    INSERT INTO outbox (event_id, tenant_id, type, payload, created_at)
    SELECT event_id, %(tenant_id)s, type, payload, at FROM (
        SELECT 1 AS n, %(message_event)s::uuid AS event_id, 'message.created' AS type, message.created_at AS at,
               %(event)s::jsonb || jsonb_build_object('channel', conversation.channel, 'at', message.created_at)
                   AS payload
          FROM message, conversation
        UNION ALL
        SELECT 2, %(handoff_event)s::uuid, 'handoff.requested', message.created_at,
               jsonb_build_object('conversation_id', conversation.id, 'reason', %(handoff_reason)s::text,
                                  'at', message.created_at)
          FROM conversation, message WHERE %(handoff)s AND NOT conversation.handoff_requested
    ) new_events ORDER BY n
)
SELECT * FROM message
"""


async def add_message(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    conversation_id: str,
    role: str,
    text: str,
    sources: list[Source] = (),
    tier: str | None = None,
    model: str | None = None,
    latency_ms: float | None = None,
    visitor_token: str | None = None,
    handoff_reason: str | None = None,
    message_id: str | None = None,
    intent: str | None = None,
    intent_confidence: float | None = None,
) -> Message | None:
    """Add a message (and its outbox event) to the tenant's conversation; None if there is no such conversation.

    With `visitor_token`, only the conversation that token started is found. With `handoff_reason`, the
    conversation also asks for a human, reported once however many messages ask.
    """
    message_id = message_id or new_id("m")
    cursor = await conn.execute(
        _ADD_MESSAGE,
        {
            "tenant_id": tenant_id,
            "conversation_id": conversation_id,
            "visitor_hash": None if visitor_token is None else visitor_token_hash(visitor_token),
            "handoff": handoff_reason is not None,
            "handoff_reason": handoff_reason,
            "message_id": message_id,
            "role": role,
            "text": text,
            "sources": Jsonb([source.model_dump() for source in sources]),
            "tier": tier,
            "model": model,
            "latency_ms": latency_ms,
            "intent": intent,
            "intent_confidence": intent_confidence,
            "message_event": uuid.uuid4(),
            "handoff_event": uuid.uuid4(),
            "event": Jsonb(
                message_event(
                    conversation_id=conversation_id,
                    message_id=message_id,
                    role=role,
                    text=text,
                    sources=[source.document_id for source in sources],
                    tier=tier,
                    model=model,
                    latency_ms=latency_ms,
                    handoff_reason=handoff_reason,
                    intent=intent,
                    intent_confidence=intent_confidence,
                )
            ),
        },
    )
    row = await cursor.fetchone()
    return Message(**row) if row else None


async def list_messages(conn: AsyncConnection, *, tenant_id: str, conversation_id: str) -> list[Message]:
    cursor = await conn.execute(
        f"""SELECT {_MESSAGE_COLUMNS} FROM messages
             WHERE tenant_id = %s AND conversation_id = %s ORDER BY created_at, id""",
        (tenant_id, conversation_id),
    )
    return [Message(**row) for row in await cursor.fetchall()]


async def request_handoff(conn: AsyncConnection, *, tenant_id: str, conversation_id: str, reason: str) -> None:
    cursor = await conn.execute(
        """UPDATE conversations SET handoff_requested = true, updated_at = now()
            WHERE tenant_id = %s AND id = %s AND NOT handoff_requested RETURNING updated_at""",
        (tenant_id, conversation_id),
    )
    row = await cursor.fetchone()
    if row:
        await emit(
            conn,
            tenant_id=tenant_id,
            type="handoff.requested",
            payload=handoff_event(conversation_id=conversation_id, reason=reason, at=row["updated_at"].isoformat()),
        )


async def set_feedback(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    message_id: str,
    rating: Rating,
    comment: str | None,
    conversation_id: str | None = None,
) -> Feedback | None:
    """Rate an assistant message of this tenant (optionally: of this conversation); rating again replaces it."""
    cursor = await conn.execute(
        """SELECT conversation_id FROM messages
            WHERE tenant_id = %s AND id = %s AND role = 'assistant' AND (%s::text IS NULL OR conversation_id = %s)""",
        (tenant_id, message_id, conversation_id, conversation_id),
    )
    row = await cursor.fetchone()
    if row is None:
        return None
    cursor = await conn.execute(
        """INSERT INTO message_feedback (message_id, tenant_id, rating, comment) VALUES (%s, %s, %s, %s)
           ON CONFLICT (message_id)
           DO UPDATE SET rating = excluded.rating, comment = excluded.comment, updated_at = now()
           RETURNING message_id, rating, comment, updated_at""",
        (message_id, tenant_id, rating, comment),
    )
    feedback = Feedback(**await cursor.fetchone())
    await emit(
        conn,
        tenant_id=tenant_id,
        type="feedback.given",
        payload=feedback_event(
            conversation_id=row["conversation_id"],
            message_id=message_id,
            rating=rating,
            comment=comment,
            at=feedback.updated_at.isoformat(),
        ),
    )
    return feedback


async def conversation_of_message(conn: AsyncConnection, *, tenant_id: str, message_id: str) -> str | None:
    cursor = await conn.execute(
        "SELECT conversation_id FROM messages WHERE tenant_id = %s AND id = %s", (tenant_id, message_id)
    )
    row = await cursor.fetchone()
    return row["conversation_id"] if row else None
