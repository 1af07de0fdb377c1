"""The Anthropic Messages API: system prompt apart from the messages, usage split over message_start and
message_delta, errors as an `error` event even after a 200."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

from core.llm import http
from core.llm.base import ChatMessage, ChatParams, Completion, Delta, ProviderError, Usage

PATH = "/v1/messages"
API_VERSION = "2023-06-01"
RETRYABLE_ERROR_TYPES = frozenset({"overloaded_error", "api_error", "rate_limit_error"})


class AnthropicProvider:
    def __init__(self, *, name: str, base_url: str, api_key: str | None) -> None:
        self.name = name
        headers = {"anthropic-version": API_VERSION} | ({"x-api-key": api_key} if api_key else {})
        self._client = http.new_client(base_url.rstrip("/"), headers)

    def _payload(self, messages: Sequence[ChatMessage], params: ChatParams, *, stream: bool) -> dict[str, Any]:
        system = "\n\n".join(m.content for m in messages if m.role == "system")
        payload: dict[str, Any] = {
            "model": params.model,
            "messages": [{"role": m.role, "content": m.content} for m in messages if m.role != "system"],
            "max_tokens": params.max_tokens,
            "temperature": params.temperature,
        }
        if system:
            payload["system"] = system
        if stream:
            payload["stream"] = True
        return payload

    async def chat(self, messages: Sequence[ChatMessage], params: ChatParams) -> Completion:
        body = await http.post_json(
            self._client, self.name, PATH, self._payload(messages, params, stream=False), timeout_s=params.timeout_s
        )
        try:
            text = "".join(block["text"] for block in body["content"] if block.get("type") == "text")
            usage = Usage(int(body["usage"]["input_tokens"]), int(body["usage"]["output_tokens"]))
        except (KeyError, TypeError, ValueError):
            raise http.malformed(self.name, "no content or usage") from None
        return Completion(
            text=text, model=str(body.get("model") or params.model), usage=usage, finish_reason=body.get("stop_reason")
        )

    async def stream(self, messages: Sequence[ChatMessage], params: ChatParams) -> AsyncIterator[Delta]:
        payload = self._payload(messages, params, stream=True)
        input_tokens = output_tokens = 0
        stop_reason = None
        async with http.open_stream(self._client, self.name, PATH, payload, timeout_s=params.timeout_s) as response:
            events = http.sse_events(self.name, response)
            async for event, data in events:
                body = http.parse_json(self.name, data)
                kind = body.get("type", event)
                if kind == "message_start":
                    input_tokens = int(((body.get("message") or {}).get("usage") or {}).get("input_tokens", 0))
                elif kind == "content_block_delta":
                    delta = body.get("delta") or {}
                    if delta.get("type") == "text_delta" and delta.get("text"):
                        yield Delta(text=delta["text"])
                elif kind == "message_delta":
                    output_tokens = int((body.get("usage") or {}).get("output_tokens", output_tokens))
                    stop_reason = (body.get("delta") or {}).get("stop_reason") or stop_reason
                elif kind == "message_stop":
                    yield Delta(usage=Usage(input_tokens, output_tokens), finish_reason=stop_reason)
                    await http.drain(events)
                    return
                elif kind == "error":
                    error = body.get("error") or {}
                    raise ProviderError(
                        f"{self.name} reported {error.get('type', 'an error')}: {str(error.get('message'))[:200]}",
                        provider=self.name,
                        retryable=error.get("type") in RETRYABLE_ERROR_TYPES,
                    )
        raise http.malformed(self.name, "the stream ended without message_stop")

    async def aclose(self) -> None:
        await self._client.aclose()
