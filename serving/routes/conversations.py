"""Conversations: start one, send a message and get the answer (JSON, or streamed as Server-Sent Events), read the
transcript, rate an answer, ask for a human. Tenant API keys with the `chat` permission and widget keys may call these;
a widget visitor reaches only conversations it started (the visitor token proves it)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Annotated

import anyio
from fastapi import APIRouter, Header, Request, status
from fastapi.responses import StreamingResponse

from core import conversations
from core.conversations import new_visitor_token
from core.llm import cache as answer_cache
from core.schemas import (
    Channel,
    ChatTurn,
    ConversationCreate,
    ConversationCreated,
    ConversationWithMessages,
    Feedback,
    FeedbackCreate,
    MessageCreate,
    Rating,
    Reply,
)
from core.tenancy import Permission as P
from serving.deps import ChatDep, DbDep, SettingsDep, TenantScope, tenant_access
from serving.problems import Problem, problem_responses
from serving.services.chat import Turn

log = logging.getLogger(__name__)
router = APIRouter(tags=["conversations"], responses=problem_responses(401, 403, 404, 422, 429))

ChatScope = Annotated[TenantScope, tenant_access(P.CHAT)]
VisitorToken = Annotated[str | None, Header(alias="X-Visitor-Token", max_length=200)]
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


def _channel(scope: TenantScope) -> Channel:
    return Channel.WIDGET if scope.caller.is_widget else Channel.API


def _no_conversation(conversation_id: str) -> Problem:
    return Problem(404, f"No conversation '{conversation_id}'.", kind="not-found")


def _visitor_token(scope: TenantScope, visitor_token: str | None) -> str | None:
    """A widget caller must present the visitor token (an empty one matches nothing); a tenant key needs none."""
    return (visitor_token or "") if scope.caller.is_widget else None


async def _conversation(db, scope: TenantScope, conversation_id: str, visitor_token: str | None):
    async with db.connection() as conn:
        found = await conversations.get_conversation(
            conn,
            tenant_id=scope.tenant_id,
            conversation_id=conversation_id,
            visitor_token=_visitor_token(scope, visitor_token),
        )
    if found is None:
        raise _no_conversation(conversation_id)
    return found


@router.post("/v1/conversations", status_code=status.HTTP_201_CREATED, summary="Start a conversation")
async def start_conversation(
    scope: ChatScope, db: DbDep, body: ConversationCreate | None = None
) -> ConversationCreated:
    token, token_hash = new_visitor_token() if scope.caller.is_widget else (None, None)
    async with db.transaction() as conn:
        conversation = await conversations.create_conversation(
            conn,
            tenant_id=scope.tenant_id,
            channel=_channel(scope),
            metadata=body.metadata if body else None,
            visitor_token_hash=token_hash,
        )
    return ConversationCreated(**conversation.model_dump(), visitor_token=token)


@router.get("/v1/conversations/{conversation_id}", summary="A conversation and its messages")
async def read_conversation(
    conversation_id: str, scope: ChatScope, db: DbDep, visitor_token: VisitorToken = None
) -> ConversationWithMessages:
    conversation = await _conversation(db, scope, conversation_id, visitor_token)
    async with db.connection() as conn:
        messages = await conversations.list_messages(conn, tenant_id=scope.tenant_id, conversation_id=conversation.id)
    return ConversationWithMessages(**conversation.model_dump(), messages=messages)


def _chat_turn(message_id: str, turn: Turn) -> ChatTurn:
    answered = turn.answered
    return ChatTurn(
        message_id=message_id,
        reply=Reply(
            message_id=turn.reply.id if turn.reply else "",
            text=answered.text,
            sources=answered.sources,
            tier=answered.tier,
            model=answered.model,
            handoff_offered=not answered.confident,
            intent=answered.intent,
            out_of_scope=answered.out_of_scope,
        ),
        latency_ms=turn.latency_ms,
    )


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.post(
    "/v1/conversations/{conversation_id}/messages",
    summary="Send a message; the answer comes back as JSON, or as Server-Sent Events with Accept: text/event-stream",
    responses={200: {"content": {"text/event-stream": {}}}, **problem_responses(503)},
)
async def send_message(
    conversation_id: str,
    body: MessageCreate,
    request: Request,
    scope: ChatScope,
    chat: ChatDep,
    settings: SettingsDep,
    visitor_token: VisitorToken = None,
) -> ChatTurn:
    started = time.perf_counter()
    if len(body.text) > settings.max_message_chars:
        raise Problem(
            422,
            f"text: at most {settings.max_message_chars} characters",
            kind="validation-error",
            errors=[{"location": "body", "field": "text", "message": "message too long", "type": "too_long"}],
        )
    accepted = await chat.accept(
        tenant_id=scope.tenant_id,
        conversation_id=conversation_id,
        text=body.text,
        visitor_token=_visitor_token(scope, visitor_token),
    )
    if accepted is None:
        raise _no_conversation(conversation_id)
    asked = {"tenant_id": scope.tenant_id, "conversation_id": conversation_id, "question": body.text}
    if "text/event-stream" not in request.headers.get("accept", ""):
        return _chat_turn(accepted.message.id, await chat.answer(**asked, accepted=accepted, started=started))

    async def events() -> AsyncIterator[bytes]:
        yield _sse("message", {"message_id": accepted.message.id, "conversation_id": conversation_id})
        streamed = chat.stream(**asked, accepted=accepted, started=started)
        failed = False
        try:
            async for piece in streamed.pieces:
                yield _sse("token", {"text": piece})
        except Exception:
            log.exception("answering failed")
            failed = True
        finally:
            # Recorded even if the customer has gone: the answer was made and its tokens paid for.
            with anyio.CancelScope(shield=True):
                turn = await streamed.finish()
        if failed or turn.reply is None:
            yield _sse("error", {"title": "The answer failed", "detail": "Your message was kept; please try again."})
            return
        if turn.answered.outcome == "error":
            yield _sse("error", {"title": "The answer broke off", "detail": "Part of the answer was lost."})
        yield _sse("done", _chat_turn(accepted.message.id, turn).model_dump(mode="json"))

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)


@router.post(
    "/v1/conversations/{conversation_id}/handoff",
    status_code=status.HTTP_202_ACCEPTED,
    summary="Ask for a human agent to take over",
)
async def request_handoff(
    conversation_id: str, scope: ChatScope, db: DbDep, visitor_token: VisitorToken = None
) -> dict[str, bool]:
    conversation = await _conversation(db, scope, conversation_id, visitor_token)
    async with db.transaction() as conn:
        await conversations.request_handoff(
            conn, tenant_id=scope.tenant_id, conversation_id=conversation.id, reason="asked by the customer"
        )
    return {"handoff_requested": True}


@router.post("/v1/messages/{message_id}/feedback", summary="Rate an answer (again to change the rating)")
async def give_feedback(
    message_id: str, body: FeedbackCreate, scope: ChatScope, db: DbDep, visitor_token: VisitorToken = None
) -> Feedback:
    async with db.transaction() as conn:
        conversation_id = None
        if scope.caller.is_widget:
            conversation_id = await conversations.conversation_of_message(
                conn, tenant_id=scope.tenant_id, message_id=message_id
            )
            if (
                conversation_id is None
                or await conversations.get_conversation(
                    conn, tenant_id=scope.tenant_id, conversation_id=conversation_id, visitor_token=visitor_token or ""
                )
                is None
            ):
                raise Problem(404, f"No answer '{message_id}'.", kind="not-found")
        feedback = await conversations.set_feedback(
            conn,
            tenant_id=scope.tenant_id,
            message_id=message_id,
            rating=body.rating,
            comment=body.comment,
            conversation_id=conversation_id,
        )
        if feedback is not None and feedback.rating is Rating.DOWN:
            # A disliked answer is never served again from the cache, to anyone of this tenant.
            await answer_cache.evict_answer(conn, tenant_id=scope.tenant_id, message_id=message_id)
    if feedback is None:
        raise Problem(404, f"No answer '{message_id}' to rate.", kind="not-found")
    return feedback
