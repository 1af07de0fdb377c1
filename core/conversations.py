"""Conversations, messages, feedback, and the outbox events that report each of them to the lakehouse.

Every function that records something also writes its outbox event on the same connection: run it inside a transaction
and the row and its event commit together, so the pipelines see each accepted message exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from typing import Any

from psycopg import AsyncConnection
from psycopg.types.json import Jsonb

from core.schemas import Channel, Conversation, Feedback, Message, Rating, Source
from core.tenancy import new_id

_CONVERSATION_COLUMNS = "id, channel, handoff_requested, metadata, created_at, updated_at"
_MESSAGE_COLUMNS = "id, conversation_id, role, text, sources, tier, latency_ms, created_at"


async def emit(conn: AsyncConnection, *, tenant_id: str, type: str, payload: dict[str, Any]) -> str:
    """Append an event to the outbox; returns its id (the lake's idempotency key)."""
    event_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO outbox (event_id, tenant_id, type, payload) VALUES (%s, %s, %s, %s)",
        (event_id, tenant_id, type, Jsonb(payload)),
    )
    return str(event_id)


def new_visitor_token() -> tuple[str, bytes]:
    token = secrets.token_urlsafe(24)
    return token, hashlib.sha256(token.encode()).digest()


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
        payload={"conversation_id": conversation.id, "channel": channel, "at": conversation.created_at.isoformat()},
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
        stored is None or not hmac.compare_digest(bytes(stored), hashlib.sha256(visitor_token.encode()).digest())
    ):
        return None
    return Conversation(**row)


async def add_message(
    conn: AsyncConnection,
    *,
    tenant_id: str,
    conversation_id: str,
    role: str,
    text: str,
    channel: Channel,
    sources: list[Source] = (),
    tier: str | None = None,
    latency_ms: float | None = None,
) -> Message:
    cursor = await conn.execute(
        f"""INSERT INTO messages (id, tenant_id, conversation_id, role, text, sources, tier, latency_ms)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s) RETURNING {_MESSAGE_COLUMNS}""",
        (
            new_id("m"),
            tenant_id,
            conversation_id,
            role,
            text,
            Jsonb([source.model_dump() for source in sources]),
            tier,
            latency_ms,
        ),
    )
    message = Message(**await cursor.fetchone())
    await conn.execute("UPDATE conversations SET updated_at = now() WHERE id = %s", (conversation_id,))
    await emit(
        conn,
        tenant_id=tenant_id,
        type="message.created",
        payload={
            "conversation_id": conversation_id,
            "message_id": message.id,
            "channel": channel,
            "role": role,
            "text": text,
            "sources": [source.document_id for source in sources],
            "tier": tier,
            "latency_ms": latency_ms,
            "at": message.created_at.isoformat(),
        },
    )
    return message


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
            WHERE tenant_id = %s AND id = %s AND NOT handoff_requested RETURNING id""",
        (tenant_id, conversation_id),
    )
    if await cursor.fetchone():
        await emit(
            conn,
            tenant_id=tenant_id,
            type="handoff.requested",
            payload={"conversation_id": conversation_id, "reason": reason},
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
        payload={
            "conversation_id": row["conversation_id"],
            "message_id": message_id,
            "rating": rating,
            "comment": comment,
            "at": feedback.updated_at.isoformat(),
        },
    )
    return feedback


async def conversation_of_message(conn: AsyncConnection, *, tenant_id: str, message_id: str) -> str | None:
    cursor = await conn.execute(
        "SELECT conversation_id FROM messages WHERE tenant_id = %s AND id = %s", (tenant_id, message_id)
    )
    row = await cursor.fetchone()
    return row["conversation_id"] if row else None
