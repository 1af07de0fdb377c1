"""An OpenAI-compatible face: `POST /v1/chat/completions` and `GET /v1/models`, authenticated with a tenant API key.

The official `openai` client pointed at Parley's base URL works unchanged. `model` is `parley-auto` (the tenant's
routing policy picks the tier), `parley-kb` (the knowledge-base answerer only), or one `provider/model` the tenant's
policy allows (its budget still applies; when that model cannot answer, the knowledge base does). Each call is
recorded as a conversation on the `openai` channel, with its outbox events and usage row, like any other chat. The
`usage` block carries the model's real token counts; the free tiers, which read no tokens, report estimates (four
characters a token). The `parley` block says which tier and model answered, and from which sources. The client's
system messages are not forwarded: the tenant's policy and knowledge base decide what the assistant may say.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Annotated, Any, Literal

import anyio
from fastapi import APIRouter
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field

from core import conversations
from core.llm import base, routing
from core.llm.policy import TenantPolicy
from core.schemas import Channel
from core.tenancy import Permission as P
from serving.deps import ChatDep, DbDep, RegistryDep, SettingsDep, TenantScope, tenant_access
from serving.problems import Problem, problem_responses
from serving.routes.conversations import SSE_HEADERS
from serving.services.chat import Accepted, Turn

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1", tags=["openai-compatible"], responses=problem_responses(401, 403, 404, 422, 429))

ALIASES = {"parley-auto": None, "parley-kb": ("kb",)}  # alias -> the tiers it stands for (None: the policy's)
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
    max_tokens: Annotated[int, Field(ge=1, le=32_000)] | None = None
    max_completion_tokens: Annotated[int, Field(ge=1, le=32_000)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None


def _estimated_tokens(text: str) -> int:
    return max(1, round(len(text) / 4))


def _allowed_models(policy: TenantPolicy) -> list[str]:
    return policy.allowed_models or policy.paid_tiers


def _tiers(model: str, policy: TenantPolicy) -> tuple[str, ...] | None:
    if model in ALIASES:
        return ALIASES[model]
    if model in _allowed_models(policy):
        return (model,)
    names = ", ".join([*ALIASES, *_allowed_models(policy)])
    raise Problem(
        404, f"The model '{model}' does not exist or is not allowed; use one of {names}.", kind="model-not-found"
    )


@router.get(
    "/models",
    summary="The models a tenant can ask for (Parley's aliases and what its policy allows) and, for keys that may "
    "read models, its registered custom models with their metrics and champion",
)
async def list_models(
    scope: Annotated[TenantScope, tenant_access(P.CHAT, P.MODELS_READ)], db: DbDep, registry: RegistryDep
) -> dict[str, Any]:
    body: dict[str, Any] = {"object": "list", "data": []}
    if scope.caller.may(P.CHAT, tenant_id=scope.tenant_id):
        async with db.connection() as conn:
            context = await routing.read_context(conn, tenant_id=scope.tenant_id, conversation_id=None)
        owners = {name: "parley" for name in ALIASES} | {
            name: name.split("/", 1)[0] for name in _allowed_models(context.policy)
        }
        body["data"] = [
            {"id": name, "object": "model", "created": _CREATED, "owned_by": owner} for name, owner in owners.items()
        ]
    if scope.caller.may(P.MODELS_READ, tenant_id=scope.tenant_id):
        # An extra member: OpenAI clients read `data` and ignore the rest.
        body["registered"] = await asyncio.to_thread(registry.tenant_models, tenant_id=scope.tenant_id)
    return body


def _history(body: ChatCompletionRequest) -> list[base.ChatMessage]:
    """The turns before the last user message; system and tool messages are not forwarded."""
    last_user = max(i for i, m in enumerate(body.messages) if m.role == "user" and m.text())
    return [
        base.ChatMessage(m.role, m.text())
        for m in body.messages[:last_user]
        if m.role in ("user", "assistant") and m.text()
    ]


def _usage(question: str, turn: Turn) -> dict[str, int]:
    answered = turn.answered
    if answered.usage.input_tokens or answered.usage.output_tokens:
        prompt, completion = answered.usage.input_tokens, answered.usage.output_tokens
    else:
        prompt, completion = _estimated_tokens(question), _estimated_tokens(answered.text)
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _parley(conversation_id: str, turn: Turn) -> dict[str, Any]:
    answered = turn.answered
    return {
        "conversation_id": conversation_id,
        "message_id": turn.reply.id if turn.reply else None,
        "tier": answered.tier,
        "model": answered.model,
        "cost_usd": answered.cost_usd,
        "sources": [source.model_dump() for source in answered.sources],
        "handoff_offered": not answered.confident,
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
    question = next((m.text() for m in reversed(body.messages) if m.role == "user" and m.text()), "")
    if not question:
        raise Problem(422, "messages: no user message with text", kind="validation-error")
    if len(question) > settings.max_message_chars:
        raise Problem(
            422,
            f"messages: the last user message exceeds {settings.max_message_chars} characters",
            kind="validation-error",
        )
    async with db.connection() as conn:
        context = await routing.read_context(conn, tenant_id=scope.tenant_id, conversation_id=None)
    tiers = _tiers(body.model, context.policy)
    history = _history(body)
    intent = await chat.classify(tenant_id=scope.tenant_id, text=question)
    async with db.transaction() as conn:
        conversation = await conversations.create_conversation(
            conn, tenant_id=scope.tenant_id, channel=Channel.OPENAI, metadata={"model": body.model}
        )
        message = await conversations.add_message(
            conn,
            tenant_id=scope.tenant_id,
            conversation_id=conversation.id,
            role="user",
            text=question,
            intent=intent.intent if intent else None,
            intent_confidence=round(intent.confidence, 4) if intent else None,
        )
    earlier = sum(1 for m in history if m.role == "user")
    accepted = Accepted(message=message, context=replace(context, earlier_questions=earlier), intent=intent)

    async def given_history():
        return history

    asked = {
        "tenant_id": scope.tenant_id,
        "conversation_id": conversation.id,
        "question": question,
        "accepted": accepted,
        "started": started,
        "history": given_history,
        "tiers": tiers,
        "max_tokens": body.max_completion_tokens or body.max_tokens or 512,
        "temperature": 0.2 if body.temperature is None else body.temperature,
    }
    completion_id = f"chatcmpl-{secrets.token_hex(12)}"
    created = int(time.time())
    if not body.stream:
        turn = await chat.answer(**asked)
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": created,
            "model": body.model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": turn.answered.text}, "finish_reason": "stop"}
            ],
            "usage": _usage(question, turn),
            "parley": _parley(conversation.id, turn),
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
        streamed = chat.stream(**asked)
        yield chunk({"role": "assistant", "content": ""})
        failed = False
        try:
            async for piece in streamed.pieces:
                yield chunk({"content": piece})
        except Exception:
            log.exception("answering failed")
            failed = True
        finally:
            with anyio.CancelScope(shield=True):  # recorded even if the client has gone: the tokens were paid for
                turn = await streamed.finish()
        if failed or turn.answered.outcome == "error":
            error = {"message": "The answer broke off; please try again.", "type": "server_error"}
            yield f"data: {json.dumps({'error': error})}\n\n".encode()
            return
        yield chunk({}, "stop", usage=_usage(question, turn), parley=_parley(conversation.id, turn))
        yield b"data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
