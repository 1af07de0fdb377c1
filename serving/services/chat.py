"""One chat turn: accept the message, let the orchestrator pick the tier that answers, record the reply and its usage.

The customer's message is committed (with its outbox event) before any answering starts, so an accepted message
survives whatever happens next. The reply is committed with its usage row when the answer is complete, also when the
customer stopped listening halfway: the tokens were paid for. Each write is one statement, pipelined with the read it
goes with, so a turn costs the database four round trips, the caller's key lookup included.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace

from core import conversations
from core.db import Database
from core.llm import routing
from core.llm.base import ChatMessage
from core.llm.orchestrator import Answered, AnswerStream, Ask, Orchestrator
from core.llm.routing import RoutingContext
from core.metrics import UsageRecord, record_usage
from core.schemas import Message
from core.tenancy import new_id
from models.intent import IntentPrediction
from serving.services.champions import Champions

NO_CONFIDENT_ANSWER = "no confident answer"


@dataclass(frozen=True)
class Accepted:
    message: Message
    context: RoutingContext
    intent: IntentPrediction | None = None  # the tenant's champion intent model's reading of the message


@dataclass(frozen=True)
class Turn:
    reply: Message | None  # None when the answer broke off before it said anything
    answered: Answered
    latency_ms: float


@dataclass(frozen=True)
class StreamedTurn:
    pieces: AsyncIterator[str]
    finish: Callable[[], Awaitable[Turn]]  # records the answer; call it also when the stream was cut short


class ConversationGone(LookupError):
    """The conversation disappeared between the question and the answer (its tenant was deleted, say)."""


class ChatService:
    def __init__(self, *, db: Database, orchestrator: Orchestrator, champions: Champions | None = None) -> None:
        self.db = db
        self.orchestrator = orchestrator
        self.champions = champions

    async def accept(
        self, *, tenant_id: str, conversation_id: str, text: str, visitor_token: str | None = None
    ) -> Accepted | None:
        """Record the customer's message (with its intent, when the tenant has an intent model) and read what routing
        needs; None if the caller has no such conversation (nothing is written)."""
        intent = await self.classify(tenant_id=tenant_id, text=text)
        async with self.db.connection() as conn, conn.pipeline():
            read = await conn.execute(
                routing.READ, routing.read_params(tenant_id=tenant_id, conversation_id=conversation_id)
            )
            message = await conversations.add_message(
                conn,
                tenant_id=tenant_id,
                conversation_id=conversation_id,
                role="user",
                text=text,
                visitor_token=visitor_token,
                intent=intent.intent if intent else None,
                intent_confidence=round(intent.confidence, 4) if intent else None,
            )
            context = routing.from_row(await read.fetchone())
        return Accepted(message=message, context=context, intent=intent) if message else None

    async def classify(self, *, tenant_id: str, text: str) -> IntentPrediction | None:
        if self.champions is None:
            return None
        return await self.champions.predict(tenant_id=tenant_id, text=text)

    def _ask(self, tenant_id: str, conversation_id: str, question: str, accepted: Accepted, **options) -> Ask:
        async def history() -> Sequence[ChatMessage]:
            if accepted.context.earlier_questions == 0:
                return ()
            async with self.db.connection() as conn:
                messages = await conversations.list_messages(conn, tenant_id=tenant_id, conversation_id=conversation_id)
            return [ChatMessage(m.role, m.text) for m in messages if m.id != accepted.message.id]

        intent = accepted.intent
        return Ask(
            tenant_id=tenant_id,
            conversation_id=conversation_id,
            question=question,
            context=accepted.context,
            history=options.pop("history", history),
            intent=options.pop("intent", intent.intent if intent else None),
            out_of_scope=options.pop("out_of_scope", bool(intent and (intent.out_of_scope or intent.uncertain))),
            **options,
        )

    async def answer(
        self, *, tenant_id: str, conversation_id: str, question: str, accepted: Accepted, started: float, **options
    ) -> Turn:
        """The whole answer, recorded. `options` go to the orchestrator's Ask (history, tiers, max_tokens...)."""
        stream = await self.orchestrator.answer(self._ask(tenant_id, conversation_id, question, accepted, **options))
        return await self._record(tenant_id, conversation_id, stream, started)

    def stream(
        self, *, tenant_id: str, conversation_id: str, question: str, accepted: Accepted, started: float, **options
    ) -> StreamedTurn:
        """The answer piece by piece; call `finish()` afterwards (also when the stream was cut short) to record it."""
        stream = self.orchestrator.stream(self._ask(tenant_id, conversation_id, question, accepted, **options))

        async def finish() -> Turn:
            return await self._record(tenant_id, conversation_id, stream, started)

        return StreamedTurn(pieces=stream.pieces, finish=finish)

    async def _record(self, tenant_id: str, conversation_id: str, stream: AnswerStream, started: float) -> Turn:
        answered = stream.answered
        latency_ms = round((time.perf_counter() - started) * 1000, 2)
        if not answered.text:
            answered = replace(answered, outcome="error")
        message_id = new_id("m")
        usage = UsageRecord(
            tier=answered.tier,
            outcome=answered.outcome,
            provider=answered.provider if not answered.cache_hit else None,
            model=answered.model.split("/", 1)[1] if answered.model and not answered.cache_hit else None,
            input_tokens=answered.usage.input_tokens,
            output_tokens=answered.usage.output_tokens,
            cost_usd=answered.cost_usd,
            latency_ms=latency_ms,
            cache_hit=answered.cache_hit,
            conversation_id=conversation_id,
            message_id=message_id if answered.text else None,
            intent=answered.intent,
            routed_by=answered.routed_by,
        )
        reply = None
        async with self.db.connection() as conn, conn.pipeline():
            await record_usage(conn, tenant_id=tenant_id, record=usage)  # the tokens were spent either way
            if answered.text:
                reply = await conversations.add_message(
                    conn,
                    tenant_id=tenant_id,
                    conversation_id=conversation_id,
                    message_id=message_id,
                    role="assistant",
                    text=answered.text,
                    sources=answered.sources,
                    tier=answered.tier,
                    model=answered.model,
                    latency_ms=latency_ms,
                    handoff_reason=None if answered.confident else NO_CONFIDENT_ANSWER,
                )
        if answered.text and reply is None:
            raise ConversationGone(conversation_id)
        await stream.remember()
        return Turn(reply=reply, answered=answered, latency_ms=latency_ms)
