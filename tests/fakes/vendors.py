"""A stand-in for LLM vendors: a real HTTP server on 127.0.0.1 speaking the OpenAI Chat Completions and Anthropic
Messages protocols (JSON bodies, SSE streams, usage fields, error bodies, Retry-After), driven by a script of what to
do next. Only the outside world is faked; the providers under test talk to it over a real socket."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.conftest import serving

MAX_HANG_S = 10.0  # every loop and wait in a test is bounded


@dataclass(frozen=True)
class Answer:
    text: str = "Refunds reach your card within 14 days."
    input_tokens: int = 12
    output_tokens: int = 9


@dataclass(frozen=True)
class Fail:
    status: int
    message: str = "upstream failure"
    retry_after: str | None = None


@dataclass(frozen=True)
class Hang:
    seconds: float


@dataclass(frozen=True)
class Garbage:
    """200 with a body that is not what the protocol promises."""


@dataclass(frozen=True)
class BreakMidStream:
    """A stream that sends two words, then fails: an `error` event (Anthropic) or a cut without [DONE] (OpenAI)."""


@dataclass
class FakeVendor:
    base_url: str
    script: deque = field(default_factory=deque)
    requests: list[dict] = field(default_factory=list)

    def then(self, *steps) -> FakeVendor:
        self.script.extend(steps)
        return self

    def _next(self):
        return self.script.popleft() if self.script else Answer()


def _words(text: str) -> list[str]:
    return [word + " " for word in text.split(" ")[:-1]] + [text.split(" ")[-1]]


def _error(step: Fail, anthropic: bool) -> Response:
    kind = {429: "rate_limit_error", 529: "overloaded_error"}.get(step.status, "api_error")
    body = {"type": "error", "error": {"type": kind, "message": step.message}}
    if not anthropic:
        body = {"error": {"message": step.message, "type": kind, "code": None}}
    headers = {"retry-after": step.retry_after} if step.retry_after else {}
    return JSONResponse(body, status_code=step.status, headers=headers)


def _openai(step: Answer, model: str, stream: bool):
    if not stream:
        return JSONResponse(
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "model": model,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": step.text}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": step.input_tokens,
                    "completion_tokens": step.output_tokens,
                    "total_tokens": step.input_tokens + step.output_tokens,
                },
            }
        )

    async def events():
        base = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "model": model}
        for word in _words(step.text):
            choice = {"index": 0, "delta": {"content": word}, "finish_reason": None}
            yield f"data: {json.dumps(base | {'choices': [choice]})}\n\n"
        yield f"data: {json.dumps(base | {'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\n"
        usage = {"prompt_tokens": step.input_tokens, "completion_tokens": step.output_tokens}
        yield f"data: {json.dumps(base | {'choices': [], 'usage': usage})}\n\n"
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


def _anthropic(step: Answer, model: str, stream: bool):
    if not stream:
        return JSONResponse(
            {
                "id": "msg_fake",
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [{"type": "text", "text": step.text}],
                "stop_reason": "end_turn",
                "usage": {"input_tokens": step.input_tokens, "output_tokens": step.output_tokens},
            }
        )

    def event(name: str, data: dict) -> str:
        return f"event: {name}\ndata: {json.dumps({'type': name} | data)}\n\n"

    async def events():
        usage = {"input_tokens": step.input_tokens, "output_tokens": 1}
        yield event("message_start", {"message": {"id": "msg_fake", "model": model, "usage": usage}})
        yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        yield event("ping", {})
        for word in _words(step.text):
            yield event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word}})
        yield event("content_block_stop", {"index": 0})
        yield event(
            "message_delta", {"delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": step.output_tokens}}
        )
        yield event("message_stop", {})

    return StreamingResponse(events(), media_type="text/event-stream")


async def _broken_stream(anthropic: bool):
    for word in ("Refunds ", "reach "):
        if anthropic:
            delta = {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": word}}
            yield f"event: content_block_delta\ndata: {json.dumps(delta)}\n\n"
        else:
            yield f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': word}}]})}\n\n"
    if anthropic:
        error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
        yield f"event: error\ndata: {json.dumps(error)}\n\n"


def _app(vendor: FakeVendor, *, anthropic: bool) -> Starlette:
    async def handle(request: Request) -> Response:
        body = await request.json()
        vendor.requests.append({"headers": dict(request.headers), "body": body})
        step = vendor._next()
        if isinstance(step, Hang):
            await asyncio.sleep(min(step.seconds, MAX_HANG_S))
            step = Answer()
        if isinstance(step, Fail):
            return _error(step, anthropic)
        if isinstance(step, BreakMidStream):
            return StreamingResponse(_broken_stream(anthropic), media_type="text/event-stream")
        if isinstance(step, Garbage):
            if body.get("stream"):
                return StreamingResponse(iter(["data: {not json\n\n"]), media_type="text/event-stream")
            return Response("<html>502 from a proxy</html>", media_type="text/html")
        answer = _anthropic if anthropic else _openai
        return answer(step, body.get("model", "fake-model"), bool(body.get("stream")))

    path = "/v1/messages" if anthropic else "/v1/chat/completions"
    return Starlette(routes=[Route(path, handle, methods=["POST"])])


@contextmanager
def serve_vendor(*, anthropic: bool = False) -> Iterator[FakeVendor]:
    vendor = FakeVendor(base_url="")
    with serving(_app(vendor, anthropic=anthropic)) as base:
        vendor.base_url = base if anthropic else f"{base}/v1"
        yield vendor
