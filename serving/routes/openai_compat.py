"""An OpenAI-compatible face: `POST /v1/chat/completions` and `GET /v1/models`, authenticated with a tenant API key.

The official `openai` client pointed at Parley's base URL works unchanged. `model` is a Parley alias (`parley-auto` lets
the router pick the tier; `parley-kb` asks for the knowledge-base answerer). Each call is recorded as a conversation on
the `openai` channel, with its outbox events, like any other chat. Token counts are estimates (4 characters a token)
until the router meters real provider usage. Extra fields a client sends (temperature, max_tokens...) are accepted and
ignored by the knowledge-base tier.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from core import conversations
from core.llm.kb import stream_words
from core.schemas import Channel
from core.tenancy import Permission as P
from serving.deps import ChatDep, DbDep, SettingsDep, TenantScope, tenant_access
from serving.problems import Problem, problem_responses
from serving.routes.conversations import SSE_HEADERS

router = APIRouter(prefix="/v1", tags=["openai-compatible"], responses=problem_responses(401, 403, 404, 422, 429))

MODELS = {"parley-auto": "Parley picks the cheapest tier that answers well", "parley-kb": "the knowledge-base answerer"}
_CREATED = 1_767_225_600  # 2026-01-01: when these aliases were introduced


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="ignore")
    type: str
    text: str | None = None


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return " ".join(part.text or "" for part in self.content if part.type == "text").strip()
        return (self.content or "").strip()


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="ignore")
    model: str
    messages: Annotated[list[ChatMessage], Field(min_length=1, max_length=500)]
    stream: bool = False


def _tokens(text: str) -> int:
    return max(1, round(len(text) / 4))


@router.get("/models", summary="The model aliases a tenant can ask for")
async def list_models(scope: Annotated[TenantScope, tenant_access(P.CHAT)]) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": name, "object": "model", "created": _CREATED, "owned_by": "parley"} for name in MODELS],
    }


@router.post(
    "/chat/completions",
    summary="OpenAI Chat Completions protocol (JSON, or SSE chunks with stream=true)",
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def chat_completions(
    body: ChatCompletionRequest,
    scope: Annotated[TenantScope, tenant_access(P.CHAT)],
    db: DbDep,
    chat: ChatDep,
    settings: SettingsDep,
):
    started = time.perf_counter()
    if body.model not in MODELS:
        raise Problem(
            404, f"The model '{body.model}' does not exist; use one of {', '.join(MODELS)}.", kind="model-not-found"
        )
    question = next((m.text() for m in reversed(body.messages) if m.role == "user" and m.text()), "")
    if not question:
        raise Problem(422, "messages: no user message with text", kind="validation-error")
    if len(question) > settings.max_message_chars:
        raise Problem(
            422,
            f"messages: the last user message exceeds {settings.max_message_chars} characters",
            kind="validation-error",
        )
    async with db.transaction() as conn:
        conversation = await conversations.create_conversation(
            conn, tenant_id=scope.tenant_id, channel=Channel.OPENAI, metadata={"model": body.model}
        )
    await chat.accept(tenant_id=scope.tenant_id, conversation_id=conversation.id, text=question)
    turn = await chat.answer(
        tenant_id=scope.tenant_id, conversation_id=conversation.id, question=question, started=started
    )
    completion_id = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())
    parley = {
        "conversation_id": conversation.id,
        "message_id": turn.reply.id,
        "tier": turn.answer.tier,
        "sources": [source.model_dump() for source in turn.answer.sources],
        "handoff_offered": not turn.answer.confident,
    }
    usage = {
        "prompt_tokens": _tokens(question),
        "completion_tokens": _tokens(turn.answer.text),
        "total_tokens": _tokens(question) + _tokens(turn.answer.text),
    }
    if not body.stream:
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": turn.answer.text}, "finish_reason": "stop"}
            ],
            "usage": usage,
            "parley": parley,
        }

    def chunk(delta: dict[str, Any], finish_reason: str | None = None, **extra: Any) -> bytes:
        payload = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": body.model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
            **extra,
        }
        return f"data: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()

    async def events() -> AsyncIterator[bytes]:
        yield chunk({"role": "assistant", "content": ""})
        for piece in stream_words(turn.answer.text):
            yield chunk({"content": piece})
        yield chunk({}, "stop", usage=usage, parley=parley)
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
