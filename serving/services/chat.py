"""One chat turn: accept the message, retrieve from the tenant's knowledge base, answer, record the reply.

The message is committed (with its outbox event) before any answering starts, so an accepted message survives whatever
happens next; the reply is committed with its own event before a single word of it is sent. Each is one statement
(core/conversations.py), so a turn costs the database three round trips, the caller's key lookup included.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from core import conversations
from core.db import Database
from core.kb.service import KnowledgeBase
from core.llm.kb import Answer, KnowledgeBaseAnswerer
from core.schemas import Message

RETRIEVE = 5
NO_CONFIDENT_ANSWER = "no confident answer"


@dataclass(frozen=True)
class Turn:
    reply: Message
    answer: Answer
    latency_ms: float


class ConversationGone(LookupError):
    """The conversation disappeared between the question and the answer (its tenant was deleted, say)."""


class ChatService:
    def __init__(self, *, db: Database, kb: KnowledgeBase, answerer: KnowledgeBaseAnswerer) -> None:
        self.db = db
        self.kb = kb
        self.answerer = answerer

    async def accept(
        self, *, tenant_id: str, conversation_id: str, text: str, visitor_token: str | None = None
    ) -> Message | None:
        """Record the customer's message; None if the caller has no such conversation (nothing is written)."""
        async with self.db.connection() as conn:
            return await conversations.add_message(
                conn,
                tenant_id=tenant_id,
                conversation_id=conversation_id,
                role="user",
                text=text,
                visitor_token=visitor_token,
            )

    async def answer(self, *, tenant_id: str, conversation_id: str, question: str, started: float) -> Turn:
        hits = await self.kb.search(tenant_id=tenant_id, query=question, limit=RETRIEVE)
        answer = self.answerer.answer(question=question, hits=hits)
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        async with self.db.connection() as conn:
            reply = await conversations.add_message(
                conn,
                tenant_id=tenant_id,
                conversation_id=conversation_id,
                role="assistant",
                text=answer.text,
                sources=answer.sources,
                tier=answer.tier,
                latency_ms=latency_ms,
                handoff_reason=None if answer.confident else NO_CONFIDENT_ANSWER,
            )
        if reply is None:
            raise ConversationGone(conversation_id)
        return Turn(reply=reply, answer=answer, latency_ms=latency_ms)
