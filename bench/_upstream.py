"""A fast local OpenAI-protocol upstream for the router benchmarks: a raw ASGI app on uvicorn (uvloop, httptools), in
its own process on 127.0.0.1, so that the vendor's work is not on the benchmark process's CPU clock.

POST {prefix}/v1/chat/completions, where the prefix picks the behaviour:
  (none)   answers: JSON, or SSE when `stream` is true: a role chunk, TOKENS content chunks, a finish chunk, a usage
           chunk (only when `stream_options.include_usage` is true) and `data: [DONE]`; each event is its own write,
           as a vendor flushing every token, with no artificial delay between them.
  /fail    500 with an OpenAI-style error body, on every call.
  /hang    reads the request, then never answers: it waits for the client to go away (at most HANG_S, then 504).
GET /healthz answers 200; GET /stats counts the chat requests served and the connections accepted, so a benchmark can
check that a client makes one upstream request per stream and reuses its connections.
Run: `python -m bench._upstream PORT`; from a benchmark: `with running() as upstream:`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import psutil

from bench._harness import free_port, spawn, stop, wait_for_200

TOKENS = 20
TEXT = [f"tok{n:02d} " for n in range(TOKENS)]  # what a client should reassemble: "tok00 tok01 ... tok19 "
PROMPT_TOKENS = 12
HANG_S = 30.0

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]
_events: dict[tuple[str, bool], list[bytes]] = {}
_served = {"requests": 0, "connections": 0}


def _chunk(model: str, choices: list, **extra) -> bytes:
    body = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    return b"data: " + json.dumps(body | {"choices": choices} | extra, separators=(",", ":")).encode() + b"\n\n"


def _stream_events(model: str, include_usage: bool) -> list[bytes]:
    key = (model, include_usage)
    if key not in _events:
        delta = [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        events = [_chunk(model, delta)]
        events += [_chunk(model, [{"index": 0, "delta": {"content": text}, "finish_reason": None}]) for text in TEXT]
        events.append(_chunk(model, [{"index": 0, "delta": {}, "finish_reason": "stop"}]))
        if include_usage:
            usage = {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": TOKENS,
                "total_tokens": PROMPT_TOKENS + TOKENS,
            }
            events.append(_chunk(model, [], usage=usage))
        events.append(b"data: [DONE]\n\n")
        _events[key] = events
    return _events[key]


def _completion(model: str) -> bytes:
    return json.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": "".join(TEXT)}, "finish_reason": "stop"}
            ],
            "usage": {
                "prompt_tokens": PROMPT_TOKENS,
                "completion_tokens": TOKENS,
                "total_tokens": PROMPT_TOKENS + TOKENS,
            },
        },
        separators=(",", ":"),
    ).encode()


async def _respond(send, status: int, body: bytes, headers=_JSON_HEADERS) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/healthz":
        await _respond(send, 200, b'{"status":"ok"}')
        return
    if path == "/stats":
        await _respond(send, 200, json.dumps(_served).encode())
        return
    _served["requests"] += 1
    body, more = b"", True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if not path.endswith("/v1/chat/completions"):
        await _respond(send, 404, b'{"error":{"message":"not found","type":"invalid_request_error"}}')
        return
    if path.startswith("/fail/"):
        await _respond(send, 500, b'{"error":{"message":"the primary is down","type":"server_error","code":null}}')
        return
    if path.startswith("/hang/"):
        try:  # the client gives up (its timeout closes the connection): uvicorn reports the disconnect
            async with asyncio.timeout(HANG_S):
                while (await receive())["type"] != "http.disconnect":
                    pass
            return
        except TimeoutError:
            await _respond(send, 504, b'{"error":{"message":"hung","type":"server_error"}}')
            return
    request = json.loads(body)
    model = str(request.get("model") or "bench-model")
    if not request.get("stream"):
        await _respond(send, 200, _completion(model))
        return
    include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    for event in _stream_events(model, include_usage):
        await send({"type": "http.response.body", "body": event, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


@dataclass(frozen=True)
class Upstream:
    base: str  # http://127.0.0.1:PORT
    process: psutil.Process

    @property
    def ok_url(self) -> str:
        return f"{self.base}/v1"

    @property
    def fail_url(self) -> str:
        return f"{self.base}/fail/v1"

    @property
    def hang_url(self) -> str:
        return f"{self.base}/hang/v1"

    def stats(self) -> dict[str, int]:
        return httpx.get(f"{self.base}/stats", timeout=5).json()

    def cpu_s(self) -> float:
        times = self.process.cpu_times()
        return times.user + times.system


@contextmanager
def running() -> Iterator[Upstream]:
    """The upstream in its own process on a free port, stopped on exit; waits (bounded) for /healthz."""
    port = free_port()
    process = spawn([sys.executable, "-m", "bench._upstream", str(port)], {})
    try:
        base = f"http://127.0.0.1:{port}"
        wait_for_200(f"{base}/healthz", started=time.perf_counter(), process=process)
        yield Upstream(base, psutil.Process(process.pid))
    finally:
        stop(process)


def _serve(port: int) -> None:
    import uvicorn
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class CountingProtocol(HttpToolsProtocol):
        def connection_made(self, transport) -> None:
            _served["connections"] += 1  # every accepted connection, /healthz and /stats ones included
            super().connection_made(transport)

    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        http=CountingProtocol,
        lifespan="on",
        log_level="warning",
        access_log=False,
        backlog=4096,
    )


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
